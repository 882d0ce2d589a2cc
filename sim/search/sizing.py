"""Replica counts from the SLOs: the analytic twin, memoised, and bisection on each count.

`TwinEvaluator` scores one (candidate, replica counts) point at the peak rate (× headroom):
every SLO the twin can judge, the stability of every station and the cost per day. It is the
same arithmetic as ``sim.twin.analytic.estimate`` — the same `analyse_station`, flow walk,
TTFT/TPOT and cost rules — with each station's figures memoised on (component, settings,
count), so a search that changes one component re-analyses only that one
(tests/test_search.py checks it against `estimate` point by point).

`size_candidate` finds, for one candidate, the cheapest counts that meet every SLO:

1. **stability**: the smallest count with ρ < 1 at each component (utilisation falls as
   1/replicas, so ⌊ρ₁⌋ + 1 from the one-replica figure, checked and stepped);
2. **each count alone**: with the other components at an ample count (their waits ~0), the
   smallest count meeting every SLO, by galloping up from the stable count (r₀, r₀+1, r₀+2,
   r₀+4, …) and bisection inside the last step. SLO metrics only fall as a count grows, so
   every passing design needs at least this count — a lower bound per component;
3. **together**: at those bounds the design is checked as a whole; while it misses, one
   replica is added where it buys the most SLO margin per dollar.

With ``n_minus_1`` a point passes only if it also passes with any one component one replica
short (and every sized component has at least 2). An SLO that no count reaches is reported
as unreachable with the best value seen ("TTFT p95 ≥ 1,412 ms at any replica count").

Usage::

    >>> from designs.io import load_design
    >>> from sim.search.space import resolve
    >>> from sim.search.sizing import TwinEvaluator, size_candidate
    >>> d = load_design("designs/library/llm_serving.yaml")
    >>> sp = resolve(d)
    >>> ev = TwinEvaluator(d)
    >>> # r = size_candidate(ev, sp.candidates[0], sp.sized); r.counts, r.cost_per_day_usd
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from designs.model import Design
from sim.cost import COST_RULES, CostContext
from sim.twin import queueing as qt
from sim.twin.flow import latency_mixture, visits_per_request
from sim.twin.stations import StationCalc, analyse_station

from .space import Candidate

__all__ = ["TwinEvaluator", "Point", "Sized", "size_candidate", "LATENCY_METRICS"]

LATENCY_METRICS = ("latency_p95_ms", "latency_p99_ms", "ttft_p95_ms", "tpot_p95_ms")
"""SLO fields the twin judges (availability needs the simulator; the budget is a hard limit)."""

_GALLOP_LIMIT = 40  # doublings are bounded by the kind's max count long before this


@dataclass
class Point:
    """The twin's verdict on one (candidate, counts) point."""

    counts: dict[str, int]
    values: dict[str, float]
    """SLO metric → value (ms; inf when a station is unstable), plus `pipeline_hours` for pipelines."""
    targets: dict[str, float]
    cost_per_day_usd: float
    stable: bool
    unstable: list[str] = field(default_factory=list)

    @property
    def slack(self) -> float:
        """min over SLOs of (target − value) / target: ≥ 0 when every SLO the twin judges is met."""
        if not self.stable:
            return -math.inf
        s = [(t - self.values[m]) / t for m, t in self.targets.items()]
        return min(s) if s else 0.0

    @property
    def meets(self) -> bool:
        return self.stable and self.slack >= 0

    @property
    def binding(self) -> str | None:
        """The SLO metric with the least margin."""
        if not self.targets:
            return None
        return min(self.targets, key=lambda m: ((self.targets[m] - self.values[m]) / self.targets[m], m))


