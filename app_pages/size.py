"""Size: pick what may vary, search for the cheapest design meeting every SLO, save the winner."""

import threading

import altair as alt
import pandas as pd
import streamlit as st
from pydantic import ValidationError

from app_pages import _widgets as W
from components.hardware import gpu_names
from designs.model import Design
from designs.workspace import WorkspaceError
from sim import SearchError, SearchSpace, size

W.init_state()
W.sidebar()
ss = st.session_state
design = W.require_design()
token = W.design_token(design)

st.title(f"Size — {design.name}")
st.caption("The analytic twin sizes every candidate by bisection on its replica counts (the cheapest counts "
           "meeting every SLO at peak); the cheapest are then simulated on the same seed and adjusted until "
           "the upper ends of their 95 % intervals meet each SLO.")

# --- what may vary -------------------------------------------------------------------------
st.subheader("What may vary")
space: dict = {"components": {}}
llms = [c for c in design.components if c.kind == "llm_server"]
for c in llms:
    st.markdown(f"**{c.id}** — {c.model}")
    a, b, cc, d = st.columns(4)
    gpus = a.multiselect("GPUs", gpu_names(), **W.sticky(f"size:{token}:{c.id}:gpu", gpu_names()))
    precs = b.multiselect("Weight precision", ["bf16", "fp8", "int8", "int4"],
                          **W.sticky(f"size:{token}:{c.id}:prec", ["bf16", "fp8"]))
    tps = cc.multiselect("GPUs per replica (TP)", [1, 2, 4, 8], **W.sticky(f"size:{token}:{c.id}:tp", [1, 2, 4, 8]))
    batches = sorted({64, 128, 256, c.max_batch})
    mbs = d.multiselect("max_batch", batches, **W.sticky(f"size:{token}:{c.id}:mb", batches))
    entry = {"gpu": gpus or None, "precision": precs or None, "gpus_per_replica": tps or None, "max_batch": mbs or None}
    space["components"][c.id] = {k: v for k, v in entry.items() if v}
pools = [c.id for c in design.components
         if c.kind not in ("llm_server", "queue", "object_storage", "monitoring", "llm_api", "judge", "tool")]
sized = st.multiselect("Replica counts to size (others stay as designed)", pools, **W.sticky(f"size:{token}:pools", pools))
for cid in pools:
    if cid not in sized:
        space["components"][cid] = {"fixed": True}

o1, o2, o3, o4, o5 = st.columns(5)
verify = o1.number_input("Verify the cheapest K by simulation", min_value=0, max_value=10, **W.sticky("size:verify", 2))
n1 = o2.checkbox("N−1 (one replica of each pool down)", **W.sticky(f"size:{token}:n1", design.slo.availability is not None))
headroom = o3.slider("Headroom × peak", min_value=1.0, max_value=2.0, step=0.1, **W.sticky("size:headroom", 1.0))
seed = o4.number_input("Seed", min_value=0, max_value=2**31 - 1, **W.sticky("size:seed", 0))
budget_s = o5.number_input("Time budget (s)", min_value=5, max_value=1800, **W.sticky("size:max_s", 120))

try:
    spec = SearchSpace.model_validate(space)
