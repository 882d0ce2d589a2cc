"""Real-browser tests: Debian's Chromium, driven by Playwright, against `streamlit run`.

* the Capacity smoke test: open the serving design, run a short simulation, read the verdict;
* the walk of issue 16: New design → add an `llm_server` that does not fit → the located
  error at the GPU field → fix it → Save → Capacity shows TTFT/TPOT headlines → run →
  Save as an unstable variant → Compare → the badge.

Screenshots land in the test's tmp folder, and in docs/ (the README's pictures) with
``SDW_UPDATE_SCREENSHOT=1``. Skips when /usr/bin/chromium is missing, except under CI=true.
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
    # The workspace comes from the start command (`sdw app --workspace`), not the environment.
    env = {k: v for k, v in os.environ.items() if k != "SDW_WORKSPACE"}
    env["PYTHONUNBUFFERED"] = "1"
    log = open(tmp_path / "streamlit.log", "w")
    # The venv's own interpreter: the same environment `uv run sdw app` gives.
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "app", "--workspace", str(tmp_path / "ws"), "--port", str(port), "--address", "127.0.0.1",
         "--", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
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
    # The root `sdw app --workspace` was given is the one the app shows (and uses).
    expect(page.get_by_text(str(shot.parent / "ws"), exact=True)).to_be_visible(timeout=60_000)
    page.locator(".st-key-open_lib_llm_serving button").click(timeout=60_000)
    expect(page.get_by_text("Opened llm_serving")).to_be_visible(timeout=30_000)
    page.get_by_role("link", name="Capacity").click()
    expect(page.get_by_text("Analytic estimate")).to_be_visible(timeout=60_000)
    # Keep the run short: the test checks the page, not the engine's accuracy.
    page.get_by_text("Simulation settings").click()
    # The README picture is worth a longer run (fewer warnings, tighter intervals).
    n = "30000" if os.environ.get("SDW_UPDATE_SCREENSHOT") == "1" else "3000"
    for key, value in (("sim_max_requests", n), ("sim_max_seconds", "30")):
        box = page.locator(f".st-key-{key} input")
        box.fill(value)
        box.press("Enter")
    page.wait_for_timeout(500)
    page.locator(".st-key-run_sim button").click()
    verdict = page.get_by_text("Verdict:", exact=False).first
    expect(verdict).to_be_visible(timeout=400_000)  # a run of ≤ 30 s wall; generous for a loaded machine
    text = verdict.inner_text()
    page.wait_for_timeout(1500)  # let the charts finish drawing before the picture
    page.screenshot(path=str(shot), full_page=True)
    return text


# --- the walk of issue 16 ---------------------------------------------------------------------

SHOTS = ("walk-builder-error.png", "walk-capacity.png", "walk-compare.png")


def _key(key: str) -> str:
    """CSS class of `st.container/widget(key=...)`: Streamlit maps other characters to '-'."""
    return ".st-key-" + "".join(c if c.isalnum() or c in "_-" else "-" for c in key)


def _widget(page, suffix: str):
    """A Builder field whose key is b<epoch>:<suffix> (the epoch changes as designs open)."""
    css = "".join(c if c.isalnum() or c in "_-" else "-" for c in suffix)
    return page.locator(f"[class*='st-key-b'][class*='-{css}']").first


def _choose(page, box, text: str) -> None:
    box.click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    _settle(page)


def _settle(page) -> None:
    """Wait until the app's script run has finished: no 'Running…' widget and no stale
    elements (Streamlit shows the running state only after a short delay, so wait first)."""
    page.wait_for_timeout(700)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"], [data-testid=\"stStatusWidgetRunningManIcon\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')", timeout=60_000)
    page.wait_for_timeout(200)


def _fill(page, box, value: str) -> None:
    box.fill(value)
    box.press("Enter")
    _settle(page)


def test_the_issue_16_walk_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            try:
                _walk(page, server, tmp_path)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                raise
        finally:
            browser.close()
    for name in SHOTS:
        assert (tmp_path / name).stat().st_size > 10_000, name
        if os.environ.get("SDW_UPDATE_SCREENSHOT") == "1":
            (ROOT / "docs").mkdir(exist_ok=True)
            shutil.copyfile(tmp_path / name, ROOT / "docs" / name)


def _walk(page, server: str, out: Path) -> None:
    from playwright.sync_api import expect

    page.goto(server)
    # New design.
    _fill(page, page.locator(f"{_key('new_name')} input"), "walk_llm")
    page.locator(f"{_key('new_design')} button").click(timeout=60_000)
    expect(page.get_by_text("Opened a new design walk_llm")).to_be_visible(timeout=30_000)
    _settle(page)
    page.get_by_role("link", name="Builder").click()
    expect(page.get_by_role("heading", name="Builder — walk_llm")).to_be_visible(timeout=30_000)
    _settle(page)

    # Add an llm_server, then make it one that does not fit: 70B in BF16 on one H100.
    page.get_by_text("Add a component").click()
    _choose(page, page.locator(_key("add_tier")), "Model serving")
    page.wait_for_timeout(500)
    _choose(page, page.locator(_key("add_kind")), "llm_server")
    page.wait_for_timeout(500)
    page.locator(f"{_key('add_component')} button").click()
    expect(_widget(page, "llm_server:model")).to_be_visible(timeout=30_000)
    _choose(page, _widget(page, "llm_server:model"), "llama-3.1-70b")
    error = page.locator(_key("fielderr_components_llm_server_gpus_per_replica"))
    expect(error).to_contain_text("needs 141 GB of weights", timeout=30_000)
    error.scroll_into_view_if_needed()
    page.screenshot(path=str(out / SHOTS[0]), full_page=True)
    # Save refuses what `sdw validate` refuses.
    page.locator(f"{_key('save_design')} button").click()
    expect(page.get_by_text("Not saved: the design has 1 problem(s)")).to_be_visible(timeout=30_000)

    # Fix it at the field (4 GPUs per replica), give it 3 replicas and TTFT/TPOT targets.
    _fill(page, _widget(page, "llm_server:gpus_per_replica").locator("input"), "4")
    expect(error).to_have_count(0, timeout=30_000)
    _fill(page, _widget(page, "llm_server:replicas").locator("input"), "3")
    page.get_by_role("tab", name="Workload & SLOs").click()
    _fill(page, _widget(page, "slo:ttft_p95_ms").locator("input"), "1000")
    _fill(page, _widget(page, "slo:tpot_p95_ms").locator("input"), "50")
    page.get_by_role("tab", name="Flow").click()
    page.get_by_role("button", name="Add edge").click()  # defaults: app → llm_server
    expect(page.get_by_text("2 components, 1 edges")).to_be_visible(timeout=30_000)
    page.locator(f"{_key('save_design')} button").click()
    expect(page.get_by_text("Saved to").first).to_be_visible(timeout=30_000)
    _settle(page)

    # Capacity: TTFT and TPOT p95 lead, beside their targets; then a short run.
    page.get_by_role("link", name="Capacity").click()
    _settle(page)
    expect(page.get_by_text("TTFT p95 (approx.)")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("TPOT p95 (approx.)")).to_be_visible()
    expect(page.get_by_text("meets target 1,000.0 ms").first).to_be_visible()
    page.get_by_text("Simulation settings").click()
    for key, value in (("sim_max_requests", "20000"), ("sim_max_seconds", "30")):
        _fill(page, page.locator(f"{_key(key)} input"), value)
    page.locator(f"{_key('run_sim')} button").click()
    verdict = page.get_by_text("Verdict:", exact=False).first
    expect(verdict).to_be_visible(timeout=400_000)  # a run of ≤ 30 s wall; generous for a loaded machine
    assert "PASS" in verdict.inner_text()
    expect(page.get_by_text("Time to first token — CDF").first).to_be_attached(timeout=30_000)
    page.wait_for_timeout(1500)  # let the charts draw before the picture
    page.screenshot(path=str(out / SHOTS[1]), full_page=True)

    # An unstable variant: one replica for the same traffic, saved as a second file.
    _settle(page)
    page.get_by_role("link", name="Builder").click()
    _settle(page)
    _choose(page, page.locator("[class*='st-key-b'][class*='-component']").first, "llm_server")
    _fill(page, _widget(page, "llm_server:replicas").locator("input"), "1")
    _fill(page, page.locator(f"{_key('save_name')} input"), "walk_llm_starved")
    page.locator(f"{_key('save_design')} button").click()
    expect(page.get_by_text("walk_llm_starved.yaml").first).to_be_visible(timeout=30_000)

    # Compare the two: the starved one carries the unstable badge and wins nothing.
    _settle(page)
    page.get_by_role("link", name="Compare").click()
    _settle(page)
    picker = page.locator(_key("compare_pick"))
    expect(picker).to_be_visible(timeout=30_000)
    _choose(page, picker, "workspace: walk_llm")
    _choose(page, picker, "workspace: walk_llm_starved")
    page.keyboard.press("Escape")
    page.mouse.click(1300, 1700)  # a click on empty page closes the dropdown
    _settle(page)
    page.get_by_text("Simulation settings").click()
    for key, value in (("cmp_max_requests", "5000"), ("cmp_max_seconds", "30")):
        _fill(page, page.locator(f"{_key(key)} input"), value)
    page.locator(f"{_key('run_compare')} button").click()
    badge = page.get_by_text("unstable: the backlog grows").first
    expect(badge).to_be_visible(timeout=300_000)
    expect(page.locator(_key("status_A"))).to_contain_text("meets its SLOs")
    expect(page.locator(_key("status_B"))).to_contain_text("unstable")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / SHOTS[2]), full_page=True)


# --- a ticking timer and drafts that stay in their browser ----------------------------------------


def test_practice_timer_ticks_by_itself_and_a_draft_url_stays_in_its_browser(server, tmp_path):
    """What AppTest cannot show: `st.fragment(run_every=1)` advancing the Practice timer with
    no click, and a ``?draft=`` URL that reopens the work in its own browser (the owner tag
    is the hash of Streamlit's XSRF cookie) and opens nothing in another one."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            try:
                page.goto(server)
                page.locator(".st-key-open_lib_llm_serving button").click(timeout=60_000)
                expect(page.get_by_text("Opened llm_serving")).to_be_visible(timeout=30_000)
                _settle(page)
                assert "draft=" in page.url, page.url  # an owner tag was found: the URL carries the draft
                page.reload()
                expect(page.get_by_text("Opened from draft (restored)")).to_be_visible(timeout=60_000)
                _settle(page)
                url = page.url  # the restored draft's new id

                other = browser.new_context(viewport={"width": 1400, "height": 900})  # another browser: no cookies
                try:
                    stranger = other.new_page()
                    stranger.goto(url)
                    expect(stranger.get_by_text("No design open")).to_be_visible(timeout=60_000)
                finally:
                    other.close()
                from urllib.parse import parse_qs, urlparse

                draft = parse_qs(urlparse(url).query)["draft"][0]
                assert (tmp_path / "ws" / "drafts" / f"{draft}.yaml").is_file()  # the owner's draft is untouched

                page.get_by_role("link", name="Practice").click()
                page.locator(f"{_key('px_start')} button").click(timeout=60_000)
                elapsed = page.locator("[data-testid='stMetric']").filter(has_text="Elapsed").locator("[data-testid='stMetricValue']")
                expect(elapsed).to_be_visible(timeout=30_000)
                _settle(page)

                def seconds() -> int:
                    mm, ss = elapsed.inner_text().strip().split(":")
                    return int(mm) * 60 + int(ss)

                t0 = seconds()
                page.wait_for_timeout(3500)  # no clicks, no input: only the fragment's own reruns
                t1 = seconds()
                assert t1 - t0 >= 2, (t0, t1)
                page.screenshot(path=str(tmp_path / "practice-timer.png"), full_page=True)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                raise
        finally:
            browser.close()
