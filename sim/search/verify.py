"""Verification by simulation: the twin's cheapest candidates, simulated on the same seed.

Every candidate is simulated with the same seed (``sim.des`` names its random streams by seed,
purpose and component, so the candidates see the same arrivals and token lengths: common
random numbers), and an SLO counts as met only when the **upper end of its 95 % interval** is
within the target. One component is adjusted — the sized one with the largest share of the
cost, the LLM in a serving design: while the simulation misses, one replica more; while it
passes with room (and ``allow_down``), one fewer, never below the stable count. Runs use
shorter batch-means batches than `sdw run` (`VERIFY_RELAXATIONS`, `VERIFY_SOJOURNS`: checked
for coverage at the high occupancy where the cheapest candidates sit).

Usage::

    >>> from sim.search.verify import sim_checks
    >>> # res = simulate(design, seed=0); checks = sim_checks(design, res); all(c.met for c in checks)
"""

from __future__ import annotations

import math
import time

from designs.model import Design

from .records import SimCheck
from .space import Candidate

__all__ = ["sim_checks", "verify_candidate", "expected_requests", "SIM_PRECISION", "VERIFY_RELAXATIONS",
           "VERIFY_SOJOURNS"]

SIM_PRECISION = 0.05
"""The stopping rule's target for verification runs: the p95's 95 % half-width within 5 %
(looser than `sdw run`'s 2 %: the pass test uses the interval's upper end, so a wider interval
only makes the verdict more conservative, never wrong)."""

VERIFY_RELAXATIONS = 10.0
"""Batch length of verification runs in relaxation times of the busiest station (the engine's
default is 100, `sim.des.engine._rep_plan`; the warm-up stays at 20). At the high slot
occupancy where the search's cheapest LLM candidates sit, 100 relaxation times made every
run ~2 million requests whatever the precision asked. Coverage study
(``bench/bench_size.py --only coverage``, 2026-12-02, load 3–5, 20 seeds each against a
2–4-million-request reference run of the default plan, seed 10,000), p95 intervals holding
the reference:

* serving design's cheapest candidate, MI300X FP8 batch 256 × 5 (ρ = 0.97; batches of
  10 relaxation times = 33,000 requests, 36 × the requests in system): TTFT 19/20, TPOT 18/20
  (both misses just below: upper ends 16.62 and 16.70 ms vs 16.79 ms, inside the reference's
  own ±1.3 %); ~410,000 requests, 11 CPU-s a run instead of 2.07 million, 50 CPU-s.
* H100 BF16 batch 256 × 14 (ρ = 0.94), where 10 relaxation times are shorter than 5 × the
  requests in system: with batches of 5 × (`sdw run`'s rule) TPOT covered only 15/20, every
  miss below (a short batch's p95 of a slowly drifting TPOT is biased low, ~1.5 %); hence
  `VERIFY_SOJOURNS`. With 20 ×: TTFT 20/20, TPOT 18/20; ~495,000 requests, 16.5 CPU-s a run
  (the default plan: ~1.1 million).

P(≤ 18 of 20 | 95 %) = 0.26. Successive batch p95s at 6 relaxation times were already
uncorrelated on the first point (lag-1 autocorrelation −0.02 TTFT, 0.04 TPOT, 60 batches)."""

VERIFY_SOJOURNS = 20.0
"""Least batch length of verification runs in requests in system (λW): see `VERIFY_RELAXATIONS`."""

_PCT = (("latency_p95_ms", "latency_ms", "latency_ms_ci95", "p95"),
        ("latency_p99_ms", "latency_ms", "latency_ms_ci95", "p99"),
        ("ttft_p95_ms", "ttft_ms", "ttft_ms_ci95", "p95"),
        ("tpot_p95_ms", "tpot_ms", "tpot_ms_ci95", "p95"))


def sim_checks(design: Design, res) -> list[SimCheck]:
    """Each SLO of `design` against a `RunResult`, judged on the CI's upper end."""
    slo = design.slo
    out: list[SimCheck] = []
    for metric, pct_attr, ci_attr, key in _PCT:
        t = getattr(slo, metric)
        if t is None:
            continue
        pct, ci = getattr(res, pct_attr), getattr(res, ci_attr)
        if pct is None:  # no LLM on the path: the twin judged it unknown too
            continue
        v = getattr(pct, key)
        band = getattr(ci, key, None) if ci is not None else None
        # No interval (too few batches before a budget ran out): the estimate alone cannot pass.
        hi = band[1] if band else None
        ok = bool(res.stable and hi is not None and math.isfinite(hi) and hi <= t)
        out.append(SimCheck(metric=metric, target=t, value=v, upper=hi, met=ok))
    total = res.completed_requests + res.dropped_requests
    if slo.availability is not None and total > 0:  # a pipeline run measures no requests
        total = res.completed_requests + res.dropped_requests
        a = res.completed_requests / total if total else 0.0
        out.append(SimCheck(metric="availability", target=slo.availability, value=a, upper=a,
                            met=bool(res.stable and a >= slo.availability)))
    if slo.daily_budget_usd is not None:
        c = res.cost_per_day_usd
        out.append(SimCheck(metric="cost_per_day_usd", target=slo.daily_budget_usd, value=c, upper=c,
                            met=c <= slo.daily_budget_usd))
    if res.pipeline is not None:
        p = res.pipeline
        out.append(SimCheck(metric="pipeline_hours", target=p.window_h, value=p.duration_h, upper=p.duration_h, met=p.fits))
    return out


