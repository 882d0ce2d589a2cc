"""Capacity: the analytic estimate at once, what-if sliders, and a simulation with its verdict."""

import threading

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import _widgets as W
from designs import forms
from designs.io import DesignFileError

W.init_state()
W.sidebar()
ss = st.session_state
design = W.require_design()

st.title(f"Capacity — {design.name}")
if W.engine_missing("sim.twin.analytic"):
    st.stop()

# --- what-if sliders: a modified copy, re-estimated at once --------------------------------
st.subheader("What if")
c1, c2, c3 = st.columns(3)
# 1-2-5 steps from 10k to 10G requests/day, plus the design's own value.
steps = sorted({m * 10**e for e in range(4, 10) for m in (1, 2, 5)} | {10**10} | {design.workload.requests_per_day})
token = W.design_token(design)  # what-ifs survive page switches, and reset when the design changes
rpd = c1.select_slider("Requests per day", options=steps, format_func=lambda x: f"{x:,.0f}", **W.sticky(f"whatif:{token}:rpd", design.workload.requests_per_day, steps))
peak = c2.slider("Peak-to-average factor", min_value=1.0, max_value=10.0, step=0.5, **W.sticky(f"whatif:{token}:peak", float(min(design.workload.peak_to_average, 10.0))))
pooled = [c.id for c in design.components if "replicas" in type(c).model_fields]
what_if = design
try:
    if rpd != design.workload.requests_per_day:
        what_if = forms.apply_path(what_if, "workload.requests_per_day", rpd)
    if peak != design.workload.peak_to_average:
        what_if = forms.apply_path(what_if, "workload.peak_to_average", peak)
    if pooled:
        # Start on the model server when there is one: it is usually the component to size.
        first = next((i for i, cid in enumerate(pooled) if design.component(cid).kind == "llm_server"), 0)
        pick = c3.selectbox("Component to scale", pooled, **W.sticky(f"whatif:{token}:pick", pooled[first], pooled))
        now = what_if.component(pick).replicas
        reps = c3.slider(f"Replicas of {pick}", min_value=1, max_value=max(64, 4 * now), **W.sticky(f"whatif:{token}:reps:{pick}", now))
        if reps != now:
            what_if = forms.apply_edit(what_if, pick, "replicas", reps)
except DesignFileError as e:
    W.show_problems(e.problems, title="What-if not applied")
    what_if = design
if what_if is not design:
    st.caption("Figures below are for the what-if values, not the saved design.")
    if st.button("Apply these values to the design", key="apply_what_if"):
        W.set_design(what_if, new=True)
        st.rerun()

# --- analytic estimate ---------------------------------------------------------------------
try:
    est = W.estimate_cached(what_if.model_dump_json(by_alias=True))
except Exception as e:  # a design the estimator refuses, or an engine still being built
    st.error(f"Engine not available for this design: the analytic estimate failed ({type(e).__name__}: {e}).")
    st.stop()
st.subheader("Analytic estimate")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Peak arrivals", f"{est.arrival_rps:,.1f} req/s")
m2.metric("Mean latency (approx.)", f"{est.latency_ms_mean:,.0f} ms")
m3.metric("p95 latency (approx.)", f"{est.latency_ms_p95_approx:,.0f} ms")
m4.metric("Cost per day", f"${est.cost_per_day_usd:,.0f}")
for sentence in est.unstable:
    st.error(sentence)
if est.bottleneck:
    st.caption(f"Bottleneck: **{est.bottleneck}**" + (f" — the design saturates at {est.max_throughput_rps:,.1f} req/s" if est.max_throughput_rps else ""))
rows = [
    {
        "component": cid,
        "kind": s.kind,
        "arrivals req/s": s.arrival_rps,
        "servers": s.servers,
        "ρ": s.utilization,
        "wait mean ms": s.wait_ms_mean,
        "wait p95 ms": s.wait_ms_p95,
        "response ms": s.response_ms_mean,
        "GPUs": est.llm[cid].gpus_needed if cid in est.llm else None,
        "replicas for ρ≤0.8": s.replicas_needed,
        "cost $/day": s.cost_per_day_usd,
        "formula": s.formula,
    }
    for cid, s in est.stations.items()
]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
    "ρ": st.column_config.ProgressColumn("ρ", min_value=0.0, max_value=1.0, format="%.2f"),
    # Fixed decimals: "%g" shows a negligible Erlang-C wait as 4.6e-61 instead of 0.0.
    **{c: st.column_config.NumberColumn(c, format="%.1f") for c in ("arrivals req/s", "wait mean ms", "wait p95 ms", "response ms")},
    "cost $/day": st.column_config.NumberColumn("cost $/day", format="%.2f"),
})
for cid, llm in est.llm.items():
    with st.expander(f"{cid}: how the GPU count is derived ({llm.gpus_needed} GPUs, {llm.bound}-bound)"):
        st.markdown("\n".join(f"- {line}" for line in llm.explanation) or "—")
for w in est.warnings:
    st.warning(w)

# --- simulation ----------------------------------------------------------------------------
from app_pages._drills import drills_section  # noqa: E402 - interviewer-mode follow-ups on a copy (issue 13)

drills_section(what_if)

st.subheader("Simulation")
settings = W.sim_settings("sim_", precision=0.02, max_requests=2_000_000, max_seconds=120.0)
key = W.run_key(what_if, settings)

