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


@pytest.fixture
def one_browser(monkeypatch):
    """AppTest sends no cookies: every session here is one browser (the tag the app derives
    from Streamlit's XSRF cookie), so its drafts can be reopened (tests/test_hostile_app.py
    shows another browser cannot)."""
    monkeypatch.setattr(W, "browser_owner", lambda: "c" * 64)


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


def test_drafts_are_per_session_and_survive_a_refresh(one_browser):
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
    # The run's caption names the engine only when the event-free FIFO recursion ran.
    named = any("FIFO recursion" in _text(c.value) for c in at.caption)
    assert named == (result.engine_path == "fifo_recursion")
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
    _ok(at.button(key="run_compare").click().run(timeout=120))
    at.session_state["compare_job"].wait(120)  # the comparison runs in the background
    return _ok(at.run(timeout=120))


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


def test_workspace_folder_is_the_servers_not_a_visitors(workspace):
    # Issue 14: a sidebar "Workspace folder" field let any visitor make the server write
    # designs/, drafts/ and trash/ anywhere it could, and list YAML from there.
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    for page in ("app_pages/compare.py", "app_pages/practice.py", "app_pages/library.py"):
        _ok(at.switch_page(page).run())
        assert not [t for t in at.text_input if t.key == "workspace_root"], page
        assert any(str(workspace) in c.value for c in at.sidebar.caption), page


# --- issue 16: the app tells the truth ---------------------------------------------------------

MISFIT = """\
name: misfit
workload: {requests_per_day: 100000}
components:
  - {id: gw, kind: api_gateway}
  - id: chat
    kind: llm_server
    model: llama-3.1-70b
    gpu: H100-SXM-80GB
    precision: bf16
entry: gw
flow: [{from: gw, to: chat}]
"""


def _block(at: AppTest, key: str):
    """The keyed container `st.container(key=key)` (its proto id ends with the key)."""
    stack = [at._tree]
    while stack:
        node = stack.pop()
        proto = getattr(node, "proto", None)
        if proto is not None and str(getattr(proto, "id", "")).endswith(key):
            return node
        stack.extend(getattr(node, "children", {}).values())
    return None


def _texts(node) -> list[str]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        v = getattr(n, "value", None)
        if isinstance(v, str):
            out.append(_text(v))
        for attr in ("label",):
            if isinstance(getattr(n, attr, None), str):
                out.append(n.label)
        stack.extend(getattr(n, "children", {}).values())
    return out


def _all_text(at: AppTest) -> str:
    return " ".join(_texts(at._tree))


def _new_blank() -> AppTest:
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    at.text_input(key="new_name").input("walk")
    _ok(at.button(key="new_design").click().run())
    d = at.session_state["design"]
    assert d.name == "walk" and [c.id for c in d.components] == ["app"] and at.session_state["design_file"] is None
    return at


def test_builder_runs_sdw_validate_and_shows_the_misfit_at_the_gpu_field(workspace):
    import sim
    from designs.io import parse_design

    at = _new_blank()
    _ok(at.switch_page("app_pages/builder.py").run())
    at.selectbox(key="add_tier").select("model")
    _ok(at.run())
    at.selectbox(key="add_kind").select("llm_server")
    _ok(at.button(key="add_component").click().run())
    epoch = at.session_state["design_epoch"]
    assert at.selectbox(key=f"b{epoch}:component").value == "llm_server"
    _ok(at.selectbox(key=f"b{epoch}:llm_server:model").select("llama-3.1-70b").run())
    design = at.session_state["design"]
    # Exactly what `sdw validate` reports for this design, at the GPUs-per-replica field.
    expected = sim.validation_problems(design)
    assert expected and "needs 141 GB of weights" in expected[0].message
    box = _block(at, "fielderr_components_llm_server_gpus_per_replica")
    assert box is not None, "no error at the GPU field"
    assert any(expected[0].message in t for t in _texts(box))
    # Save refuses what the CLI refuses; nothing is written.
    _ok(at.button(key="save_design").click().run())
    assert "Not saved" in _errors(at) and not (workspace / "designs").exists()
    # Fix it at the field: four GPUs per replica hold 141 GB (the message says "≥ 4").
    assert "gpus_per_replica ≥ 4" in expected[0].message
    epoch = at.session_state["design_epoch"]
    _ok(at.number_input(key=f"b{epoch}:llm_server:gpus_per_replica").set_value(4).run())
    assert sim.validation_problems(at.session_state["design"]) == []
    assert _block(at, "fielderr_components_llm_server_gpus_per_replica") is None
    _ok(at.button(key="save_design").click().run())
    assert (workspace / "designs" / "walk.yaml").is_file()
    assert parse_design((workspace / "designs" / "walk.yaml").read_text()).component("llm_server").gpus_per_replica == 4


