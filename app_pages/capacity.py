"""Capacity: the analytic estimate at once, what-if sliders, and a simulation with its verdict.

The headline leads with the metric each SLO is about (for LLM designs TTFT and TPOT p95
beside their targets); a design `sdw validate` refuses shows its problems, not an estimate.
"""

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import _widgets as W
from designs import forms
from designs.io import DesignFileError
from designs.numfmt import fmt, fmt_pct

W.init_state()
W.sidebar()
W.show_flash()
ss = st.session_state
design = W.require_design()
epoch = ss.design_epoch

st.title(f"Capacity — {design.name}")

problems = W.design_problems(design)
if problems:
    W.show_problems(problems, title="This design does not pass sdw validate, so there is nothing to estimate or simulate yet")
    st.page_link("app_pages/builder.py", label="Fix it in the Builder (each problem is shown at its field)", icon=":material/build:")
    st.stop()

# --- what-if sliders: a modified copy, re-estimated at once --------------------------------
st.subheader("What if")
wl = design.workload
c1, c2, c3 = st.columns(3)
# Keys carry the open-design epoch: opening another design (or the same one again) starts
# from its own values; what-ifs survive page switches within one opening.
wk = f"whatif:{epoch}:{W.design_token(design)}"


def _steps(lo: float, hi: float, own: float) -> list:
    """1-2-5 steps between lo and hi, plus the design's own value."""
    out = {m * 10**e for e in range(-1, 11) for m in (1, 2, 5) if lo <= m * 10**e <= hi}
    return sorted(out | {own})


what_if = design
changes: list[str] = []
try:
    if wl.batch is not None:
        c1.caption(W.plain(f"Load: {fmt(wl.batch.items_per_run, '')} items per run in a {wl.batch.window_hours:g} h window — a pipeline's load is edited in the Builder (Workload › batch); the rate sliders do not apply."))
    elif wl.closed_loop:
        steps = [int(x) for x in _steps(1, 10**6, wl.concurrent_users)]
        users = c1.select_slider("Concurrent users", options=steps, format_func=lambda x: f"{x:,}", **W.sticky(f"{wk}:users", wl.concurrent_users, steps))
        if users != wl.concurrent_users:
            what_if = forms.apply_path(what_if, "workload.concurrent_users", int(users))
            changes.append(f"{users:,} concurrent users")
        c2.caption("Peak factor: does not apply to a closed loop (users wait for each answer).")
    elif wl.arrival_rps is not None:
        steps = _steps(0.1, 1e6, wl.arrival_rps)
        rps = c1.select_slider("Arrival rate (req/s)", options=steps, format_func=lambda x: fmt(x, "req/s"), **W.sticky(f"{wk}:rps", wl.arrival_rps, steps))
        if rps != wl.arrival_rps:
            what_if = forms.apply_path(what_if, "workload.arrival_rps", float(rps))
            changes.append(f"{fmt(rps, 'req/s')}")
        c2.caption("Peak factor: does not apply — the workload sets arrival_rps, the simulated rate itself.")
    else:
        steps = _steps(1e4, 1e10, wl.requests_per_day)
        rpd = c1.select_slider("Requests per day", options=steps, format_func=lambda x: f"{x:,.0f}", **W.sticky(f"{wk}:rpd", wl.requests_per_day, steps))
        peak = c2.slider("Peak-to-average factor", min_value=1.0, max_value=10.0, step=0.5, **W.sticky(f"{wk}:peak", float(min(wl.peak_to_average, 10.0))))
        if rpd != wl.requests_per_day:
            what_if = forms.apply_path(what_if, "workload.requests_per_day", rpd)
            changes.append(f"{rpd:,.0f} requests/day")
        if peak != min(wl.peak_to_average, 10.0):
            what_if = forms.apply_path(what_if, "workload.peak_to_average", peak)
            changes.append(f"peak × {peak:g}")
    pooled = [c.id for c in design.components if "replicas" in type(c).model_fields]
    if pooled:
        # Start on the model server when there is one: it is usually the component to size.
        first = next((i for i, cid in enumerate(pooled) if design.component(cid).kind == "llm_server"), 0)
        pick = c3.selectbox("Component to scale", pooled, **W.sticky(f"{wk}:pick", pooled[first], pooled))
        now = design.component(pick).replicas
        reps = c3.slider(f"Replicas of {pick}", min_value=1, max_value=max(64, 4 * now), **W.sticky(f"{wk}:reps:{pick}", now))
        if reps != now:
            what_if = forms.apply_edit(what_if, pick, "replicas", reps)
            changes.append(f"{pick} × {reps}")
    else:
        c3.caption("Replicas: no component of this design has a replica count.")
