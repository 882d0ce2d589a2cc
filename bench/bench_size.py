"""Sizing-search benchmark (issue 10): twin throughput, time to answer, regret, parallel speed-up.

Run with ``uv run python bench/bench_size.py`` (``--quick`` skips the K = 5 runs and the Dask
cluster). Every figure is printed with the reference it is compared with, measured in the same
run, because the machine is shared and absolute times move:

1. **twin throughput** on the library serving design: (a) points evaluated per second by the
   memoised `TwinEvaluator` while bisecting (warm: one candidate's LLM capacity computed
   once), (b) candidates sized per second from cold (each new LLM configuration pays the
   twin's capacity computation, 50–200 ms), against (c) full `estimate()` calls per second.
   Target: ≥ 1,000 candidates/s on one core.
2. **time to answer** per library design, twin only (target < 10 s) and verified with K = 5 on
   2 local workers (target < 60 s).
3. **regret**: the search's verified winner on a small space (H100 BF16/FP8, replicas around
   the answer) against the cheapest design a brute-force simulated grid of the same space finds
   passing (same seed, same pass rule: 95 % CI upper ends). Target ≤ 5 %.
4. **speed-up** of 2 local workers over 1, and of a 2-worker local Dask cluster over 1 worker,
   on the same verified search (K = 2).
5. **answer keys in simulation**: every practice reference simulated once (seed 0): SLOs by the
   CI's upper ends and the budget (`--only keys`; `--keys a,b` picks prompts).
6. **the serving design verified** (`--only verify`): the check that was
   tests/test_search.py's slowest test (~270 CPU-s a run): the search on H100 BF16 with
   K = 1 is verified by simulation below the 17 replicas as given and cheaper, every SLO met
   at its 95 % interval's upper end; PASS/FAIL.
7. **coverage of verification intervals** (`--only coverage [--design top|h100] [--seeds N]
   [--relaxations R] [--sojourns S] [--ref-batches B]`; not in the default set, ~5–10 CPU-min):
   the share of seeds whose TTFT/TPOT p95 interval from a verification run (batches of
   `VERIFY_RELAXATIONS` relaxation times, ≥ `VERIFY_SOJOURNS` × in system) holds a long run of
   the engine's default plan, and how often the upper end (the pass test) is below it. Target
   ≥ 90 % of 20 seeds (≈ 95 %). The figures behind `sim.search.verify.VERIFY_RELAXATIONS`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from designs.io import load_design  # noqa: E402
from designs.space import SearchSpace  # noqa: E402
from sim import estimate, simulate, size  # noqa: E402
from sim.search.sizing import TwinEvaluator, size_candidate  # noqa: E402
from sim.search.space import resolve  # noqa: E402
from sim.search.verify import SIM_PRECISION, VERIFY_RELAXATIONS, VERIFY_SOJOURNS, sim_checks  # noqa: E402

LIB = Path(__file__).resolve().parents[1] / "designs" / "library"
SERVING = LIB / "llm_serving.yaml"


def throughput() -> None:
    d = load_design(SERVING)
    sp = resolve(d)
    cand = next(c for c in sp.candidates if c.values("llm")["gpu"] == "H100-SXM-80GB" and c.values("llm")["max_batch"] == 256)
    ev = TwinEvaluator(d)
    size_candidate(ev, cand, sp.sized)  # warm: the LLM capacity is memoised in sim.llm.twin
    n, pts, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        ev._st.clear()  # noqa: SLF001 - every station recomputed, only the LLM capacity kept
        before = ev.evaluations
        size_candidate(ev, cand, sp.sized)
        pts += ev.evaluations - before
        n += 1
    dt = time.perf_counter() - t0
    warm_cand, pts = n / dt, pts / dt
    from sim.llm import twin as llm_twin

    cold = sp.candidates[:24]
    ev2 = TwinEvaluator(d)
    llm_twin._CACHE.clear()  # noqa: SLF001
    t0 = time.perf_counter()
    for c in cold:
        size_candidate(ev2, c, sp.sized)
    cold_rate = len(cold) / (time.perf_counter() - t0)
    est_n, t0 = 0, time.perf_counter()
    dd = cand.apply(d, {cid: 1 for cid in sp.sized} | {"llm": 14})
    while time.perf_counter() - t0 < 2.0:
        estimate(dd)
        est_n += 1
    est_rate = est_n / (time.perf_counter() - t0)
    print("1. twin throughput (llm_serving, one core)")
    import sim.search.search as search_mod

    llm_twin._CACHE.clear()  # noqa: SLF001 - from cold: every LLM configuration computes its capacity
    search_mod._EVALUATORS.clear()  # noqa: SLF001
    t0, c0 = time.perf_counter(), time.process_time()
    r = size(d, verify=0, workers=1)
    whole = r.candidates_total / (time.perf_counter() - t0)
    whole_cpu = r.candidates_total / max(1e-9, time.process_time() - c0)
    print(f"   reference: full estimate() calls/s: {est_rate:,.0f}")
    print(f"   twin points/s inside a sizing (stations recomputed, LLM capacity memoised): {pts:,.0f} "
          f"= {pts / est_rate:.2f}× estimate(); candidates sized/s: {warm_cand:,.1f}")
    print(f"   candidates sized/s from cold (each new LLM configuration computes its capacity): {cold_rate:,.1f}")
    print(f"   whole default space: {r.candidates_total} candidates ({r.candidates_evaluated} sized, "
          f"{r.candidates_pruned} pruned by the cost bound), from cold → {whole:,.0f} candidates/s wall, "
          f"{whole_cpu:,.0f} per CPU-second   target ≥ 1,000/s")


def time_to_answer(quick: bool) -> None:
    print("2. time to answer (library designs)")
    for f in sorted(LIB.glob("*.yaml")):
        d = load_design(f)
        t0 = time.perf_counter()
        r = size(d, verify=0, workers=1)
        twin = time.perf_counter() - t0
        line = (f"   {f.stem:<18} twin only {twin:6.2f} s ({r.candidates_evaluated} sized, {r.candidates_pruned} pruned) "
                f"→ {r.status}: ${(r.winner.cost_per_day_usd if r.winner else float('nan')):,.0f}/day vs "
                f"${r.baseline.cost_per_day_usd:,.0f} as given")
        if not quick:
            t0 = time.perf_counter()
            rv = size(d, verify=5, workers=2, seed=0)
            kv = time.perf_counter() - t0
            w = rv.winner
            line += (f"; K=5 on 2 workers {kv:6.1f} s ({rv.simulations} sims) → "
                     + (f"${w.sim_cost_per_day_usd:,.0f}/day verified" if w and w.verified else str(rv.status)))
        print(line, flush=True)
    print("   targets: twin only < 10 s; K = 5 < 60 s on 2 cores")


def regret() -> None:
    d = load_design(SERVING)
    space = SearchSpace.model_validate({"components": {"llm": {"gpu": ["H100-SXM-80GB"], "precision": ["bf16", "fp8"],
                                                               "gpus_per_replica": [1], "max_batch": [256],
                                                               "chunked_prefill_tokens": [None]}}})
    t0 = time.perf_counter()
    r = size(d, space=space, verify=2, workers=2, seed=0, max_seconds=1800)
    ts = time.perf_counter() - t0
    w = r.winner
    # Brute force: every (precision, replicas) in a window around each family's twin answer.
    t0 = time.perf_counter()
    best, sims = None, 0
    for ch in r.frontier:
        cand = next(c for c in resolve(d, space).candidates if c.label() == ch.candidate)
        n = ch.replicas["llm"]
        for reps in range(max(1, n - 2), n + 3):
            counts = dict(ch.replicas, llm=reps)
            res = simulate(cand.apply(d, counts), seed=0, precision=SIM_PRECISION, max_seconds=600)
            sims += 1
            if all(c.met for c in sim_checks(d, res)):
                cost = res.cost_per_day_usd
                best = cost if best is None else min(best, cost)
    tb = time.perf_counter() - t0
    win = w.sim_cost_per_day_usd if w.verified else w.cost_per_day_usd
    print("3. regret (llm_serving, H100 BF16/FP8 × replicas, seed 0)")
    print(f"   search: ${win:,.0f}/day ({w.candidate}, {w.sim_replicas}) in {ts:.1f} s; brute-force grid of {sims} "
          f"simulations: ${best:,.0f}/day in {tb:.1f} s → regret {(win - best) / best:+.1%}   target ≤ 5 %")


def speedup(quick: bool) -> None:
    d = load_design(SERVING)
    t0 = time.perf_counter()
    a = size(d, verify=2, workers=1, seed=0)
    t1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = size(d, verify=2, workers=2, seed=0)
    t2 = time.perf_counter() - t0
    same = a.to_json() | {"wall_s": 0} == b.to_json() | {"wall_s": 0}
    print("4. speed-up (llm_serving, default space, K = 2)")
    print(f"   1 worker {t1:.1f} s, 2 local workers {t2:.1f} s → {t1 / t2:.2f}× (identical result: {same})")
    if quick:
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as c:
        t0 = time.perf_counter()
        r = size(d, verify=2, executor=c.scheduler_address, seed=0)
        t3 = time.perf_counter() - t0
    same = a.to_json() | {"wall_s": 0} == r.to_json() | {"wall_s": 0}
    print(f"   2-worker local Dask cluster {t3:.1f} s → {t1 / t3:.2f}× over 1 worker (identical result: {same})")


def answer_keys(only: str | None = None) -> None:
    from review.prompts import load_prompts, reference_design

    print("5. answer keys in simulation (seed 0, 95 % CI upper ends)")
    prompts = {p.id: p for p in load_prompts()}
    for pid in (only.split(",") if only else list(prompts)):  # in the order given
        p = prompts[pid]
        ref = reference_design(p)
        t0, c0 = time.perf_counter(), time.process_time()
        # Runs end on their precision rule (the wall clock only a safety net of an hour).
        res = simulate(ref, seed=0, precision=SIM_PRECISION, max_seconds=3600)
        chk = sim_checks(ref, res)
        bad = [f"{c.metric} {'no CI' if c.upper is None else f'{c.upper:,.4g}'} vs {c.target:,.4g}" for c in chk if not c.met]
        n1 = ""
        if p.requirements.availability is not None and ref.workload.batch is None:
            # N−1 in simulation: the costliest replicated component one replica down.
            from sim.cost import daily_cost

            costs = {ln.id: ln.usd_per_day for ln in daily_cost(ref)[1]}
            pools = [c for c in ref.components if getattr(c, "replicas", 0) >= 2]
            if pools:
                c = max(pools, key=lambda c: (costs.get(c.id, 0.0), c.id))
                down = ref.model_copy(update={"components": [x.model_copy(update={"replicas": x.replicas - 1})
                                                             if x.id == c.id else x for x in ref.components]})
                r2 = simulate(down, seed=0, precision=SIM_PRECISION, max_seconds=3600)
                miss = [f"{k.metric} {'no CI' if k.upper is None else f'{k.upper:,.4g}'} vs {k.target:,.4g}"
                        for k in sim_checks(down, r2) if not k.met and k.metric not in ("cost_per_day_usd", "availability")]
                n1 = f"; N−1 ({c.id} {c.replicas} → {c.replicas - 1}): " + ("PASS" if not miss else "FAIL " + "; ".join(miss))
                bad += [f"N−1 {m}" for m in miss]
        print(f"   {p.id:<20} {'PASS' if not bad else 'FAIL'} ${res.cost_per_day_usd:,.0f}/day "
              f"({time.perf_counter() - t0:.0f} s, {time.process_time() - c0:.0f} CPU-s, {res.stopped_by})"
              f"{'  ' + '; '.join(b for b in bad if not b.startswith('N−1')) if bad else ''}{n1}", flush=True)


def verify_serving() -> None:
    d = load_design(SERVING)
    space = SearchSpace.model_validate({"components": {"llm": {"gpu": ["H100-SXM-80GB"], "precision": ["bf16"],
                                                               "gpus_per_replica": [1], "max_batch": [256],
                                                               "chunked_prefill_tokens": [None]}}})
    t0, c0 = time.perf_counter(), time.process_time()
    r = size(d, space=space, verify=1, seed=0, max_seconds=3600)
    w = r.winner
    ttft = next((c for c in w.sim or [] if c.metric == "ttft_p95_ms"), None)
    moved = w.sim_replicas and w.sim_replicas["llm"] != w.replicas["llm"]
    ok = (w.verified is True and all(c.met for c in w.sim) and w.sim_replicas["llm"] < 17
          and w.sim_cost_per_day_usd < r.baseline.cost_per_day_usd and ttft is not None and ttft.upper <= 1000
          and (not moved or any(o.twin_replicas == w.replicas["llm"] for o in r.overturned)))
    print("6. the serving design verified (H100 BF16, K = 1, seed 0)")
    print(f"   twin {w.replicas['llm']} → simulation {w.sim_replicas['llm'] if w.sim_replicas else '-'} replicas, "
          f"${w.sim_cost_per_day_usd or float('nan'):,.0f}/day vs ${r.baseline.cost_per_day_usd:,.0f} as given (17); "
          + ", ".join(f"{c.metric} {c.value:,.4g} (upper {c.upper:,.4g} vs {c.target:,.4g})" for c in w.sim or []
                      if c.upper is not None)
          + f"; {r.simulations} runs, {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} CPU-s → "
          + ("PASS" if ok else "FAIL"))


def _coverage_design(which: str):
    """The serving design at the verification's hardest point: the search's cheapest candidate
    (`top`: MI300X FP8 TP1 batch 256, 5 replicas, slot occupancy ρ ≈ 0.97) or the twin's
    answer on H100 BF16 batch 256 (`h100`)."""
    d = load_design(SERVING)
    if which == "h100":
        space = SearchSpace.model_validate({"components": {"llm": {"gpu": ["H100-SXM-80GB"], "precision": ["bf16"],
                                                                   "gpus_per_replica": [1], "max_batch": [256],
                                                                   "chunked_prefill_tokens": [None]}}})
        r = size(d, space=space, verify=0, workers=1)
        sp = resolve(d, space)
        counts = r.frontier[0].replicas
    else:
        r = size(d, verify=0, workers=1)
        sp = resolve(d)
        counts = r.frontier[0].replicas
    cand = next(c for c in sp.candidates if c.label() == r.frontier[0].candidate)
    v = cand.apply(d, counts)
    return d, v, f"{cand.label()} × {counts['llm']}, ρ = {estimate(v).stations['llm'].utilization:.3f}"


def coverage(seeds: int, relaxations: float, sojourns: float, which: str, ref_batches: int) -> None:
    """Do the verification runs' 95 % intervals (batches of `relaxations` relaxation times)
    hold the long-run p95s? Reference: one run of the engine's default plan (100 relaxation
    times per batch) with `ref_batches` batches, seed 10,000."""
    base, d, label = _coverage_design(which)
    mets = [m for m in ("latency_p95_ms", "ttft_p95_ms", "tpot_p95_ms") if getattr(base.slo, m) is not None]
    c0 = time.process_time()
    ref = simulate(d, seed=10_000, replications=ref_batches, max_requests=50_000_000, max_seconds=36_000)
    refv = {x.metric: x.value for x in sim_checks(base, ref) if x.metric in mets}
    refci = {m: getattr(ref, a).p95 for m, a in (("latency_p95_ms", "latency_ms_ci95"), ("ttft_p95_ms", "ttft_ms_ci95"),
                                                  ("tpot_p95_ms", "tpot_ms_ci95")) if m in mets}
    print(f"7. coverage of verification intervals ({label}; batches of {relaxations:g} relaxation times, "
          f"at least {sojourns:g} × the requests in system, "
          f"precision {SIM_PRECISION:g})")
    print(f"   reference (default plan, {ref_batches} batches, seed 10,000, {ref.simulated_requests:,} requests, "
          f"{time.process_time() - c0:.0f} CPU-s): " + ", ".join(
              f"{m} {refv[m]:,.2f} ({refci[m][0]:,.2f}–{refci[m][1]:,.2f})" for m in mets), flush=True)
    hit = {m: 0 for m in mets}
    upper_ok = {m: 0 for m in mets}
    widths = {m: [] for m in mets}
    reqs, cpu = [], []
    for seed in range(seeds):
        c0 = time.process_time()
        r = simulate(d, seed=seed, precision=SIM_PRECISION, max_seconds=3600, relaxations=relaxations,
                     sojourns=sojourns)
        cpu.append(time.process_time() - c0)
        reqs.append(r.simulated_requests)
        row = []
        for m, a in (("latency_p95_ms", "latency_ms_ci95"), ("ttft_p95_ms", "ttft_ms_ci95"), ("tpot_p95_ms", "tpot_ms_ci95")):
            if m not in mets:
                continue
            lo, hi = getattr(r, a).p95
            v = refv[m]
            hit[m] += lo <= v <= hi
            upper_ok[m] += v <= hi
            widths[m].append((hi - lo) / 2 / max(1e-12, (hi + lo) / 2))
            row.append(f"{m} {lo:,.2f}–{hi:,.2f}{'' if lo <= v <= hi else ' MISS'}")
        print(f"   seed {seed:>2}: {r.simulated_requests:,} requests, {r.replications} batches, {cpu[-1]:.1f} CPU-s; "
              + "; ".join(row), flush=True)
    print(f"   coverage over {seeds} seeds: " + ", ".join(
        f"{m} {hit[m]}/{seeds} (upper end ≥ reference {upper_ok[m]}/{seeds}, mean half-width "
        f"{sum(widths[m]) / seeds:.2%})" for m in mets)
          + f"; mean {sum(reqs) / seeds:,.0f} requests, {sum(cpu) / seeds:.1f} CPU-s a run   target ≥ 90 %")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("throughput", "answer", "regret", "speedup", "keys", "verify", "coverage"))
    ap.add_argument("--seeds", type=int, default=20, help="--only coverage: seeds (default 20)")
    ap.add_argument("--relaxations", type=float, default=None,
                    help="--only coverage: batch length in relaxation times (default: the verification's)")
    ap.add_argument("--sojourns", type=float, default=None,
                    help="--only coverage: least batch length in requests in system (default: the verification's)")
    ap.add_argument("--design", choices=("top", "h100"), default="top", help="--only coverage: which operating point")
    ap.add_argument("--ref-batches", type=int, default=20, help="--only coverage: reference batches (default 20)")
    ap.add_argument("--keys", help="comma-separated prompt ids for --only keys (default: all 15)")
    a = ap.parse_args()
    steps = {"throughput": throughput, "answer": lambda: time_to_answer(a.quick), "regret": regret,
             "speedup": lambda: speedup(a.quick), "keys": lambda: answer_keys(a.keys), "verify": verify_serving,
             "coverage": lambda: coverage(a.seeds, a.relaxations or VERIFY_RELAXATIONS, a.sojourns or VERIFY_SOJOURNS,
                                          a.design, a.ref_batches)}
    for name, fn in steps.items():
        if a.only == name or (a.only is None and name != "coverage"):
            fn()


if __name__ == "__main__":
    main()