def test_yaml_tab_lists_the_same_located_problems_as_sdw_validate(tmp_path):
    import sim
    from designs.io import locate, parse_design

    at = open_design()
    _ok(at.switch_page("app_pages/builder.py").run())
    _ok(_yaml_area(at).input(MISFIT).run())
    shown = at.session_state["design"]
    assert shown.name == "misfit"  # it parses, so it is applied — and flagged
    cli = locate(sim.validation_problems(parse_design(MISFIT)), MISFIT)  # what cmd_validate prints
    app = W.design_problems(shown)
    assert [(p.path, p.message) for p in app] == [(p.path, p.message) for p in cli]
    errors = _errors(at)
    line = next(p.line for p in app)
    assert f"line {line} · components[1].gpus_per_replica: chat: llama-3.1-70b in BF16 needs 141 GB" in errors


def test_capacity_never_shows_an_exception_name_for_a_misfit(workspace):
    Workspace(workspace).save("misfit", __import__("designs.io", fromlist=["parse_design"]).parse_design(MISFIT))
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    assert any(b.startswith("invalid") for b in _badges(at))  # the Library card says so
    _ok(at.button(key="open_ws_misfit").click().run())
    _ok(at.switch_page("app_pages/capacity.py").run())
    text = _all_text(at)
    assert "needs 141 GB of weights" in text
    assert "Error" not in text.replace("error", "") or "EstimateError" not in text
    assert "EstimateError" not in text and "ConfigError" not in text and "ServingConfigError" not in text
    assert "run_sim" not in {b.key for b in at.button}


def test_capacity_headline_leads_with_ttft_and_tpot_beside_their_targets():
    at = open_design()
    _ok(at.switch_page("app_pages/capacity.py").run())
    metrics = [(m.label, m.value, m.proto.delta) for m in at.metric]
    assert [m[0] for m in metrics[:2]] == ["TTFT p95 (approx.)", "TPOT p95 (approx.)"]
    assert "target 1,000.0 ms" in metrics[0][2] and "target 50.0 ms" in metrics[1][2]
    _fast(at)
    _run_sim(at)
    sim_metrics = [(m.label, m.proto.delta) for m in at.metric][len(metrics):]
    assert [m[0] for m in sim_metrics[:2]] == ["TTFT p95", "TPOT p95"]
    assert "meets target 1,000.0 ms" in sim_metrics[0][1]
    # TTFT and TPOT tables and CDFs come before the end-to-end ones (the SLOs are about them).
    assert [m.value for m in at.markdown if m.value in ("**Time to first token**", "**Time per output token**", "**End-to-end latency**")] == [
        "**Time to first token**", "**Time per output token**", "**End-to-end latency**"]
    charts = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert sum("CDF" in s for s in charts) == 3, "TTFT, TPOT and end-to-end CDFs"


def test_verdicts_are_keyed_by_content_not_name(workspace):
    base = load_design(SERVING)
    # Another design that happens to carry the same name.
    Workspace(workspace).save("impostor", apply_edit(base, "llm", "replicas", 1))
    at = open_design()
    _ok(at.switch_page("app_pages/capacity.py").run())
    _fast(at)
    _run_sim(at)
    verdict = next(iter(at.session_state["verdicts"].values()))
    _ok(at.switch_page("app_pages/library.py").run())
    captions = [_text(c.value) for c in at.caption]
    assert captions.count(verdict) == 1  # the library card of llm_serving only, not 'impostor'