except DesignFileError as e:
    W.show_problems(e.problems, title="What-if not applied")
    what_if, changes = design, []
if changes:
    st.info(W.plain("Figures below are for the what-if (" + ", ".join(changes) + "), not the design as saved."))
    if st.button("Apply these values to the design", key="apply_what_if"):
        ss.history = (ss.get("history") or [])[-49:] + [design.model_dump_json(by_alias=True)]
        W.set_design(what_if, new=True)
        st.rerun()

# --- analytic estimate ---------------------------------------------------------------------
try:
    est = W.estimate_cached(what_if.model_dump_json(by_alias=True))
except Exception as e:  # the estimator refuses with a sentence; show it, never a type name
    st.error(W.plain(f"No analytic estimate for this design: {e}"))
    st.stop()
st.subheader("Analytic estimate")
W.show_headlines(W.headline_items(what_if, est, analytic=True))
mean = "unbounded" if est.arrival_rps and not est.stable else f"{fmt(est.latency_ms_mean, 'ms')} (approx.)"
st.caption(W.plain(f"Peak arrivals {fmt(est.arrival_rps, 'req/s')} · mean latency {mean}"))
for sentence in est.unstable:
    st.error(W.plain(sentence))
if est.bottleneck:
    st.caption(W.plain(f"Bottleneck: {est.bottleneck}" + (f" — the design saturates at {fmt(est.max_throughput_rps, 'req/s')}" if est.max_throughput_rps else "")))
rows = [
    {
        "component": cid,
        "kind": s.kind,
        "arrivals": fmt(s.arrival_rps, "req/s"),
        "servers": "—" if s.servers is None else f"{s.servers:,}",
        "ρ": min(s.utilization, 1.0),
        "utilisation": fmt_pct(s.utilization),
        "wait mean": fmt(s.wait_ms_mean, "ms"),
        "wait p95": fmt(s.wait_ms_p95, "ms"),
        "response": fmt(s.response_ms_mean, "ms"),
        "GPUs": f"{est.llm[cid].gpus_needed:,}" if cid in est.llm else "",
        "replicas for ρ≤0.8": "" if s.replicas_needed is None else f"{s.replicas_needed:,}",
        "cost/day": fmt(s.cost_per_day_usd, "USD"),
        "formula": s.formula,
    }
    for cid, s in est.stations.items()
]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
    "ρ": st.column_config.ProgressColumn("ρ", min_value=0.0, max_value=1.0, format="%.2f"),
})
for cid, llm in est.llm.items():
    with st.expander(f"{cid}: how the GPU count is derived ({llm.gpus_needed:,} GPUs, {llm.bound}-bound)"):
        st.markdown("\n".join(f"- {W.plain(line)}" for line in llm.explanation) or "—")
for w in est.warnings:
    st.warning(W.plain(w))

# --- simulation ----------------------------------------------------------------------------
from app_pages._drills import drills_section  # noqa: E402 - interviewer-mode follow-ups on a copy (issue 13)

drills_section(what_if)

st.subheader("Simulation")
settings = W.sim_settings("sim_", precision=0.02, max_requests=2_000_000, max_seconds=120.0)
key = W.run_key(what_if, settings)

