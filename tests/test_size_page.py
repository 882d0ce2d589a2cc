"""The Size page (AppTest): narrow the space, run the search, see the frontier, save the winner."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from designs.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("SDW_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path / "ws"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_size_page_finds_the_cheaper_h100_count_and_saves_the_winner_for_compare(workspace):
    at = _ok(AppTest.from_file(APP, default_timeout=120).run())
    _ok(at.button(key="open_lib_llm_serving").click().run())
    _ok(at.switch_page("app_pages/size.py").run())
    tok = next(m.key for m in at.multiselect if str(m.key).endswith(":llm:gpu"))
    base = tok[: -len(":llm:gpu")]
    at.multiselect(key=f"{base}:llm:gpu").set_value(["H100-SXM-80GB"])
    at.multiselect(key=f"{base}:llm:prec").set_value(["bf16"])
    at.multiselect(key=f"{base}:llm:tp").set_value([1])
    at.multiselect(key=f"{base}:llm:mb").set_value([256])
    at.number_input(key="size:verify").set_value(0)
    at.checkbox(key=f"{base}:n1").set_value(False)
    _ok(at.run())
    _ok(at.button(key="size_run").click().run())
    # The page shows what the library function finds for the same space (fewer than the 17 given).
    from designs.io import load_design
    from designs.library import library_dir
    from sim import size
    from designs.space import SearchSpace

    space = SearchSpace.model_validate({"components": {"llm": {"gpu": ["H100-SXM-80GB"], "precision": ["bf16"],
                                                               "gpus_per_replica": [1], "max_batch": [256]}}})
    n = size(load_design(library_dir() / "llm_serving.yaml"), space=space, verify=0, n_minus_1=False).winner.replicas["llm"]
    assert n < 17
    assert any("cheapest passing design" in s.value and f"{n} llm" in s.value for s in at.success)
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # the frontier scatter
    assert at.dataframe  # the decision table
    _ok(at.button(key="size_save").click().run())
    names = [n for n, _ in Workspace(workspace).list_designs()]
    assert any(n.startswith("llm_serving_sized") for n in names)
    saved = Workspace(workspace).load(next(n for n in names if n.startswith("llm_serving_sized")))
    assert saved.component("llm").replicas == n
    assert at.session_state["compare_pick"][1].startswith("workspace: llm_serving_sized")
