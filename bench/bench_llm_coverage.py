"""Coverage of `sdw run`'s TTFT and TPOT p95 intervals on the library serving design.

`bench/bench_variance.py` checks the end-to-end p95's interval; this checks the two LLM
metrics the serving SLOs are written on. A long reference run (fixed batches, seed 10,000)
gives the long-run p95s; each default run (seeds 0…N−1, `sdw run`'s plan and stopping rule)
counts as covering when its 95 % interval holds the reference value.

Run with ``uv run python bench/bench_llm_coverage.py [--seeds 20] [--ref-batches 120]``
(about 1.5 CPU-minutes on this 2-core machine). Target ≈ 95 % (≥ 90 %).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from designs.io import load_design  # noqa: E402
from sim import simulate  # noqa: E402

DESIGN = Path(__file__).resolve().parents[1] / "designs" / "library" / "llm_serving.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--ref-batches", type=int, default=120)
    a = ap.parse_args()
    d = load_design(DESIGN)
    t = time.process_time()
    ref = simulate(d, seed=10_000, replications=a.ref_batches, max_requests=5_000_000, max_seconds=900)
    print(f"reference: {ref.simulated_requests:,} requests, {a.ref_batches} batches, {time.process_time() - t:.0f} CPU-s; "
          f"TTFT p95 {ref.ttft_ms.p95:.2f} ms ({ref.ttft_ms_ci95.p95[0]:.2f}–{ref.ttft_ms_ci95.p95[1]:.2f}), "
          f"TPOT p95 {ref.tpot_ms.p95:.3f} ms ({ref.tpot_ms_ci95.p95[0]:.3f}–{ref.tpot_ms_ci95.p95[1]:.3f})")
    hits = {"TTFT": 0, "TPOT": 0}
    reqs = 0
    for s in range(a.seeds):
        r = simulate(d, seed=s)
        reqs += r.simulated_requests
        line = [f"seed {s:2d}: {r.simulated_requests:,} requests, {r.replications} batches"]
        for name, pct, ci, rv in (("TTFT", r.ttft_ms, r.ttft_ms_ci95, ref.ttft_ms.p95),
                                  ("TPOT", r.tpot_ms, r.tpot_ms_ci95, ref.tpot_ms.p95)):
            lo, hi = ci.p95
            ok = lo <= rv <= hi
            hits[name] += ok
            line.append(f"{name} {lo:.2f}–{hi:.2f}{'' if ok else ' MISS'}")
        print("   " + "; ".join(line), flush=True)
    print(f"coverage over {a.seeds} seeds: TTFT p95 {hits['TTFT']}/{a.seeds}, TPOT p95 {hits['TPOT']}/{a.seeds}; "
          f"mean {reqs / a.seeds:,.0f} requests a run   target ≈ 95 % (≥ 90 %)")


if __name__ == "__main__":
    main()
