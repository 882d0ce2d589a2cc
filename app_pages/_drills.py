"""The Capacity page's drills widget ("interviewer mode"): pick a follow-up, state a
prediction, see the twin's answer and the grade. Thin glue over `review.drills.run_drill`.

Usage (in a page)::

    from app_pages._drills import drills_section
    drills_section(design)                                   # Capacity
    drills_section(design, key="px", record=save, past=rows) # Practice: store each drill with the attempt
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from review.drills import DRILLS, run_drill

__all__ = ["drills_section"]


def drills_section(design, key: str = "drill", record=None, past: list | None = None) -> None:
    """An expander with the drills for `design` (applied to a copy; the design is untouched).

    `record(result)` is called with each drill run (Practice stores it with the attempt and
    re-grades the review; a text it returns is shown under the result);
    `past` are stored drills (``review.history.list_drills`` rows) listed under the form.
    """
    with st.expander("Drills — what if the interviewer asks…", expanded=record is not None):
        for d in past or []:
            g = d.get("grade") or {}
            st.markdown(f"- {d.get('title', d.get('drill'))}: {d.get('change', '')}"
                        + (f" — prediction *{d['prediction'].get('text', '')}*: **{g.get('verdict')}** ({g.get('arithmetic', '')})"
                           if d.get("prediction") and g else ""))
        c1, c2 = st.columns(2)
        drill = c1.selectbox("Follow-up", list(DRILLS), format_func=DRILLS.get, key=f"{key}_pick")
        comps = ["(busiest)"] + [c.id for c in design.components if "replicas" in type(c).model_fields]
        comp = c2.selectbox("Component (lose a replica / zone)", comps, key=f"{key}_comp")
        pred = st.text_input("Your prediction first (e.g. 'TTFT p95 will roughly double', 'we need 3 more replicas')",
                             key=f"{key}_pred")
        if record is not None:
            from review.grading import AREAS

            st.caption(f"Each drill is graded into the review's `drills` area ({100 / (len(AREAS) + 1):.1f} % of the "
                       "total): good 1, close 0.6, off 0 — a drill run without a prediction counts 0.")
        if not st.button("Run the drill", key=f"{key}_run"):
            return
        try:
            r = run_drill(design, drill, component=None if comp == "(busiest)" else comp, prediction=pred or None)
        except ValueError as e:
            st.error(str(e))
            return
        note = record(r) if record is not None else None
        st.markdown(f"**{r.title}** — {r.change} (twin, {r.wall_s:.2f} s)")
        keys = [k for k in r.after if k in r.before and (r.before[k] is not None or r.after[k] is not None)]
        st.dataframe(pd.DataFrame([{"figure": k, "before": r.before[k], "after": r.after[k]} for k in keys]),
                     hide_index=True, width="stretch")
        for line in r.lines:
            st.markdown(f"- {line}")
        if r.grade is not None:
            (st.success if r.grade.verdict == "good" else st.warning if r.grade.verdict == "close" else st.error)(
                f"Prediction {r.grade.verdict} ({r.grade.score:.1f}): {r.grade.arithmetic}")
        if isinstance(note, str):
            st.info(note)  # Practice: the review's total with the drills graded in
