"""The flow walk: visits per request and end-to-end latency moments along a design's flow.

The traffic and timing half of the analytic twin (``sim.twin.analytic``). It follows the flow
exactly as ``designs/model.py`` defines it — branches, cache hits, guardrail blocks, fan-out
groups and their joins, back edges (loops) and asynchronous ``queue`` hand-offs — and carries
the first two moments of the caller's latency through every step.

Usage::

    >>> from designs.model import Design
    >>> from sim.twin.flow import Profile, latency_moments, visits_per_request
    >>> d = Design.model_validate({"name": "x", "workload": {}, "entry": "a",
    ...     "components": [{"id": "a", "kind": "service"}, {"id": "b", "kind": "service"}],
    ...     "flow": [{"from": "a", "to": "b"}]})
    >>> visits_per_request(d)
    {'a': 1.0, 'b': 1.0}
    >>> prof = {"a": Profile(0.0, 0.0, [(1.0, 0.01, 2e-4, True)]), "b": Profile(0.0, 0.0, [(1.0, 0.02, 8e-4, True)])}
    >>> [round(x, 6) for x in latency_moments(d, prof)[:2]]    # mean s, variance s²
    [0.03, 0.0005]

* **Traffic.** A branch takes ``p`` of its source's traffic, a cache passes on ``1 − hit_ratio``,
  a guardrail ``1 − block_ratio``, every fan-out branch gets the full rate and the join is
  visited once per fan-out, a ``queue``'s consumers get its traffic off the caller's path. A
  back edge (``p``, ``max_repeats``) returning to ``v`` makes the body ``v … u`` run N times,
  P(N > k) = (r·p)ᵏ for k ≤ max_repeats, r the probability a pass from ``v`` reaches ``u``:
  E[N] = Σₖ₌₀..ₘ (r·p)ᵏ. Exact in expectation for one loop; nested loops compose the same way.
* **Times.** Each station is a `Profile`: its wait moments and its outcomes (probability,
  service moments, whether the request continues). Response times add along the flow;
  branches mix by probability; a fan-out's join time is the max of its branches by Clark's
  (1961) normal moment matching, except two exponential branches (exact max; two identical
  M/M/1 branches of one fork by Nelson–Tantawi's (12 − ρ)/8 · 1/(μ − λ)); loops add N passes.
  Mean and variance are exact except at joins (branches taken as independent).
* **Shape.** `latency_mixture` keeps the ways through the flow apart — a part per loop pass
  count, branch and outcome, merged to MIX_CAP parts — and, where a request calls `llm_api`s
  more than once, a walk per bin of its output-token count (the calls share it); the
  percentiles are those of a gamma per part (``sim.twin.queueing.mixture_quantile``).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

from designs.model import Design, Edge
from sim.twin import queueing as qt

__all__ = ["visits_per_request", "latency_moments", "latency_mixture", "latency_quantile", "arrival_moments",
           "visits_with", "Profile"]


# --- moment triples and mixtures of them --------------------------------------------------------
# A "triple" (p, m1, m2) is a sub-probability with its first two partial moments:
# p = P(A), m1 = E[T·1_A], m2 = E[T²·1_A]. Independent sums and mixtures are then exact.
# A segment's outcomes are a *mixture*: a list of triples whose sum is the segment's triple, one
# per way through it (a loop's pass count, a branch, a cache hit) as far as MIX_CAP allows. The
# sum keeps the mean and variance; the parts keep the shape (a loop's pass counts are far apart,
# so one gamma on the sum is too light-tailed: agent_workflow p95 −8 % against the simulation).

T3 = tuple[float, float, float]
Mix = list[T3]
_ZERO: T3 = (0.0, 0.0, 0.0)
_ONE: T3 = (1.0, 0.0, 0.0)
_NONE: Mix = []  # the empty mixture: nothing happens
_CERTAIN: Mix = [_ONE]

MIX_CAP = 16
"""Parts a mixture keeps; beyond, the closest ones merge (moment-preserving, Ward's criterion).
agent_workflow's p95 is 14,026–14,050 ms with 8 to 64 parts (13,938 with 4)."""


def _conv(a: T3, b: T3) -> T3:
    """The independent sum A + B restricted to both events."""
    return (a[0] * b[0], b[0] * a[1] + a[0] * b[1], b[0] * a[2] + 2 * a[1] * b[1] + a[0] * b[2])


def _add(a: T3, b: T3) -> T3:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _scale(a: T3, w: float) -> T3:
    return (a[0] * w, a[1] * w, a[2] * w)


def _time(m1: float, m2: float) -> T3:
    """A certain event whose time has mean m1 and second moment m2."""
    return (1.0, m1, m2)


def _total(a: Mix) -> T3:
    """The mixture as one triple (its mass and partial moments: exact)."""
    if len(a) == 1:
        return a[0]
    p = m1 = m2 = 0.0
    for x in a:
        p += x[0]
        m1 += x[1]
        m2 += x[2]
    return (p, m1, m2)


def _reduce(a: Mix, cap: int, slack: int = 1) -> Mix:
    """At most `cap` parts once there are more than `slack`·cap: adjacent parts (by mean) merge,
    cheapest first by Ward's cost w₁w₂/(w₁ + w₂)·(μ₁ − μ₂)² (the variance a merge moves from
    between parts to within one); up to a quarter of the pairs per round (disjoint), so a few
    rounds even from cap² parts. The walk lets a mixture grow to 2·cap before merging (a third of the merges)."""
    if len(a) <= cap * slack:
        return a
    if cap == 1:
        return [_total(a)]
    items = sorted((t for t in a if t[0] > 0), key=lambda t: t[1] / t[0])
    while len(items) > cap:
        # at most a quarter of the pairs per round: with more, the cheap merges run out and
        # heavy neighbours are paired too (a loop's first passes merged while its 1e-10 tail stayed)
        excess = min(len(items) - cap, max(1, len(items) // 4))
        mu = [t[1] / t[0] for t in items]
        w = [t[0] for t in items]
        costs = sorted((w[i] * w[i + 1] / (w[i] + w[i + 1]) * (mu[i + 1] - mu[i]) ** 2, i) for i in range(len(items) - 1))
        start: set[int] = set()
        used: set[int] = set()
        for _, i in costs:
            if i in used or i + 1 in used:
                continue
            used.add(i)
            used.add(i + 1)
            start.add(i)
            if len(start) == excess:
                break
        out = []
        i = 0
        while i < len(items):
            if i in start:
                out.append(_add(items[i], items[i + 1]))
                i += 2
            else:
                out.append(items[i])
                i += 1
        items = out
    return items


def _mconv(a: Mix, b: Mix, cap: int) -> Mix:
    """The independent sum of two mixtures: every pair of parts."""
    if len(a) == 1 and len(b) == 1:
        return [_conv(a[0], b[0])]
    return _reduce([_conv(x, y) for x in a for y in b if x[0] > 0 and y[0] > 0], cap, 2)


def _madd(a: Mix, b: Mix, cap: int) -> Mix:
    """Either one or the other (disjoint events): the parts side by side."""
    if not a:
        return b
    if not b:
        return a
    return _reduce(a + b, cap, 2)


def _mscale(a: Mix, w: float) -> Mix:
    if w == 1.0:
        return a
    return [_scale(x, w) for x in a] if w > 0 else []


def _mix(t: T3) -> Mix:
    return [t] if t[0] > 0 else []


@dataclass
class _Seg:
    """What happens from arriving at a node until reaching `stop` (a join) or ending."""

    visits: dict[str, float]
    stop: Mix
    end: Mix
    mark: T3 = _ZERO
    """Arrivals at the walker's `mark` component within this segment (sub-probability, moments
    from the segment's start); lost inside loops, so a caller checks its mass against the visits."""


def _seg_scaled(s: _Seg, w: float) -> _Seg:
    return _Seg({k: v * w for k, v in s.visits.items()}, _mscale(s.stop, w), _mscale(s.end, w), _scale(s.mark, w))


def _seg_add(a: _Seg, b: _Seg, cap: int) -> _Seg:
    v = dict(a.visits)
    for k, x in b.visits.items():
        v[k] = v.get(k, 0.0) + x
    return _Seg(v, _madd(a.stop, b.stop, cap), _madd(a.end, b.end, cap), _add(a.mark, b.mark))


def _then(t: Mix, s: _Seg, cap: int) -> _Seg:
    """Time `t` (a sub-probability mixture) followed by segment `s`."""
    tt = _total(t) if t else _ZERO
    return _Seg({k: v * tt[0] for k, v in s.visits.items()}, _mconv(t, s.stop, cap) if t and s.stop else [],
                _mconv(t, s.end, cap) if t and s.end else [], _conv(tt, s.mark))


# --- station profiles: the part of a station the walk needs --------------------------------------


@dataclass
class Profile:
    """Per visit: wait moments and the outcomes (prob, service m1, m2, continues downstream)."""

    wait1: float = 0.0
    wait2: float = 0.0
    outcomes: list[tuple[float, float, float, bool]] = field(default_factory=lambda: [(1.0, 0.0, 0.0, True)])
    is_async: bool = False  # a queue: consumers run off the caller's path

    def outcome_times(self) -> list[tuple[float, T3, bool]]:
        w1, w2 = self.wait1, self.wait2
        return [(p, _time(w1 + s1, w2 + 2 * w1 * s1 + s2), cont) for p, s1, s2, cont in self.outcomes]


def _routing_profile(comp: Any) -> Profile:
    """Outcome probabilities only (times zero): enough for the traffic pass."""
    kind = comp.kind
    if kind == "cache":
        h = comp.hit_ratio
        return Profile(outcomes=[(h, 0.0, 0.0, False), (1 - h, 0.0, 0.0, True)])
    if kind == "guardrail":
        b = comp.block_ratio
        return Profile(outcomes=[(b, 0.0, 0.0, False), (1 - b, 0.0, 0.0, True)])
    if kind == "queue":
        return Profile(outcomes=[(1.0, 0.0, 0.0, False)], is_async=True)
    return Profile()


class _Walker:
    """Recursive walk of the flow, memoised on (node, stop, loops already being handled)."""

    def __init__(self, design: Design, profiles: dict[str, Profile], track_visits: bool = True,
                 mark: str | None = None, cap: int = 1):
        self.d = design
        # Parts per mixture: 1 (one triple per segment, the mean and variance only) unless the
        # caller wants the shape (`latency_mixture`): the MVA walks the flow once per user.
        self.cap = cap
        self.mark = mark
        self.prof = profiles
        # Without visits (latency only) every segment's dict stays empty: the walk is then
        # linear in the flow instead of quadratic on long chains (a closed loop walks it per user).
        self.track = track_visits
        self.memo: dict[tuple, _Seg] = {}
        self.warnings: set[str] = set()
        self.loops_into: dict[str, list[tuple[int, Edge]]] = {}
        for i, e in enumerate(design.flow):
            if e.is_loop:
                self.loops_into.setdefault(e.to, []).append((i, e))
        self.loop_index = {id(e): i for i, e in enumerate(design.flow) if e.is_loop}
        self.joins: dict[str, str | None] = {}
        # Adjacency once: Design.out_edges scans the whole flow on every call.
        self.outs: dict[str, list[Edge]] = {c.id: [] for c in design.components}
        self.backs: dict[str, list[Edge]] = {c.id: [] for c in design.components}
        for e in design.flow:
            if e.fallback:
                continue  # taken only when its source fails (sim.ops): no traffic in the healthy twin
            (self.backs if e.is_loop else self.outs)[e.from_].append(e)
        self.dist_memo: dict[str, dict[str, int]] = {}

    def distances(self, start: str) -> dict[str, int]:
        """Hops from `start` along forward edges (as Design._distances, with the adjacency above)."""
        hit = self.dist_memo.get(start)
        if hit is None:
            hit = {start: 0}
            frontier = [start]
            while frontier:
                nxt = []
                for u in frontier:
                    for e in self.outs[u]:
                        if e.to not in hit:
                            hit[e.to] = hit[u] + 1
                            nxt.append(e.to)
                frontier = nxt
            self.dist_memo[start] = hit
        return hit

    def join_of(self, n: str) -> str | None:
        """Same rule as Design.join_of: the nearest component every branch reaches."""
        if n not in self.joins:
            reach = [self.distances(e.to) for e in self.outs[n]]
            common = set(reach[0]).intersection(*reach[1:]) if reach else set()
            self.joins[n] = min(common, key=lambda x: (max(r[x] for r in reach), x)) if common else None
        return self.joins[n]

    def run(self) -> _Seg:
        limit = sys.getrecursionlimit()
        need = 20 * len(self.d.components) + 200
        if need > limit:  # deep chains recurse once per node; raise the limit for this walk only
            sys.setrecursionlimit(need)
        try:
            return self.seg(self.d.entry, None, frozenset())
        finally:
            sys.setrecursionlimit(limit)

    def seg(self, n: str, stop: str | None, handled: frozenset) -> _Seg:
        if n == stop:
            return _Seg({}, _CERTAIN, _NONE)
        key = (n, stop, handled)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        loops = [(i, e) for i, e in self.loops_into.get(n, []) if i not in handled]
        if loops:
            dist = self.distances(n)
            # The outermost loop (source farthest from n) first; inner ones nest inside its body.
            i, e = max(loops, key=lambda ie: (dist.get(ie[1].from_, -1), -ie[0]))
            res = self._loop(n, e, stop, handled | {i})
        else:
            res = self._node(n, stop, handled)
        self.memo[key] = res
        return res

    def _async_visits(self, n: str, handled: frozenset) -> dict[str, float]:
        return self._forward(n, None, handled).visits

    def _node(self, n: str, stop: str | None, handled: frozenset) -> _Seg:
        prof = self.prof[n]
        # A back edge whose target this request did not pass through (the target does not
        # dominate the source): take it here, entering the loop with one repeat used.
        back = [e for e in self.backs[n] if self.loop_index[id(e)] not in handled]
        fwd = None
        cap = self.cap
        out = _Seg({n: 1.0} if self.track else {}, _NONE, _NONE)
        for p, t, cont in prof.outcome_times():
            if p <= 0:
                continue
            if cont:
                if fwd is None:
                    fwd = self._forward(n, stop, handled)
                    if back:
                        e = back[0]
                        i = self.loop_index[id(e)]
                        again = self._loop(e.to, e, stop, handled | {i}, repeats=(e.max_repeats or 1) - 1)
                        fwd = _seg_add(_seg_scaled(again, e.p), _seg_scaled(fwd, 1 - e.p), cap)
                out = _seg_add(out, _seg_scaled(_then([t], fwd, cap), p), cap)
            else:
                out = _seg_add(out, _Seg({}, _NONE, [_scale(t, p)]), cap)
        if len(back) > 1:
            self.warnings.add(f"'{n}' has {len(back)} back edges; the estimate follows only {back[0].from_} → {back[0].to}")
        if prof.is_async and self.track:
            out = _seg_add(out, _Seg(self._async_visits(n, handled), _NONE, _NONE), cap)
        if n == self.mark:  # arriving here, at the segment's start
            out = _Seg(out.visits, out.stop, out.end, _add(out.mark, _ONE))
        return out

    def _forward(self, n: str, stop: str | None, handled: frozenset) -> _Seg:
        """After `n` is served and the request continues: its outgoing edges."""
        outs = self.outs[n]
        cap = self.cap
        if not outs:
            return _Seg({}, _NONE, _CERTAIN)
        if all(e.parallel for e in outs):
            j = self.join_of(n)
            branches = [self.seg(e.to, j, handled) for e in outs]
            marks = _ZERO  # every branch starts when the fork's service ends
            for b in branches:
                marks = _add(marks, b.mark)
            visits: dict[str, float] = {}
            mean = var = None
            moments = []
            for b in branches:
                for k, x in b.visits.items():
                    visits[k] = visits.get(k, 0.0) + x
                p, m1, m2 = _total(b.stop + b.end) if b.stop or b.end else _ZERO
                bm = m1 / p if p > 0 else 0.0
                bv = max(0.0, m2 / p - bm * bm) if p > 0 else 0.0
                moments.append((bm, bv))
                # Join time = max of the branch times, Clark's normal moment matching pairwise.
                mean, var = (bm, bv) if mean is None else qt.clark_max(mean, var, bm, bv)
            exact = self._two_way_exponential(outs, branches, moments)
            if exact is not None:
                mean, var = exact
            # The join collapses the branches to one time (its mean and variance): the shape of
            # a max of mixtures is not carried.
            t = _time(mean, var + mean * mean)
            if j is None:
                return _Seg(visits, _NONE, [t], marks)
            rest = _then([t], self.seg(j, stop, handled), cap)
            return _seg_add(rest, _Seg(visits, _NONE, _NONE, marks), cap)
        total_p = sum(e.p for e in outs)
        acc = _Seg({}, _NONE, _mix((max(0.0, 1 - total_p), 0.0, 0.0)))
        for e in outs:
            if e.p > 0:
                acc = _seg_add(acc, _seg_scaled(self.seg(e.to, stop, handled), e.p), cap)
        return acc

    def _two_way_exponential(self, outs, branches, moments) -> tuple[float, float] | None:
        """Exact join of two exponential branches, where Clark's normal fit is 4-11 % high.

        Two branches whose times are exponential (SCV 1): independent, E[max] = m1 + m2 −
        m1·m2/(m1 + m2). Two identical single-station M/M/1 branches fed by the same fan-out
        share their arrivals, which correlates them: E[max] = (12 − ρ)/8 · 1/(μ − λ) (Nelson &
        Tantawi, IEEE Trans. Computers 37(6), 1988), ρ = wait/(wait + service) of the station —
        1.5 × the mean at ρ = 0 (pure delays), as for independent ones. The variance is the
        independent one, 2m1² + 2m2² − 2h² − E[max]² with h = m1·m2/(m1 + m2).
        """
        if len(moments) != 2 or any(m <= 0 or abs(v - m * m) > 0.02 * m * m for m, v in moments):
            return None
        (m1, _), (m2, _) = moments
        h = m1 * m2 / (m1 + m2)
        mean = m1 + m2 - h
        second = 2 * m1 * m1 + 2 * m2 * m2 - 2 * h * h
        j = self.join_of(outs[0].from_)
        # a branch that is one station: straight from the fork to the join (or to the end)
        single = [e.to for e in outs if not self.backs[e.to] and all(o.to == j for o in self.outs[e.to])]
        if len(single) == 2 and abs(m1 - m2) <= 1e-9 * m1:
            p1, p2 = self.prof[single[0]], self.prof[single[1]]
            if len(p1.outcomes) == len(p2.outcomes) == 1 and p1.wait1 == p2.wait1:
                _, s1, s2, _ = p1.outcomes[0]
                w = p1.wait1
                if s1 > 0 and abs(s2 - 2 * s1 * s1) <= 0.02 * s2 and (w == 0 or abs(p1.wait2 - 2 * w * (w + s1)) <= 0.02 * p1.wait2):
                    rho = w / (w + s1)  # M/M/1: W/R = ρ
                    mean = (12 - rho) / 8 * m1
        return mean, max(0.0, second - mean * mean)

    def _loop(self, v: str, edge: Edge, stop: str | None, handled: frozenset, repeats: int | None = None) -> _Seg:
        """Passes v → … → u repeated while the back edge u → v is taken (p, at most m times)."""
        u, p = edge.from_, edge.p
        m = (edge.max_repeats or 0) if repeats is None else repeats
        body = self.seg(v, u, handled)  # stops on arrival at u, before u is served
        outcomes = self.prof[u].outcome_times()
        cap = self.cap
        # Mixtures over the pass count k: `cur` the requests starting pass k + 1, `ended` those
        # that ended inside the loop, `exited` those that left it after u.
        cur, ended, exited = _CERTAIN, _NONE, _NONE
        passes = at_u_total = 0.0
        for k in range(m + 1):
            passes += _total(cur)[0]
            if body.end:
                ended = _madd(ended, _mconv(cur, body.end, cap), cap)
            at_u = _mconv(cur, body.stop, cap) if body.stop else _NONE
            at_u_total += _total(at_u)[0] if at_u else 0.0
            nxt = _NONE
            for pr, t, cont in outcomes:
                if pr <= 0 or not at_u:
                    continue
                x = _mscale(_mconv(at_u, [t], cap), pr)
                if not cont:
                    ended = _madd(ended, x, cap)
                elif k < m:
                    nxt = _madd(nxt, _mscale(x, p), cap)
                    exited = _madd(exited, _mscale(x, 1 - p), cap)
                else:
                    exited = _madd(exited, x, cap)
            cur = nxt
            if not cur or _total(cur)[0] < 1e-12:
                break
        visits = {k: x * passes for k, x in body.visits.items()}
        if self.track:
            visits[u] = visits.get(u, 0.0) + at_u_total
        if self.prof[u].is_async and self.track:
            for k, x in self._async_visits(u, handled).items():
                visits[k] = visits.get(k, 0.0) + x * at_u_total
        out = _Seg(visits, _NONE, ended)
        if exited and _total(exited)[0] > 0:
            out = _seg_add(out, _then(exited, self._forward(u, stop, handled), cap), cap)
        return out


def _dag_visits(design: Design, profiles: dict[str, Profile]) -> dict[str, float] | None:
    """Visits on a flow without back edges or fan-outs, in one pass in topological order
    (linear in the flow; the walk's per-segment visit dicts are quadratic on a long chain:
    0.3 s per walk on 500 stations). None when the flow has loops or fan-outs (the walk)."""
    if any(e.is_loop or e.parallel for e in design.flow if not e.fallback):
        return None
    outs: dict[str, list[Edge]] = {c.id: [] for c in design.components}
    indeg = dict.fromkeys(outs, 0)
    for e in design.flow:
        if not e.fallback:
            outs[e.from_].append(e)
            indeg[e.to] += 1
    visits = dict.fromkeys(outs, 0.0)
    visits[design.entry] = 1.0
    ready = [c for c, k in indeg.items() if k == 0]
    done = 0
    while ready:
        n = ready.pop()
        done += 1
        prof = profiles[n]
        # A queue's consumers take every message off the caller's path; elsewhere the share of
        # visits that continues (a cache miss, a guardrail pass, a call that did not fail).
        go = visits[n] * (1.0 if prof.is_async else sum(p for p, _, _, cont in prof.outcomes if cont and p > 0))
        for e in outs[n]:
            visits[e.to] += go * e.p
            indeg[e.to] -= 1
            if indeg[e.to] == 0:
                ready.append(e.to)
    return visits if done == len(visits) else None  # a forward cycle (refused by the model): the walk


def visits_per_request(design: Design) -> dict[str, float]:
    """Expected visits of each component per request entering the design (0 when unreachable)."""
    profiles = {c.id: _routing_profile(c) for c in design.components}
    fast = _dag_visits(design, profiles)
    if fast is not None:
        return fast
    seg = _Walker(design, profiles).run()
    return {c.id: seg.visits.get(c.id, 0.0) for c in design.components}


def visits_with(design: Design, profiles: dict[str, Profile]) -> dict[str, float]:
    """Expected visits per request under these stations' outcome probabilities (timeouts and
    drops included), for sums of per-visit means: E[latency] = Σ visits × mean time per visit
    on a flow without fan-outs or queues."""
    fast = _dag_visits(design, profiles)
    if fast is not None:
        return fast
    seg = _Walker(design, profiles).run()
    return {c.id: seg.visits.get(c.id, 0.0) for c in design.components}


def _mean_var(t: T3) -> tuple[float, float]:
    p, m1, m2 = t
    if p <= 0:
        return 0.0, 0.0
    mean = m1 / p
    return mean, max(0.0, m2 / p - mean * mean)


def latency_moments(design: Design, profiles: dict[str, Profile]) -> tuple[float, float, list[str]]:
    """(mean s, variance s², warnings) of the caller's end-to-end latency for these stations."""
    w = _Walker(design, profiles, track_visits=False)
    seg = w.run()
    mean, var = _mean_var(_total(seg.stop + seg.end) if seg.stop or seg.end else _ZERO)
    return mean, var, sorted(w.warnings)


def _walk_mixture(design: Design, profiles: dict[str, Profile], cap: int) -> tuple[Mix, set[str]]:
    w = _Walker(design, profiles, track_visits=False, cap=cap)
    seg = w.run()
    return seg.stop + seg.end, w.warnings


# --- the request's output tokens, shared by its LLM calls ---------------------------------------
# The simulation draws a request's output tokens once and every `llm_api` call on its path
# generates that many (sim.providers.api_station: `req.output_tokens`): an agent's steps are long
# or short together, which the walk's independent calls miss (agent_workflow p95 −7 %, p99 −22 %).
# Where a request makes more than one such call, the latency is a mixture over the token count:
# one walk per bin of it, each call's generation time conditioned on the bin.

TOKEN_BINS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.97, 1.0)
"""Probability bins of the output-token count, finer in the upper tail that sets the p95–p99.
agent_workflow's p95/p99 with these 6 bins: 14,026/22,441 ms; with each bin halved (12) or
quartered (24): 13,960/22,493 and 13,930/22,461 ms, at 2× and 4× the time (5 ms here)."""
_SUB = 16  # quantile points per bin for its conditional moments (midpoint rule in probability)


def _token_bins(design: Design) -> list[tuple[float, float, float]] | None:
    """(weight, E[n | bin], E[n² | bin]) of the request's output tokens over its classes and
    TOKEN_BINS; the weighted sums are E[n] and E[n²] exactly (the tail beyond the last midpoint
    is put into the last bin). None when the count does not vary."""
    out: list[tuple[float, float, float]] = []
    o1 = o2 = 0.0
    for c in design.workload.request_classes():
        dist = c.output_tokens
        e, v = dist.expected(), dist.var()
        o1 += c.share * e
        o2 += c.share * (v + e * e)
        if v <= 0:
            out.append((c.share, e, e * e))
            continue
        for lo, hi in zip(TOKEN_BINS, TOKEN_BINS[1:]):
            xs = [dist.quantile(lo + (i + 0.5) / _SUB * (hi - lo)) for i in range(_SUB)]
            out.append((c.share * (hi - lo), sum(xs) / _SUB, sum(x * x for x in xs) / _SUB))
    if o2 - o1 * o1 <= 1e-12 * max(1.0, o2):
        return None
    w, m1, m2 = out[-1]
    d1 = o1 - sum(a * b for a, b, _ in out)
    d2 = o2 - sum(a * c for a, _, c in out)
    m1 += d1 / w
    out[-1] = (w, m1, max(m1 * m1, m2 + d2 / w))
    return out


def _shared_token_profiles(design: Design, profiles: dict[str, Profile]) -> list[tuple[float, dict[str, Profile]]] | None:
    """[(weight, profiles given a token bin)] when a request may call `llm_api`s more than once
    (Σ visits > 1), else None. A call's time is TTFT + n·u: from its profile's single outcome
    (s₁, s₂) and the TTFT moments (t₁, t₂), u₁ = (s₁ − t₁)/E[n] and E[(n·u)²] = E[n²]·u₂, so each
    call keeps its own mean and variance over the bins; only the calls' correlation is added."""
    api = [c for c in design.components if c.kind == "llm_api" and c.id in profiles]
    if not api:
        return None
    visits = visits_with(design, profiles)
    if sum(visits.get(c.id, 0.0) for c in api) <= 1 + 1e-9:
        return None
    bins = _token_bins(design)
    if bins is None:
        return None
    o1 = sum(w * a for w, a, _ in bins)
    o2 = sum(w * b for w, _, b in bins)
    per_call = []
    for c in api:
        pr = profiles[c.id]
        if len(pr.outcomes) != 1:
            continue  # a station the twin splits into outcomes: left as it is
        _, s1, s2, cont = pr.outcomes[0]
        t1 = c.ttft.expected() * 1e-3
        t2 = c.ttft.var() * 1e-6 + t1 * t1
        u1 = (s1 - t1) / o1
        u2 = (s2 - t2 - 2 * t1 * o1 * u1) / o2
        if u1 <= 0 or u2 < 0:
            continue
        per_call.append((c.id, pr, t1, t2, u1, u2, cont))
    if not per_call:
        return None
    out = []
    for w, n1, n2 in bins:
        prof = dict(profiles)
        for cid, pr, t1, t2, u1, u2, cont in per_call:
            prof[cid] = Profile(pr.wait1, pr.wait2, [(1.0, t1 + n1 * u1, t2 + 2 * t1 * n1 * u1 + n2 * u2, cont)], pr.is_async)
        out.append((w, prof))
    return out


def latency_mixture(design: Design, profiles: dict[str, Profile],
                    cap: int = MIX_CAP) -> tuple[float, float, list[tuple[float, float, float]], list[str]]:
    """(mean s, variance s², mixture, warnings): the end-to-end latency as a mixture of parts.

    The mixture is a list of (weight, mean s, variance s²), weights summing to 1 — one part per
    loop pass count, branch and outcome (caches, guardrails, timeouts) until `cap` forces the
    closest to merge; a fan-out join is one part; where a request calls `llm_api`s more than
    once, that for each bin of its output-token count (TOKEN_BINS). The mean and variance are
    `latency_moments`' (the same figures: one part exactly them on a flow without branches or
    loops). ``sim.twin.queueing.mixture_quantile`` gives its percentiles, a gamma per part::

        >>> # mean, var, mix, _ = latency_mixture(d, prof); mixture_quantile(0.95, mix)
    """
    shared = _shared_token_profiles(design, profiles)
    if shared is None:
        parts, warnings = _walk_mixture(design, profiles, cap)
        parts = _reduce(parts, cap)  # the walk lets a mixture grow to 2·cap between merges
    else:  # a walk per token bin, each with half the parts (same p95 within 0.4 %, half the time)
        parts, warnings = [], set()
        for wj, prof in shared:
            pj, wn = _walk_mixture(design, prof, max(1, cap // 2))
            parts += _mscale(pj, wj)
            warnings |= wn
        parts = _reduce(parts, cap)
    mean, var = latency_moments(design, profiles)[:2] if shared is not None else _mean_var(_total(parts) if parts else _ZERO)
    total = _total(parts)[0] if parts else 0.0
    mix = []
    if total > 0:
        if len(parts) == 1:
            mix = [(1.0, mean, var)]  # exactly the one-gamma figures of a flow without branches
        else:
            for p, m1, m2 in parts:
                if p > 0:
                    pm, pv = _mean_var((p, m1, m2))
                    mix.append((p / total, pm, pv))
    return mean, var, mix, sorted(warnings)


def latency_quantile(q: float, design: Design, profiles: dict[str, Profile]) -> float:
    """The q-quantile (s) of the end-to-end latency: `latency_mixture`, a gamma per part."""
    mean, var, mix, _ = latency_mixture(design, profiles)
    if not math.isfinite(mean):
        return mean
    return qt.mixture_quantile(q, mix)


def arrival_moments(design: Design, profiles: dict[str, Profile], cid: str) -> tuple[float, float, float]:
    """(mass, mean s, variance s²) of the time from a request's arrival at the entry to its
    arrival at `cid` (the wait before a component: for an LLM, what comes before its TTFT).
    `mass` is the expected number of arrivals the walk saw; arrivals inside a loop body are not
    followed, so it is below `visits_per_request(design)[cid]` there and the moments cover
    only the rest."""
    w = _Walker(design, profiles, track_visits=False, mark=cid)
    p, m1, m2 = w.run().mark
    if p <= 0:
        return 0.0, 0.0, 0.0
    mean = m1 / p
    return p, mean, max(0.0, m2 / p - mean * mean)
