"""Export: the diagram as SVG/PNG/DOT, the design as YAML, the last results as JSON/CSV."""

import json

import pandas as pd
import streamlit as st

from app_pages import _widgets as W
from designs.io import dump_design
from designs.workspace import safe_name

W.init_state()
W.sidebar()
ss = st.session_state
design = W.require_design()
# The file the design was opened from / saved to names the downloads; else its name.
stem = ss.get("design_file") or safe_name(design.name)

st.title(f"Export — {design.name}")

st.subheader("Design")
st.download_button("Design YAML", dump_design(design), file_name=f"{stem}.yaml", mime="application/yaml", key="dl_yaml")

st.subheader("Diagram")
dot = W.dot_of(design)
if dot is None:
    st.warning("Diagram not available (designs.diagram could not be imported).")
else:
    st.download_button("Diagram DOT", dot, file_name=f"{stem}.dot", mime="text/vnd.graphviz", key="dl_dot")
    render = W.optional_module("designs.render")
    if render is None:
        st.caption("SVG/PNG need designs.render, which could not be imported.")
    else:
        for fmt, mime in (("svg", "image/svg+xml"), ("png", "image/png")):
            try:
                data = W.render_cached(dot, fmt)
            except Exception as e:  # no renderer installed, or it failed: say so, keep the page
                st.warning(f"{fmt.upper()} not available: {e}")
                continue
            st.download_button(f"Diagram {fmt.upper()}", data, file_name=f"{stem}.{fmt}", mime=mime, key=f"dl_{fmt}")

st.subheader("Results")
est = None
if not W.design_problems(design):
    try:
        est = W.estimate_cached(design.model_dump_json(by_alias=True))
        st.download_button("Analytic estimate JSON", json.dumps(est.to_json(), indent=2), file_name=f"{stem}.estimate.json", mime="application/json", key="dl_estimate")
    except Exception as e:  # the estimator refused this design: say why, keep the page
        st.caption(W.plain(f"No analytic estimate: {e}"))
else:
    W.show_problems(W.design_problems(design), title="No estimate or doc: the design does not pass sdw validate")
result = ss.runs.get(ss.last_run_key) if ss.last_run_key else None
# The run belongs to this design only if it ran this very content (not merely this name).
if result is not None and ss.get("run_tokens", {}).get(ss.last_run_key) != W.design_token(design):
    result = None

st.subheader("Design doc")
if est is None:
    st.caption("The design doc needs the analytic estimate, which is not available for this design.")
else:
    html, md = W.design_doc_files(design, stem, result, ss.last_run_key)
    st.caption("Problem, assumptions, diagram, back-of-envelope table, " + ("the last simulation, " if result else "no simulation yet (run one on Capacity to include it), ") + "cost, bottlenecks, failure modes from the lint, open questions.")
    st.download_button("Design doc HTML (diagram inline)", html, file_name=f"{stem}.html", mime="text/html", key="dl_doc_html")
    st.download_button("Design doc Markdown (pair it with the SVG above)", md, file_name=f"{stem}.md", mime="text/markdown", key="dl_doc_md")

st.subheader("Simulation")
if result is None:
    st.caption("No simulation of this design in this session yet — run one on the Capacity page.")
else:
    st.caption(W.verdict_line(result)[1])
    st.download_button("Run result JSON", json.dumps(result.to_json(), indent=2), file_name=f"{stem}.run.json", mime="application/json", key="dl_json")
    rows = [{"id": cid, **{k: v for k, v in s.to_json().items() if k != "llm"}} for cid, s in result.components.items()]
    st.download_button("Per-component CSV", pd.DataFrame(rows).to_csv(index=False), file_name=f"{stem}.components.csv", mime="text/csv", key="dl_csv")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
