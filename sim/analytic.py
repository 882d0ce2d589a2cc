"""The analytic twin: a design's traffic, queueing and cost at its peak rate, in milliseconds.

``estimate(design)`` walks the flow exactly as ``designs/model.py`` defines it, works out how
often each component is visited per request, turns each component into a queueing station
(servers, mean service time, SCV) and combines the stations' response times along the flow.

Usage::

    >>> from designs.io import load_design
    >>> from sim.analytic import estimate
    >>> # est = estimate(load_design("designs/library/rag_qa.yaml"))
    >>> # est.stations["llm"].utilization, est.latency_ms_p95_approx, est.bottleneck

How each figure is made (and where it is only approximate):

* **Traffic.** Visits per request come from the flow: a branch takes ``p`` of its source's
  traffic, a cache passes on ``1 − hit_ratio``, a guardrail ``1 − block_ratio``, every fan-out
  branch gets the full rate and the join is visited once per fan-out, a ``queue``'s consumers get
  its traffic off the caller's path. A back edge (``p``, ``max_repeats``) returning to ``v`` makes
  the body ``v … u`` run N times, P(N > k) = (r·p)ᵏ for k ≤ max_repeats, r the probability a pass
  from ``v`` reaches ``u``: E[N] = Σₖ₌₀..ₘ (r·p)ᵏ (with r = 1: 1 + Σₖ₌₁..ₘ pᵏ). Exact in
  expectation for one loop; nested loops are composed the same way.
* **Stations.** ``sim.queueing``: Erlang C (M/M/c) for exponential service, Allen–Cunneen
  (M/G/c; Pollaczek–Khinchine when c = 1) otherwise, Poisson arrivals at every station (the
  Jackson-network assumption). Pure delays have no queue. Batching replicas (embedder,
  reranker) and LLM servers have their own models below; API rate limits come from
  ``sim.ratelimit``.
* **End to end.** Response times add along the flow; branches mix by probability; a fan-out's
  join time is the max of its branches by Clark's (1961) normal moment matching; loops add
  N passes. Mean and variance are carried exactly through these steps (stations independent);
  the **p95 is the 95th percentile of a gamma distribution with that mean and variance** — exact
  for one M/M/1 station, a fit elsewhere (checked against the simulator in the tests/bench).
* **Closed loop** (``concurrent_users``): throughput X solves Little's law for the whole loop,
  N = X·(Z + R(X)), R(X) the open-network response at rate X — an MVA-style fixed point that
  meets both asymptotic bounds, X ≤ N/(Z + D) and X ≤ the bottleneck's saturation rate.
* **Pipelines** (``workload.batch``): ``sim.pipeline.pipeline_result``; the queueing view is
  added only when the workload also gives an explicit ``arrival_rps``.

Fast: one pass for the traffic and one for the times, no sampling; a few ms per library design.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from components.distributions import Exponential, Fixed
from designs.model import Design, Edge
from sim import queueing as qt
from sim.results import Estimate, LLMEstimate, Percentiles, StationEstimate

__all__ = [
    "estimate",
    "visits_per_request",
    "analyse_station",
    "latency_moments",
    "StationCalc",
    "EstimateError",
    "TARGET_UTILIZATION",
]

TARGET_UTILIZATION = 0.8
"""Replica counts are sized for ρ ≤ 0.8: queueing delay grows as 1/(1 − ρ), and 80 % leaves room
for the peak-hour variance and a lost replica (the usual planning rule, e.g. Gross & Harris §2.3)."""


EXACT_MVA_USERS = 500
"""Up to this many closed-loop users the MVA recursion runs user by user (one flow walk each)."""


class EstimateError(ValueError):
    """A component the twin cannot model (a model that does not fit its GPUs, say)."""


# --- moment triples -----------------------------------------------------------------------------
# A "triple" (p, m1, m2) is a sub-probability with its first two partial moments:
# p = P(A), m1 = E[T·1_A], m2 = E[T²·1_A]. Independent sums and mixtures are then exact.

T3 = tuple[float, float, float]
_ZERO: T3 = (0.0, 0.0, 0.0)
_ONE: T3 = (1.0, 0.0, 0.0)


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


@dataclass
class _Seg:
    """What happens from arriving at a node until reaching `stop` (a join) or ending."""

    visits: dict[str, float]
    stop: T3
    end: T3


def _seg_scaled(s: _Seg, w: float) -> _Seg:
    return _Seg({k: v * w for k, v in s.visits.items()}, _scale(s.stop, w), _scale(s.end, w))


def _seg_add(a: _Seg, b: _Seg) -> _Seg:
    v = dict(a.visits)
    for k, x in b.visits.items():
        v[k] = v.get(k, 0.0) + x
    return _Seg(v, _add(a.stop, b.stop), _add(a.end, b.end))


def _then(t: T3, s: _Seg) -> _Seg:
    """Time `t` (sub-probability) followed by segment `s`."""
    return _Seg({k: v * t[0] for k, v in s.visits.items()}, _conv(t, s.stop), _conv(t, s.end))


# --- station profiles: the part of a station the walk needs --------------------------------------


@dataclass
class _Profile:
    """Per visit: wait moments and the outcomes (prob, service m1, m2, continues downstream)."""

    wait1: float = 0.0
    wait2: float = 0.0
    outcomes: list[tuple[float, float, float, bool]] = field(default_factory=lambda: [(1.0, 0.0, 0.0, True)])
    is_async: bool = False  # a queue: consumers run off the caller's path

    def outcome_times(self) -> list[tuple[float, T3, bool]]:
        w1, w2 = self.wait1, self.wait2
        return [(p, _time(w1 + s1, w2 + 2 * w1 * s1 + s2), cont) for p, s1, s2, cont in self.outcomes]


def _routing_profile(comp: Any) -> _Profile:
    """Outcome probabilities only (times zero): enough for the traffic pass."""
    kind = comp.kind
    if kind == "cache":
        h = comp.hit_ratio
        return _Profile(outcomes=[(h, 0.0, 0.0, False), (1 - h, 0.0, 0.0, True)])
    if kind == "guardrail":
        b = comp.block_ratio
        return _Profile(outcomes=[(b, 0.0, 0.0, False), (1 - b, 0.0, 0.0, True)])
    if kind == "queue":
        return _Profile(outcomes=[(1.0, 0.0, 0.0, False)], is_async=True)
    return _Profile()


class _Walker:
    """Recursive walk of the flow, memoised on (node, stop, loops already being handled)."""

    def __init__(self, design: Design, profiles: dict[str, _Profile]):
        self.d = design
        self.prof = profiles
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
            return _Seg({}, _ONE, _ZERO)
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
        out = _Seg({n: 1.0}, _ZERO, _ZERO)
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
                        fwd = _seg_add(_seg_scaled(again, e.p), _seg_scaled(fwd, 1 - e.p))
                out = _seg_add(out, _seg_scaled(_then(t, fwd), p))
            else:
                out = _seg_add(out, _Seg({}, _ZERO, _scale(t, p)))
        if len(back) > 1:
            self.warnings.add(f"'{n}' has {len(back)} back edges; the estimate follows only {back[0].from_} → {back[0].to}")
        if prof.is_async:
            out = _seg_add(out, _Seg(self._async_visits(n, handled), _ZERO, _ZERO))
        return out

    def _forward(self, n: str, stop: str | None, handled: frozenset) -> _Seg:
        """After `n` is served and the request continues: its outgoing edges."""
        outs = self.outs[n]
        if not outs:
            return _Seg({}, _ZERO, _ONE)
        if all(e.parallel for e in outs):
            j = self.join_of(n)
            branches = [self.seg(e.to, j, handled) for e in outs]
            visits: dict[str, float] = {}
            mean = var = None
            for b in branches:
                for k, x in b.visits.items():
                    visits[k] = visits.get(k, 0.0) + x
                p, m1, m2 = _add(b.stop, b.end)
                bm = m1 / p if p > 0 else 0.0
                bv = max(0.0, m2 / p - bm * bm) if p > 0 else 0.0
                # Join time = max of the branch times, Clark's normal moment matching pairwise.
                mean, var = (bm, bv) if mean is None else qt.clark_max(mean, var, bm, bv)
            t = _time(mean, var + mean * mean)
            if j is None:
                return _Seg(visits, _ZERO, t)
            rest = _then(t, self.seg(j, stop, handled))
            return _seg_add(rest, _Seg(visits, _ZERO, _ZERO))
        total_p = sum(e.p for e in outs)
        acc = _Seg({}, _ZERO, (max(0.0, 1 - total_p), 0.0, 0.0))
        for e in outs:
            if e.p > 0:
                acc = _seg_add(acc, _seg_scaled(self.seg(e.to, stop, handled), e.p))
        return acc

    def _loop(self, v: str, edge: Edge, stop: str | None, handled: frozenset, repeats: int | None = None) -> _Seg:
        """Passes v → … → u repeated while the back edge u → v is taken (p, at most m times)."""
        u, p = edge.from_, edge.p
        m = (edge.max_repeats or 0) if repeats is None else repeats
        body = self.seg(v, u, handled)  # stops on arrival at u, before u is served
        outcomes = self.prof[u].outcome_times()
        cur, ended, exited = _ONE, _ZERO, _ZERO
        passes = at_u_total = 0.0
        for k in range(m + 1):
            passes += cur[0]
            ended = _add(ended, _conv(cur, body.end))
            at_u = _conv(cur, body.stop)
            at_u_total += at_u[0]
            nxt = _ZERO
            for pr, t, cont in outcomes:
                x = _scale(_conv(at_u, t), pr)
                if not cont:
                    ended = _add(ended, x)
                elif k < m:
                    nxt = _add(nxt, _scale(x, p))
                    exited = _add(exited, _scale(x, 1 - p))
                else:
                    exited = _add(exited, x)
            cur = nxt
            if cur[0] < 1e-12:
                break
        visits = {k: x * passes for k, x in body.visits.items()}
        visits[u] = visits.get(u, 0.0) + at_u_total
        if self.prof[u].is_async:
            for k, x in self._async_visits(u, handled).items():
                visits[k] = visits.get(k, 0.0) + x * at_u_total
        out = _Seg(visits, _ZERO, ended)
        if exited[0] > 0:
            out = _seg_add(out, _then(exited, self._forward(u, stop, handled)))
        return out


def visits_per_request(design: Design) -> dict[str, float]:
    """Expected visits of each component per request entering the design (0 when unreachable)."""
    profiles = {c.id: _routing_profile(c) for c in design.components}
    seg = _Walker(design, profiles).run()
    return {c.id: seg.visits.get(c.id, 0.0) for c in design.components}


def latency_moments(design: Design, profiles: dict[str, _Profile]) -> tuple[float, float, list[str]]:
    """(mean s, variance s², warnings) of the caller's end-to-end latency for these stations."""
    w = _Walker(design, profiles)
    seg = w.run()
    p, m1, m2 = _add(seg.stop, seg.end)
    if p <= 0:
        return 0.0, 0.0, sorted(w.warnings)
    mean = m1 / p
    return mean, max(0.0, m2 / p - mean * mean), sorted(w.warnings)


