"""Compare: two to four designs on the same seeds — status badges, metrics, CDFs, cost vs p95, diff.

Honest by construction: each design carries an unstable / failing badge, "best" is awarded
only among designs that pass their SLOs, every figure uses the app's one number format, and
legends letter the designs (A, B …) so two with similar names stay apart.
"""

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import _widgets as W
from designs.diff import diff_designs
from designs.io import DesignFileError
from designs.numfmt import fmt
from designs.workspace import WorkspaceError

W.init_state()
W.sidebar()
W.show_flash()
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
        st.caption(W.plain(f"workspace: {name} skipped — {e}"))

# Remembered picks that no longer exist (a deleted workspace design) are dropped.
if "compare_pick" in ss:
    ss.compare_pick = [p for p in ss.compare_pick if p in candidates]
picked = st.multiselect("Designs (2–4)", list(candidates), max_selections=4, **W.sticky("compare_pick", []))
settings = W.sim_settings("cmp_", precision=0.05, max_requests=500_000, max_seconds=60.0, per=" per design")

if len(picked) < 2:
    st.info("Pick at least two designs.")
    st.stop()

designs = [candidates[p] for p in picked]
invalid = [(label, W.design_problems(d)) for label, d in zip(picked, designs)]
invalid = [(label, found) for label, found in invalid if found]
for label, found in invalid:
    W.show_problems(found, title=f"{label} does not pass sdw validate; fix it before comparing")
if invalid:
    st.stop()

# The stored comparison is keyed by the designs' content, not their labels: "current: x"
# edited in the Builder is a different design.
tokens = tuple(W.design_token(d) for d in designs)
job = ss.get("compare_job")
if job is not None and job.done and not job.stored:
    # The background comparison finished (or was cancelled): keep what it measured.
    job.stored = True
    if job.error:
        ss.compare_error = job.error
    elif job.result is not None:
        ss.compare_result, ss.compare_error = (job.tokens, job.cmp_settings, job.result), None
running = job is not None and not job.done
if st.button("Compare", key="run_compare", type="primary", disabled=running):
    ss.compare_error = None
    ss.compare_job = job = W.CompareJob(designs, settings, key="compare", labels=W.short_labels(picked))
    job.tokens, job.cmp_settings = tokens, dict(settings)
    running = True


@st.fragment(run_every=0.5 if running else None)
def _progress() -> None:
    """Live progress of the background comparison; Cancel keeps what was measured."""
    j = ss.get("compare_job")
    if j is None or j.stored:
        return
    if not j.done:
        st.progress(j.overall(), text=W.plain(j.text()))
        if st.button("Cancel", key="cancel_compare", help="Stop the comparison and keep what it measured so far (marked partial)."):
            j.cancel.set()
            st.caption("Cancelling — the run stops at its next check and keeps what it measured.")
        return
    st.rerun(scope="app")  # finished: the whole page shows the comparison


_progress()
if ss.get("compare_error"):
    st.error(W.plain(f"Comparison not run: {ss.compare_error}"))

stored = ss.get("compare_result")
if not stored or stored[0] != tokens or stored[1] != settings:
    if not running:
        st.caption("Press Compare to simulate the selection.")
    st.stop()
results = stored[2]
letters = W.short_labels(picked)
if any(r.partial for r in results):
    cut = [f"{letter} ({r.simulated_requests:,} requests)" for letter, r in zip(letters, results) if r.partial]
    st.warning(W.plain("Partial comparison: cancelled — the figures are those measured so far, with wider intervals; "
                       f"partial: {', '.join(cut)}. A design with no request completed was not reached."))

st.subheader("Status")
cols = st.columns(len(picked))
for col, label, letter, r in zip(cols, picked, letters, results):
    with col.container(border=True, key=f"status_{letter[0]}"):
        st.markdown(f"**{W.plain(letter)}**")
        st.caption(W.plain(label))
        for text, colour in W.status_badges(r):
            st.badge(text, color=colour)

table = W.metrics_table(picked, results, designs[0].slo)
st.subheader("Metrics")
# st.table: cells wrap (a verdict sentence stays whole), and every value is preformatted text.
st.table(pd.DataFrame(table).set_index("metric"))
st.caption(W.plain(f"Δ columns are relative to {picked[0]}; best is the lowest value among designs that are stable and meet their SLOs — a design that fails them wins nothing."))

legend = alt.Legend(title="design", orient="bottom", columns=1, labelLimit=0)
samples = pd.DataFrame(
    [{"design": letter, "latency_ms": x} for letter, r in zip(letters, results) for x in r.latency_sample_ms]
)
g1, g2 = st.columns(2)
if not samples.empty:
    cdf = (
        alt.Chart(samples)
        .transform_window(rank="cume_dist()", sort=[{"field": "latency_ms"}], groupby=["design"])
        .mark_line()
        .encode(x=alt.X("latency_ms:Q", title="end-to-end latency (ms)", axis=alt.Axis(format=",.0f")),
                y=alt.Y("rank:Q", title="fraction ≤ x", axis=alt.Axis(format="%")),
                color=alt.Color("design:N", legend=legend, sort=letters))
        .properties(title="Latency CDFs", height=300)
    )
    g1.altair_chart(cdf, width="stretch")
points = pd.DataFrame([
    {"design": letter, "cost (USD/day)": r.cost_per_day_usd, "p95 (ms)": r.latency_ms.p95 if r.completed_requests else None,
     "cost": fmt(r.cost_per_day_usd, "USD/day"), "p95": fmt(r.latency_ms.p95 if r.completed_requests else None, "ms")}
    for letter, r in zip(letters, results)
])
scatter = (
    alt.Chart(points.dropna(subset=["p95 (ms)"]))
    .mark_circle(size=160)
    .encode(x=alt.X("cost (USD/day):Q", axis=alt.Axis(format="$,.0f")), y=alt.Y("p95 (ms):Q", axis=alt.Axis(format=",.0f")),
            color=alt.Color("design:N", legend=legend, sort=letters), tooltip=["design", "cost", "p95"])
    .properties(title="Cost vs end-to-end p95", height=300)
)
g2.altair_chart(scatter, width="stretch")

st.subheader("What differs")
for label, d in zip(picked[1:], designs[1:]):
    lines = diff_designs(designs[0], d)
    st.markdown(f"**{W.plain(picked[0])} → {W.plain(label)}**")
    st.markdown("\n".join(f"- `{line}`" for line in lines) if lines else "_no differences_")
