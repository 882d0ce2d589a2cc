"""App responsiveness benchmark: page switches and analytic what-ifs, server side.

Run with ``uv run python bench/bench_app_pages.py``. Issue 5 asks that a page switch or a widget
change on the analytic path answers in under 300 ms. This measures the script run Streamlit
does for each interaction, driven headless by ``streamlit.testing.v1.AppTest`` on the serving
design, and prints each against two references measured in the same run:

* ``floor``: AppTest running a one-line script (``st.write("x")``): the framework's own cost,
  which no page can beat;
* the 300 ms target.

The browser adds a websocket round trip and rendering on top (tens of ms on localhost), which
this does not include.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

TARGET_MS = 300.0
REPEATS = 7


def timed(fn) -> float:
    """Median wall time of fn() in ms over REPEATS runs (after one warm-up)."""
    fn()
    samples = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def main() -> None:
    os.environ["SDW_WORKSPACE"] = tempfile.mkdtemp(prefix="sdw-bench-")
    floor_script = Path(tempfile.mkdtemp()) / "floor.py"
    floor_script.write_text("import streamlit as st\nst.write('x')\n")
    floor_at = AppTest.from_file(str(floor_script)).run()
    floor = timed(lambda: floor_at.run())

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.button(key="open_lib_llm_serving").click().run()
    assert at.session_state["design"].name == "llm_serving"

    rows: list[tuple[str, float]] = []
    for page in ("library", "builder", "capacity", "compare", "export", "practice"):
        path = f"app_pages/{page}.py"

        def switch(path=path):
            at.switch_page(path).run()
            assert not at.exception, [e.value for e in at.exception]

        rows.append((f"switch to {page}", timed(switch)))

    # An analytic what-if on the Capacity page: move the replicas slider of the LLM server
    # (a fresh estimate each time: every value is a new cache key).
    at.switch_page("app_pages/capacity.py").run()
    values = iter(range(18, 18 + REPEATS + 2))

    def what_if():
        slider = next(s for s in at.slider if str(s.label).startswith("Replicas of"))
        slider.set_value(next(values)).run()
        assert not at.exception, [e.value for e in at.exception]

    rows.append(("capacity what-if (new estimate)", timed(what_if)))

    print(f"{'interaction':34} {'median ms':>10} {'× floor':>8} {'÷ 300 ms':>9}  verdict")
    print(f"{'AppTest floor (one-line script)':34} {floor:10.1f} {1.0:8.2f} {floor / TARGET_MS:9.2f}")
    worst = 0.0
    for name, ms in rows:
        worst = max(worst, ms)
        verdict = "ok" if ms < TARGET_MS else "SLOW"
        print(f"{name:34} {ms:10.1f} {ms / floor:8.2f} {ms / TARGET_MS:9.2f}  {verdict}")
    print(f"\nworst interaction: {worst:.0f} ms = {worst / TARGET_MS:.2f} × the 300 ms target")


if __name__ == "__main__":
    main()