# --- stations ------------------------------------------------------------------------------------


@dataclass
class StationCalc:
    """One station's queueing figures at an arrival rate (seconds); becomes a StationEstimate."""

    kind: str
    lam: float
    servers: int | None
    service_mean_s: float
    service_scv: float
    utilization: float
    wait_mean_s: float
    wait_m2: float
    wait_p95_s: float | None
    response_mean_s: float
    max_tp_rps: float | None
    stable: bool
    replicas_needed: int | None
    formula: str
    outcomes: list[tuple[float, float, float, bool]]  # (prob, service m1 s, m2 s², continues)
    remedy: str = ""  # what to add when unstable: '11 replicas more (…)'
    llm: LLMEstimate | None = None
    notes: list[str] = field(default_factory=list)
    path_wait: tuple[float, float] | None = None  # (m1, m2) of the wait as the flow walk should see it

    def profile(self, is_async: bool) -> _Profile:
        if not self.stable:
            nan = math.nan  # unbounded wait: NaN propagates to the end-to-end figures
            return _Profile(nan, nan, [(p, nan, nan, c) for p, _, _, c in self.outcomes], is_async)
        w1, w2 = self.path_wait or (self.wait_mean_s, self.wait_m2)
        return _Profile(w1, w2, self.outcomes, is_async)


