"""Compare: two to four designs on the same seeds — metrics, winners, CDFs, cost vs p95, diff."""

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import _widgets as W
from designs.diff import diff_designs
from designs.io import DesignFileError
from designs.workspace import WorkspaceError

W.init_state()
W.sidebar()
ss = st.session_state

st.title("Compare variants")
st.caption("Every design runs on the same seed, so differences come from the designs, not the dice.")

# Candidates: label → design. Labels say where each one comes from.
candidates: dict = {}
if W.current_design() is not None:
    candidates[f"current: {W.current_design().name}"] = W.current_design()
for name, _path, _problem, design, _err in W.library_entries():
    if design is not None:
        candidates[f"library: {name}"] = design
ws = W.workspace()
for name, _path in ws.list_designs():
    try:
        candidates[f"workspace: {name}"] = ws.load(name)
    except (DesignFileError, WorkspaceError) as e:
        st.caption(f"workspace: {name} skipped — {e}")

# Remembered picks that no longer exist (a deleted workspace design) are dropped.
if "compare_pick" in ss:
    ss.compare_pick = [p for p in ss.compare_pick if p in candidates]
picked = st.multiselect("Designs (2–4)", list(candidates), max_selections=4, **W.sticky("compare_pick", []))
settings = W.sim_settings("cmp_", precision=0.05, max_requests=500_000, max_seconds=60.0, per=" per design")

if len(picked) < 2:
    st.info("Pick at least two designs.")
    st.stop()
if W.engine_missing("sim.des.engine"):
    st.stop()

designs = [candidates[p] for p in picked]
if st.button("Compare", key="run_compare", type="primary"):
    with st.spinner(f"Simulating {len(designs)} designs on seed {settings['seed']}…"):
        try:
            ss.compare_result = (tuple(picked), settings, W.compare_cached(designs, settings))
        except Exception as e:  # the engine refuses bad settings with a message; show it
            st.error(f"Comparison not run: {e}")
            st.stop()

stored = ss.get("compare_result")
if not stored or stored[0] != tuple(picked) or stored[1] != settings:
    st.caption("Press **Compare** to simulate the selection.")
    st.stop()
results = stored[2]

table = W.metrics_table(picked, results)
st.subheader("Metrics")
st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
st.caption(f"Δ columns are relative to **{picked[0]}**; the winner is the lowest value (cost, latency, drops).")

samples = pd.DataFrame(
    [{"design": label, "latency_ms": x} for label, r in zip(picked, results) for x in r.latency_sample_ms]
)
g1, g2 = st.columns(2)
if not samples.empty:
    cdf = (
        alt.Chart(samples)
        .transform_window(rank="cume_dist()", sort=[{"field": "latency_ms"}], groupby=["design"])
        .mark_line()
        .encode(x=alt.X("latency_ms:Q", title="latency (ms)"), y=alt.Y("rank:Q", title="fraction ≤ x"), color="design:N")
        .properties(title="Latency CDFs", height=300)
    )
    g1.altair_chart(cdf, width="stretch")
points = pd.DataFrame([{"design": label, "cost_usd_per_day": r.cost_per_day_usd, "p95_ms": r.latency_ms.p95} for label, r in zip(picked, results)])
scatter = (
    alt.Chart(points)
    .mark_circle(size=160)
    .encode(x=alt.X("cost_usd_per_day:Q", title="cost (USD/day)"), y=alt.Y("p95_ms:Q", title="p95 latency (ms)"), color="design:N", tooltip=["design", "cost_usd_per_day", "p95_ms"])
    .properties(title="Cost vs p95", height=300)
)
g2.altair_chart(scatter, width="stretch")

st.subheader("What differs")
for label, d in zip(picked[1:], designs[1:]):
    lines = diff_designs(designs[0], d)
    st.markdown(f"**{picked[0]} → {label}**")
    st.markdown("\n".join(f"- `{line}`" for line in lines) if lines else "_no differences_")
