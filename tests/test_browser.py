"""One real-browser smoke test: Debian's Chromium, driven by Playwright, against `streamlit run`.

Opens the serving design, goes to the Capacity page, runs a short simulation and waits for
the verdict; the screenshot lands in the test's tmp folder (and in docs/capacity.png with
``SDW_UPDATE_SCREENSHOT=1``). Skips when /usr/bin/chromium is missing, except under CI=true.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the browser test"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout_s} s")


@pytest.fixture
def server(tmp_path):
    _need_chromium()
    pytest.importorskip("sim.twin.analytic", reason="sim/analytic.py not built yet")
    port = _free_port()
    env = dict(os.environ, SDW_WORKSPACE=str(tmp_path / "ws"), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "streamlit.log", "w")
    # The venv's own interpreter: the same environment `uv run streamlit run app.py` gives.
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own process group, started above
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_capacity_page_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "capacity.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            try:
                text = _drive(page, server, shot)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                raise
        finally:
            browser.close()

    assert text.startswith("Verdict: ") and ("PASS" in text or "FAIL" in text), text
    assert shot.stat().st_size > 10_000
    if os.environ.get("SDW_UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "capacity.png")


def _drive(page, server: str, shot: Path) -> str:
    """Library → open the serving design → Capacity → run → the verdict's text."""
    from playwright.sync_api import expect

    page.goto(server)
    page.locator(".st-key-open_lib_llm_serving button").click(timeout=60_000)
    expect(page.get_by_text("Opened llm_serving")).to_be_visible(timeout=30_000)
    page.get_by_role("link", name="Capacity").click()
    expect(page.get_by_text("Analytic estimate")).to_be_visible(timeout=60_000)
    # Keep the run short: the test checks the page, not the engine's accuracy.
    page.get_by_text("Simulation settings").click()
    # The README picture is worth a longer run (fewer warnings, tighter intervals).
    n = "30000" if os.environ.get("SDW_UPDATE_SCREENSHOT") == "1" else "3000"
    for key, value in (("sim_max_requests", n), ("sim_max_seconds", "60")):
        box = page.locator(f".st-key-{key} input")
        box.fill(value)
        box.press("Enter")
    page.wait_for_timeout(500)
    page.locator(".st-key-run_sim button").click()
    verdict = page.get_by_text("Verdict:", exact=False).first
    expect(verdict).to_be_visible(timeout=120_000)
    text = verdict.inner_text()
    page.wait_for_timeout(1500)  # let the charts finish drawing before the picture
    page.screenshot(path=str(shot), full_page=True)
    return text