def _moments(dist: Any, scale: float = 1e-3) -> tuple[float, float]:
    """(mean, second moment) of a distribution, scaled (ms → s by default)."""
    m = dist.expected() * scale
    return m, dist.var() * scale * scale + m * m


def _is_exp(dist: Any) -> bool:
    return isinstance(dist, Exponential)


def _pool(lam: float, c: int, m1: float, m2: float, exponential: bool) -> dict[str, Any]:
    """M/M/c (Erlang C) or M/G/c (Allen–Cunneen) figures for one multi-server FIFO queue."""
    scv = (m2 - m1 * m1) / (m1 * m1) if m1 > 0 else 0.0
    scv = 0.0 if scv < 1e-9 else scv  # rounding noise of fixed times
    rho = lam * m1 / c if c else math.inf
    exact = exponential or abs(scv - 1) < 1e-9
    if c == 1 and not exact:
        formula = f"Pollaczek–Khinchine, M/G/1 (SCV {scv:.2g})"
    elif exact:
        formula = f"Erlang C, M/M/{c}"
    else:
        formula = f"Allen–Cunneen, M/G/{c} (SCV {scv:.2g})"
    max_tp = c / m1 if m1 > 0 else None
    if m1 <= 0 or lam <= 0:
        return dict(scv=scv, rho=0.0 if m1 <= 0 else rho, w1=0.0, w2=0.0, p95=0.0, max_tp=max_tp, formula=formula)
    if rho >= 1:
        return dict(scv=scv, rho=rho, w1=math.inf, w2=math.inf, p95=None, max_tp=max_tp, formula=formula)
    pw = qt.erlang_c(c, lam * m1)
    if exact:
        w1 = qt.mmc_mean_wait(lam, 1 / m1, c)
        p95 = qt.mmc_wait_quantile(0.95, lam, 1 / m1, c)
    else:
        w1 = qt.allen_cunneen_wait(lam, m1, scv, c)
        p95 = qt.wait_quantile_approx(0.95, w1, pw)
    # Wait = 0 w.p. 1 − P(wait), else exponential with mean w1 / P(wait): E[W²] = 2·w1² / P(wait).
    w2 = 2 * w1 * w1 / pw if pw > 0 else 0.0
    return dict(scv=scv, rho=rho, w1=w1, w2=w2, p95=p95, max_tp=max_tp, formula=formula)


def _more(needed: int, current: int, unit: str = "replicas") -> str:
    """'11 replicas more (38 in all for ρ ≤ 0.8)'."""
    extra = max(0, needed - current)
    word = unit[:-1] if extra == 1 and unit.endswith("s") else unit
    return f"{extra} {word} more ({needed} in all for ρ ≤ {TARGET_UTILIZATION:g})"


def _needed(lam: float, per_replica_rps: float) -> int:
    return max(1, math.ceil(lam / (TARGET_UTILIZATION * per_replica_rps) - 1e-9)) if per_replica_rps > 0 else 1


def _class_moments(design: Design, attr: str) -> tuple[float, float]:
    """(mean, second moment) of the request classes' prompt or output tokens (a share mixture)."""
    m1 = m2 = 0.0
    for c in design.workload.request_classes():
        d = getattr(c, attr)
        m1 += c.share * d.expected()
        m2 += c.share * (d.var() + d.expected() ** 2)
    return m1, m2


def _delay(comp: Any, lam: float, m1: float, m2: float, outcomes=None, formula: str = "pure delay (no queue)") -> StationCalc:
    scv = (m2 - m1 * m1) / (m1 * m1) if m1 > 0 else 0.0
    return StationCalc(
        comp.kind, lam, None, m1, max(0.0, scv), 0.0, 0.0, 0.0, 0.0, m1, None, True, None, formula,
        outcomes or [(1.0, m1, m2, True)])


