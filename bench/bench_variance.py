"""Control variates on the serving design: honest intervals, fewer requests (issue 9).

Run with ``uv run python bench/bench_variance.py`` (``--seeds 20`` by default; ``--quick``
for 4; ``--design`` another LLM design; ``--reference-cache FILE`` keeps the reference between
runs of unchanged simulator results). For designs/library/llm_serving.yaml it prints

(a) a reference p95: one long run (``--reference-batches`` batches, 200 by default, seed
    10,000), its control-variate estimate and 95 % interval;
(b) for each seed the default run (precision 0.02): the p95, its interval with the control
    variates and the relative half-width plain batch means of the same batches would have
    had, the requests simulated and the requests needed for ±2 % with and without them;
(c) coverage: the share of seeds whose interval holds the reference p95 (target ≈ 95 %;
    with 20 seeds a binomial sd of ~5 %), the mean variance ratio and requests needed.

Measured once on 7 seeds × 60 batches (per-request records re-batched, 10 consecutive
batches per interval): batches of 5·L requests covered 96 % with control variates
(mean half-width 1.6 %) and 90 % with plain batch means (2.2 %).

Whole default runs, 2026-12-02 (``--seeds 20``, ~2 min of CPU, 8 min wall on the shared
machine): 18/20 = 90 % covered (binomial: P(≤ 18 | 95 %) = 0.26, consistent with 95 %),
mean half-width 1.04 % with control variates (1.93 % without), variance ratio 4.4× (mean),
94,815 requests per run. The same with batches of 3·L: 16/20 = 80 % (P(≤ 16 | 95 %) =
0.016: too narrow), so the engine keeps 5·L.

Later that day (issue 9b), against a 200-batch reference (10,410.6 ms ± 0.19 %; the 60-batch one
is ± 0.37 %, as wide as the runs' own errors, and shared by every seed): the code as it stood
covered 16/20, mean error −0.23 %, 102,800 requests per run (10.8 batches). A warm-up of 10·L
instead of 15·L: 19/20, −0.19 %, 95,106 requests. With it, stopping at 8 closed batches once 6
complete ones meet ±2 % (three controls, 2 df for that look; the result's interval has ≥ 4):
18/20 (19/20 allowing for the reference's error), mean error −0.16 % (± 0.25 % over seeds),
half-width 1.04 % (2.26 % without the controls), 87,008 requests (9.4 batches), 2.1 s CPU per
run in-process — the engine's default since. Rejected: the same 8-batch stop with the rule
limited to 4 df (fewer controls at 6 batches): 16/20 against the 60-batch reference and no
saving (10.0 batches, 97,854 requests: the one-control look rarely met ±2 %).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from designs.io import load_design  # noqa: E402
from sim.des.engine import simulate  # noqa: E402

DESIGN = Path(__file__).resolve().parents[1] / "designs" / "library" / "llm_serving.yaml"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--design", type=Path, default=DESIGN, help="an LLM design (default: the library's llm_serving)")
    ap.add_argument("--reference-batches", type=int, default=200)
    ap.add_argument("--reference-cache", type=Path, default=None,
                    help="JSON file keeping the reference (reused when its batches match; delete it when the "
                         "simulator's results change)")
    ap.add_argument("--quick", action="store_true", help="4 seeds, a 20-batch reference")
    args = ap.parse_args()
    seeds = 4 if args.quick else args.seeds
    ref_k = 20 if args.quick else args.reference_batches
    d = load_design(args.design)
    t0 = time.process_time()
    cached = json.loads(args.reference_cache.read_text()) if args.reference_cache and args.reference_cache.exists() else None
    if cached is None or cached["batches"] != ref_k or cached.get("design", d.name) != d.name:
        r = simulate(d, seed=10_000, replications=ref_k, max_requests=50_000_000, max_seconds=36_000)
        cached = {"design": d.name, "batches": ref_k, "p95": r.latency_ms.p95, "ci": list(r.latency_ms_ci95.p95),
                  "requests": r.simulated_requests, "cpu_s": time.process_time() - t0}
        if args.reference_cache:
            args.reference_cache.write_text(json.dumps(cached))
    ref_p95, (lo, hi) = cached["p95"], cached["ci"]
    ref_hw = (hi - lo) / 2
    print(f"reference: p95 {ref_p95:,.1f} ms (95 % CI {lo:,.1f}–{hi:,.1f}, ±{ref_hw / ref_p95:.2%}), {ref_k} batches, "
          f"{cached['requests']:,} requests, {cached['cpu_s']:.0f} s CPU", flush=True)
    # The reference is one run with an error of its own, shared by every seed: a run's interval
    # is also judged widened by it, √(hw² + hw_ref²) (the two errors are independent).
    hits_wide = 0
    hits, ratios, prec, prec0, used, need, need0, cpu, err, nb = 0, [], [], [], [], [], [], [], [], []
    print(f"\n{'seed':>4}  {'p95 ms':>9}  {'±CV':>6}  {'±plain':>6}  {'requests':>9}  {'batches':>7}  {'needed':>8}  "
          f"{'w/o CV':>8}  in CI")
    for seed in range(seeds):
        t = time.process_time()
        r = simulate(d, seed=seed, max_seconds=3600)
        cpu.append(time.process_time() - t)
        vr = r.variance_reduction
        lo, hi = r.latency_ms_ci95.p95
        ok = lo <= ref_p95 <= hi
        hits += ok
        hw = (hi - lo) / 2
        hits_wide += abs(r.latency_ms.p95 - ref_p95) <= (hw * hw + ref_hw * ref_hw) ** 0.5
        ratios.append(vr.variance_ratio_p95)
        prec.append(r.precision_achieved)
        prec0.append(vr.precision_without)
        used.append(r.simulated_requests)
        need.append(vr.requests_needed)
        need0.append(vr.requests_needed_without)
        err.append(r.latency_ms.p95 / ref_p95 - 1)
        nb.append(r.replications)
        print(f"{seed:>4}  {r.latency_ms.p95:>9,.1f}  {r.precision_achieved:>6.2%}  {vr.precision_without:>6.2%}  "
              f"{r.simulated_requests:>9,}  {r.replications:>7}  {vr.requests_needed:>8,}  {vr.requests_needed_without:>8,}  "
              f"{'yes' if ok else 'NO'}", flush=True)
    print(f"\ncoverage of the reference p95: {hits}/{seeds} = {hits / seeds:.0%} (target ≈ 95 %); "
          f"allowing for the reference's own error: {hits_wide}/{seeds} = {hits_wide / seeds:.0%}")
    print(f"variance ratio on the p95: mean {statistics.mean(ratios):.2f}×, median {statistics.median(ratios):.2f}×")
    print(f"relative half-width: {statistics.mean(prec):.2%} with control variates, {statistics.mean(prec0):.2%} without")
    se = statistics.stdev(err) / len(err) ** 0.5 if len(err) > 1 else float("nan")
    print(f"error vs the reference: mean {statistics.mean(err):+.2%} (± {1.96 * se:.2%} over seeds, "
          f"± {ref_hw / ref_p95:.2%} the reference's own), "
          f"mean |error| {statistics.mean(abs(e) for e in err):.2%}; {statistics.mean(nb):.1f} batches per run")
    print(f"requests: {statistics.mean(used):,.0f} simulated; needed for ±2 %: {statistics.mean(need):,.0f} with, "
          f"{statistics.mean(need0):,.0f} without; {statistics.mean(cpu):.1f} s CPU per run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
