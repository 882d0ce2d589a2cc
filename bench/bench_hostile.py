"""Hostile-input benchmark (issue 14): parse time per MB, worst-case cancel latency, budget overrun.

Run with ``uv run python bench/bench_hostile.py`` (about a minute). Timing bounds live here,
not in the tests. Each figure is printed with a reference measured in the same run, so the
ratios travel between machines:

1. **Parse time per MB.** Hostile files — a token-dense list under the byte cap, 16,000
   unknown keys, 1,000 edges to misspelt ids, 16,000 nested ``[`` — against the reference
   ``json.loads`` of a JSON file of the same size (a C parser doing the least possible).
   Before issue 14 the same files took 40 s, 45 s, 32 s and > 60 s. Target: each refused or
   reported in well under 2 s (the token cap bounds a file to ~1 s of composing).
2. **Cancel latency.** A run whose cancel event is set after 1 s, per design (a 10,000-visit
   loop, a million closed-loop users, the library's LLM server, an agent loop): the time from
   `set()` to `simulate` returning. Target ≤ 0.5 s (was 58.6 s on the loop).
3. **Budget overrun.** `simulate(max_seconds=2)` wall time over the budget for the same
   designs plus the 500-user, 500-station closed loop (the twin inside the budget: its MVA took
   67 s) and thirty services with back edges from the last to every earlier one (refused before
   running by the visit equations). Target: overrun ≤ 0.5 s beyond the budget in the engine
   (the CLI adds start-up). 2026-12-02, load average ~5 on 2 cores: 500 × 500 0.17 s over (was
   4.8 s: the twin's visit walks were quadratic on a chain and its MVA stepped station by
   station; the run's TTFT/TPOT CDFs took 256 selections per batch after the deadline: the
   agent workflow 2.7 s over), agent workflow 0.09 s, the rest ≤ 0.12 s.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from designs.io import MAX_DEPTH, MAX_FILE_BYTES, MAX_TOKENS, DesignFileError, load_design, parse_design  # noqa: E402
from designs.model import Design  # noqa: E402
from sim import simulate  # noqa: E402

LIB = Path(__file__).resolve().parents[1] / "designs" / "library"


def hostile_texts() -> dict[str, str]:
    comps = "".join(f"  - {{id: c{i}, kind: service}}\n" for i in range(500))
    return {
        "dense list (token cap)": "name: x\nassumptions: [" + "1," * (MAX_TOKENS // 2 + 100) + "1]\n",
        "16,000 unknown keys": "name: x\nworkload:\n" + "".join(f"  k{i}: 1\n" for i in range(16_000))
                               + "components:\n  - {id: a, kind: service}\nentry: a\n",
        "1,000 misspelt edges": "name: x\nworkload: {}\ncomponents:\n" + comps + "entry: c0\nflow:\n"
                                + "".join(f"  - {{from: cx{i}, to: cy{i}}}\n" for i in range(1000)),
        "16,000 nested [": "name: " + "[" * 16_000 + "]" * 16_000 + "\n",
        f"{MAX_DEPTH} levels of [a, …": "name: " + "[a, " * MAX_DEPTH + "]" * MAX_DEPTH + "\n",
        "4.9 MB of assumptions": "name: x\nassumptions:\n" + "".join(
            f"  - assumption number {i} with some words\n" for i in range(4_900_000 // 40)),
    }


def bench_parse() -> None:
    print(f"1. Parse time per MB (byte cap {MAX_FILE_BYTES / 2**20:.0f} MB, token cap {MAX_TOKENS:,})")
    print(f"   {'file':28s} {'MB':>6s} {'s':>7s} {'s/MB':>7s} {'json.loads s':>13s} {'ratio':>7s}  outcome")
    for name, text in hostile_texts().items():
        mb = len(text.encode()) / 1e6
        t = time.perf_counter()
        try:
            parse_design(text, "h.yaml")
            outcome = "valid"
        except DesignFileError as e:
            outcome = f"{len(e.problems)} problem(s): {e.problems[0].message[:50]}"
        s = time.perf_counter() - t
        ref_text = json.dumps({"x": text})
        t = time.perf_counter()
        json.loads(ref_text)
        ref = max(time.perf_counter() - t, 1e-6)
        print(f"   {name:28s} {mb:6.2f} {s:7.3f} {s / max(mb, 1e-3):7.2f} {ref:13.4f} {s / ref:7.0f}  {outcome}")


def _chain(n, back=(), workload=None, mean_ms=1.0) -> Design:
    comps = [{"id": f"s{i}", "kind": "service", "concurrency": 8,
              "service_time": {"dist": "exponential", "mean_ms": mean_ms}} for i in range(n)]
    flow = [{"from": f"s{i}", "to": f"s{i + 1}"} for i in range(n - 1)] + list(back)
    return Design.model_validate({"name": f"chain{n}", "workload": workload or {"arrival_rps": 0.5},
                                  "components": comps, "entry": "s0", "flow": flow})


def designs() -> dict[str, Design]:
    return {
        "loop 10 × 1000 (p 1)": _chain(10, back=[{"from": "s9", "to": "s0", "p": 1, "max_repeats": 1000}]),
        "10^6 closed-loop users": _chain(2, workload={"concurrent_users": 10**6,
                                                      "think_time": {"dist": "fixed", "value_ms": 1000}}),
        "llm_serving (library)": load_design(LIB / "llm_serving.yaml"),
        "agent_workflow (library)": load_design(LIB / "agent_workflow.yaml"),
        "500 users × 500 stations": _chain(500, workload={"concurrent_users": 500,
                                                          "think_time": {"dist": "fixed", "value_ms": 1000}}),
        # refused before running (visit equations: ~409,000 visits a request), not after the work allowance
        "30 back edges (p 0.5)": _chain(30, back=[{"from": "s29", "to": f"s{k}", "p": 0.5, "max_repeats": 1000}
                                                  for k in range(29)]),
    }


def bench_cancel(ds: dict[str, Design]) -> None:
    print("\n2. Cancel latency: cancel set 1 s into the run (target ≤ 0.5 s)")
    print(f"   {'design':28s} {'latency s':>10s} {'run s':>7s}  stopped by")
    worst = 0.0
    for name, d in ds.items():
        ev = threading.Event()
        stamp = {}

        def fire():
            time.sleep(1.0)
            stamp["t"] = time.perf_counter()
            ev.set()

        threading.Thread(target=fire, daemon=True).start()
        t0 = time.perf_counter()
        try:
            how = simulate(d, seed=1, max_seconds=120, cancel=ev).stopped_by
        except Exception as e:  # noqa: BLE001 - a refusal is an answer too
            how = f"{type(e).__name__}"
        t1 = time.perf_counter()
        lat = t1 - stamp.get("t", t1)
        worst = max(worst, lat)
        print(f"   {name:28s} {lat:10.3f} {t1 - t0:7.2f}  {how}")
    print(f"   worst-case cancel latency: {worst:.3f} s")


def bench_overrun(ds: dict[str, Design], budget: float = 2.0) -> None:
    print(f"\n3. Budget overrun: simulate(max_seconds={budget:g}) (target ≤ 0.5 s over)")
    print(f"   {'design':28s} {'wall s':>7s} {'over s':>7s} {'ratio':>6s}  stopped by")
    for name, d in ds.items():
        t0 = time.perf_counter()
        try:
            how = simulate(d, seed=1, max_seconds=budget).stopped_by
        except Exception as e:  # noqa: BLE001
            how = f"{type(e).__name__}"
        w = time.perf_counter() - t0
        print(f"   {name:28s} {w:7.2f} {w - budget:7.2f} {w / budget:6.2f}  {how}")


def main() -> None:
    bench_parse()
    ds = designs()
    bench_cancel(ds)
    bench_overrun(ds)


if __name__ == "__main__":
    main()