def expected_requests(design: Design) -> int:
    """Requests a verification run of `design` simulates at least: the warm-up and
    `MIN_REPLICATIONS` + 1 batches of the engine's plan (`sim.des.engine._rep_plan`), from the
    analytic twin's estimate (0 when the twin cannot estimate it)."""
    from sim.des.control import control_plan
    from sim.des.engine import CV_WARM_SOJOURNS, MIN_REPLICATIONS, _rep_plan
    from sim.twin.analytic import estimate

    try:
        n_meas, n_warm = _rep_plan(estimate(design), design.workload, sojourns=VERIFY_SOJOURNS,
                                   warm_sojourns=CV_WARM_SOJOURNS if control_plan(design) is not None else 15.0,
                                   relaxations=VERIFY_RELAXATIONS)
    except Exception:  # a guess for scheduling only: never stop a search over it
        return 0
    return n_warm + (MIN_REPLICATIONS + 1) * n_meas


def _run(design: Design, seed: int, precision: float, max_seconds: float, cancel=None):
    from sim.des.engine import simulate

    return simulate(design, seed=seed, precision=precision, max_seconds=max(1.0, max_seconds), cancel=cancel,
                    relaxations=VERIFY_RELAXATIONS, sojourns=VERIFY_SOJOURNS)


def verify_candidate(design: Design, cand: Candidate, counts: dict[str, int], adjust: str | None, *, seed: int,
                     floor: int = 1, ceiling: int = 10_000, allow_down: bool = True, allow_up: bool = True,
                     precision: float = SIM_PRECISION,
                     max_seconds: float = 60.0, max_steps: int = 6, cancel=None) -> dict:
    """Simulate `cand` at `counts`, then move `adjust`'s count until the CI's upper ends meet every SLO
    (up while it misses unless not `allow_up`; down while it passes if `allow_down`).

    Returns ``{"counts", "checks", "met", "runs", "cost_per_day_usd", "log", "stopped"}``; ``met``
    is the verdict at the final counts. `max_seconds` bounds the whole verification of this
    candidate (each run may use all that is left; runs cut short by it are listed in ``cut``).
    """
    t0 = time.perf_counter()
    counts = dict(counts)
    log: list[str] = []
    cut: list[str] = []  # runs a wall budget or a cancel cut short (not reproducible)
    runs = 0
    best = None  # (counts, checks, cost) of the cheapest passing run seen

    def run_at(c: dict[str, int]):
        nonlocal runs
        # The whole remaining budget: a run should end on its precision rule or request cap
        # (deterministic for the seed), the wall clock is only a safety net.
        left = max_seconds - (time.perf_counter() - t0)
        res = _run(cand.apply(design, c), seed, precision, left, cancel)
        runs += 1
        if res.stopped_by in ("max_seconds", "interrupted"):
            cut.append(f"{adjust}={c.get(adjust)}: stopped by {res.stopped_by}")
        chk = sim_checks(design, res)
        ok = all(x.met for x in chk)
        log.append(f"{adjust}={c.get(adjust)}: " + ("meets" if ok else "misses " + ", ".join(
            f"{x.metric} (upper {x.upper:,.4g} vs {x.target:,.4g})" for x in chk if not x.met and x.upper is not None)))
        return ok, chk, res

    ok, chk, res = run_at(counts)
    last = (ok, chk, res, dict(counts))
    if ok:
        best = (dict(counts), chk, res.cost_per_day_usd)
    stopped = ""
    direction = -1 if ok else +1
    while adjust is not None and runs < max_steps:
        if cancel is not None and cancel.is_set():
            stopped = "interrupted"
            break
        if time.perf_counter() - t0 > max_seconds:
            stopped = "max_seconds"
            break
        nxt = counts[adjust] + direction
        if direction < 0 and (not allow_down or nxt < floor):
            break
        if direction > 0 and not allow_up:
            break  # a step down that missed: the caller keeps the count it verified before
        if nxt > ceiling:
            break
        trial = {**counts, adjust: nxt}
        ok2, chk2, res2 = run_at(trial)
        if not ok2 and any(x.metric == "cost_per_day_usd" and not x.met for x in chk2):
            break  # over the budget: more replicas only cost more
        if direction < 0:
            if not ok2:
                break  # one fewer misses: the current count is the answer
            counts = trial
            best = (dict(counts), chk2, res2.cost_per_day_usd)
        else:
            counts = trial
            last = (ok2, chk2, res2, dict(counts))
            if ok2:
                best = (dict(counts), chk2, res2.cost_per_day_usd)
                break
    if best is not None:
        counts, chk, cost = best
        met = True
    else:
        _, chk, res, counts = last
        cost, met = res.cost_per_day_usd, False
    return {"counts": counts, "checks": [c.model_dump() for c in chk], "met": met, "runs": runs,
            "cost_per_day_usd": cost, "log": log, "stopped": stopped, "cut": cut}