def test_save_defaults_to_the_opened_file_and_keeps_name_and_file_in_step(workspace):
    ws = Workspace(workspace)
    ws.save("mmc", load_design(SERVING))  # a file whose design is named llm_serving
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    _ok(at.button(key="open_ws_mmc").click().run())
    _ok(at.switch_page("app_pages/builder.py").run())
    assert at.text_input(key="save_name").value == "mmc"
    assert "named llm_serving" in " ".join(_text(c.value) for c in at.sidebar.caption)
    _ok(at.button(key="save_design").click().run())
    assert ws.load("mmc").name == "mmc" and at.session_state["design"].name == "mmc"
    assert any("Saved to" in _text(s.value) for s in at.success)  # the message survives the rerun
    # Save as another name writes a second file, and that file becomes the current one.
    at.text_input(key="save_name").input("mmc_v2")
    _ok(at.button(key="save_design").click().run())
    assert ws.load("mmc_v2").name == "mmc_v2" and at.session_state["design_file"] == "mmc_v2"
    # Rename moves the file: the old one goes to the trash.
    _ok(at.text_input(key="save_name").input("mmc_final").run())
    _ok(at.button(key="rename_design").click().run())
    assert ws.exists("mmc_final") and not ws.exists("mmc_v2") and ws.load("mmc_final").name == "mmc_final"
    # Opening a library design starts its save name from the design, not the last file.
    _ok(at.switch_page("app_pages/library.py").run())
    _ok(at.button(key="open_lib_rag_qa").click().run())
    _ok(at.switch_page("app_pages/builder.py").run())
    assert at.text_input(key="save_name").value == "rag_qa"


def test_save_will_not_overwrite_another_file_silently(workspace):
    ws = Workspace(workspace)
    ws.save("taken", load_design(ROOT / "designs" / "library" / "rag_qa.yaml"))
    at = open_design()
    _ok(at.switch_page("app_pages/builder.py").run())
    at.text_input(key="save_name").input("taken")
    _ok(at.run())
    _ok(at.button(key="save_design").click().run())
    assert "exists" in _errors(at) and ws.load("taken").name == "rag_qa"


def test_what_ifs_follow_the_workload_form_and_reset_on_open(workspace):
    from designs.forms import apply_path

    fixed = apply_path(load_design(SERVING), "workload.arrival_rps", 200.0)
    Workspace(workspace).save("fixed_rate", fixed)
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    _ok(at.button(key="open_ws_fixed_rate").click().run())
    _ok(at.switch_page("app_pages/capacity.py").run())
    labels = [s.label for s in at.select_slider]
    assert "Arrival rate (req/s)" in labels and "Requests per day" not in labels
    rate = next(s for s in at.select_slider if s.label == "Arrival rate (req/s)")
    _ok(rate.set_value(500.0).run())
    assert "500.0 req/s" in _all_text(at)  # the estimate is for the what-if
    assert any("what-if" in _text(i.value) for i in at.info)
    # Opening the design again starts from its own values.
    _ok(at.switch_page("app_pages/library.py").run())
    _ok(at.button(key="open_ws_fixed_rate").click().run())
    _ok(at.switch_page("app_pages/capacity.py").run())
    rate = next(s for s in at.select_slider if s.label == "Arrival rate (req/s)")
    assert rate.value == 200.0 and not any("what-if" in _text(i.value) for i in at.info)


def test_an_overloaded_what_if_shows_no_none_inf_or_exponents():
    at = open_design()
    _ok(at.switch_page("app_pages/capacity.py").run())
    rpd = next(s for s in at.select_slider if s.label == "Requests per day")
    _ok(rpd.set_value(10**10).run())
    text = _all_text(at)
    assert "needs" in text and "capacity" in text  # the unstable sentence
    for bad in ("None", "inf", "Infinity", "nan"):
        assert not re.search(rf"\b{bad}\b", text), bad
    assert not re.search(r"\de[+-]\d", text)
    values = {m.label: m.value for m in at.metric}
    assert values["latency p95 (approx.)"] == "unbounded"