job = ss.get("sim_job")
if job is not None and job.done and not job.stored:
    # The background run finished (or was cancelled): keep what it measured.
    job.stored = True
    if job.error:
        ss.setdefault("sim_errors", {})[job.key] = job.error
    elif job.result is not None:
        W.remember_run(job.design, job.key, job.result)
running = job is not None and not job.done

done_already = key in ss.runs and not ss.runs[key].partial
if st.button("Run simulation" if not done_already else "Run simulation (done — same seed, same result)", key="run_sim", type="primary", disabled=running or done_already):
    ss.get("sim_errors", {}).pop(key, None)
    ss.sim_job = job = W.RunJob(what_if, settings, key)
    running = True


@st.fragment(run_every=0.5 if running else None)
def _progress() -> None:
    """Live progress of the background run; Cancel keeps what was measured."""
    j = ss.get("sim_job")
    if j is None or j.stored:
        return
    if not j.done:
        st.progress(j.fraction, text=W.plain(j.text()))
        if st.button("Cancel", key="cancel_sim", help="Stop the run and keep what it measured so far (marked partial)."):
            j.cancel.set()
            st.caption("Cancelling — the run stops at its next check and keeps what it measured.")
        return
    st.rerun(scope="app")  # finished: the whole page shows the result


_progress()
if ss.get("sim_errors", {}).get(key):
    st.error(W.plain(f"Simulation not run: {ss.sim_errors[key]}"))
    st.stop()

result = ss.runs.get(key)
if result is None:
    if not running:
        st.caption("Press Run simulation for percentiles with confidence intervals, the verdict and the bottleneck.")
    st.stop()

ok, line = W.verdict_line(result)
(st.success if ok else st.error if ok is False else st.info)(W.plain(line))
if result.partial:
    st.warning(W.plain(f"Partial result: the run was cancelled after {result.simulated_requests:,} requests; the figures are those measured so far, with wider intervals."))
b = st.columns(4)
for col, (text, colour) in zip(b, W.status_badges(result)):
    col.badge(text, color=colour)
if result.completed_requests == 0:
    st.error(W.plain(
        f"No measured request completed ({result.simulated_requests:,} simulated, stopped by {result.stopped_by.replace('_', ' ')}): "
        "there is no latency to report. " + ("The design cannot keep up with this load — see the analytic estimate above." if not result.stable else "Raise Max requests or Max wall seconds in the settings.")))
    st.stop()
W.show_headlines(W.headline_items(what_if, result, analytic=False))
for check in result.slo:
    c1, c2 = st.columns([1, 5])
    with c1:
        if check.met is None:
            st.badge("UNKNOWN", color="gray")
        else:
            st.badge("PASS" if check.met else "FAIL", color="green" if check.met else "red")
    c2.markdown(W.plain(W.check_line(check)))
st.caption(W.plain(
    f"{result.completed_requests:,} requests completed, {result.dropped_requests:,} dropped, "
    f"{result.ci_method or f'{result.replications} batches'}; stopped by {result.stopped_by.replace('_', ' ')}, seed {result.seed}, {result.wall_s:,.1f} s wall."
    + (" Simulated by the FIFO recursion (feed-forward FIFO stations: the event loop's sample path without its events)."
       if result.engine_path == "fifo_recursion" else "")
))
for w in result.warnings:
    st.warning(W.plain(w))


def _pct_table(p, ci) -> pd.DataFrame:
    rows = []
    for stat in ("mean", "p50", "p90", "p95", "p99"):
        lo, hi = (getattr(ci, stat) if ci is not None else None) or (None, None)  # None: no interval
        rows.append({"statistic": stat, "value": fmt(getattr(p, stat), "ms"), "95% CI": f"{fmt(lo, 'ms')} – {fmt(hi, 'ms')}" if lo is not None else "—"})
    return pd.DataFrame(rows)


# The metric the SLOs are about comes first: TTFT/TPOT for a streaming LLM design.
tables = [("End-to-end latency", result.latency_ms, result.latency_ms_ci95, result.latency_sample_ms)]
if result.ttft_ms:
    tables.append(("Time to first token", result.ttft_ms, result.ttft_ms_ci95, result.ttft_sample_ms))
