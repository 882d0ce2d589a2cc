"""Control variates on the serving design: honest intervals, fewer requests (issue 9).

Run with ``uv run python bench/bench_variance.py`` (``--seeds 20`` by default; ``--quick``
for 4; ``--design`` another LLM design; ``--reference-cache FILE`` keeps the reference between
runs of unchanged simulator results; ``--transient 20`` the warm-up transient instead, see
`transient`). For designs/library/llm_serving.yaml it prints

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


def transient(d, batches: int, seeds: int) -> int:
    """The warm-up question: runs from (almost) empty in batches of 2·L arrivals (L = the
    twin's requests in flight), each batch's p95 and mean adjusted by the control variates
    (coefficients fitted on the second half of the batches, pooled over seeds), printed by
    batch index relative to that steady half. Where the deficit vanishes is the transient.

    2026-12-02 05:04 (`--transient 20 --transient-seeds 12`, llm_serving, 25 s CPU): first
    2·L −10.5 % ± 1.4 on the p95, next −3.7 % ± 1.8, 4–6·L −1.0 % ± 1.4, 6–8·L −1.3 % ± 1.1
    (the mean −2.0 % ± 1.2 and −1.1 % ± 1.2), within noise after 8·L (8–14·L: +0.2, +0.1,
    +0.7 %) → the engine's 10·L warm-up for LLM runs. The last two batches dip (−1.8 %,
    −0.6 %): the drain cap of such short batches (3 × 2·L arrivals) cuts the slowest answers.
    """
    import sim.des.engine as E
    from sim.des.control import batch_controls, control_plan
    from sim.des.summary import q95
    from sim.twin.analytic import estimate

    plan = control_plan(d)
    est = estimate(d)
    L = max(1, round(est.arrival_rps * est.latency_ms_mean / 1000.0))
    rep_plan, build = E._rep_plan, E.build_result
    grabbed: list = []

    def grab(**kw):
        grabbed.append(list(kw["outs"]))
        return build(**kw)

    E._rep_plan, E.build_result = (lambda est, wl, *a: (2 * L, 200)), grab
    rows = []
    try:
        for seed in range(seeds):
            E.simulate(d, seed=100 + seed, replications=batches, max_requests=50_000_000, max_seconds=36_000)
            outs = [o for o in grabbed[-1] if o.finalize()["n"]]
            for i, (o, x) in enumerate(zip(outs, batch_controls(plan, outs, "p95"))):
                rows.append((i, q95(o), o.finalize()["mean"], x))
    finally:
        E._rep_plan, E.build_result = rep_plan, build
    half = batches // 2
    steady = [r for r in rows if r[0] >= half]

    def beta(col: int) -> list[float]:  # OLS slopes of column `col` on the controls (centred)
        k, q = len(steady), len(steady[0][3])
        yb = sum(r[col] for r in steady) / k
        xb = [sum(r[3][j] for r in steady) / k for j in range(q)]
        S = [[sum((r[3][a] - xb[a]) * (r[3][b] - xb[b]) for r in steady) for b in range(q)] for a in range(q)]
        v = [sum((r[3][a] - xb[a]) * (r[col] - yb) for r in steady) for a in range(q)]
        from sim.des.control import _inverse

        inv = _inverse(S)
        return [sum(inv[a][b] * v[b] for b in range(q)) for a in range(q)]

    b95, bm = beta(1), beta(2)
    adj = [(i, p - sum(b * x for b, x in zip(b95, xs)), m - sum(b * x for b, x in zip(bm, xs))) for i, p, m, xs in rows]
    ref95 = statistics.mean(a[1] for a in adj if a[0] >= half)
    refm = statistics.mean(a[2] for a in adj if a[0] >= half)
    print(f"{d.name}: L = {L:,}, {seeds} seeds × {batches} batches of 2·L after 200 arrivals; steady half: "
          f"p95 {ref95:.3f} s, mean {refm:.3f} s")
    for i in range(batches):
        v = [a[1] / ref95 - 1 for a in adj if a[0] == i]
        m = [a[2] / refm - 1 for a in adj if a[0] == i]
        if len(v) < 2:
            continue
        lo, hi = (200 + i * 2 * L) / L, (200 + (i + 1) * 2 * L) / L
        print(f"  batch {i:2d} ({lo:4.1f}–{hi:4.1f}·L): p95 {statistics.mean(v):+.2%} ± "
              f"{1.96 * statistics.stdev(v) / len(v) ** 0.5:.2%}   mean {statistics.mean(m):+.2%} ± "
              f"{1.96 * statistics.stdev(m) / len(m) ** 0.5:.2%}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--design", type=Path, default=DESIGN, help="an LLM design (default: the library's llm_serving)")
    ap.add_argument("--reference-batches", type=int, default=200)
    ap.add_argument("--reference-cache", type=Path, default=None,
                    help="JSON file keeping the reference (reused when its batches match; delete it when the "
                         "simulator's results change)")
    ap.add_argument("--quick", action="store_true", help="4 seeds, a 20-batch reference")
    ap.add_argument("--transient", type=int, default=0, metavar="BATCHES",
                    help="instead: the warm-up transient over this many batches of 2·L (see `transient`)")
    ap.add_argument("--transient-seeds", type=int, default=12)
    args = ap.parse_args()
    if args.transient:
        return transient(load_design(args.design), args.transient, args.transient_seeds)
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
