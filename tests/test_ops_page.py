"""The Capacity page's timeline section draws the run's time series and exports them as CSV."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from designs.model import Design
from sim import fault_rows, ops_rows, simulate


def _result():
    d = Design.model_validate({
        "name": "mmc", "workload": {"arrival_rps": 15, "timeline_s": 600},
        "components": [{"id": "svc", "kind": "service", "replicas": 2,
                        "service_time": {"dist": "exponential", "mean_ms": 100}}],
        "entry": "svc",
        "faults": [{"at_s": 120, "component": "svc", "what": "replica_down", "duration_s": 120}]})
    return simulate(d, seed=1)


def test_rows_cover_every_window_and_the_fault_is_shaded():
    r = _result()
    rows = ops_rows(r.ops)
    arrivals = [x for x in rows if x["series"] == "arrivals"]
    assert len(arrivals) == len(r.ops.windows) == 20  # a 600 s run: 20 windows of 30 s
    assert sum(x["value"] for x in arrivals) == r.ops.fates.offered
    assert {x["series"] for x in rows} >= {"replicas:svc", "queued:svc", "latency p95 ms"}
    assert fault_rows(r.ops) == [{"kind": "fault", "label": "replica_down svc", "start_s": 120.0, "end_s": 240.0}]


def _page():
    import streamlit as st

    from app_pages._ops_charts import ops_section
    from designs.model import Design
    from sim import simulate

    if "r" not in st.session_state:
        st.session_state.r = simulate(Design.model_validate({
            "name": "mmc", "workload": {"arrival_rps": 15, "timeline_s": 600},
            "components": [{"id": "svc", "kind": "service", "replicas": 2}], "entry": "svc",
            "faults": [{"at_s": 120, "component": "svc", "what": "replica_down", "duration_s": 120}]}), seed=1)
    ops_section(st.session_state.r)


def test_the_section_renders_charts_and_a_csv_download():
    at = AppTest.from_function(_page, default_timeout=60).run()
    assert not at.exception
    assert any("Over time" in m.value for m in at.markdown)
    assert len(at.get("vega_lite_chart")) >= 4
    assert at.get("download_button")


def _drill_page():
    from app_pages._drills import drills_section
    from designs.io import load_design

    drills_section(load_design("designs/library/llm_serving.yaml"))


def test_the_drills_widget_grades_a_prediction():
    at = AppTest.from_function(_drill_page, default_timeout=60).run()
    assert not at.exception
    at.selectbox(key="drill_pick").select("traffic_x2").run()
    at.text_input(key="drill_pred").input("we need 16 more replicas").run()
    at.button(key="drill_run").click().run()
    assert not at.exception
    assert any("Prediction good" in s.value for s in at.success)
    assert any("peak traffic doubled" in m.value for m in at.markdown)


def _practice_drill_page():
    import streamlit as st

    from app_pages._drills import drills_section
    from designs.io import load_design
    from review.history import list_drills, save_drill

    ws = st.session_state.setdefault("ws", __import__("tempfile").mkdtemp())
    drills_section(load_design("designs/library/llm_serving.yaml"), key="px_drill",
                   record=lambda r: save_drill(ws, 3, r), past=list_drills(ws, 3))


def test_practice_drills_are_stored_with_the_attempt():
    from review.history import list_drills

    at = AppTest.from_function(_practice_drill_page, default_timeout=60).run()
    at.selectbox(key="px_drill_pick").select("lose_replica").run()
    at.text_input(key="px_drill_pred").input("TTFT p95 × 1.1").run()
    at.button(key="px_drill_run").click().run()
    assert not at.exception
    stored = list_drills(at.session_state["ws"], 3)
    assert [(d["drill"], d["verdict"]) for d in stored] == [("lose_replica", "good")]
    at.run()  # the next rerun lists it under the form
    assert any("Lose a replica" in m.value for m in at.markdown)