if result.tpot_ms:
    tables.append(("Time per output token", result.tpot_ms, result.tpot_ms_ci95, result.tpot_sample_ms))
slo_first = {"Time to first token": design.slo.ttft_p95_ms, "Time per output token": design.slo.tpot_p95_ms,
             "End-to-end latency": design.slo.latency_p95_ms or design.slo.latency_p99_ms}
tables.sort(key=lambda t: 0 if slo_first.get(t[0]) is not None else 1)
cols = st.columns(len(tables))
for col, (title, p, ci, _sample) in zip(cols, tables):
    col.markdown(f"**{title}**")
    col.table(_pct_table(p, ci), hide_index=True)

charts = [(title, sample) for title, _p, _ci, sample in tables if sample]
if charts:
    cols = st.columns(len(charts))
    for col, (title, sample) in zip(cols, charts):
        df = pd.DataFrame({"ms": sample})
        cdf = (
            alt.Chart(df)
            .transform_window(rank="cume_dist()", sort=[{"field": "ms"}])
            .mark_line()
            .encode(x=alt.X("ms:Q", title=f"{title.lower()} (ms)", axis=alt.Axis(format=",.0f")), y=alt.Y("rank:Q", title="fraction of requests ≤ x", axis=alt.Axis(format="%")))
            .properties(title=f"{title} — CDF", height=240)
        )
        col.altair_chart(cdf, width="stretch")

# One bottleneck on the page: the engine's, which on an overloaded run ranks by offered load
# (the twin's demand over capacity), so it is the estimate's too.
bottleneck = result.bottleneck
if not result.stable and bottleneck:
    st.caption(W.plain(f"Bottleneck: {bottleneck} — ranked by offered load (demand over capacity, from the analytic "
                       "estimate): in an overloaded run every saturated component reads near 100 % busy, so utilisation "
                       "alone cannot tell them apart."))
util = pd.DataFrame(
    [{"component": cid, "utilisation": s.utilization, "bottleneck": cid == bottleneck} for cid, s in result.components.items()]
)
if not util.empty:
    st.markdown(f"**Utilisation** — bottleneck: **{W.plain(bottleneck or 'none')}**")
    bars = (
        alt.Chart(util)
        .mark_bar()
        .encode(
            x=alt.X("utilisation:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", tickCount=5)),
            y=alt.Y("component:N", sort="-x"),
            color=alt.Color("bottleneck:N", scale=alt.Scale(domain=[False, True], range=["#4c78a8", "#e45756"]), legend=None),
            tooltip=["component", alt.Tooltip("utilisation:Q", format=".1%")],
        )
        .properties(height=alt.Step(28))
    )
    st.altair_chart(bars, width="stretch")

from app_pages._ops_charts import ops_section  # noqa: E402 - the timeline of a fault/trace/autoscaling run (issue 13)
from designs import diagram  # noqa: E402 - only needed once a run is shown

ops_section(result)

st.markdown("**Traffic and bottleneck on the diagram**")
annotation = diagram.Annotation(
    node_rps={cid: s.throughput_rps for cid, s in result.components.items()},
    edge_rps={(diagram.CLIENT, what_if.entry): result.arrival_rps},
    utilization={cid: s.utilization for cid, s in result.components.items()},
    bottleneck=bottleneck,
)
W.show_diagram(what_if, annotation)

if result.cost_breakdown:
    per1k = f" ({fmt(result.cost_per_1k_requests_usd, 'USD per 1k requests')})" if result.cost_per_1k_requests_usd else ""
    cost_line = f"Cost: {fmt(result.cost_per_day_usd, 'USD/day')}{per1k}"
    st.markdown(f"**{W.plain(cost_line)}**")
    st.table(
        pd.DataFrame([{"component": c.id, "kind": c.kind, "USD/day": fmt(c.usd_per_day, "USD"), "rule": c.rule, "source": c.source} for c in result.cost_breakdown]),
        hide_index=True,
    )