def test_messages_are_plain_text(workspace):
    at = open_design()
    _ok(at.switch_page("app_pages/builder.py").run())
    at.text_input(key="save_name").input("bad/name")
    _ok(at.button(key="save_design").click().run())
    (err,) = [e for e in at.error if "Not saved" in e.value]
    # Underscores are escaped, so Markdown cannot turn "'_' and '-'" into italics.
    assert r"'\_'" in err.value and "'_'" in _text(err.value)


def test_optional_fields_say_their_default_and_can_be_cleared():
    from designs.forms import apply_path

    at = open_design()
    _ok(at.switch_page("app_pages/builder.py").run())
    epoch = at.session_state["design_epoch"]
    box = at.number_input(key=f"b{epoch}:slo:latency_p95_ms")
    assert "default: none" in box.label and box.value is None
    budget = at.number_input(key=f"b{epoch}:slo:daily_budget_usd")
    assert budget.value == 2000
    _ok(budget.set_value(None).run())
    assert at.session_state["design"].slo.daily_budget_usd is None


def test_request_classes_are_editable_in_the_form():
    at = open_design()
    _ok(at.switch_page("app_pages/builder.py").run())
    epoch = at.session_state["design_epoch"]
    _ok(at.number_input(key=f"b{epoch}:class:1:share").set_value(0.5).run())
    classes = at.session_state["design"].workload.classes
    assert [(c.name, c.share) for c in classes] == [("chat", 0.5), ("short_answer", 0.5)]
    epoch = at.session_state["design_epoch"]
    _ok(at.number_input(key=f"b{epoch}:class:0:prompt_tokens:lognormal:mean").set_value(1200.0).run())
    assert at.session_state["design"].workload.classes[0].prompt_tokens.mean == 1200
    _ok(at.button(key=f"b{at.session_state['design_epoch']}:class:add").click().run())
    assert len(at.session_state["design"].workload.classes) == 3
    assert abs(sum(c.share for c in at.session_state["design"].workload.classes) - 1) < 1e-9


def test_a_second_tab_on_the_same_draft_url_forks_the_draft(one_browser):
    a = open_design()
    draft = a.session_state["draft_id"]
    b = AppTest.from_file(APP, default_timeout=TIMEOUT)
    b.query_params["draft"] = draft
    _ok(b.run())
    assert b.session_state["design"].name == "llm_serving"  # the work is there …
    assert b.session_state["draft_id"] != draft  # … under its own id: tab a's draft is untouched


def test_cancel_keeps_and_shows_what_was_measured():
    at = open_design()
    _ok(at.switch_page("app_pages/capacity.py").run())
    at.number_input(key="sim_max_requests").set_value(5_000_000)
    _ok(at.number_input(key="sim_max_seconds").set_value(300.0).run())
    _ok(at.button(key="run_sim").click().run())
    job = at.session_state["sim_job"]
    deadline = __import__("time").monotonic() + 60
    while (job.report is None or getattr(job.report, "phase", "") != "measuring") and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    _ok(at.run())
    progress = [p for p in at.get("progress")]
    assert progress and "requests simulated" in _text(progress[0].proto.text)
    _ok(at.button(key="cancel_sim").click().run())
    job.wait(60)
    _ok(at.run())
    result = next(iter(at.session_state["runs"].values()))
    assert result.partial and result.stopped_by == "interrupted" and result.simulated_requests > 0
    assert any("Partial result" in _text(w.value) for w in at.warning)


