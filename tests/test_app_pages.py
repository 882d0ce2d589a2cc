"""The Streamlit pages, driven headless with `streamlit.testing.v1.AppTest`.

Each test points `SDW_WORKSPACE` at its own tmp folder, opens a canonical design through the
Library page as a user would, and checks what the page shows.
"""

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_pages import _widgets as W
from designs.forms import apply_edit
from designs.io import load_design
from designs.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
SERVING = ROOT / "designs" / "library" / "llm_serving.yaml"
TIMEOUT = 60
# Small, coarse runs: these tests check the page, not the engine's accuracy.
FAST = {"sim_precision": 0.2, "sim_max_requests": 2000, "sim_max_seconds": 20.0}


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("SDW_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path / "ws"


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_design(name: str = "llm_serving") -> AppTest:
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    _ok(at.button(key=f"open_lib_{name}").click().run())
    assert at.session_state["design"].name == name
    return at


def _text(markdown: str) -> str:
    """What a Markdown message reads as: backslash escapes removed (pages escape on purpose)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def _errors(at: AppTest) -> str:
    return " ".join(_text(e.value) for e in at.error)


def _run_sim(at: AppTest, timeout: float = 120) -> AppTest:
    """Press Run, wait for the background run, rerun the page (as its fragment does)."""
    _ok(at.button(key="run_sim").click().run())
    at.session_state["sim_job"].wait(timeout)
    return _ok(at.run())


def _fast(at: AppTest) -> None:
    for key, value in FAST.items():
        (at.select_slider if key == "sim_precision" else at.number_input)(key=key).set_value(value)


def _dot(at: AppTest) -> str:
    charts = at.get("graphviz_chart")
    assert charts, "no diagram on the page"
    return charts[0].proto.spec


def _yaml_area(at: AppTest):
    (area,) = [t for t in at.text_area if str(t.key).startswith("yaml:")]
    return area


def test_library_lists_the_canonical_designs_with_diagrams():
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    keys = {b.key for b in at.button}
    for name in ("rag_qa", "eval_at_scale", "llm_serving", "finetune_pipeline", "agent_workflow"):
        assert f"open_lib_{name}" in keys
    specs = [c.proto.spec for c in at.get("graphviz_chart")]
    assert len(specs) >= 5 and all(s.lstrip().startswith("digraph") for s in specs)


def test_edit_a_field_changes_the_diagram():
    at = open_design()
    _ok(at.switch_page("app_pages/builder.py").run())
    before = _dot(at)
    epoch = at.session_state["design_epoch"]
    _ok(at.selectbox(key=f"b{epoch}:component").select("llm").run())
    replicas = at.number_input(key=f"b{epoch}:llm:replicas")
    n = load_design(SERVING).component("llm").replicas
    assert replicas.value == n and replicas.min == 1 and replicas.max == 10_000
    _ok(replicas.set_value(n + 17).run())
    assert at.session_state["design"].component("llm").replicas == n + 17
    after = _dot(at)
    assert after != before and str(n + 17) in after
    # The YAML tab shows the edit too.
    assert f"replicas: {n + 17}" in _yaml_area(at).value


def test_invalid_yaml_shows_located_error_and_keeps_design():
    at = open_design()
    _ok(at.switch_page("app_pages/builder.py").run())
    before = _dot(at)
    text = _yaml_area(at).value
    assert "max_batch: 256" in text
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip() == "max_batch: 256")
    _ok(_yaml_area(at).input(text.replace("max_batch: 256", "max_batch: 0")).run())
    errors = _errors(at)
    assert f"line {line}" in errors and "max_batch" in errors
    assert at.session_state["design"].component("llm").max_batch == 256
    assert _dot(at) == before
    # A valid edit in the same box is applied.
    _ok(_yaml_area(at).input(text.replace("max_batch: 256", "max_batch: 128")).run())
    assert at.session_state["design"].component("llm").max_batch == 128
    assert not at.error


def test_workspace_save_refuses_path_names(workspace):
    at = open_design()
    _ok(at.switch_page("app_pages/builder.py").run())
    at.text_input(key="save_name").input("../x")
    _ok(at.button(key="save_design").click().run())
    assert "path separator" in _errors(at)
    assert not (workspace.parent / "x.yaml").exists() and not (workspace / "designs").exists()
    at.text_input(key="save_name").input("my_serving")
    _ok(at.button(key="save_design").click().run())
    assert (workspace / "designs" / "my_serving.yaml").is_file()


def test_drafts_are_per_session_and_survive_a_refresh():
    a = open_design()
    _ok(a.switch_page("app_pages/builder.py").run())
    epoch = a.session_state["design_epoch"]
    _ok(a.selectbox(key=f"b{epoch}:component").select("llm").run())
    _ok(a.number_input(key=f"b{epoch}:llm:replicas").set_value(21).run())
    draft = a.session_state["draft_id"]
    assert a.query_params["draft"] in (draft, [draft])

    other_tab = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    assert other_tab.session_state["design"] is None
    assert other_tab.session_state["draft_id"] != draft

    refreshed = AppTest.from_file(APP, default_timeout=TIMEOUT)
    refreshed.query_params["draft"] = draft
    _ok(refreshed.run())
    assert refreshed.session_state["design"].component("llm").replicas == 21


def test_delete_and_undo_on_the_library_page(workspace):
    Workspace(workspace).save("mine", load_design(SERVING))
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    _ok(at.button(key="del_ws_mine").click().run())
    assert not (workspace / "designs" / "mine.yaml").exists()
    _ok(at.button(key="undo_delete").click().run())
    assert (workspace / "designs" / "mine.yaml").exists()
    assert "open_ws_mine" in {b.key for b in at.button}


def test_capacity_runs_a_simulation_and_shows_the_verdict():
    pytest.importorskip("sim.twin.analytic", reason="sim/analytic.py not built yet")
    at = open_design()
    _ok(at.switch_page("app_pages/capacity.py").run())
    assert any(df.value.shape[0] >= 3 for df in at.dataframe), "no per-component estimate table"
    _fast(at)
    _run_sim(at)
    verdicts = [_text(m.value) for m in (*at.success, *at.error, *at.info) if "Verdict:" in _text(m.value)]
    assert verdicts, "no verdict shown"
    result = next(iter(at.session_state["runs"].values()))
    expected = "FAIL" if any(c.met is False for c in result.slo) else "PASS"
    assert expected in verdicts[0]
    assert at.session_state["verdicts"][W.design_token(at.session_state["design"])] == verdicts[0]
    # The annotated diagram names the bottleneck's component.
    assert result.bottleneck and any(result.bottleneck in c.proto.spec for c in at.get("graphviz_chart"))
    # Coming back to the page shows the same run without pressing the button again.
    _ok(at.switch_page("app_pages/library.py").run())
    assert verdicts[0] in {_text(c.value) for c in at.caption}  # the library card shows the last verdict
    _ok(at.switch_page("app_pages/capacity.py").run())
    assert verdicts[0] in [_text(m.value) for m in (*at.success, *at.error, *at.info)]


def _compare(workspace, variants: dict, picks: list[str]) -> AppTest:
    for name, d in variants.items():
        Workspace(workspace).save(name, d)
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    _ok(at.switch_page("app_pages/compare.py").run())
    at.multiselect(key="compare_pick").set_value(picks)
    at.select_slider(key="cmp_precision").set_value(0.2)
    at.number_input(key="cmp_max_requests").set_value(2000)
    _ok(at.number_input(key="cmp_max_seconds").set_value(20.0).run())
    return _ok(at.button(key="run_compare").click().run(timeout=120))


def _badges(at: AppTest) -> list[str]:
    """st.badge renders as ':colour-badge[text]' Markdown."""
    return [m.group(1) for md in at.markdown if (m := re.fullmatch(r":\w+-badge\[(.*)\]", md.value))]


def _table(at: AppTest):
    (table,) = at.table
    return table.value


def test_compare_two_variants(workspace):
    base = load_design(SERVING)
    n = base.component("llm").replicas
    at = _compare(workspace, {"bigger": apply_edit(base, "llm", "replicas", n + 10)}, ["library: llm_serving", "workspace: bigger"])
    table = _table(at)
    assert {"library: llm_serving", "workspace: bigger", "best"} <= set(table.columns)
    cost = table.loc["cost per day"]
    assert cost["best"] == "library: llm_serving"  # fewer replicas cost less, and both pass
    # One number format: separators, fixed decimals, no exponent anywhere in the table.
    assert re.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d\d", cost["library: llm_serving"]), cost["library: llm_serving"]
    cells = " ".join(str(v) for v in table.to_numpy().ravel())
    assert not re.search(r"\de[+-]\d", cells), cells
    assert "None" not in cells and "inf" not in cells.lower()
    assert any(f"llm.replicas: {n} → {n + 10}" in m.value for m in at.markdown)


def test_compare_badges_an_unstable_variant_and_gives_it_no_win(workspace):
    base = load_design(SERVING)
    at = _compare(workspace, {"starved": apply_edit(base, "llm", "replicas", 2)}, ["library: llm_serving", "workspace: starved"])
    results = at.session_state["compare_result"][2]
    assert results[0].stable and not results[1].stable
    badges = _badges(at)
    assert any(b.startswith("unstable") for b in badges), badges
    assert any(b.startswith("fails") for b in badges), badges
    table = _table(at)
    # The starved design is cheaper, but it fails its SLOs: it is never "best".
    cost = table.loc["cost per day"]
    assert results[1].cost_per_day_usd < results[0].cost_per_day_usd
    assert cost["best"] == "library: llm_serving"
    assert "workspace: starved" not in set(table["best"])
    assert "unstable" in table.loc["status"]["workspace: starved"]
    # The verdict cell is whole (st.table wraps; nothing is cut).
    assert table.loc["verdict"]["workspace: starved"].startswith("FAIL")
    # Legend labels stay distinct however alike the names.
    assert W.short_labels(["library: a_very_long_design_name_v1", "workspace: a_very_long_design_name_v2"])[0] != W.short_labels(["library: a_very_long_design_name_v1", "workspace: a_very_long_design_name_v2"])[1]


def test_export_offers_yaml_and_dot():
    at = open_design()
    _ok(at.switch_page("app_pages/export.py").run())
    buttons = {b.proto.label: b for b in at.get("download_button")}
    assert {"Design YAML", "Diagram DOT", "Diagram SVG", "Design doc HTML (diagram inline)", "Design doc Markdown (pair it with the SVG above)"} <= set(buttons)


def _keyed(widgets, prefix: str):
    (w,) = [x for x in widgets if str(x.key).startswith(prefix)]
    return w


def test_builder_adds_a_component_and_an_edge():
    at = open_design()
    _ok(at.switch_page("app_pages/builder.py").run())
    at.selectbox(key="add_tier").select("data")
    _ok(at.run())
    at.selectbox(key="add_kind").select("cache")
    at.text_input(key="add_id").input("resp_cache")
    _ok(at.button(key="add_component").click().run())
    design = at.session_state["design"]
    assert design.component("resp_cache").kind == "cache"
    assert "resp_cache" in _dot(at)
    # The new component is the one shown, and the Id box is empty again (no false duplicate).
    epoch = at.session_state["design_epoch"]
    assert at.selectbox(key=f"b{epoch}:component").value == "resp_cache"
    assert at.text_input(key="add_id").value == ""
    # The edge form starts from the last reached component to the new one, never From = To.
    src, dst = _keyed(at.selectbox, "edge_from:"), _keyed(at.selectbox, "edge_to:")
    assert (src.value, dst.value) == ("llm", "resp_cache")
    # A second branch out of the gateway would sum p to 1.3 > 1: refused, located, design kept.
    src.select("gateway")
    _keyed(at.number_input, "edge_p:").set_value(0.3)
    _ok(at.button(key="FormSubmitter:add_edge_form-Add edge").click().run())
    assert "sum to 1.3" in _errors(at)
    assert at.session_state["design"] == design
    _keyed(at.selectbox, "edge_from:").select("llm")
    _keyed(at.number_input, "edge_p:").set_value(1.0)
    _ok(at.button(key="FormSubmitter:add_edge_form-Add edge").click().run())
    assert at.session_state["design"].flow[-1].to == "resp_cache"
    # Undo takes the edge back; redo restores it.
    _ok(at.button(key="undo").click().run())
    assert at.session_state["design"] == design
    _ok(at.button(key="redo").click().run())
    assert at.session_state["design"].flow[-1].to == "resp_cache"


def test_export_offers_the_run_after_a_simulation():
    pytest.importorskip("sim.twin.analytic", reason="sim/analytic.py not built yet")
    at = open_design()
    _ok(at.switch_page("app_pages/capacity.py").run())
    _fast(at)
    _run_sim(at)
    _ok(at.switch_page("app_pages/export.py").run())
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"Run result JSON", "Per-component CSV", "Analytic estimate JSON"} <= labels
    assert any("the last simulation" in _text(c.value) for c in at.caption)  # the doc includes the run
    (table,) = at.dataframe
    assert set(table.value["id"]) == set(at.session_state["design"].by_id())


def test_workspace_folder_survives_page_switches(workspace):
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    assert at.text_input(key="workspace_root").value == str(workspace)
    for page in ("app_pages/compare.py", "app_pages/practice.py", "app_pages/library.py"):
        _ok(at.switch_page(page).run())
        assert at.text_input(key="workspace_root").value == str(workspace), page
