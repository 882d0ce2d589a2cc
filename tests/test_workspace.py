"""The workspace folder: atomic saves, refused names, delete with undo, per-session drafts."""

import os

import pytest

from designs.io import load_design
from designs.model import Design
from designs.workspace import Workspace, WorkspaceError, new_draft_id, workspace_dir

TINY = {
    "name": "tiny",
    "workload": {"requests_per_day": 86_400, "peak_to_average": 1.0},
    "components": [{"id": "svc", "kind": "service", "replicas": 2, "concurrency": 4}],
    "entry": "svc",
}


@pytest.fixture
def design() -> Design:
    return Design.model_validate(TINY)


def test_save_load_round_trip(tmp_path, design):
    ws = Workspace(tmp_path)
    path = ws.save("mine", design)
    assert path == tmp_path / "designs" / "mine.yaml"
    assert ws.load("mine") == design
    assert ws.list_designs() == [("mine", path)]
    # No temporary files left behind by the atomic write.
    assert [p.name for p in path.parent.iterdir()] == ["mine.yaml"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "a\\b", "..", "", ".hidden", "x/../../etc"])
def test_refuses_names_that_escape(tmp_path, design, bad):
    ws = Workspace(tmp_path)
    with pytest.raises(WorkspaceError):
        ws.save(bad, design)
    assert not (tmp_path.parent / "x.yaml").exists()
    assert not any(tmp_path.parent.glob("*.yaml"))


def test_atomic_save_keeps_old_file_when_write_fails(tmp_path, design, monkeypatch):
    ws = Workspace(tmp_path)
    path = ws.save("mine", design)
    before = path.read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    bigger = design.model_copy(update={"name": "changed"})
    with pytest.raises(OSError):
        ws.save("mine", bigger, overwrite=True)
    monkeypatch.undo()
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == ["mine.yaml"]


def test_delete_and_undo(tmp_path, design):
    ws = Workspace(tmp_path)
    ws.save("mine", design)
    ws.delete("mine")
    assert ws.list_designs() == []
    ws.restore("mine")
    assert load_design(ws.path_of("mine")) == design
    with pytest.raises(WorkspaceError):
        ws.restore("mine")  # nothing left in the trash


def test_unique_name(tmp_path, design):
    ws = Workspace(tmp_path)
    assert ws.unique_name("rag qa") == "rag_qa"
    ws.save("rag_qa", design)
    assert ws.unique_name("rag qa") == "rag_qa_2"


def test_drafts_are_per_id(tmp_path, design):
    ws = Workspace(tmp_path)
    a, b = new_draft_id(), new_draft_id()
    ws.save_draft(a, design)
    assert ws.load_draft(a) == design
    assert ws.load_draft(b) is None
    assert ws.load_draft("../../etc/passwd") is None
    ws.discard_draft(a)
    assert ws.load_draft(a) is None


def test_workspace_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SDW_WORKSPACE", str(tmp_path / "w"))
    assert workspace_dir() == tmp_path / "w"
    assert workspace_dir(tmp_path / "o") == tmp_path / "o"
    monkeypatch.delenv("SDW_WORKSPACE")
    assert workspace_dir().name == "workspace"