def test_a_practice_round_survives_a_refresh(workspace, one_browser):
    at = _ok(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    _ok(at.switch_page("app_pages/practice.py").run())
    at.selectbox(key="px_choice").set_value("serve-70b-strict")
    _ok(at.button(key="px_start").click().run())
    at.number_input(key="px_est_peak_qps").set_value(17.0)
    at.number_input(key="px_est_gpus").set_value(8.0)
    _ok(at.button(key="FormSubmitter:px_estimates_form-Lock in estimates").click().run())
    at.selectbox(key="px_edge_from").set_value("lb")
    at.selectbox(key="px_edge_to").set_value("llm")
    _ok(at.button(key="px_add_edge").click().run())
    round_id = at.session_state["px_round_id"]
    assert at.query_params["round"] in (str(round_id), [str(round_id)])
    started = at.session_state["px_started_at"]

    # F5: a new session with the same URL.
    again = AppTest.from_file(APP, default_timeout=TIMEOUT)
    again.query_params["round"] = str(round_id)
    _ok(again.run())
    _ok(again.switch_page("app_pages/practice.py").run())
    ss = again.session_state
    assert ss["px_prompt_id"] == "serve-70b-strict" and ss["px_started_at"] == started
    assert ss["px_estimates"]["peak_qps"] == 17.0 and ss["px_estimates"]["gpus"] == 8.0
    assert any(e.from_ == "lb" and e.to == "llm" for e in ss["px_design"].flow)
    assert any(s.value == "Your design" for s in again.subheader)  # past the estimates, as before


def test_run_progress_reads_requests_p95_interval_and_eta():
    import sim

    job = W.RunJob.__new__(W.RunJob)  # the text, without starting a thread
    job.elapsed_s = lambda: 30.0  # a fixed clock: the text, not the machine's speed
    job.fraction = 0.25
    job.report = sim.Progress("measuring", requests=12_345, batches=4, p95_ms=12_150.0, half_width_ms=1_000.0)
    text = job.text()
    assert "12,345 requests simulated" in text
    assert "p95 12.2 s ± 1,000.0 ms" in text  # readable units, never "1.215e+04 ms ± 1e+03"
    assert "30 s elapsed, about 90 s left" in text  # 30 s for a quarter: 90 s more at that pace
    job.report = sim.Progress("warm-up", text="warm-up: 600 requests to reach steady state (not measured)")
    job.fraction = 0.0
    assert job.text().startswith("warm-up") and "nothing measured yet" in job.text()


def test_an_overloaded_run_names_one_bottleneck_and_no_zero_tables():
    """10^10 requests/day on the serving design: the twin says the LLM needs hundreds of times
    its capacity; the page names the LLM as the bottleneck in the run too and shows no 'None'."""
    at = open_design()
    _ok(at.switch_page("app_pages/capacity.py").run())
    rpd = next(s for s in at.select_slider if s.label == "Requests per day")
    _ok(rpd.set_value(10**10).run())
    _fast(at)
    _run_sim(at)
    result = next(iter(at.session_state["runs"].values()))
    assert not result.stable
    text = _all_text(at)
    assert "bottleneck: llm" in text.lower() or "Bottleneck: llm" in text
    for bad in ("None", "inf", "Infinity", "nan"):
        assert not re.search(rf"\b{bad}\b", text), bad
    assert not re.search(r"\de[+-]\d", text)


def test_export_doc_cache_tells_a_partial_run_from_the_full_one_under_one_key():
    # Cancel keeps a partial run under the run's key; the full run after it reuses that key.
    # The Export page's cached design doc must follow the result, not just the key.
    from app_pages import _widgets as W
    from designs.model import Design
    from sim import simulate

    d = Design.model_validate({"name": "doc_cache", "workload": {"arrival_rps": 50},
                               "components": [{"id": "s", "kind": "service"}], "entry": "s", "flow": []})
    short = simulate(d, seed=1, max_requests=3_000, max_seconds=10)
    full = simulate(d, seed=1, max_requests=30_000, max_seconds=10)
    assert short.simulated_requests != full.simulated_requests
    a = W.design_doc_files(d, "doc_cache", short, "k")
    b = W.design_doc_files(d, "doc_cache", full, "k")
    assert a != b and f"{full.simulated_requests:,}" in b[1]
    assert W.design_doc_files(d, "doc_cache", full, "k") == b  # and the same result is served from the cache
