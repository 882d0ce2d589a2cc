"""The Capacity page's operations section: the time series an operator would look at.

Thin glue: the rows come from `sim.ops_rows` / `sim.fault_rows` (one per window and series);
this module only draws them with Altair — arrivals, failures and retries, latency percentiles
per window, replicas with cold starts marked, the backlog — with the fault windows shaded, and
offers the same rows as CSV. Usage (in a page, after a run)::

    from app_pages._ops_charts import ops_section
    ops_section(result)            # nothing for a steady-state run (result.ops is None)
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from sim import fault_rows, ops_rows

__all__ = ["ops_section"]


def _chart(df: pd.DataFrame, shade: pd.DataFrame, title: str, y: str) -> alt.LayerChart | alt.Chart:
    line = (alt.Chart(df).mark_line(interpolate="step-after")
            .encode(x=alt.X("t_s:Q", title="time (s)"), y=alt.Y("value:Q", title=y),
                    color=alt.Color("series:N", title=None), tooltip=["t_s", "series", alt.Tooltip("value:Q", format=",.4g")])
            .properties(title=title, height=180))
    if shade.empty:
        return line
    band = (alt.Chart(shade).mark_rect(opacity=0.15)
            .encode(x="start_s:Q", x2="end_s:Q", color=alt.Color("kind:N", scale=alt.Scale(
                domain=["fault", "cold start"], range=["#e45756", "#72b7b2"]), title=None), tooltip=["label", "start_s", "end_s"]))
    return band + line


def ops_section(result) -> None:
    """Draw the timeline of `result` (a `RunResult` from a timeline run); no-op otherwise."""
    ops = getattr(result, "ops", None)
    if ops is None:
        return
    rows = pd.DataFrame(ops_rows(ops))
    shade = pd.DataFrame(fault_rows(ops))
    avail = "—" if ops.availability is None else f"{ops.availability:.4%}"
    st.markdown(f"**Over time** — {ops.horizon_s:,.0f} s in windows of {ops.window_s:g} s; availability {avail}; "
                f"{ops.fates.failed:,} failed, {ops.fates.retried:,} completed late after a retry, "
                f"{ops.fates.fallbacks:,} answered by a fallback; {len(ops.faults)} faults, {len(ops.cold_starts)} cold starts")
    if rows.empty:
        return
    pick = lambda names: rows[rows["series"].isin(names)]  # noqa: E731
    prefixed = lambda p: rows[rows["series"].str.startswith(p)]  # noqa: E731
    c1, c2 = st.columns(2)
    c1.altair_chart(_chart(pick(["arrivals", "succeeded"]), shade, "Arrivals and successes per window", "requests"), width="stretch")
    c2.altair_chart(_chart(pick(["failed", "retries"]), shade, "Errors and retries per window", "requests"), width="stretch")
    c3, c4 = st.columns(2)
    c3.altair_chart(_chart(pick(["latency p50 ms", "latency p95 ms", "latency p99 ms"]), shade,
                           "Latency percentiles per window", "ms"), width="stretch")
    c4.altair_chart(_chart(prefixed("replicas:"), shade, "Replicas serving (cold starts shaded)", "replicas"), width="stretch")
    queued = prefixed("queued:")
    if not queued.empty:
        st.altair_chart(_chart(queued, shade, "Backlog (requests waiting)", "requests"), width="stretch")
    st.download_button("Download the time series (CSV)", rows.to_csv(index=False).encode(), file_name=f"{result.design}_timeline.csv",
                       mime="text/csv", key="ops_csv")
