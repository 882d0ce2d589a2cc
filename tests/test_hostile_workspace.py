"""Lost work and confinement (issue 14): exclusive name creation, overwrite asks first, atomic
`-o` that refuses its own input, temp files cleaned on start, names that round-trip, drafts
that are unguessable and claimed once."""

from __future__ import annotations

import os
import threading
import time

import pytest

from cli.main import main
from designs.io import dump_design, load_design, parse_design
from designs.model import Design
from designs.workspace import DRAFT_ID, NameTaken, Workspace, WorkspaceError, new_draft_id

TINY = {"name": "tiny", "workload": {}, "components": [{"id": "s", "kind": "service"}], "entry": "s"}


@pytest.fixture
def design() -> Design:
    return Design.model_validate(TINY)


def test_eight_threads_duplicating_one_design_never_lose_a_copy(tmp_path, design):
    # The campaign: 8 threads × 20 "duplicate" saves left 22 files for 160 saves (check-then-write).
    ws = Workspace(tmp_path)
    names: list[str] = []
    lock = threading.Lock()

    def dup():
        for _ in range(20):
            name, _ = ws.save_new("tiny_variant", design)
            with lock:
                names.append(name)

    threads = [threading.Thread(target=dup) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(names) == len(set(names)) == 160
    assert len(ws.list_designs()) == 160
    assert all(load_design(p) == design for _, p in ws.list_designs()[:5])


def test_saving_over_an_existing_name_asks_first(tmp_path, design):
    ws = Workspace(tmp_path)
    ws.save("mine", design)
    other = design.model_copy(update={"name": "other"})
    with pytest.raises(NameTaken, match="already saved"):
        ws.save("mine", other)  # a second session saving under the same name
    assert ws.load("mine") == design
    ws.save("mine", other, overwrite=True)  # after the user confirmed
    assert ws.load("mine").name == "other"


def test_stale_temp_files_are_removed_on_start_fresh_ones_kept(tmp_path, design):
    ws = Workspace(tmp_path)
    ws.save("mine", design)
    old = tmp_path / "designs" / ".mine.abc123.tmp"
    new = tmp_path / "designs" / ".mine.def456.tmp"
    old.write_text("half a save")
    new.write_text("a save in progress")
    past = time.time() - 3600
    os.utime(old, (past, past))
    gone = Workspace(tmp_path).clean_temp()
    assert gone == [old] and new.exists() and (tmp_path / "designs" / "mine.yaml").exists()


@pytest.mark.parametrize("bad", ["mine\n", "mine\x85", "a\tb", "mine\r"])
def test_save_names_with_line_breaks_are_refused(tmp_path, design, bad):
    with pytest.raises(WorkspaceError):
        Workspace(tmp_path).save(bad, design)


@pytest.mark.parametrize("text", ["a\x85b", "line\u2028sep", "para\u2029sep", "cr\rhere", "trailing\n", "\ufeffbom"])
def test_names_and_notes_round_trip_through_a_save(text):
    d = Design.model_validate(TINY | {"name": text, "notes": text, "assumptions": [text],
                                      "components": [{"id": "s", "kind": "service", "label": text}]})
    back = parse_design(dump_design(d))
    assert back == d and back.name == text


def test_symlinked_workspace_folder_pointing_outside_is_refused(tmp_path, design):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "ws"
    root.mkdir()
    (root / "designs").symlink_to(outside)
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        Workspace(root).save("x", design)
    assert not list(outside.iterdir())


def test_draft_ids_are_unguessable_and_a_draft_is_claimed_once_by_its_owner(tmp_path, design):
    ws = Workspace(tmp_path)
    ids = {new_draft_id() for _ in range(100)}
    assert len(ids) == 100 and all(DRAFT_ID.fullmatch(i) for i in ids)
    old = new_draft_id()
    ws.save_draft(old, design, owner="tag-of-browser-a")
    mine, thief = new_draft_id(), new_draft_id()
    assert ws.claim_draft(old, thief) is None                        # the URL alone opens nothing
    assert ws.claim_draft(old, thief, owner="tag-of-browser-b") is None  # nor another browser's tag
    assert ws.load_draft(old) == design                              # and the draft is left alone
    assert ws.claim_draft(old, mine, owner="tag-of-browser-a") == design  # the owner's refresh moves it
    assert ws.claim_draft(old, thief, owner="tag-of-browser-a") is None   # the old id is spent
    assert ws.load_draft(mine) == design and ws.draft_owner(mine) == "tag-of-browser-a"
    assert ws.load_draft("0123456789abcdef") is None  # the old 16-hex form is not accepted
    unowned = new_draft_id()
    ws.save_draft(unowned, design)  # no owner tag (no cookie): kept on disk, never claimed
    assert ws.claim_draft(unowned, new_draft_id(), owner="tag-of-browser-a") is None


def test_render_refuses_to_overwrite_its_input(tmp_path, capsys, design):
    f = tmp_path / "d.yaml"
    f.write_text(dump_design(design))
    before = f.read_text()
    assert main(["render", str(f), "-o", str(f), "--format", "dot"]) == 2
    assert "is the input design file" in capsys.readouterr().err
    assert f.read_text() == before
    assert main(["doc", str(f), "-o", str(tmp_path / "d.md"), "--no-sim"]) == 0  # d.svg, not d.yaml


def test_output_write_is_atomic_a_failed_write_keeps_the_old_file(tmp_path, capsys, design, monkeypatch):
    f = tmp_path / "d.yaml"
    f.write_text(dump_design(design))
    out = tmp_path / "d.dot"
    out.write_text("old diagram")

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    assert main(["render", str(f), "-o", str(out)]) == 1
    assert out.read_text() == "old diagram"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