@dataclass
class Sized:
    """The outcome of sizing one candidate."""

    candidate: Candidate
    counts: dict[str, int] | None
    """Cheapest counts meeting every SLO; None when no count does."""
    point: Point | None
    """The twin at those counts (or at the closest point when unreachable)."""
    cost_per_day_usd: float
    reason: str = ""
    """Why it fails ('TTFT p95 ≥ 1,412 ms > 1,000 ms at any replica count …'), else empty."""
    miss: float = 0.0
    """How far the closest point misses, as a fraction of the target (0 when it passes)."""
    evaluations: int = 0
    stable_counts: dict[str, int] = field(default_factory=dict)

    @property
    def meets(self) -> bool:
        return self.counts is not None


def _targets(design: Design) -> dict[str, float]:
    slo = design.slo
    return {m: getattr(slo, m) for m in LATENCY_METRICS if getattr(slo, m) is not None}


class TwinEvaluator:
    """The analytic twin of one design at its peak rate × `headroom`, memoised per station."""

    def __init__(self, design: Design, headroom: float = 1.0):
        self.design = design
        self.headroom = headroom
        wl = design.workload
        # Closed loops (MVA) and pipelines take the full estimate; open loops the fast path.
        self.fast = wl.batch is None and not wl.closed_loop
        self.targets = _targets(design)
        self.evaluations = 0
        self._st: dict = {}
        self._cost: dict = {}
        if self.fast:
            self.rate = wl.peak_rps * headroom
            self.visits = visits_per_request(design)
            volume = wl.requests_per_day
            self._ctx = CostContext(design=design, calls_per_day={c: volume * v for c, v in self.visits.items()},
                                    daily_volume=volume, volume_text=f"{volume:,.0f} requests/day")

    def _comp(self, design: Design, cid: str):
        return design.component(cid)

    def station(self, comp, key) -> StationCalc:
        hit = self._st.get(key)
        if hit is None:
            hit = self._st[key] = analyse_station(comp, self.rate * self.visits[comp.id], self.design)
        return hit

    def cost_of(self, comp, key) -> float:
        hit = self._cost.get(key)
        if hit is None:
            hit = self._cost[key] = COST_RULES[comp.kind](comp, self._ctx).usd_per_day
        return hit

    def evaluate(self, cand: Candidate, counts: dict[str, int]) -> Point:
        """The twin's figures with `cand`'s settings and `counts` (other components as designed)."""
        self.evaluations += 1
        variant = cand.apply(self.design, counts)
        if not self.fast:
            return self._full(variant, counts)
        from sim.twin.analytic import _llm_latency  # the twin's own TTFT/TPOT rule, not a copy

        sets = dict(cand.settings)
        calcs, total = {}, 0.0
        for c in variant.components:
            key = (c.id, sets.get(c.id), counts.get(c.id))
            calcs[c.id] = self.station(c, key)
            total += self.cost_of(c, key)
        stable = all(x.stable for x in calcs.values())
        values: dict[str, float] = {}
        unstable = [cid for cid, x in calcs.items() if not x.stable]
        if {"latency_p95_ms", "latency_p99_ms"} & set(self.targets):
            if stable:
                m, v, mix, _ = latency_mixture(self.design, {cid: x.profile(x.kind == "queue") for cid, x in calcs.items()})
            else:
                m = v = math.inf
            for metric, q in (("latency_p95_ms", 0.95), ("latency_p99_ms", 0.99)):
                if metric in self.targets:
                    ok = math.isfinite(m) and not math.isnan(m)
                    values[metric] = (qt.mixture_quantile(q, mix) if mix else qt.gamma_quantile(q, m, v)) * 1000 if ok else math.inf
        if {"ttft_p95_ms", "tpot_p95_ms"} & set(self.targets):
            ttft, tpot, _ = _llm_latency(variant, calcs, self.visits)
            for metric, x in (("ttft_p95_ms", ttft), ("tpot_p95_ms", tpot)):
                if metric in self.targets:
                    values[metric] = math.inf if x is None and not stable else (x if x is not None else math.nan)
        targets = {m: t for m, t in self.targets.items() if not math.isnan(values.get(m, math.nan))}
        return Point(dict(counts), values, targets, total, stable, unstable)

    def _full(self, variant: Design, counts: dict[str, int]) -> Point:
        from sim.twin.analytic import estimate

        try:
            est = estimate(variant)
        except ValueError as e:  # this count cannot run at all (a model that needs more GPUs)
            return Point(dict(counts), {}, dict(self.targets), math.inf, False, [str(e).split("\n")[0]])
        values, targets = {}, {}
        for chk in est.slo:
            if chk.metric in LATENCY_METRICS or chk.metric == "pipeline_hours":
                if chk.value is None and chk.met is None:
                    continue
                values[chk.metric] = math.inf if chk.value is None else chk.value
                targets[chk.metric] = chk.target
        unstable = [cid for cid, s in est.stations.items() if not s.stable]
        return Point(dict(counts), values, targets, est.cost_per_day_usd, est.stable or bool(est.pipeline), unstable)

    def stable_count(self, cand: Candidate, cid: str, lo: int, hi: int, base: dict[str, int]) -> int:
        """Smallest count of `cid` in [lo, hi] at which its station is stable (ρ < 1)."""
        if not self.fast:
            return lo
        comp = cand.apply(self.design).component(cid)
        sets = dict(cand.settings)

        def util(r: int) -> tuple[bool, float]:
            c = comp.model_copy(update={_count_field(comp): r})
            x = self.station(c, (cid, sets.get(cid), r))
            return x.stable, x.utilization

        ok, u1 = util(lo)
        if ok:
            return lo
        r = min(hi, max(lo, int(u1 * lo) + 1))  # utilisation ∝ 1/count
        for _ in range(64):
            ok, u = util(r)
            if ok or r >= hi:
                return r
            r = min(hi, max(r + 1, int(u * r) + 1))
        return r


