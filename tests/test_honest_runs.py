"""Runs a person can follow and believe (issue 16): the engine and the twin name the same
bottleneck on an overloaded design, and Compare shows progress and keeps what Cancel stopped."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from designs.io import load_design
from sim import estimate, simulate

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
SERVING = ROOT / "designs" / "library" / "llm_serving.yaml"


def _at(design, requests_per_day):
    return design.model_copy(update={"workload": design.workload.model_copy(update={"requests_per_day": requests_per_day})})


def test_an_overloaded_run_names_the_twins_bottleneck_not_the_longest_queue():
    # At 10¹⁰ requests/day the LLM needs ~700× its capacity and the gateway 0.9×; the run,
    # cut after 20,000 arrivals, measured the gateway busiest (0.84) and the LLM at 0.003 (few
    # answers finished) and used to name the gateway.
    d = _at(load_design(SERVING), 1e10)
    est = estimate(d)
    assert est.bottleneck == "llm" and est.stations["llm"].utilization > 100 > 1 > est.stations["gateway"].utilization
    r = simulate(d, seed=1, max_requests=20_000, max_seconds=20)
    assert not r.stable
    assert r.components["gateway"].utilization > r.components["llm"].utilization  # what misled the old rule
    assert r.bottleneck == est.bottleneck == "llm"
    # At the design's own load both views rank by utilisation and still agree.
    ok = load_design(SERVING)
    r_ok = simulate(ok, seed=1, max_requests=4_000, max_seconds=20, precision=0.2)
    assert r_ok.stable and r_ok.bottleneck == estimate(ok).bottleneck


def test_without_the_twin_an_overloaded_run_ranks_by_the_backlog_it_left():
    from sim.des.summary import _bottleneck
    from sim.results import ComponentStats

    def stats(util, arrivals, backlog):
        return ComponentStats(kind="service", utilization=util, mean_queue_len=0.0, wait_ms_p95=0.0, throughput_rps=1.0,
                              dropped=0, arrivals=arrivals, backlog_end=backlog)

    comps = {"front": stats(0.99, 20_000, 300), "slow": stats(0.4, 18_000, 14_000)}
    assert _bottleneck(comps, None, stable=False) == "slow"  # 78 % of its arrivals still queued
    assert _bottleneck(comps, None, stable=True) == "front"   # a stable run: measured utilisation


# --- Compare: progress and Cancel, as Capacity has -------------------------------------------


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("SDW_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path / "ws"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown)


def test_compare_shows_progress_and_cancel_keeps_what_was_measured(workspace):
    from designs.forms import apply_edit
    from designs.workspace import Workspace

    base = load_design(SERVING)
    Workspace(workspace).save("bigger", apply_edit(base, "llm", "replicas", base.component("llm").replicas + 4))
    at = _ok(AppTest.from_file(APP, default_timeout=60).run())
    _ok(at.switch_page("app_pages/compare.py").run())
    at.multiselect(key="compare_pick").set_value(["library: llm_serving", "workspace: bigger"])
    at.number_input(key="cmp_max_requests").set_value(5_000_000)  # long: the test cancels it
    _ok(at.number_input(key="cmp_max_seconds").set_value(300.0).run())
    _ok(at.button(key="run_compare").click().run())
    job = at.session_state["compare_job"]
    deadline = time.monotonic() + 60
    while getattr(job.report, "phase", "") != "measuring" and time.monotonic() < deadline:
        time.sleep(0.05)
    _ok(at.run())
    (bar,) = at.get("progress")
    text = _text(bar.proto.text)
    assert text.startswith("design 1 of 2 (A · llm_serving) · measuring") and "requests simulated" in text, text
    assert at.button(key="run_compare").proto.disabled  # no second run while one runs
    _ok(at.button(key="cancel_compare").click().run())
    job.wait(60)
    assert job.done
    _ok(at.run())
    first, second = at.session_state["compare_result"][2]
    assert first.partial and first.stopped_by == "interrupted" and first.simulated_requests > 0  # kept, not thrown away
    assert second.partial and second.simulated_requests == 0  # not reached: said so, not faked
    assert any("Partial comparison" in _text(w.value) for w in at.warning)
    badges = [md.value for md in at.markdown if "badge[" in md.value]
    assert any("partial (cancelled)" in b for b in badges), badges
    assert at.table  # the metrics of what was measured are shown