b1, b2 = st.columns([1, 1])
run = b1.button("Run simulation", key="run_sim", type="primary", disabled=W.optional_module("sim.des.engine") is None)
# A click on Cancel interrupts a run in the browser (Streamlit reruns the script); the flag
# also tells the engine's cancel event to stop at its next progress report.
if b2.button("Cancel", key="cancel_sim"):
    ss.sim_cancel = True
    st.info("Simulation cancelled.")
if W.optional_module("sim.des.engine") is None:
    st.warning("Engine not available: sim.des.engine could not be imported, so only the analytic estimate is shown.")

if run:
    ss.sim_cancel = False
    bar = st.progress(0.0, text="starting…")
    cancel = threading.Event()
    move = W.progress_updater(bar)

    def progress(fraction: float, message: str = "") -> None:
        move(fraction, message)
        if ss.get("sim_cancel"):
            cancel.set()

    try:
        result = W.simulate_cached(what_if, settings, progress=progress, cancel=cancel)
    except Exception as e:  # the engine refuses bad settings with a message; show it, no traceback
        bar.empty()
        st.error(f"Simulation not run: {e}")
        st.stop()
    bar.empty()
    W.remember_run(what_if, key, result)

result = ss.runs.get(key)
if result is None:
    st.caption("Press **Run simulation** for percentiles with confidence intervals, the verdict and the bottleneck.")
    st.stop()

ok, line = W.verdict_line(result)
if ok:
    st.success(line)
elif ok is False:
    st.error(line)
else:
    st.info(line)
if result.partial:
    st.warning("Partial result: the run was cancelled; figures are those collected so far.")
for check in result.slo:
    c1, c2 = st.columns([1, 5])
    with c1:
        if check.met is None:
            st.badge("UNKNOWN", color="gray")
        else:
            st.badge("PASS" if check.met else "FAIL", color="green" if check.met else "red")
    c2.markdown(f"**{check.metric}** — {check.detail or f'target {check.target:g}, value {check.value}'}")
st.caption(
    f"{result.completed_requests:,} requests completed, {result.dropped_requests:,} dropped, "
    f"{result.ci_method or f'{result.replications} batches'}; stopped by {result.stopped_by}, seed {result.seed}, {result.wall_s:.1f} s wall."
)
for w in result.warnings:
    st.warning(w)


def _pct_table(p, ci) -> pd.DataFrame:
    rows = []
    for stat in ("mean", "p50", "p90", "p95", "p99"):
        lo, hi = (getattr(ci, stat) if ci is not None else None) or (None, None)  # None: no interval
        rows.append({"statistic": stat, "ms": getattr(p, stat), "95% CI low": lo, "95% CI high": hi})
    return pd.DataFrame(rows)


cols = st.columns(3 if result.ttft_ms else 1)
cols[0].markdown("**End-to-end latency**")
_ms_cols = {c: st.column_config.NumberColumn(c, format="%.1f") for c in ("ms", "95% CI low", "95% CI high")}
cols[0].dataframe(_pct_table(result.latency_ms, result.latency_ms_ci95), hide_index=True, column_config=_ms_cols)
if result.ttft_ms:
    cols[1].markdown("**Time to first token**")
    cols[1].dataframe(_pct_table(result.ttft_ms, result.ttft_ms_ci95), hide_index=True, column_config=_ms_cols)
    if result.tpot_ms:
        cols[2].markdown("**Time per output token**")
        cols[2].dataframe(_pct_table(result.tpot_ms, result.tpot_ms_ci95), hide_index=True, column_config=_ms_cols)

if result.latency_sample_ms:
    sample = pd.DataFrame({"latency_ms": result.latency_sample_ms})
    cdf = (
        alt.Chart(sample)
        .transform_window(rank="cume_dist()", sort=[{"field": "latency_ms"}])
        .mark_line()
        .encode(x=alt.X("latency_ms:Q", title="latency (ms)"), y=alt.Y("rank:Q", title="fraction of requests ≤ x"))
        .properties(title="Latency CDF", height=260)
    )
    hist = (
        alt.Chart(sample)
        .mark_bar()
        .encode(x=alt.X("latency_ms:Q", bin=alt.Bin(maxbins=50), title="latency (ms)"), y=alt.Y("count():Q", title="requests"))
        .properties(title="Latency histogram", height=260)
    )
    g1, g2 = st.columns(2)
    g1.altair_chart(cdf, width="stretch")
    g2.altair_chart(hist, width="stretch")

util = pd.DataFrame(
    [{"component": cid, "utilisation": s.utilization, "bottleneck": cid == result.bottleneck} for cid, s in result.components.items()]
)
if not util.empty:
    st.markdown(f"**Utilisation** — bottleneck: **{result.bottleneck or 'none'}**")
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

ops_section(result)

diagram = W.optional_module("designs.diagram")
if diagram is not None:
    st.markdown("**Traffic and bottleneck on the diagram**")
    annotation = diagram.Annotation(
        node_rps={cid: s.throughput_rps for cid, s in result.components.items()},
        edge_rps={(diagram.CLIENT, what_if.entry): result.arrival_rps},
        utilization={cid: s.utilization for cid, s in result.components.items()},
        bottleneck=result.bottleneck,
    )
    W.show_diagram(what_if, annotation)

if result.cost_breakdown:
    st.markdown(f"**Cost: ${result.cost_per_day_usd:,.2f} per day**" + (f" (${result.cost_per_1k_requests_usd:,.3f} per 1k requests)" if result.cost_per_1k_requests_usd else ""))
    st.dataframe(
        pd.DataFrame([{"component": c.id, "kind": c.kind, "USD/day": c.usd_per_day, "rule": c.rule, "source": c.source} for c in result.cost_breakdown]),
        hide_index=True,
        width="stretch",
    )
