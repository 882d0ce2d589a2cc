"""The SLO verdict (shared by the analytic twin and the simulator) and the `sdw estimate` report.

Usage::

    >>> from designs.model import Design
    >>> from sim.results import Percentiles
    >>> from sim.verdict import slo_checks
    >>> d = Design.model_validate({"name": "x", "workload": {}, "slo": {"latency_p95_ms": 1000},
    ...     "components": [{"id": "s", "kind": "service"}], "entry": "s"})
    >>> [c.detail for c in slo_checks(d, latency=Percentiles(mean=500, p50=400, p90=700, p95=812, p99=990))]
    ['p95 812 ms ≤ 1000 ms']

One check per SLO field that is set (plus the pipeline window when a pipeline result is
given); ``met`` is None when the value is unknown (no LLM on the path for a TTFT target, no
availability figure from the twin). ``format_estimate(est)`` is plain text that returns, never
prints.
"""

from __future__ import annotations

import math
from typing import Any

from sim.results import Estimate, PercentileCI, Percentiles, PipelineResult, SLOCheck

__all__ = ["slo_checks", "format_estimate"]


def _ms(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _pct_value(v: Percentiles | float | None, key: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return getattr(v, key)


def _latency_check(metric: str, label: str, target: float, value: float | None, ci: tuple[float, float] | None,
                   approx: bool, unknown: str) -> SLOCheck:
    if value is None:
        return SLOCheck(metric=metric, target=target, value=None, met=None, detail=unknown)
    if math.isnan(value) or math.isinf(value):
        return SLOCheck(metric=metric, target=target, value=None, met=False,
                        detail=f"{label} unbounded: a component is unstable at this load > {target:g} ms")
    met = value <= target
    head = f"{label} ≈ {_ms(value)} ms (analytic)" if approx else f"{label} {_ms(value)} ms"
    if ci is not None:
        head += f" (95 % CI {_ms(ci[0])}–{_ms(ci[1])})"
    detail = f"{head} {'≤' if met else '>'} {target:g} ms"
    if ci is not None and ci[0] <= target <= ci[1]:
        detail += " — the CI straddles the target; run longer or read it as a tie"
    return SLOCheck(metric=metric, target=target, value=value, met=met, detail=detail)


def _ci(ci: PercentileCI | None, key: str) -> tuple[float, float] | None:
    v = None if ci is None else getattr(ci, key)  # None: fewer than two batches, no interval
    return None if v is None else tuple(v)  # type: ignore[return-value]


def slo_checks(
    design: Any,
    *,
    latency: Percentiles | None = None,
    latency_ci: PercentileCI | None = None,
    ttft: Percentiles | float | None = None,
    tpot: Percentiles | float | None = None,
    availability: float | None = None,
    cost_per_day_usd: float | None = None,
    pipeline: PipelineResult | None = None,
    ttft_ci: PercentileCI | None = None,
    tpot_ci: PercentileCI | None = None,
    approx: bool = False,
    notes: dict[str, str] | None = None,
) -> list[SLOCheck]:
    """The verdict lines for `design.slo`, in SLO field order.

    ``ttft``/``tpot`` may be a number (the twin's estimate, read as the p95). ``approx`` marks the
    values as analytic estimates in the detail sentences. ``notes`` (metric → sentence) are
    appended to those metrics' details, e.g. that a mean stood in for a missing p95.
    """
    slo = design.slo
    out: list[SLOCheck] = []
    no_lat = "no latency figure (pipeline design or not measured)"
    if slo.latency_p95_ms is not None:
        out.append(_latency_check("latency_p95_ms", "p95", slo.latency_p95_ms, _pct_value(latency, "p95"),
                                  _ci(latency_ci, "p95"), approx, no_lat))
    if slo.latency_p99_ms is not None:
        out.append(_latency_check("latency_p99_ms", "p99", slo.latency_p99_ms, _pct_value(latency, "p99"),
                                  _ci(latency_ci, "p99"), approx, no_lat))
    no_llm = "no token timings: no LLM on the request path"
    if slo.ttft_p95_ms is not None:
        out.append(_latency_check("ttft_p95_ms", "TTFT p95", slo.ttft_p95_ms, _pct_value(ttft, "p95"),
                                  _ci(ttft_ci, "p95"), approx, no_llm))
    if slo.tpot_p95_ms is not None:
        out.append(_latency_check("tpot_p95_ms", "TPOT p95", slo.tpot_p95_ms, _pct_value(tpot, "p95"),
                                  _ci(tpot_ci, "p95"), approx, no_llm))
    if slo.availability is not None:
        t = slo.availability
        if availability is None:
            out.append(SLOCheck(metric="availability", target=t, value=None, met=None,
                                detail="availability unknown here (the simulator measures drops and timeouts)"))
        else:
            met = availability >= t
            out.append(SLOCheck(metric="availability", target=t, value=availability, met=met,
                                detail=f"availability {availability * 100:.3g} % {'≥' if met else '<'} {t * 100:.3g} %"))
    if slo.daily_budget_usd is not None:
        t = slo.daily_budget_usd
        if cost_per_day_usd is None:
            out.append(SLOCheck(metric="cost_per_day_usd", target=t, value=None, met=None, detail="cost unknown"))
        else:
            met = cost_per_day_usd <= t
            out.append(SLOCheck(metric="cost_per_day_usd", target=t, value=cost_per_day_usd, met=met,
                                detail=f"${cost_per_day_usd:,.0f}/day {'≤' if met else '>'} ${t:,.0f}/day budget"))
    if pipeline is not None:
        out.append(SLOCheck(metric="pipeline_hours", target=pipeline.window_h, value=pipeline.duration_h,
                            met=pipeline.fits, detail=pipeline.summary))
    for chk in out:
        if notes and notes.get(chk.metric):
            chk.detail = f"{chk.detail} ({notes[chk.metric]})"
    return out


# --- the `sdw estimate` report ---------------------------------------------------------------------


def _num(x: float | None, nd: int = 3) -> str:
    if x is None:
        return "—"
    if math.isinf(x) or math.isnan(x):
        return "∞"
    if x == 0:
        return "0"
    if abs(x) < 1e-3:
        return "≈0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}g}"


def format_estimate(est: Estimate) -> str:
    """The plain-text report `sdw estimate` prints: stations, stability, latency, cost, LLM, SLOs."""
    lines: list[str] = []
    rate = f"{est.arrival_rps:,.4g} requests/s" if est.arrival_rps else "no request traffic (pipeline)"
    lines.append(f"Analytic estimate: {est.design} at {rate}")
    lines.append("")
    head = ("component", "kind", "λ rps", "visits", "servers", "ρ", "wait ms", "p95 wait", "resp ms", "max rps", "cost/day")
    rows = [head]
    for cid, s in est.stations.items():
        rows.append((
            cid + ("" if s.stable else " !"), s.kind, _num(s.arrival_rps), _num(s.visits_per_request),
            "∞" if s.servers is None else f"{s.servers:,}", f"{s.utilization:.3f}" if s.servers or s.utilization else "—",
            _num(s.wait_ms_mean), _num(s.wait_ms_p95), _num(s.response_ms_mean), _num(s.max_throughput_rps),
            f"${s.cost_per_day_usd:,.2f}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])] + [c.rjust(w) for c, w in zip(r[2:], widths[2:])]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    formulas = [(cid, s.formula) for cid, s in est.stations.items() if s.formula and s.arrival_rps > 0]
    if formulas:
        lines.append("")
        lines.append("How each wait was computed:")
        lines += [f"  {cid}: {f}" for cid, f in formulas]
    if est.unstable:
        lines.append("")
        lines += est.unstable
    lines.append("")
    if est.arrival_rps and (est.latency_ms_mean is None or not math.isfinite(est.latency_ms_mean)):
        lines.append("End to end: unbounded — the queue at an unstable component grows without limit")
    elif est.arrival_rps:
        lines.append(f"End to end: mean {_num(est.latency_ms_mean, 4)} ms, p95 ≈ {_num(est.latency_ms_p95_approx, 4)} ms "
                     "(a gamma per loop count and branch, on each one's mean and variance)")
    if est.arrival_rps:
        mt = est.max_throughput_rps
        lines.append(f"Max sustainable throughput: {_num(mt, 4) + ' requests/s' if mt else 'unbounded (no queueing station)'}"
                     + (f"; bottleneck: {est.bottleneck} (ρ {est.stations[est.bottleneck].utilization:.3f})"
                        if est.bottleneck else ""))
        lines.append(f"Stable at this rate: {'yes' if est.stable else 'NO'}")
    per_1k = f" (${est.cost_per_1k_requests_usd:,.4g} per 1k requests)" if est.cost_per_1k_requests_usd else ""
    lines.append(f"Cost: ${est.cost_per_day_usd:,.2f}/day{per_1k}")
    for c in est.cost_breakdown:
        if c.usd_per_day > 0:
            lines.append(f"  {c.id}: {c.rule} = ${c.usd_per_day:,.2f}")
    for cid, llm in est.llm.items():
        lines.append("")
        lines.append(f"LLM server {cid} ({llm.bound}-bound decode):")
        lines += [f"  {ln}" for ln in llm.explanation]
    for cid, r in (getattr(est, "retrieval", None) or {}).items():
        lines.append("")
        lines.append(f"Vector index {cid} ({r.index_type}, {r.shards} shard(s) × {r.replicas} replica(s)): "
                     f"recall@{r.top_k} {r.recall_at_k:.3f}, {r.query_ms_mean:.3g} ms per query")
        lines += [f"  {ln}" for ln in r.explanation]
    for cid, e in (getattr(est, "evaluation", None) or {}).items():
        lines.append("")
        lines.append(f"Eval plan {cid} ({e.outcome} outcomes, {e.cases:,} cases per run):")
        lines += [f"  {ln}" for ln in e.explanation]
    if est.pipeline is not None:
        lines.append("")
        lines.append(f"Pipeline: {est.pipeline.summary}")
        for st in est.pipeline.stages:
            lines.append(f"  {st.id}: starts {st.start_h:.2f} h, {st.duration_h:.2f} h — {st.detail}")
    if est.slo:
        lines.append("")
        lines.append("SLOs:")
        mark = {True: "ok  ", False: "FAIL", None: "?   "}
        lines += [f"  {mark[c.met]} {c.metric}: {c.detail}" for c in est.slo]
    if est.warnings:
        lines.append("")
        lines.append("Notes:")
        lines += [f"  {w}" for w in est.warnings]
    return "\n".join(lines) + "\n"