except ValidationError as e:
    st.error("The space is not valid: " + "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()))
    st.stop()

key = f"{token}:{spec.model_dump_json()}:{verify}:{n1}:{headroom}:{seed}"
b1, b2 = st.columns(2)
run = b1.button("Run the search", key="size_run", type="primary")
if b2.button("Cancel", key="size_cancel_btn"):
    ss.size_cancelled = True
    st.info("Search cancelled.")

results = ss.setdefault("size_results", {})
if run:
    ss.size_cancelled = False
    bar = st.progress(0.0, text="starting…")
    cancel = threading.Event()
    move = W.progress_updater(bar)

    def progress(fraction: float, message: str = "") -> None:
        move(fraction, message)
        if ss.get("size_cancelled"):
            cancel.set()

    try:
        results[key] = size(design, space=spec, verify=int(verify), n_minus_1=bool(n1), headroom=float(headroom),
                            seed=int(seed), workers=1, max_seconds=float(budget_s), progress=progress, cancel=cancel)
    except SearchError as e:
        bar.empty()
        st.error(f"Search not run: {e}")
        st.stop()
    bar.empty()

r = results.get(key)
if r is None:
    st.caption("Press **Run the search** for the cheapest design, its frontier and the decision table.")
    st.stop()

# --- the answer ------------------------------------------------------------------------------
(st.success if r.status == "ok" else st.error)(r.message)
if r.partial:
    st.warning(f"Partial: stopped early ({r.stopped_by}); this is the best found so far.")
w = r.winner
if w is not None:
    m1, m2, m3, m4 = st.columns(4)
    cost = w.sim_cost_per_day_usd if w.verified else w.cost_per_day_usd
    m1.metric("Winner $/day", f"${cost:,.0f}", delta=f"{cost - r.baseline.cost_per_day_usd:+,.0f} vs as given", delta_color="inverse")
    m2.metric("As given $/day", f"${r.baseline.cost_per_day_usd:,.0f}")
    m3.metric("Verified by simulation", "yes" if w.verified else ("no" if w.verified is False else "not simulated"))
    m4.metric("Candidates", f"{r.candidates_evaluated} sized / {r.candidates_total}")
    st.markdown(f"**{w.candidate}** — " + ", ".join(f"{k} {v}" for k, v in (w.sim_replicas or w.replicas).items()))
    for chk in w.sim:
        upper = "n/a" if chk.upper is None else f"{chk.upper:,.4g}"
        value = "n/a" if chk.value is None else f"{chk.value:,.4g}"
        st.caption(f"{'✅' if chk.met else '❌'} {chk.metric}: {value} (95 % CI upper {upper}) vs {chk.target:,.4g}")

if r.frontier:
    st.subheader("Frontier")
    metrics = sorted({m for c in r.frontier for m in c.twin})
    default = w.binding_metric if w is not None and w.binding_metric in metrics else (metrics[0] if metrics else None)
    if metrics:
        metric = st.selectbox("SLO metric", metrics, index=metrics.index(default), key=f"size:{token}:metric")
        rows = [{"candidate": c.candidate, "cost $/day": c.cost_per_day_usd, metric: c.twin.get(metric),
                 "status": ("verified ✓" if c.verified else "verified ✗") if c.verified is not None else "twin only",
                 "winner": w is not None and c.candidate == w.candidate} for c in r.frontier]
        df = pd.DataFrame(rows)
        target = getattr(design.slo, metric, None)
        pts = alt.Chart(df).mark_point(filled=True).encode(
            x=alt.X("cost $/day:Q", scale=alt.Scale(zero=False)), y=alt.Y(f"{metric}:Q"),
            color=alt.Color("status:N"), size=alt.condition("datum.winner", alt.value(250), alt.value(60)),
            tooltip=["candidate", "cost $/day", metric, "status"])
        chart = pts
        if target is not None:
            chart = pts + alt.Chart(pd.DataFrame({"target": [target]})).mark_rule(strokeDash=[6, 3], color="red").encode(y="target:Q")
        st.altair_chart(chart, use_container_width=True)
    st.subheader("Decision table")
    st.dataframe(pd.DataFrame([{
        "rank": c.rank, "candidate": c.candidate, "replicas": ", ".join(f"{k} {v}" for k, v in c.replicas.items()),
        "$/day (twin)": round(c.cost_per_day_usd), "binding SLO": c.binding_metric,
        "value": c.binding_value, "target": c.binding_target, "Pareto": c.pareto,
        "verified": c.verified, "$/day (sim)": c.sim_cost_per_day_usd} for c in r.frontier]), hide_index=True)
if r.overturned:
    st.subheader("Overturned by simulation")
    for o in r.overturned:
        st.markdown(f"- {o.candidate}: {o.detail}")
if r.rejected:
    with st.expander(f"Families ({len(r.rejected)})"):
        st.dataframe(pd.DataFrame([{"family": f.family, "reason": f.reason} for f in r.rejected]), hide_index=True)
for msg in r.warnings:
    st.warning(msg)

if r.winner_design is not None and st.button("Save winner as a variant", key="size_save"):
    ws = W.workspace()
    name = ws.unique_name(f"{design.name}_sized")
    try:
        ws.save(name, Design.model_validate(r.winner_design))
    except (WorkspaceError, OSError) as e:
        st.error(f"Could not save the variant: {e}")
        st.stop()
    # Open it in Compare beside the current design.
    ss.compare_pick = [f"current: {design.name}", f"workspace: {name}"]
    ss.size_saved = name
    st.switch_page("app_pages/compare.py")
