"""The app under hostile conditions (issue 14): a Practice submit on an unwritable workspace
keeps the attempt, the workspace root comes from the server's start (`sdw app --workspace`),
and a ``?draft=`` URL is useless to another session."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from review.history import HistoryError, list_attempts, save_attempt
from review.prompts import get_prompt, skeleton_design

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PROMPT = "serve-70b-strict"


def test_history_refusal_names_the_database(tmp_path):
    (tmp_path / "attempts.sqlite").mkdir()  # what stands where the database should be: not writable
    with pytest.raises(HistoryError, match="attempts.sqlite"):
        save_attempt(tmp_path, prompt_id="p", started_at=0.0, finished_at=1.0, estimates={}, design_yaml="", scores={})


def test_practice_submit_on_an_unwritable_workspace_keeps_the_attempt(tmp_path, monkeypatch):
    # The campaign: Submit on an unwritable workspace showed a traceback and lost the attempt.
    # Running as root, permissions do not stop a write; a directory where attempts.sqlite
    # should be does (SQLite cannot open it), for any user.
    ws = tmp_path / "ws"
    (ws / "attempts.sqlite").mkdir(parents=True)
    monkeypatch.setenv("SDW_WORKSPACE", str(ws))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/practice.py")
    # A round with its estimates locked: the skeleton (70B BF16 on 2 GPUs, refused by the
    # analytic model, so the review needs no simulation and the test stays quick).
    at.session_state["px_prompt_id"] = PROMPT
    at.session_state["px_started_at"] = time.time() - 120
    at.session_state["px_estimates"] = {"peak_qps": 17.0, "gpus": 8.0, "cost_per_day_usd": 800.0}
    at.session_state["px_design"] = skeleton_design(get_prompt(PROMPT))
    at.run()
    assert not at.exception
    at.button(key="px_submit").click()
    at.run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Review — ") for s in at.subheader)  # the review is shown
    msg = [e.value for e in at.error if "not saved yet" in e.value]
    assert msg and "attempts.sqlite" in msg[0] and "retry" in msg[0]
    kept = at.session_state["px_unsaved"]
    assert kept["prompt_id"] == PROMPT and kept["estimates"]["gpus"] == 8.0 and "llm" in kept["design_yaml"]
    # Offered as a download: the whole attempt, its scores included.
    (dl,) = [d for d in at.get("download_button") if d.proto.label == "Download the attempt (JSON)"]
    assert at.session_state["px_attempt_id"] is None

    # The disk is fixed: Retry stores the very attempt that was kept.
    shutil.rmtree(ws / "attempts.sqlite")
    at.button(key="px_retry_save").click()
    at.run()
    assert not at.exception
    saved = list_attempts(ws)
    assert len(saved) == 1 and saved[0].prompt_id == PROMPT
    assert saved[0].estimates == kept["estimates"] and saved[0].scores == kept["scores"]
    assert at.session_state["px_unsaved"] is None and at.session_state["px_attempt_id"] == saved[0].id
    assert any(f"Attempt #{saved[0].id} saved" in c.value for c in at.caption)
    assert not any("not saved yet" in e.value for e in at.error)


# --- the workspace root is the server's start, not a visitor's choice ------------------------


def test_sdw_app_sets_the_workspace_root_from_the_command_line(tmp_path, capsys):
    from cli.main import main

    ws = tmp_path / "work space"  # a space: the printed command is quoted for a shell
    assert main(["app", "--workspace", str(ws), "--port", "8611", "--print-command", "--", "--server.headless", "true"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"SDW_WORKSPACE='{ws.resolve()}' ")
    assert " -m streamlit run " in line and line.endswith("app.py --server.port 8611 --server.headless true")
    assert ws.is_dir()  # made, so the first save has somewhere to go
    # A file is not a workspace; a bad port is a usage error.
    (tmp_path / "f").write_text("x")
    assert main(["app", "--workspace", str(tmp_path / "f"), "--print-command"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["app", "--port", "70000", "--print-command"]) == 2


def test_sdw_app_starts_streamlit_with_that_workspace(tmp_path):
    # The real start: `sdw app` becomes the streamlit server (exec), whose environment
    # carries the root; the page reads only that (the sidebar field of old is gone).
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    if not Path("/proc/self/environ").exists():
        pytest.skip("reads the server's environment from /proc (Linux)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if k != "SDW_WORKSPACE"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "app", "--workspace", str(ws), "--port", str(port), "--address",
                             "127.0.0.1", "--", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                assert time.monotonic() < deadline, "streamlit did not answer"
                time.sleep(0.3)
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert f"SDW_WORKSPACE={ws.resolve()}".encode() in environ
        assert b"streamlit" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()  # the same process, exec'd
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group started above
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- a ?draft= URL is scoped to the browser session that wrote it ----------------------------

LIB_OPEN = "open_lib_llm_serving"


@pytest.fixture
def browsers(monkeypatch):
    """AppTest cannot send cookies: each session's "browser" is a tag the test puts in its
    session state, returned where the app reads the hash of Streamlit's XSRF cookie."""
    import streamlit as st

    from app_pages import _widgets as W

    monkeypatch.setattr(W, "browser_owner", lambda: st.session_state.get("_test_browser"))


