"""Summaries: turning a run's raw batch records into a `sim.results.RunResult`.

`Batch` is what one batch of measured requests leaves behind (latencies, token timings,
per-station statistics, the in-system area); `build_result` turns the batches into the
result record: point estimates and 95 % intervals of the latency percentiles (batch means,
or time batches of a whole day), per-component statistics, Little's law, the SLO verdict and
the daily cost.

Usage::

    from sim.des.summary import Batch, build_result, percentiles

    point, ci, rel_half_width = percentiles(batches, "lat", whole_day=False)   # ms
    result = build_result(design=d, outs=batches, simulated=n, seed=1, t_start=t0,
                          stopped_by="precision", stable=True, est=est, sample=None, warnings=[],
                          warmup=n_warm, keep_sample=2000, ci_method="batch means: …")
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field

from .control import batch_controls, cv_fit
from .stats import LogHistogram, half_width, mean_ci, summary
from .workload import OpenLoop

__all__ = ["Batch", "build_result", "percentiles", "p95_interval", "variance_reduction", "q95", "null_rng",
           "LLM_KINDS"]

LLM_KINDS = frozenset({"llm_server", "llm_api"})


def null_rng() -> random.Random:
    """A throwaway stream for computing expectations (never used for sampling a run)."""
    return random.Random(0)


@dataclass
class Batch:
    """One batch of measured requests (consecutive arrivals) and what they measured."""

    first_id: int
    end_id: int = 1 << 62  # first arrival id after this batch
    lat: LogHistogram = field(default_factory=LogHistogram)
    ttft: LogHistogram = field(default_factory=LogHistogram)
    tpot: LogHistogram = field(default_factory=LogHistogram)
    measured: int = 0
    completed: int = 0
    dropped: int = 0
    outstanding: int = 0
    t_start: float = 0.0
    window_s: float = 0.0
    area_start: float = 0.0
    mean_in_system: float = 0.0
    dropped_sojourn_s: float = 0.0
    answer_tokens: int = 0
    components: dict = field(default_factory=dict)
    closed: bool = False
    in_system_start: int = 0
    in_system_mid: int = 0
    t_mid: float = 0.0
    in_system_end: int = 0
    t_end: float = 0.0
    batches: list | None = None  # whole day: per-time-batch histograms
    values: list | None = field(default_factory=list)  # latencies (s) until the batch is summarised
    stats: dict | None = None  # the summary (seconds): n, total, mean, p50 … p99, cdf points
    # Control variates (`sim.des.control`): (arrivals, their time span, output tokens, prompt
    # tokens, outputs above each threshold), set when the next batch opens.
    arrivals_ctl: tuple | None = None

    def ok_count(self) -> int:
        if self.values is not None:
            return len(self.values)
        return self.stats["n"] if self.stats is not None else self.lat.n

    def finalize(self) -> dict:
        """Summarise the batch's latencies once (exact order statistics) and free the list.

        A plain list append per request is the cheapest thing the hot path can do; sorting a
        batch once in C costs less than binning every value. Whole-day runs (one batch of
        millions) use the streaming histogram `lat` instead.
        """
        if self.stats is None or self.values is not None:
            if self.values is not None:
                self.stats = _order_stats(self.values)
                self.values = None
            else:
                h = self.lat
                q = h.quantiles(_CDF_QS)
                self.stats = {"n": h.n, "total": h.total, "mean": h.mean() if h.n else 0.0,
                              **dict(zip(("p50", "p90", "p95", "p99"), h.quantiles((0.5, 0.9, 0.95, 0.99)))),
                              "cdf": q if h.n else []}
        return self.stats


_CDF_POINTS = 256
_CDF_QS = tuple((i + 0.5) / _CDF_POINTS for i in range(_CDF_POINTS))


def _order_stats(values: list[float]) -> dict:
    """n, total, mean, p50/p90/p95/p99 (linear between order statistics) and CDF points."""
    n = len(values)
    if n == 0:
        return {"n": 0, "total": 0.0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "cdf": []}
    total = math.fsum(values)  # correctly rounded: the same float in any order
    ps = (0.5, 0.9, 0.95, 0.99, *_CDF_QS)
    # Only the order statistics at these ranks are read: numpy sorts a copy ~3× faster than
    # list.sort (a batch of 300k latencies: ~45 ms instead of ~175 ms here), the same floats.
    # Only when numpy is loaded already, or the batch pays for importing it (~0.4 s here).
    ranks = sorted({n - 1, *(min(int(p * (n - 1)) + d, n - 1) for p in ps for d in (0, 1))})
    np = sys.modules.get("numpy") if n > 2048 else None
    if np is None and n >= 2_000_000:
        import numpy as np
    if np is not None:
        arr = np.array(values, dtype=float)
        arr.sort()
        at = dict(zip(ranks, arr[ranks].tolist()))
    else:
        xs = sorted(values)
        at = {r: xs[r] for r in ranks}
    last = at[n - 1]

    def q(p: float) -> float:
        pos = p * (n - 1)
        i = int(pos)
        if i + 1 >= n:
            return last
        return at[i] + (at[i + 1] - at[i]) * (pos - i)

    return {"n": n, "total": total, "mean": total / n, "p50": q(0.5), "p90": q(0.9), "p95": q(0.95), "p99": q(0.99),
            "cdf": [q(p) for p in _CDF_QS]}


def q95(o: Batch) -> float:
    st = o.finalize()
    return st["p95"] if st["n"] else float("nan")


def build_result(*, design, outs: list[Batch], simulated: int, seed, t_start, stopped_by, stable, est, sample,
                  warnings, warmup, keep_sample, ci_method: str, whole_day=False, pipeline=None, plan=None):
    from sim.results import PercentileCI, Percentiles, RunResult

    wl = design.workload
    partial = stopped_by == "interrupted"
    warnings = list(warnings)
    for o in outs:
        o.finalize()
    done = [o for o in outs if o.stats["n"]]
    lat, lat_ci, hw_rel = percentiles(done, "lat", whole_day, plan)
    if not done and pipeline is None:
        warnings.append("no measured request completed: the latency figures are null (not measured)")
    kinds_on_path = {design.component(c).kind for c in design.reachable()}
    ttft = tpot = ttft_ci = tpot_ci = None
    tokens_per_s = None
    if kinds_on_path & LLM_KINDS and any(o.ttft.n for o in done):
        ttft, ttft_ci, _ = percentiles([o for o in done if o.ttft.n], "ttft", whole_day)
        if any(o.tpot.n for o in done):
            tpot, tpot_ci, _ = percentiles([o for o in done if o.tpot.n], "tpot", whole_day)
        tokens_per_s = _avg([o.answer_tokens / o.window_s for o in done if o.window_s > 0])
    components = _components(design, outs)
    measured = sum(o.measured for o in outs)
    completed = sum(o.completed for o in outs)
    dropped = sum(o.dropped for o in outs)
    unfinished = sum(o.outstanding for o in outs)
    if unfinished and stable:
        warnings.append(f"{unfinished} measured requests had not finished when the run stopped")
    little = _littles_law(outs, cut_short=partial or not stable or stopped_by == "max_seconds")
    if little is not None and not little.ok and stable and not partial:
        warnings.append(f"Little's law off by {little.rel_error:.1%}: the run may be too short for this load")
    if not stable:
        o = outs[0] if outs else None
        if o is not None and o.t_end > o.t_mid:
            growth = (o.in_system_end - o.in_system_mid) / (o.t_end - o.t_mid)
            warnings.append(f"backlog grew from {o.in_system_mid} to {o.in_system_end} requests in flight over "
                            f"{o.t_end - o.t_mid:.1f} s of peak traffic (+{growth:,.1f}/s); latencies are from the "
                            "requests that finished and understate what users would see")
    if whole_day and len(done) == 1:
        warnings.append("whole-day confidence intervals come from 20 time batches of one day; traffic varies by "
                        "hour, so they are indicative only")
    bottleneck = _bottleneck(components, est, stable)
    arrival = wl.peak_rps
    if wl.closed_loop:
        arrival = _avg([o.measured / o.window_s for o in outs if o.window_s > 0]) or 0.0
    elif whole_day:
        arrival = sum(OpenLoop.whole_day(wl, null_rng()).rates) / 24.0
    values = dict(
        design=design.name,
        arrival_rps=arrival,
        simulated_requests=simulated,
        completed_requests=completed,
        dropped_requests=dropped,
        stable=stable,
        stopped_by=stopped_by,
        latency_ms=Percentiles(**lat),
        latency_ms_ci95=PercentileCI(**lat_ci),
        components=components,
        slo=[],
        cost_per_day_usd=0.0,
        seed=seed,
        wall_s=0.0,
        partial=partial,
        replications=len(done),
        ci_method=ci_method,
        warmup_requests=warmup,
        precision_achieved=hw_rel,
        ttft_ms=Percentiles(**ttft) if ttft else None,
        tpot_ms=Percentiles(**tpot) if tpot else None,
        ttft_ms_ci95=PercentileCI(**ttft_ci) if ttft_ci else None,
        tpot_ms_ci95=PercentileCI(**tpot_ci) if tpot_ci else None,
        output_tokens_per_s=tokens_per_s,
        bottleneck=bottleneck,
        littles_law=little,
        pipeline=pipeline,
        latency_sample_ms=_cdf_sample(done, keep_sample),
        ttft_sample_ms=_hist_sample(done, "ttft", keep_sample) if ttft else [],
        tpot_sample_ms=_hist_sample(done, "tpot", keep_sample) if tpot else [],
        warnings=warnings,
    )
    result = RunResult(**values)
    _add_cost_and_slo(design, result, est, measured, whole_day)
    result.wall_s = time.perf_counter() - t_start
    return result


def _cdf_sample(outs: list[Batch], n: int) -> list[float]:
    """`n` evenly spaced quantiles (ms) of all measured latencies, for CDF plots.

    Each batch keeps 256 quantile points; pooled, each point weighs its batch's size / 256.
    Nothing per request, and the memory does not grow with the run.
    """
    pts: list[tuple[float, float]] = []
    for o in outs:
        st = o.finalize()
        if st["n"] and st["cdf"]:
            w = st["n"] / len(st["cdf"])
            pts.extend((x, w) for x in st["cdf"])
    if n <= 0 or not pts:
        return []
    pts.sort()
    total = sum(w for _, w in pts)
    k = min(n, int(total))
    out: list[float] = []
    acc, i = 0.0, 0
    for j in range(k):
        target = (j + 0.5) / k * total
        while i < len(pts) - 1 and acc + pts[i][1] < target:
            acc += pts[i][1]
            i += 1
        out.append(pts[i][0] * 1000.0)
    return out


def _hist_sample(outs: list[Batch], attr: str, n: int) -> list[float]:
    """Like `_cdf_sample` for the TTFT/TPOT histograms (ms): 256 quantiles per batch, pooled
    by batch size, then `n` evenly spaced points of the pooled distribution."""
    pts: list[tuple[float, float]] = []
    for o in outs:
        h = getattr(o, attr)
        if h.n:
            w = h.n / len(_CDF_QS)
            pts.extend((x, w) for x in h.quantiles(_CDF_QS))
    if n <= 0 or not pts:
        return []
    pts.sort()
    total = sum(w for _, w in pts)
    k = min(n, int(total))
    out: list[float] = []
    acc, i = 0.0, 0
    for j in range(k):
        target = (j + 0.5) / k * total
        while i < len(pts) - 1 and acc + pts[i][1] < target:
            acc += pts[i][1]
            i += 1
        out.append(pts[i][0] * 1000.0)
    return out


def _bottleneck(components: dict, est, stable: bool) -> str | None:
    """The component that limits the design.

    A stable run: the highest measured utilisation (ties by the p95 wait). An overloaded run
    cannot rank by what it measured — every saturated station reads ρ ≈ 1, the one in front
    holds the backlog when the budget stops, and an LLM server's token share reads near 0 when
    few answers finish — so it ranks by offered load: the twin's demand over capacity (the
    LLM at 10¹⁰ requests/day needs ~700× its capacity, the gateway 0.9×), or without the twin
    the share of a station's arrivals still queued at the end."""
    if not components:
        return None
    if not stable:
        loads = {c: est.stations[c].utilization for c in components
                 if est is not None and c in est.stations and est.stations[c].utilization is not None
                 and math.isfinite(est.stations[c].utilization) and est.stations[c].utilization > 0}
        if loads:
            return max(loads, key=lambda c: (loads[c], components[c].utilization))
        backlog = {c: s.backlog_end / s.arrivals for c, s in components.items() if s.arrivals}
        if backlog and max(backlog.values()) > 0:
            return max(backlog, key=lambda c: (backlog[c], components[c].utilization))
    best = max(components, key=lambda c: (components[c].utilization, components[c].wait_ms_p95))
    if components[best].utilization <= 0 and components[best].wait_ms_p95 <= 0:
        return None
    return best