def _from_pool(comp: Any, lam: float, c: int, m1: float, m2: float, exponential: bool, outcomes=None,
               per_replica: int | None = None, unit: str = "replicas", current: int | None = None) -> StationCalc:
    r = _pool(lam, c, m1, m2, exponential)
    stable = r["rho"] < 1
    needed = None
    remedy = ""
    if per_replica:
        needed = _needed(lam, per_replica / m1) if m1 > 0 else 1
        if current is not None and not stable:
            remedy = _more(needed, current, unit)
    return StationCalc(
        comp.kind, lam, c, m1, r["scv"], r["rho"], r["w1"], r["w2"], r["p95"],
        (r["w1"] + m1) if stable else math.inf, r["max_tp"], stable, needed, r["formula"],
        outcomes or [(1.0, m1, m2, True)], remedy)


def _api(comp: Any, lam: float, design: Design) -> StationCalc:
    """llm_api / judge: TTFT + output / speed, bounded by max_concurrency and rate limits."""
    if comp.kind == "judge":
        o1, o2 = comp.output_tokens.expected(), comp.output_tokens.var() + comp.output_tokens.expected() ** 2
    else:
        o1, o2 = _class_moments(design, "output_tokens")
    v = comp.output_tokens_per_s
    v1 = v.expected()
    # E[n/v] ≈ E[n]/E[v] (as sim.ratelimit.mean_service_s), E[(n/v)²] ≈ E[n²]·(1 + 3·scv_v)/E[v]²
    # (second-order delta method; exact for a fixed speed, the default).
    g1, g2 = o1 / v1, o2 * (1 + 3 * v.scv()) / (v1 * v1)
    t1, t2 = _moments(comp.ttft)
    m1, m2 = t1 + g1, t2 + 2 * t1 * g1 + g2
    if comp.max_concurrency:
        calc = _from_pool(comp, lam, comp.max_concurrency, m1, m2, False)
    else:
        calc = _delay(comp, lam, m1, m2)
    try:
        from sim.ratelimit import api_limits
    except ImportError:  # pragma: no cover - sim.ratelimit ships with the engine
        return calc
    lim = api_limits(comp, design.workload, arrival_rps=lam)
    cap = lim["max_sustainable_rps"]
    if cap:
        # The provider's token bucket holds a minute of refill (sim.ratelimit.DEFAULT_BURST_S), so
        # Poisson bursts below the limit pass without waiting; at or above it the backlog grows.
        util = lam / cap
        calc.utilization = max(calc.utilization, util)
        calc.max_tp_rps = min(x for x in (cap, calc.max_tp_rps) if x is not None)
        calc.formula += f"; {lim['binding']} limit {cap:,.3g} calls/s, {util:.0%} used (bucket of 60 s: no wait below it)"
        if util >= 1:
            calc.stable = False
            calc.wait_mean_s = calc.response_mean_s = math.inf
            calc.wait_p95_s = None
    if not calc.stable:
        fixes = []
        if cap and lam >= cap:
            if lim["binding"] == "rpm":
                fixes.append(f"rpm_limit to {math.ceil(lam * 60 / TARGET_UTILIZATION):,}")
            else:
                fixes.append(f"tpm_limit to {math.ceil(lam * 60 * lim['mean_tokens_per_request'] / TARGET_UTILIZATION):,}")
        if comp.max_concurrency and lam * m1 >= comp.max_concurrency:
            fixes.append(f"max_concurrency to {math.ceil(lam * m1 / TARGET_UTILIZATION)}")
        calc.remedy = "raise " + " and ".join(fixes) if fixes else ""
    return calc