def _session(browser: str | None, draft: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if browser is not None:
        at.session_state["_test_browser"] = browser
    if draft is not None:
        at.query_params["draft"] = draft
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_draft_url_opens_nothing_in_another_browser(tmp_path, monkeypatch, browsers):
    from designs.workspace import Workspace

    monkeypatch.setenv("SDW_WORKSPACE", str(tmp_path))
    owner = _session("a" * 64)
    owner.button(key=LIB_OPEN).click().run()
    draft = owner.session_state["draft_id"]
    assert owner.query_params["draft"] in (draft, [draft])
    assert Workspace(tmp_path).load_draft(draft).name == "llm_serving"  # autosaved

    # The URL in another browser (or with no browser tag at all) opens nothing …
    thief = _session("b" * 64, draft)
    assert thief.session_state["design"] is None and thief.session_state["draft_id"] != draft
    bare = _session(None, draft)
    assert bare.session_state["design"] is None
    assert "draft" not in bare.query_params  # a session no browser could claim puts no draft id in its URL
    # … and leaves the owner's draft where it was, unchanged.
    assert Workspace(tmp_path).load_draft(draft).name == "llm_serving"

    # The owner's refresh (same browser, same URL) brings the work back under a fresh id.
    refreshed = _session("a" * 64, draft)
    assert refreshed.session_state["design"].name == "llm_serving"
    assert refreshed.session_state["draft_id"] != draft
    assert Workspace(tmp_path).load_draft(draft) is None  # moved: the old id is spent


def test_the_owner_tag_is_the_unmasked_xsrf_token():
    # Streamlit re-masks its XSRF token on every page load ("2|mask|token XOR mask|time"):
    # two loads of one browser give two cookie values and one owner tag.
    import hashlib
    from unittest import mock

    from app_pages import _widgets as W

    token = bytes(range(32))

    def cookie(mask: bytes) -> str:
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(token))
        return f"2|{mask.hex()}|{masked.hex()}|1764633600"

    tags = []
    for mask in (b"\x01\x02\x03\x04", b"\xaa\xbb\xcc\xdd"):
        with mock.patch.object(W.st, "context", mock.Mock(cookies={W.XSRF_COOKIE: cookie(mask)})):
            tags.append(W.browser_owner())
    assert tags[0] == tags[1] == hashlib.sha256(b"sdw-draft-owner\0" + token).hexdigest()
    with mock.patch.object(W.st, "context", mock.Mock(cookies={})):
        assert W.browser_owner() is None
    with mock.patch.object(W.st, "context", mock.Mock(cookies={W.XSRF_COOKIE: "2|zz|qq|1"})):
        assert W.browser_owner() is None  # not a token: no tag, never a crash


def test_a_practice_round_url_opens_only_in_the_browser_that_played_it(tmp_path, monkeypatch, browsers):
    from review.history import load_round

    monkeypatch.setenv("SDW_WORKSPACE", str(tmp_path))
    player = _session("a" * 64)
    player.switch_page("app_pages/practice.py").run()
    player.selectbox(key="px_choice").set_value(PROMPT)
    player.button(key="px_start").click().run()
    rid = player.session_state["px_round_id"]
    assert load_round(tmp_path, rid)["owner"] == player.session_state["draft_owner"]

    def reopen(browser):
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["_test_browser"] = browser
        at.query_params["round"] = str(rid)  # round ids are small integers: easy to guess
        at.run()
        at.switch_page("app_pages/practice.py").run()
        assert not at.exception
        return at.session_state["px_prompt_id"]

    assert reopen("b" * 64) is None       # another browser: nothing restored
    assert reopen("a" * 64) == PROMPT     # the player's refresh: the round is back