def _avg(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


_KEYS = ("mean", "p50", "p90", "p95", "p99")


def percentiles(outs: list[Batch], attr: str, whole_day: bool, plan=None):
    """(point estimates, 95 % CIs, relative half-width of p95), all in ms.

    Point = mean over batches of each batch's statistic (the CI is centred on it); with a
    control plan (`sim.des.control`, end-to-end latency only) the control-variate estimate
    and its interval instead. One whole day: pooled day statistics, intervals from 20 time
    batches.
    """
    if not outs:  # nothing completed (a pipeline, or every request dropped): not measured
        return {k: None for k in _KEYS}, {k: None for k in _KEYS}, None
    if whole_day and len(outs) == 1 and attr == "lat" and outs[0].batches:
        point = summary(outs[0].lat)
        per = [summary(b) for b in outs[0].batches if b.n >= 20]
        ci = {}
        for k in _KEYS:
            vals = [p[k] for p in per]
            # No interval from fewer than two time batches: one has no spread to estimate.
            hw = half_width(vals) if len(vals) > 1 else None
            ci[k] = (point[k] - hw, point[k] + hw) if hw is not None else None
        rel = (ci["p95"][1] - point["p95"]) / point["p95"] if point["p95"] and ci["p95"] is not None else None
        return point, ci, rel
    if attr == "lat":
        per = [{k: o.finalize()[k] * 1000.0 for k in _KEYS} for o in outs]
        if plan is not None and not whole_day and batch_controls(plan, outs) is not None:
            fits = {k: cv_fit([p[k] for p in per], batch_controls(plan, outs, k), plan.names(k)) for k in _KEYS}
            if fits["p95"].used:
                point = {k: f.estimate for k, f in fits.items()}
                ci = {k: (f.estimate - f.half_width, f.estimate + f.half_width) for k, f in fits.items()}
                p95 = fits["p95"]
                rel = p95.half_width / p95.estimate if p95.estimate > 0 and not math.isinf(p95.half_width) else None
                return point, ci, rel
    else:
        per = [summary(getattr(o, attr)) for o in outs]
    point = {k: sum(p[k] for p in per) / len(per) for k in _KEYS}
    # No interval from fewer than two batches (a one-batch "CI" of [x, x] claims certainty).
    ci = {k: mean_ci([p[k] for p in per]) if len(per) > 1 else None for k in _KEYS}
    hw = half_width([p["p95"] for p in per]) if len(per) > 1 else None
    rel = hw / point["p95"] if hw is not None and point["p95"] > 0 and not math.isinf(hw) else None
    return point, ci, rel


def p95_interval(outs: list[Batch], plan=None) -> tuple[float, float]:
    """(estimate, 95 % half-width) of the end-to-end p95 in seconds over `outs`: the stopping
    rule's statistic (control variates with a plan, else the plain batch mean; inf half-width
    with fewer than two batches)."""
    p95s = [q95(o) for o in outs]
    if not p95s:
        return 0.0, math.inf
    fit = cv_fit(p95s, batch_controls(plan, outs, "p95") if plan is not None else None,
                 plan.names("p95") if plan else ())
    return fit.estimate, fit.half_width


def variance_reduction(outs: list[Batch], plan, precision: float, n_meas: int, n_warm: int,
                       min_batches: int) -> dict | None:
    """What the controls bought on the p95 (a `sim.results.VarianceReduction` as a dict), or
    None without a plan or when no control could be fitted.

    Requests needed = warm-up + batches × batch size, the batches scaled from the interval
    actually obtained (a half-width shrinks like 1/√batches) to the target precision, and at
    least `min_batches`; "without" is the same for the plain batch-means interval of the same
    batches.
    """
    done = [o for o in outs if o.finalize()["n"]]
    xs = batch_controls(plan, done, "p95") if plan is not None else None
    if xs is None:
        return None
    fit = cv_fit([q95(o) for o in done], xs, plan.names("p95"))
    if not fit.used or not fit.estimate > 0:
        return None
    k = len(done)

    def needed(hw: float) -> int | None:
        if math.isinf(hw) or not precision > 0:
            return None
        batches = max(min_batches, math.ceil(k * (hw / (precision * fit.estimate)) ** 2))
        return n_warm + batches * n_meas

    return {
        "method": "control variates (regression over batches; intercept and its t-interval)",
        "controls": list(fit.used),
        "r_squared_p95": fit.r2,
        "variance_ratio_p95": fit.variance_ratio,
        "precision_without": fit.plain_half_width / fit.plain_estimate if fit.plain_estimate > 0 else None,
        "requests_needed": needed(fit.half_width),
        "requests_needed_without": needed(fit.plain_half_width),
    }


def _components(design, outs: list[Batch]) -> dict:
    from sim.results import ComponentStats
    from .stats import aggregate_records

    good = [o for o in outs if o.components]
    if not good:
        return {}
    merged = aggregate_records([{cid: st.to_json() for cid, st in o.components.items()} for o in good])
    return {cid: ComponentStats(**rec) for cid, rec in merged.items()}


def _littles_law(outs: list[Batch], cut_short: bool):
    """L (time-average requests in system) against λW, pooled over the measured batches.

    Pooled sums telescope across consecutive batches, so only the two ends of the measured
    span contribute edge terms; they cancel in expectation once the warm-up is long enough.
    """
    from sim.results import LittlesLaw
    from .stats import littles_law

    rows = [o for o in outs if o.window_s > 0 and (o.finalize()["n"] + o.dropped)]
    if not rows:
        return None
    span = sum(o.window_s for o in rows)
    L = sum(o.mean_in_system * o.window_s for o in rows) / span
    lam = sum(o.measured for o in rows) / span
    W = sum(o.stats["total"] + o.dropped_sojourn_s for o in rows) / sum(o.stats["n"] + o.dropped for o in rows)
    lw, err = littles_law(L, lam, W)
    return LittlesLaw(mean_in_system=L, throughput_x_latency=lw, rel_error=err, ok=err <= (0.05 if cut_short else 0.01))


def _add_cost_and_slo(design, result, est, measured: int, whole_day: bool) -> None:
    """Daily cost from `sim.cost` and the SLO verdict from `sim.verdict` (simple fallbacks)."""
    rates = {cid: st.throughput_rps for cid, st in result.components.items()}
    try:
        from sim.cost import daily_cost
    except ImportError:
        daily_cost = None
    if daily_cost is not None:
        try:
            kwargs = {"pipeline": result.pipeline}
            if rates and result.arrival_rps > 0:
                kwargs.update(arrival_rps_by_component=rates, arrival_rps=result.arrival_rps)
            elif est is not None and est.stations:
                # Nothing measured to price by: the twin's visits (already walked), not a second walk
                # after the deadline (0.4 s on a 500-station loop).
                kwargs["visits"] = {cid: st.visits_per_request for cid, st in est.stations.items()}
            usd, lines = daily_cost(design, **kwargs)
            result.cost_per_day_usd = float(usd)
            result.cost_breakdown = list(lines)
        except Exception as e:  # cost is a report line; never lose a simulation to it
            result.warnings.append(f"cost not computed: {e}")
    elif est is not None:
        result.cost_per_day_usd = est.cost_per_day_usd
        result.cost_breakdown = list(est.cost_breakdown)
    wl = design.workload
    per_day = wl.requests_per_day if not wl.closed_loop else result.arrival_rps * 86_400
    if per_day > 0 and result.cost_per_day_usd and wl.batch is None:
        result.cost_per_1k_requests_usd = result.cost_per_day_usd / per_day * 1000.0
    n = result.completed_requests + result.dropped_requests
    availability = result.completed_requests / n if n else None
    try:
        from sim.verdict import slo_checks
    except ImportError:
        slo_checks = None
    if slo_checks is not None:
        checks = slo_checks(
            design,
            latency=result.latency_ms if n else None,
            latency_ci=result.latency_ms_ci95 if n else None,
            ttft=result.ttft_ms, tpot=result.tpot_ms, ttft_ci=result.ttft_ms_ci95, tpot_ci=result.tpot_ms_ci95,
            availability=availability, cost_per_day_usd=result.cost_per_day_usd, pipeline=result.pipeline,
        )
    else:
        checks = _basic_slo(design, result, availability)
    if not result.stable:
        # The measured percentiles only cover requests that got through a growing queue.
        for c in checks:
            if c.metric in ("latency_p95_ms", "latency_p99_ms", "ttft_p95_ms", "tpot_p95_ms"):
                c.met = False
                c.detail = f"unstable: the queue grows without bound (measured {c.value if c.value is None else round(c.value, 1)} ms covers only requests that finished)"
    result.slo = checks


def _basic_slo(design, result, availability) -> list:
    """The SLO lines without `sim.verdict` (kept minimal; the verdict module is the real one)."""
    from sim.results import SLOCheck

    slo = design.slo
    out = []

    def check(metric, target, value, higher_is_better=False):
        met = None if value is None or math.isnan(value) else (value >= target if higher_is_better else value <= target)
        out.append(SLOCheck(metric=metric, target=target, value=value, met=met, detail=f"{value} vs {target}"))

    pick = {"latency_p95_ms": (result.latency_ms, "p95"), "latency_p99_ms": (result.latency_ms, "p99"),
            "ttft_p95_ms": (result.ttft_ms, "p95"), "tpot_p95_ms": (result.tpot_ms, "p95")}
    for metric, (pct, key) in pick.items():
        target = getattr(slo, metric)
        if target is not None:
            check(metric, target, getattr(pct, key) if pct is not None else None)
    if slo.availability is not None:
        check("availability", slo.availability, availability, higher_is_better=True)
    if slo.daily_budget_usd is not None:
        check("cost_per_day_usd", slo.daily_budget_usd, result.cost_per_day_usd)
    return out