def _batching(comp: Any, lam: float, design: Design) -> StationCalc:
    """Embedder / reranker: replicas that each serve every waiting request (up to B) per pass.

    A pass over b requests takes S(b) = o + b·w (o = overhead, w = work per request / rate), as
    in ``sim.stations.BatchStation``; capacity = R·B / S(B) for R replicas. Greedy batching:
    the next pass takes the arrivals during the current one, N ~ Poisson(λᵣ·S(b)) (λᵣ = λ/R),
    or one request after an idle spell, so the mean batch solves b = λᵣ·S(b) + e^(−λᵣ·S(b))
    (E[max(1, N)]), capped at B. Wait = P(all R passes busy, Erlang C with load λ·S(b)/b)
    × the residual of a pass E[S²]/(2·E[S]) / R, plus a heavy-traffic term for full batches,
    ρ_B/(1 − ρ_B) · S(B)/(2B) · √(b/B) (Kingman with Erlang-B arrivals of a batch, faded in as
    batches fill). A request's own pass holds max(b, λᵣ·(W + S(b))) requests (the queue it
    finds); because that pass grows with the wait, the flow walk sees the wait amplified by the
    per-request share of a pass. Checked against the engine's BatchStation (reranker: 50 pairs,
    1–3 replicas, ρ 0.28–0.92; embedder: ρ 0.77, batches of ~14): mean response within ±16 %,
    p95 within −28 % … +32 % — the tail is the weak part of this model.
    """
    if comp.kind == "embedder":
        if comp.tokens_per_request is not None:
            d = comp.tokens_per_request
            n1, n2 = d.expected(), d.var() + d.expected() ** 2
        else:
            n1, n2 = _class_moments(design, "prompt_tokens")
        rate, unit = comp.tokens_per_s_per_replica, "tokens"
    else:
        d = comp.pairs_per_request
        n1, n2 = d.expected(), d.var() + d.expected() ** 2
        rate, unit = comp.pairs_per_s_per_replica, "pairs"
    o, w, B, R = comp.overhead_ms / 1000.0, n1 / rate, comp.max_batch, comp.replicas
    wvar = max(0.0, n2 - n1 * n1) / (rate * rate)  # variance of one request's work, s²
    full_pass = o + B * w
    max_tp = R * B / full_pass
    rho = lam / max_tp
    lam_r = lam / R
    needed = _needed(lam, B / full_pass)
    if rho >= 1 or lam <= 0:
        s1 = o + w
        calc = StationCalc(comp.kind, lam, R, s1, 0.0, rho, 0.0 if lam <= 0 else math.inf,
                           0.0 if lam <= 0 else math.inf, 0.0 if lam <= 0 else None, s1 if lam <= 0 else math.inf,
                           max_tp, lam <= 0, needed, f"batching: {n1:,.0f} {unit} per request / {rate:,.0f}/s, "
                           f"up to {B} per pass + {o * 1000:g} ms", [(1.0, s1, s1 * s1 + wvar, True)])
        if not calc.stable:
            calc.remedy = _more(needed, R)
        return calc
    b = 1.0
    for _ in range(1000):
        m = lam_r * (o + b * w)
        nb = min(float(B), m + math.exp(-m))
        if abs(nb - b) < 1e-12:
            break
        b = nb
    m = lam_r * (o + b * w)
    var_b = max(0.0, m + m * m + math.exp(-m) - (m + math.exp(-m)) ** 2) * (1 - b / B)
    es = o + b * w
    es2 = es * es + w * w * var_b + b * wvar
    load = lam * es / b  # busy passes, in Erlangs
    pw = qt.erlang_c(R, load) if load < R else 1.0
    rho_b = lam_r * full_pass / B
    heavy = rho_b / (1 - rho_b) * full_pass / (2 * B) * math.sqrt(b / B)
    resid = pw * es2 / (2 * es) / R
    w1 = resid + heavy
    w2 = 2 * w1 * w1 / pw if pw > 0 else 0.0  # exponential given a wait, as for M/G/c
    b_own = min(float(B), max(b, lam_r * (w1 + es)))
    s1 = o + w * (b_own + var_b / b)
    s2 = s1 * s1 + w * w * var_b + b_own * wvar
    scv = (s2 - s1 * s1) / (s1 * s1)
    outcomes = [(1.0, s1, s2, True)]
    path_wait = None
    if b < b_own < B:
        # The own pass grows with the wait (λᵣ·W more requests joined), so response =
        # (1 + λᵣw)·W + o + w·λᵣ·E[S]: the walk sees the wait amplified by (1 + λᵣw) — without
        # this the response variance, hence the p95, comes out far too small near saturation.
        k = lam_r * w * (b * w) / es  # only the per-request share of a pass stretches it
        own0 = o + w * (lam_r * es + var_b / b)
        outcomes = [(1.0, own0, own0 * own0 + w * w * var_b + b_own * wvar, True)]
        path_wait = ((1 + k) * w1, (1 + k) ** 2 * w2)
    formula = (f"greedy batching: mean batch {b:.3g} of {B} (own pass {b_own:.3g}), pass = {o * 1000:g} ms + "
               f"batch × {n1:,.0f} {unit} / {rate:,.0f}/s")
    calc = StationCalc(comp.kind, lam, R, s1, scv, rho, w1, w2, qt.wait_quantile_approx(0.95, w1, pw),
                       w1 + s1, max_tp, True, needed, formula, outcomes)
    calc.path_wait = path_wait
    return calc


