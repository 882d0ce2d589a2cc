"""Plain-text lines for the operations parts of a run and an estimate (CLI and documents).

Usage::

    from sim import format_ops, format_n_minus_1
    print(format_ops(result.ops))                 # availability, fates, faults, cold starts, cost
    print(format_n_minus_1(n_minus_one(design)))  # one line per replicated component
"""

from __future__ import annotations

__all__ = ["format_ops", "format_n_minus_1", "ops_rows", "fault_rows"]


def format_ops(ops) -> str:
    """The timeline section of `sdw run` (empty string for a steady-state run)."""
    if ops is None:
        return ""
    f = ops.fates
    lines = [f"Timeline: {ops.horizon_s:,.0f} s in {len(ops.windows)} windows of {ops.window_s:g} s"]
    if ops.trace:
        lines.append(f"  trace: {ops.trace}")
    if ops.availability is not None:
        ci = ops.availability_ci95
        band = f" (95 % CI {ci[0] * 100:.4g}–{ci[1] * 100:.4g} %)" if ci else ""
        lines.append(f"  availability {ops.availability * 100:.4g} %{band}: {f.succeeded:,} of {f.offered:,} offered succeeded")
    lines.append(f"  requests: {f.failed:,} failed, {f.retried:,} completed late after a retry, "
                 f"{f.fallbacks:,} answered by a fallback; {f.attempts:,} attempts on retry edges")
    lines.append(f"  tokens offered: {ops.prompt_tokens:,} prompt, {ops.output_tokens:,} output")
    for fw in ops.faults[:20]:
        lines.append(f"  {fw.source} {fw.what} on {fw.component}: {fw.start_s:,.0f}–{fw.end_s:,.0f} s"
                     + (f", {fw.lost_requests} in service lost" if fw.lost_requests else ""))
    if len(ops.faults) > 20:
        lines.append(f"  … {len(ops.faults) - 20} more faults (see --json)")
    if ops.cold_starts:
        first = ops.cold_starts[0]
        waited = sum(ops.waited_for_cold_start.values())
        lines.append(f"  cold starts: {len(ops.cold_starts)} (first asked at {first.requested_s:,.0f} s, "
                     f"serving at {first.ready_s:,.0f} s); {waited:,} requests queued while a replica was starting")
    for cid, h in ops.replica_hours.items():
        lines.append(f"  {cid}: {h:,.2f} replica-hours")
    if ops.autoscaled_cost_per_day_usd is not None and ops.fixed_cost_per_day_usd is not None:
        save = ops.fixed_cost_per_day_usd - ops.autoscaled_cost_per_day_usd
        lines.append(f"  autoscaled cost ${ops.autoscaled_cost_per_day_usd:,.2f}/day vs fixed peak fleet "
                     f"${ops.fixed_cost_per_day_usd:,.2f}/day (saves ${save:,.2f})")
    return "\n".join(lines)


def format_n_minus_1(rows: dict) -> str:
    """One line per replicated component: N−1 (and zone-down) utilisation and the SLO verdict."""
    if not rows:
        return ""
    lines = ["N−1 (one replica down at peak, the twin):"]
    for cid, n in rows.items():
        mark = "ok  " if n.slo_ok_one_down else "FAIL"
        lines.append(f"  {mark} {cid}: {n.detail}")
    return "\n".join(lines)


def ops_rows(ops) -> list[dict]:
    """The timeline as long-format rows for charts and CSV: one row per window and series.

    Columns: ``t_s`` (window start), ``t_end_s``, ``series`` (arrivals, succeeded, failed,
    retries, latency p50/p95/p99 ms, replicas:<id>, provisioned:<id>, queued:<id>), ``value``.
    """
    rows: list[dict] = []
    if ops is None:
        return rows
    for w in ops.windows:
        base = {"t_s": w.t_start_s, "t_end_s": w.t_end_s}
        for name, v in (("arrivals", w.arrivals), ("succeeded", w.succeeded), ("failed", w.failed),
                        ("retries", w.retries), ("latency p50 ms", w.latency_ms_p50),
                        ("latency p95 ms", w.latency_ms_p95), ("latency p99 ms", w.latency_ms_p99)):
            if v is not None:
                rows.append({**base, "series": name, "value": float(v)})
        for label, d in (("replicas", w.replicas), ("provisioned", w.provisioned), ("queued", w.queued)):
            for cid, v in d.items():
                rows.append({**base, "series": f"{label}:{cid}", "value": float(v)})
    return rows


def fault_rows(ops) -> list[dict]:
    """Fault windows (to shade) and cold starts (to mark), one row each."""
    if ops is None:
        return []
    out = [{"kind": "fault", "label": f"{f.what} {f.component}", "start_s": f.start_s,
            "end_s": min(f.end_s, ops.horizon_s)} for f in ops.faults]
    out += [{"kind": "cold start", "label": f"cold start {c.component}", "start_s": c.requested_s,
             "end_s": c.ready_s} for c in ops.cold_starts]
    return out