def _count_field(comp) -> str:
    from designs.space import REPLICA_FIELD

    return REPLICA_FIELD.get(comp.kind, "replicas")


def _describe_miss(p: Point) -> tuple[str, float]:
    """'TTFT p95 1,412 ms > 1,000 ms' for the SLO missed by most, and the relative miss."""
    if not p.stable:
        return f"unstable at {', '.join(p.unstable)}", math.inf
    worst = min(p.targets, key=lambda m: ((p.targets[m] - p.values[m]) / p.targets[m], m))
    v, t = p.values[worst], p.targets[worst]
    name = {"latency_p95_ms": "p95", "latency_p99_ms": "p99", "ttft_p95_ms": "TTFT p95", "tpot_p95_ms": "TPOT p95",
            "pipeline_hours": "pipeline"}[worst]
    unit = "h" if worst == "pipeline_hours" else "ms"
    return f"{name} {v:,.0f} {unit} > {t:,.0f} {unit}" if unit == "ms" else f"{name} {v:,.2f} h > {t:,.2f} h", (v - t) / t


def size_candidate(ev: TwinEvaluator, cand: Candidate, sized: dict[str, tuple[str, int, int]], *,
                   n_minus_1: bool = False, max_steps: int = 400) -> Sized:
    """The cheapest replica counts of `cand` meeting every SLO the twin judges (module docstring)."""
    design = ev.design
    ids = list(sized)
    from sim.check import config_problems  # hardware that cannot run this candidate at all

    probs = config_problems(cand.apply(design))
    if probs:
        return Sized(cand, None, None, math.inf, "cannot run: " + probs[0].message, math.inf, 0, {})
    n1 = n_minus_1 and design.workload.batch is None
    evals0 = ev.evaluations
    lo = {cid: max(sized[cid][1], 2 if n1 else 1) for cid in ids}
    hi = {cid: sized[cid][2] for cid in ids}
    base = {cid: lo[cid] for cid in ids}
    r0 = {cid: ev.stable_count(cand, cid, lo[cid], hi[cid], base) for cid in ids}
    if n1:  # one replica short must still be stable
        r0 = {cid: min(hi[cid], max(lo[cid], r0[cid] + 1)) for cid in ids}

    def point(counts: dict[str, int]) -> Point:
        p = ev.evaluate(cand, counts)
        if not n1 or not p.meets:
            return p
        for cid in ids:  # the worst of the point and each one-short variant
            if counts[cid] - 1 < 1:
                continue
            q = ev.evaluate(cand, {**counts, cid: counts[cid] - 1})
            if not q.meets:
                return Point(p.counts, q.values, q.targets, p.cost_per_day_usd, q.stable, q.unstable)
        return p

    def cost(counts: dict[str, int]) -> float:
        return ev.evaluate(cand, counts).cost_per_day_usd if ev.fast else point(counts).cost_per_day_usd

    # "Ample": far above what the others need (4× the design's own count too, since a pipeline
    # stage's stable count says nothing about the window it must meet).
    own = {cid: int(getattr(design.component(cid), sized[cid][0])) for cid in ids}
    ample = {cid: min(hi[cid], max(2 * r0[cid], r0[cid] + 4, 4 * own[cid])) for cid in ids}
    bounds: dict[str, int] = {}
    for cid in ids:
        others = {k: ample[k] for k in ids}

        def ok(r: int) -> Point:
            return point({**others, cid: r})

        r = r0[cid]
        p = ok(r)
        if p.meets:
            bounds[cid] = r
            continue
        last_fail, step, best = r, 1, p
        found = None
        for _ in range(_GALLOP_LIMIT):
            if r >= hi[cid]:
                break
            nxt = min(hi[cid], r0[cid] + step)
            step *= 2
            q = ok(nxt)
            if q.meets:
                found = nxt
                break
            # The metric stops improving: the floor is above the target at any count.
            if q.stable and best.stable and q.slack <= best.slack + 1e-4 * max(1.0, abs(best.slack)) and nxt >= ample[cid]:
                best = q
                r = nxt
                break
            best, last_fail, r = q, nxt, nxt
        if found is None:
            what, miss = _describe_miss(best)
            kind = design.component(cid).kind
            why = (f"{what} at any {cid} count (closest: {best.counts[cid]:,} {_count_field(design.component(cid))})"
                   + (" — prefill-bound" if kind == "llm_server" and "TTFT" in what else ""))
            return Sized(cand, None, best, best.cost_per_day_usd, why, miss, ev.evaluations - evals0, r0)
        lo_b, hi_b = last_fail, found  # fails at lo_b, meets at hi_b
        while hi_b - lo_b > 1:
            mid = (lo_b + hi_b) // 2
            if ok(mid).meets:
                hi_b = mid
            else:
                lo_b = mid
        bounds[cid] = hi_b

    counts = dict(bounds)
    p = point(counts)
    for _ in range(max_steps):
        if p.meets:
            return Sized(cand, counts, p, p.cost_per_day_usd, "", 0.0, ev.evaluations - evals0, r0)
        c0 = cost(counts)
        trials = []
        for cid in ids:
            if counts[cid] >= hi[cid]:
                continue
            trial = {**counts, cid: counts[cid] + 1}
            q = point(trial)
            dc = max(1e-9, cost(trial) - c0)
            trials.append((q.meets, dc, max(q.slack, -1e6) - max(p.slack, -1e6), cid))
        best_c = None
        passing = [t for t in trials if t[0]]
        if passing:  # a step that meets every SLO: the cheapest such step
            best_c = min(passing, key=lambda t: (t[1], t[3]))[3]
        elif trials:  # else the most SLO margin per dollar
            best_c = max(trials, key=lambda t: (t[2] / t[1], t[3]))[3]
        if best_c is None:
            break
        counts = {**counts, best_c: counts[best_c] + 1}
        p = point(counts)
    what, miss = _describe_miss(p)
    return Sized(cand, None, p, p.cost_per_day_usd, f"{what} even at the largest counts tried", miss,
                 ev.evaluations - evals0, r0)