def _llm_server(comp: Any, lam: float, design: Design) -> StationCalc:
    """An M/G/c view of continuous batching: c = sequence slots (sim.llm.roofline)."""
    try:
        from sim.llm.roofline import llm_estimate, llm_service_moments
    except ImportError:
        llm_estimate = None
        llm_service_moments = _fallback_llm_moments
    try:
        mean_s, scv, servers = llm_service_moments(comp, design.workload)
        est = llm_estimate(comp, design.workload, arrival_rps=lam) if llm_estimate else None
    except ValueError as e:
        raise EstimateError(f"llm_server '{comp.id}': {e}") from None
    servers = max(1, int(servers))
    m2 = mean_s * mean_s * (1 + scv)
    per_replica = max(1, servers // comp.replicas)
    calc = _from_pool(comp, lam, servers, mean_s, m2, False, per_replica=per_replica, current=comp.replicas)
    calc.formula += f"; {servers} sequence slots = {comp.replicas} replicas × {per_replica}"
    if est is not None:
        calc.llm = est
        calc.replicas_needed = est.replicas_needed
        # What a request sees once it holds a slot is the load-dependent TTFT + (output − 1) × TPOT
        # of the LLM model, not the slot time at saturation that sets the capacity (ρ) above.
        o1, o2 = _class_moments(design, "output_tokens")
        tpot_s, ttft_s = est.tpot_ms_estimate / 1000, est.ttft_ms_estimate / 1000
        lat1 = ttft_s + max(0.0, o1 - 1) * tpot_s
        lat2 = lat1 * lat1 + max(0.0, o2 - o1 * o1) * tpot_s * tpot_s
        calc.outcomes = [(1.0, lat1, lat2, True)]
        calc.formula += (f"; slot held {mean_s * 1000:,.0f} ms at saturation; a request takes TTFT "
                         f"{est.ttft_ms_estimate:.3g} ms + {max(0.0, o1 - 1):.0f} × TPOT {est.tpot_ms_estimate:.3g} ms at this load")
        calc.service_mean_s = lat1
        calc.service_scv = (lat2 - lat1 * lat1) / (lat1 * lat1) if lat1 > 0 else 0.0
        if calc.stable:
            calc.response_mean_s = calc.wait_mean_s + lat1
        if not calc.stable:
            calc.remedy = _more(est.replicas_needed, comp.replicas)
    else:
        calc.notes.append(f"llm_server '{comp.id}': sim.llm.roofline not available; a rough roofline fallback was used")
    return calc


def _fallback_llm_moments(comp: Any, workload: Any) -> tuple[float, float, int]:
    """Rough stand-in for sim.llm.roofline.llm_service_moments (same arithmetic as the simple station).

    TODO: only used while sim.llm.roofline is missing. Slots = max_batch per replica; a sequence
    holds its slot for prefill + output × (one decode step at full batch).
    """
    from components.hardware import BYTES_PER_PARAM, factor, get_gpu, get_model

    gpu, model = get_gpu(comp.gpu), get_model(comp.model)
    n = comp.gpus_per_replica
    prec = "bf16" if comp.precision in ("bf16", "fp16") else comp.precision
    flops = gpu.peak_tflops(prec) * 1e12 * n
    classes = workload.request_classes()
    prompt = sum(c.share * c.prompt_tokens.expected() for c in classes)
    out = sum(c.share * c.output_tokens.expected() for c in classes)
    out2 = sum(c.share * (c.output_tokens.var() + c.output_tokens.expected() ** 2) for c in classes)
    prefill = 2 * model.params_active_b * 1e9 * prompt * (1 - comp.prefix_cache_hit_ratio) / (flops * factor("prefill_mfu"))
    kv = model.kv_bytes_per_token(1 if comp.kv_cache_precision == "fp8" else 2) * (prompt + out / 2) * comp.max_batch
    step = (model.weight_bytes(BYTES_PER_PARAM[prec]) + kv) / (gpu.hbm_bandwidth_tbps * 1e12 * n * factor("decode_bw_efficiency"))
    step += factor("iteration_overhead_ms") / 1000.0
    mean = prefill + out * step
    scv = (out2 - out * out) * step * step / (mean * mean) if mean > 0 else 0.0
    return mean, scv, comp.replicas * comp.max_batch


def analyse_station(comp: Any, lam: float, design: Design) -> StationCalc:
    """Queueing figures of one component at arrival rate `lam` (requests/s reaching it)."""
    kind = comp.kind
    if kind in ("service", "load_balancer", "api_gateway", "database", "vector_db", "keyword_search", "guardrail"):
        dist = comp.service_time if kind in ("service", "guardrail") else (
            comp.latency if kind in ("load_balancer", "api_gateway") else comp.query_time)
        m1, m2 = _moments(dist)
        outcomes = None
        if kind == "guardrail":
            b = comp.block_ratio
            outcomes = [(b, m1, m2, False), (1 - b, m1, m2, True)]
        return _from_pool(comp, lam, comp.servers, m1, m2, _is_exp(dist), outcomes,
                          per_replica=comp.concurrency, current=comp.replicas)
    if kind == "cache":
        h = comp.hit_ratio
        h1, h2 = _moments(comp.hit_latency)
        s1, s2 = _moments(comp.miss_latency)
        m1, m2 = h * h1 + (1 - h) * s1, h * h2 + (1 - h) * s2
        exp = _is_exp(comp.hit_latency) and _is_exp(comp.miss_latency) and h1 == s1
        return _from_pool(comp, lam, comp.servers, m1, m2, exp, [(h, h1, h2, False), (1 - h, s1, s2, True)],
                          per_replica=comp.concurrency, current=comp.replicas)
    if kind == "batch_stage":
        dist = comp.service_time or Fixed(value_ms=1000.0 / comp.items_per_s_per_worker)
        m1, m2 = _moments(dist)
        return _from_pool(comp, lam, comp.workers, m1, m2, _is_exp(dist), per_replica=1, unit="workers",
                          current=comp.workers)
    if kind == "tool":
        m1, m2 = _moments(comp.latency)
        if comp.max_concurrency:
            calc = _from_pool(comp, lam, comp.max_concurrency, m1, m2, _is_exp(comp.latency))
            if not calc.stable:
                calc.remedy = f"raise max_concurrency to {math.ceil(lam * m1 / TARGET_UTILIZATION)}"
            return calc
        return _delay(comp, lam, m1, m2)
    if kind in ("object_storage", "monitoring"):
        m1, m2 = _moments(comp.latency)
        return _delay(comp, lam, m1, m2)
    if kind == "queue":
        m1, m2 = _moments(comp.enqueue_latency)
        return _delay(comp, lam, m1, m2, [(1.0, m1, m2, False)], "pure delay (enqueue; consumers run asynchronously)")
    if kind == "training_job":
        calc = _delay(comp, lam, 0.0, 0.0, formula="no request latency (a training run; see the pipeline figures)")
        if lam > 0 and design.workload.batch is None:
            calc.notes.append(f"training_job '{comp.id}' sits on a request path; it adds no latency there")
        return calc
    if kind in ("embedder", "reranker"):
        return _batching(comp, lam, design)
    if kind in ("llm_api", "judge"):
        return _api(comp, lam, design)
    if kind == "llm_server":
        return _llm_server(comp, lam, design)
    raise EstimateError(f"component '{comp.id}': the analytic twin has no model for kind '{kind}'")


# --- the estimate --------------------------------------------------------------------------------


def _fmt_x(x: float) -> str:
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return s


def _analyse_all(design: Design, rate: float, visits: dict[str, float]) -> dict[str, StationCalc]:
    return {c.id: analyse_station(c, rate * visits[c.id], design) for c in design.components}


def _profiles(calcs: dict[str, StationCalc]) -> dict[str, _Profile]:
    return {cid: c.profile(c.kind == "queue") for cid, c in calcs.items()}


def _latency_at(design: Design, calcs: dict[str, StationCalc]) -> tuple[float, float, list[str]]:
    return latency_moments(design, _profiles(calcs))


def _closed_loop(design: Design, visits: dict[str, float]) -> tuple[float, dict[str, float], str]:
    """Closed-loop throughput and per-visit waits by approximate mean-value analysis.

    Exact MVA recursion over the users for N ≤ EXACT_MVA_USERS, else Bard–Schweitzer
    (Q(N−1) ≈ Q(N)·(N−1)/N, a fixed point instead of the recursion), with Seidmann's split of
    a c-server station into one server of time s/c plus a delay s·(c − 1)/c (Lazowska et al., *Quantitative System Performance*, 1984, §6.4 and §8.2).
    The cycle response R comes from the same flow walk as the open model (branches, fan-outs,
    loops), so X = N / (Z + R). On one M/M/4 station with 50 users and 1 s think time it gives
    38.50 requests/s against 38.85 exact (birth–death chain; Schweitzer alone: 37.08); both
    meet the asymptotic bounds X ≤ N/(Z + D) and X ≤ 1/D_max.
    """
    wl = design.workload
    n = wl.concurrent_users or 1
    z = wl.think_time.expected() / 1000.0 if wl.think_time is not None else 0.0
    base = _analyse_all(design, 1e-9, visits)  # service figures at light load
    queues = {}  # id -> (s/c: the Seidmann server's time, visits)
    for cid, c in base.items():
        if c.servers and c.max_tp_rps and visits[cid] > 0:
            queues[cid] = (1.0 / c.max_tp_rps, visits[cid])
    profiles = _profiles(base)
    q = {cid: 0.0 for cid in queues}
    waits: dict[str, float] = {}

    def cycle(users: int, frac: float) -> float:
        """One MVA step: waits from the queue lengths an arrival sees, then X = users/(Z + R)."""
        for cid, (sc, _) in queues.items():
            w = waits[cid] = sc * q[cid] * frac
            profiles[cid].wait1, profiles[cid].wait2 = w, 2 * w * w
        r, _, _ = latency_moments(design, profiles)
        if z + r <= 0:
            raise EstimateError("closed loop with zero think time and zero latency everywhere: throughput is unbounded")
        xk = users / (z + r)
        for cid, (sc, v) in queues.items():
            q[cid] = xk * v * sc * (1 + q[cid] * frac)
        return xk

    if n <= EXACT_MVA_USERS:
        method = "exact MVA recursion"
        for k in range(1, n + 1):  # an arrival sees the queues of the network with one user fewer
            x = cycle(k, 1.0)
    else:
        method = "Bard–Schweitzer approximate MVA"
        frac = (n - 1) / n
        x = 0.0
        for _ in range(5000):
            x_new = cycle(n, frac)
            done = abs(x_new - x) <= 1e-10 * x_new
            x = x_new
            if done:
                break
    d, _, _ = latency_moments(design, _profiles(base))
    caps = [1.0 / (sc * v) for sc, v in queues.values()]
    x_sat = min(caps) if caps else math.inf
    bound = n / (z + d) if z + d > 0 else math.inf
    why = (f"closed loop: {n:,} users, think time {z * 1000:.0f} ms; throughput {x:,.4g} requests/s by {method} "
           f"with Seidmann's multi-server split; bounds N/(Z + D) = {bound:,.4g}, bottleneck {x_sat:,.4g}")
    return x, waits, why


def estimate(design: Design) -> Estimate:
    """The analytic twin of `design` at its peak rate (or closed-loop throughput)."""
    t0 = time.perf_counter()
    from sim.cost import daily_cost
    from sim.verdict import slo_checks

    wl = design.workload
    warnings: list[str] = []
    pipeline = None
    if wl.batch is not None:
        try:
            from sim.pipeline import pipeline_result
        except ImportError:
            warnings.append("pipeline figures unavailable: sim.pipeline is not installed")
        else:
            try:
                pipeline = pipeline_result(design)
            except ValueError as e:
                raise EstimateError(str(e)) from None
    queueing_view = wl.batch is None or wl.arrival_rps is not None

    visits = visits_per_request(design)
    if not queueing_view:
        rate = 0.0
        calcs = {c.id: analyse_station(c, 0.0, design) for c in design.components}
    elif wl.closed_loop:
        rate, waits, why = _closed_loop(design, visits)
        warnings.append(why)
        calcs = _analyse_all(design, rate, visits)
        for cid, c in calcs.items():
            # A closed loop cannot overflow: its waits are the MVA ones, not the open model's.
            w = waits.get(cid, 0.0)
            c.wait_mean_s, c.wait_m2 = w, 2 * w * w
            c.wait_p95_s = qt.wait_quantile_approx(0.95, w, min(1.0, c.utilization)) if w > 0 else 0.0
            c.response_mean_s = w + c.service_mean_s
            c.stable, c.remedy = True, ""
            if w > 0:
                c.formula += "; closed-loop wait by approximate MVA"
    else:
        rate = wl.peak_rps
        calcs = _analyse_all(design, rate, visits)

    mean_s, var_s, walk_warn = _latency_at(design, calcs) if queueing_view else (0.0, 0.0, [])
    warnings += walk_warn
    for c in calcs.values():
        warnings += c.notes
    stable = all(c.stable for c in calcs.values())
    if math.isnan(mean_s):
        mean_s = var_s = math.inf

    unstable = []
    for cid, c in calcs.items():
        if not c.stable:
            hint = f" — {c.remedy}" if c.remedy else ""
            unstable.append(f"unstable: `{cid}` needs {_fmt_x(c.utilization)}× its capacity at peak{hint}")

    caps = [c.max_tp_rps / visits[cid] for cid, c in calcs.items() if c.max_tp_rps and visits[cid] > 0]
    max_tp = min(caps) if caps and queueing_view else None
    loaded = [(c.utilization, cid) for cid, c in calcs.items() if visits[cid] > 0 and c.utilization > 0]
    bottleneck = max(loaded, key=lambda t: (t[0], -list(calcs).index(t[1])))[1] if loaded else None

    total, lines = daily_cost(design, {cid: c.lam for cid, c in calcs.items()}, arrival_rps=rate or None,
                              pipeline=pipeline, visits=visits)
    by_id = {ln.id: ln.usd_per_day for ln in lines}
    # Same convention as the engine: none for pipelines, the throughput all day for a closed loop.
    per_day = rate * 86_400 if wl.closed_loop else wl.requests_per_day
    per_1k = total / (per_day / 1000.0) if per_day > 0 and wl.batch is None else None

    stations = {}
    for cid, c in calcs.items():
        stations[cid] = StationEstimate(
            kind=c.kind, arrival_rps=c.lam, visits_per_request=visits[cid], servers=c.servers,
            service_ms_mean=c.service_mean_s * 1000, service_scv=c.service_scv, utilization=c.utilization,
            wait_ms_mean=c.wait_mean_s * 1000,
            wait_ms_p95=None if c.wait_p95_s is None else c.wait_p95_s * 1000,
            response_ms_mean=c.response_mean_s * 1000, max_throughput_rps=c.max_tp_rps, stable=c.stable,
            replicas_needed=c.replicas_needed, formula=c.formula, cost_per_day_usd=by_id.get(cid, 0.0),
        )
    llm = {cid: c.llm for cid, c in calcs.items() if c.llm is not None}

    if math.isinf(mean_s):
        pct = Percentiles(mean=math.inf, p50=math.inf, p90=math.inf, p95=math.inf, p99=math.inf)
    else:
        q = lambda x: qt.gamma_quantile(x, mean_s, var_s) * 1000  # noqa: E731
        pct = Percentiles(mean=mean_s * 1000, p50=q(0.5), p90=q(0.9), p95=q(0.95), p99=q(0.99))
    ttft, tpot = _llm_latency(design, calcs, visits)
    slo = slo_checks(
        design, latency=pct if queueing_view else None, latency_ci=None, ttft=ttft, tpot=tpot,
        availability=None, cost_per_day_usd=total, pipeline=pipeline, approx=True,
    )
    return Estimate(
        design=design.name, arrival_rps=rate, stations=stations, latency_ms_mean=pct.mean,
        latency_ms_p95_approx=pct.p95, max_throughput_rps=max_tp, bottleneck=bottleneck, stable=stable,
        unstable=unstable, cost_per_day_usd=total, cost_breakdown=lines, cost_per_1k_requests_usd=per_1k,
        llm=llm, pipeline=pipeline, slo=slo, warnings=list(dict.fromkeys(warnings)),
        wall_s=time.perf_counter() - t0,
    )


def _llm_latency(design: Design, calcs: dict[str, StationCalc], visits: dict[str, float]) -> tuple[float | None, float | None]:
    """TTFT and TPOT (ms) of the slowest LLM on the path, from its own model (no upstream time)."""
    ttft = tpot = None
    for c in design.components:
        if visits.get(c.id, 0) <= 0:
            continue
        # Unstable: the wait for a slot (or the rate limit) grows without bound, and so does TTFT;
        # TPOT is what a request sees once it runs (at saturation for an llm_server).
        stuck = 0.0 if calcs[c.id].stable else math.inf
        if c.kind == "llm_server" and calcs[c.id].llm is not None:
            e = calcs[c.id].llm
            ttft = max(ttft or 0.0, e.ttft_ms_estimate + stuck)
            tpot = max(tpot or 0.0, e.tpot_ms_estimate)
        elif c.kind == "llm_api":
            ttft = max(ttft or 0.0, c.ttft.quantile(0.95) + stuck)
            tpot = max(tpot or 0.0, 1000.0 / c.output_tokens_per_s.quantile(0.05))
    return ttft, tpot
