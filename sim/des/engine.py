"""The capacity engine: simulate a `Design` on SimPy and summarise it with confidence.

Usage::

    from designs.io import load_design
    from sim.des.engine import simulate, compare

    result = simulate(load_design("designs/library/llm_serving.yaml"), seed=1, precision=0.02)
    result.latency_ms.p95, result.latency_ms_ci95.p95, result.stopped_by
    a, b = compare([design_a, design_b], seed=1)   # same random numbers for both

How a run goes:

1. `sim.twin.analytic.estimate(design)` first. If a station is saturated (ρ ≥ 1) the engine runs
   one bounded window (≤ 50,000 arrivals), reports the growing backlog and `stable=False`.
2. Otherwise one run from an empty system: a warm-up (at least 20 relaxation times of the
   busiest station and 15 × the requests in flight; MSER-5 may extend it), then consecutive
   batches of n requests (100 relaxation times, 10 × in flight, ≥ 5,000). Batch means:
   each batch gives its own mean and percentiles; intervals are Student-t over the batches.
   (Independent replications would pay the warm-up again for every interval point; for an
   LLM server holding thousands of requests that is most of the work.)
3. At every batch boundary: stop when at least 10 batches are complete and the p95's 95 %
   half-width is ≤ `precision` × p95, or when `max_requests` / `max_seconds` would be
   exceeded, or on `cancel` / Ctrl-C (`partial=True`). `stopped_by` says which. Measured
   requests then drain while arrivals continue. With control variates (LLM designs, whose
   long answers keep 2–3 batches draining) the rule also looks every 2,048 arrivals once 10
   batches are closed, and the result is exactly the complete batches it judged (the batches
   closed since are left out undrained). `replications=k` runs exactly k batches.
4. Whole day (`whole_day=True`): 24 h of the hourly profile from midnight, every request
   measured; intervals from 20 time batches (indicative: traffic varies by hour).
5. A feed-forward flow of plain FIFO stations, caches and guardrails fed by Poisson arrivals
   (`sim.des.chain.chain_stations`) runs steps 2–4 without events, by the Kiefer–Wolfowitz
   recursion (`sim.des.chain.ChainRun`, the event loop's sample path); `result.engine_path`
   says so ("fifo_recursion"), and ``path="events"`` keeps it on the event loop.

Randomness: streams named by (seed, purpose): arrivals, tokens, and per component one for
service times and one for routing, so variants that share components see the same numbers
(common random numbers); `compare` also gives every variant the same batch plan.

Statistics stream: a batch keeps its latencies (exact order statistics, then freed) or, for a
whole day, log histograms (0.1 % bins); stations keep sums, and a FIFO station's waits stay
raw within a batch (bounded, binned beyond 2¹⁸) with their p95 taken by selection — the
histogram's exact answer. Memory does not grow with the number of requests. Little's law (time-average in system vs λW) is checked
on the pooled batches and reported.

The engine in modules, one idea each: this one plans a run, applies the stopping rule and
handles cancel/progress; `sim.des.run` is one simulation (event loop, arrivals, departures,
batches); `sim.des.routing` moves requests through the flow (branches, fan-out/join, loops, async
queues — `designs.model`'s semantics); `sim.des.summary` turns batches into the `RunResult`
(percentiles, CIs, per-component stats, Little's law, SLO and cost); `sim.des.stations` holds
what each component kind does to a request; `sim.des.chain` is the event-free path of step 5.
"""

from __future__ import annotations

from components.errors import Refusal

import math
import time
from typing import Callable

from .limits import (MAX_PEAK_RPS, WORK_FACTOR, events_per_request, horizon_requests, in_flight_cap,  # noqa: F401
                     run_problems, short_run_warning)
from .chain import ChainRun, chain_stations
from .run import Run
from .stats import mser5
from .control import control_plan
from .summary import LLM_KINDS, build_result, null_rng, p95_interval, percentiles, variance_reduction
from .workload import OpenLoop

__all__ = ["simulate", "compare", "SimulationRefused", "LLM_KINDS", "Progress"]

MIN_REPLICATIONS = 10  # t-intervals from fewer replications under-cover (Law & Kelton: n0 ≥ 10)
# The precision rule judges the batches whose requests have all finished. With control
# variates (LLM designs, whose long answers keep ~3 batches draining at any time) it looks
# again every CHECK_EVERY arrivals once MIN_REPLICATIONS batches are closed, and stops as soon
# as MIN_REPLICATIONS complete ones meet the target; the result is those batches, so nothing
# is left to drain (issue 9, 2026-12-02: 105,400 requests a run instead of 114,000 on the
# library serving design, seeds 0–7). Before, it stopped once 10 were closed and 8 of them
# complete met the target, then drained the rest into the interval (MIN_COMPLETE = 8); 9b's
# 8 closed / 6 complete was rejected on coverage (bench/bench_llm_coverage.py).
CV_SOJOURNS = 5.0  # batch size in requests-in-system when control variates are used (see _rep_plan)
CV_WARM_SOJOURNS = 10.0  # warm-up in requests-in-system with control variates (LLM designs, see _rep_plan)


class Progress(str):
    """The message `progress(fraction, message)` receives: readable text, plus the figures
    behind it as attributes so a page can lay them out (requests done, p95 and its interval).

    >>> m = Progress("measuring", requests=12000, batches=3, p95_ms=1215.3, half_width_ms=100.0)
    >>> str(m), m.phase, m.requests, m.p95_ms
    ('measuring: 12,000 requests simulated, 3 batches; p95 1215.3 ms ± 100.0 ms', 'measuring', 12000, 1215.3)
    """

    phase: str
    requests: int
    batches: int
    p95_ms: float | None
    half_width_ms: float | None

    def __new__(cls, phase: str, *, requests: int = 0, batches: int = 0, p95_ms: float | None = None,
                half_width_ms: float | None = None, text: str | None = None):
        if text is None:
            text = f"{phase}: {requests:,} requests simulated"
            if phase == "measuring":
                text += f", {batches} batch{'es' if batches != 1 else ''}"
                if p95_ms:
                    text += f"; p95 {p95_ms:.1f} ms" + (f" ± {half_width_ms:.1f} ms" if half_width_ms is not None else "")
        self = super().__new__(cls, text)
        self.phase, self.requests, self.batches = phase, requests, batches
        self.p95_ms, self.half_width_ms = p95_ms, half_width_ms
        return self


class SimulationRefused(Refusal):
    """The design or budget cannot be simulated sensibly; the message says why and what to do."""


# --- planning ---------------------------------------------------------------------------------


def _analytic(design):
    """The analytic twin's estimate, or None while `sim.twin.analytic` is not there (or fails)."""
    try:
        from sim.twin.analytic import estimate
    except ImportError:
        return None
    try:
        return estimate(design)
    except Exception:  # the twin must never stop a simulation; the engine has its own guards
        return None


class _StopOrDeadline:
    """What the twin's MVA loop polls (``is_set()``): the run's cancel event, or its deadline
    passed — so the twin's planning is inside the run's budget, not before it."""

    __slots__ = ("cancel", "deadline")

    def __init__(self, cancel, deadline: float | None):
        self.cancel, self.deadline = cancel, deadline

    def is_set(self) -> bool:
        return (self.cancel is not None and self.cancel.is_set()) or (
            self.deadline is not None and time.perf_counter() > self.deadline)


def _analytic_cancellable(design, cancel, deadline: float | None = None):
    """`_analytic` with the run's cancel event (and deadline) visible to the twin's MVA loop."""
    try:
        from sim.twin.analytic import CANCEL
    except ImportError:
        return _analytic(design)
    token = CANCEL.set(_StopOrDeadline(cancel, deadline) if deadline is not None else cancel)
    try:
        return _analytic(design)
    finally:
        CANCEL.reset(token)


def _rep_plan(est, workload, sojourns: float = 10.0, warm_sojourns: float = 15.0,
              relaxations: float = 100.0) -> tuple[int, int]:
    """(requests per batch, warm-up requests) for a batch-means run.

    Two clocks matter. Queueing: an M/M/c queue relaxes in about 1/(μ(√c − √(cρ))²), i.e.
    τ = ρ/(1 − √ρ)² arrivals; batches of 100·τ are nearly independent and a warm-up of 20·τ
    leaves a start-up bias of e⁻²⁰. Sojourn: a system holding L = λW requests (an LLM server
    holds thousands) takes many W to settle (the batch mix of a continuous-batching server
    drifts for ~10 W), so the warm-up is at least 15·L arrivals and a batch at least 10·L,
    which also keeps the edge terms of Little's law small (they shrink like L / window).
    With control variates (`sim.des.control`) the slow drift of the load is what the controls
    explain, and batches of `sojourns` = 5·L are enough: on the library's serving design whole
    default runs covered the long-run p95 in 18 of 20 seeds (`bench/bench_variance.py`,
    2026-12-02). Not 3·L: its intervals looked as good on re-batched records (95 % of 126
    windows) but whole runs covered only 16 of 20 seeds (too narrow, and biased low by 0.6 %).
    Those runs (LLM designs) warm up for `warm_sojourns` = 10·L: started empty, the serving
    design's control-adjusted p95 is 10.5 % low over the first 2·L arrivals, 3.7 % over the
    next, ~1 % from 4 to 8·L and within noise after 8·L (`bench_variance.py --transient 20`,
    12 seeds × 20 batches of 2·L); whole default runs with 10·L covered 18–19 of 20 seeds with
    a mean error of −0.16 to −0.19 % (−0.23 % with 15·L), and MSER-5 still extends a longer
    transient (issue 9, 2026-12-02).
    `relaxations` (default 100) is the batch length in relaxation times; the sizing search's
    verification runs pass a smaller one and a larger `sojourns`, backed by their own coverage
    study (`sim.search.verify.VERIFY_RELAXATIONS`).
    """
    rho = 0.8
    in_system = 0.0
    if est is not None:
        rhos = [s.utilization for s in est.stations.values() if s.servers and s.utilization < 1]
        if rhos:
            rho = max(rhos)
        if est.latency_ms_mean and math.isfinite(est.latency_ms_mean):
            in_system = est.arrival_rps * est.latency_ms_mean / 1000.0
    if workload.closed_loop:
        in_system = max(in_system, float(workload.concurrent_users))
    rho = min(max(rho, 0.0), 0.995)
    relax = rho / (1 - math.sqrt(rho)) ** 2 if rho > 0 else 1.0
    if workload.closed_loop:
        # A closed loop cannot build the open queue's 1/(1 − ρ) backlog: N users arrive at rate
        # (N − n)/Z, which falls as n grows, so a deviation decays within one cycle Z + R, i.e.
        # within X·(Z + R) = N arrivals (Little's law over the loop). Its servers run near ρ = 1
        # whenever the users outnumber the slots, and the open formula would plan a warm-up of
        # 20 × 159,000 arrivals from ρ = 0.995 (issue 11: 300 users on one LLM replica planned
        # 716,932 warm-up requests and measured nothing in the time budget).
        relax = min(relax, max(1.0, float(workload.concurrent_users)))
    n_meas = int(min(200_000, max(5_000, relaxations * relax, sojourns * in_system)))
    n_warm = int(max(n_meas // 5, 20 * relax, warm_sojourns * in_system, 200))
    return n_meas, n_warm


def refuse(design, *, whole_day: bool, max_requests: int, est=None) -> None:
    """Raise `SimulationRefused` for workloads no run could answer sensibly (`sim.des.limits`)."""
    from sim.check import config_problems

    problems = config_problems(design)
    if problems:  # hardware that cannot run the design: every problem, before any work
        raise SimulationRefused("\n  ".join(p.message for p in problems))
    wl = design.workload
    if wl.closed_loop and whole_day:
        raise SimulationRefused("workload: a whole-day run needs open-loop traffic (requests_per_day and "
                                "profile_24h), not concurrent_users")
    problems = run_problems(design, est)
    if problems:
        raise SimulationRefused("\n  ".join(f"{p.path}: {p.message}" for p in problems))
    if wl.closed_loop:
        return
    if whole_day:
        n = OpenLoop.whole_day(wl, null_rng()).expected_requests()
        if n > max_requests:
            raise SimulationRefused(
                f"workload: a whole day is {n:,.0f} requests, above max_requests={max_requests:,}; "
                "raise --max-requests, sample one window per hour (sdw run --whole-day --sample-window 120) "
                "or simulate the peak hour instead"
            )


# --- public API -------------------------------------------------------------------------------


def simulate(design, *, seed: int = 0, precision: float = 0.02, max_requests: int = 2_000_000,
             max_seconds: float = 60.0, replications: int | None = None,
             progress: Callable[[float, str], None] | None = None, cancel=None,
             keep_sample: int = 2000, whole_day: bool = False, path: str = "auto", relaxations: float = 100.0,
             sojourns: float | None = None):
    """Simulate `design` and return a `sim.results.RunResult` (see the module docstring).

    `replications` fixes the number of replications (no stopping rule); `cancel` is a
    `threading.Event`; `progress(fraction, message)` is called between replications.
    `path="events"` keeps a design that qualifies for the FIFO recursion (`sim.des.chain`) on
    the event loop (the same sample path; `result.engine_path` says which ran).
    `relaxations` is the batch length in relaxation times of the busiest station and `sojourns`
    its minimum in requests in system (None: the engine's own, `_rep_plan`).
    Raises `SimulationRefused` for absurd workloads or budgets, before any work.
    """
    return _simulate(design, seed=seed, precision=precision, max_requests=max_requests, max_seconds=max_seconds,
                     replications=replications, progress=progress, cancel=cancel, keep_sample=keep_sample,
                     whole_day=whole_day, path=path, relaxations=relaxations, sojourns=sojourns)[0]


def compare(designs: list, *, seed: int = 0, on_design: Callable[[int], None] | None = None, **kw) -> list:
    """Simulate each design on the same seeds (common random numbers); the first sets the plan.

    The variants reuse the first design's replication size and count, so replication r of
    every variant sees the same arrivals, tokens and (shared components') service times.
    `on_design(i)` is called before design i runs (a page's "design 2 of 3"); `progress` and
    `cancel` apply to each run — once `cancel` is set, the design running returns what it
    measured (partial) and the ones after it return at once with nothing measured.
    """
    out = []
    plan: dict = {}
    for i, d in enumerate(designs):
        if on_design is not None:
            on_design(i)
        res, n_meas = _simulate(d, seed=seed, **kw, **plan)
        out.append(res)
        if i == 0 and res.stable and res.replications and res.stopped_by != "pipeline" and "replications" not in kw:
            plan = {"replications": res.replications, "rep_n": n_meas}
    return out


def _run_class(design, whole_day: bool, path: str, plan=None):
    """`ChainRun` (the FIFO recursion, `sim.des.chain`) when the design qualifies and `path` is
    "auto"; `Run` (the event loop) otherwise or when `path` is "events"."""
    if path not in ("auto", "events"):
        raise ValueError(f"path must be 'auto' or 'events', not {path!r}")
    if path == "auto" and plan is None and chain_stations(design, whole_day) is not None:
        return ChainRun
    return Run


def _simulate(design, *, seed=0, precision=0.02, max_requests=2_000_000, max_seconds=60.0, replications=None,
              progress=None, cancel=None, keep_sample=2000, whole_day=False, rep_n=None, path="auto",
              relaxations=100.0, sojourns=None):
    t_start = time.perf_counter()
    if not (0 < precision < 1):
        raise SimulationRefused(f"precision must be between 0 and 1 (a relative half-width); got {precision}")
    if not relaxations > 0 or (sojourns is not None and not sojourns > 0):
        raise SimulationRefused(f"relaxations and sojourns must be positive; got {relaxations}, {sojourns}")
    if max_requests < 1 or max_seconds <= 0:
        raise SimulationRefused("max_requests and max_seconds must be positive")
    if replications is not None and replications < 1:
        raise SimulationRefused("replications must be at least 1")
    wl = design.workload
    kw = dict(design=design, seed=seed, t_start=t_start, keep_sample=keep_sample)
    if wl.batch is not None:
        pipe = _pipeline(design)
        if pipe is not None:
            return build_result(outs=[], simulated=0, stopped_by="pipeline", stable=True, est=None, sample=None,
                                 warnings=[], warmup=0, pipeline=pipe, ci_method="", **kw), 0
    est = _analytic_cancellable(design, cancel, t_start + max_seconds)
    if time.perf_counter() > t_start + max_seconds and not (cancel is not None and cancel.is_set()):
        # The twin's planning used the whole budget (it polls the deadline in its MVA loop, and
        # may finish a step past it elsewhere — N−1, retrieval): nothing simulated. Nothing
        # measured: a closed loop does not claim stable (issue 11); an open one keeps the twin's verdict.
        ok = not wl.closed_loop and (est is None or est.stable)
        return build_result(outs=[], simulated=0, stopped_by="max_seconds", stable=ok, est=None, sample=None,
                            warnings=[f"max_seconds ({max_seconds:g} s) ran out while the analytic twin planned the run; "
                                      "nothing was simulated" + ("" if ok else ", stability is not established")
                                      + " — raise --max-seconds"],
                            warmup=0, ci_method="", **kw), 0
    refuse(design, whole_day=whole_day, max_requests=max_requests, est=est)
    if cancel is not None and cancel.is_set():  # cancelled while the twin planned the run: nothing measured
        return build_result(outs=[], simulated=0, stopped_by="interrupted", stable=True, est=est, sample=None,
                            warnings=["cancelled before the simulation started"], warmup=0, ci_method="", **kw), 0
    # Simulated time is a budget too: past MAX_SIM_SECONDS a double blurs the latencies.
    rate = est.arrival_rps if est is not None and est.arrival_rps else (wl.peak_rps if not wl.closed_loop else 0.0)
    if rate and not whole_day and horizon_requests(rate) < max_requests:
        max_requests = max(1, horizon_requests(rate))
    from sim.ops.plan import TimelineRefused, wants_timeline
    from sim.ops.timeline import run_timeline

    if wants_timeline(design, whole_day):  # faults, failures, autoscaling, traces: one timeline (sim.ops)
        try:
            return run_timeline(design, seed=seed, whole_day=whole_day, max_seconds=max_seconds, cancel=cancel,
                                keep_sample=keep_sample, est=est), 0
        except TimelineRefused as e:
            raise SimulationRefused(str(e)) from None
    deadline = t_start + max_seconds
    sample = None
    warnings: list[str] = []
    # Work per request bounded by what the twin predicts (events per arrival, see sim.des.limits),
    # and the backlog cut above the twin's λW when many requests are legitimately in flight.
    epr = events_per_request(design, est)
    common = dict(deadline=deadline, cancel=cancel, max_in_system=in_flight_cap(est),
                  events_per_arrival=WORK_FACTOR * epr if epr else 0.0)

    if est is not None and not est.stable:
        # Saturated: one bounded window shows the backlog grow; never a hang.
        n = int(min(max_requests, 50_000))
        run = Run(design, seed, 0, n, whole_day=False, no_drain=True, **common)
        run.advance()
        _check_work(run, epr)
        run.refresh()
        warnings.extend(est.unstable)
        stop = {"cancel": "interrupted", "max_seconds": "max_seconds"}.get(run.cut or "", "max_requests")
        return build_result(outs=run.segs[:1], simulated=run.next_id, stopped_by=stop, stable=False, est=est,
                             sample=sample, warnings=warnings, warmup=0,
                             ci_method="one bounded window (unstable: no confidence interval)", **kw), n

    if whole_day:
        run = _run_class(design, True, path)(design, seed, 0, 1, whole_day=True, **common)
        run.advance()
        _check_work(run, epr)
        run.refresh()
        outs = [s for s in run.segs if s.closed]
        stop = {"cancel": "interrupted", "max_seconds": "max_seconds", "backlog": "max_requests"}.get(run.cut or "")
        if stop is None:
            stop = "precision"
            _, _, rel = percentiles(outs, "lat", True)
            if rel is None or rel > precision:
                stop = "max_requests"
        res = build_result(outs=outs, simulated=run.next_id, stopped_by=stop, stable=run.cut != "backlog", est=est,
                           sample=sample, warnings=warnings, warmup=0, whole_day=True,
                           ci_method="one day; intervals from 20 time batches of 72 minutes", **kw)
        res.engine_path = getattr(run, "path", "events")
        return res, 0

    plan = control_plan(design)
    if sojourns is None:
        sojourns = CV_SOJOURNS if plan is not None else 10.0
    warm = CV_WARM_SOJOURNS if plan is not None else 15.0
    n_meas, n_warm = _rep_plan(est, wl, sojourns, warm, relaxations)
    if rep_n:
        n_meas = rep_n
    # A budget too small for MIN_REPLICATIONS full batches shortens them instead.
    cap = max_requests // (MIN_REPLICATIONS + 1)
    if n_meas > cap:
        n_meas = max(100, cap)
        n_warm = min(n_warm, max(100, max_requests // 5))
    short = short_run_warning(est, n_warm, n_meas)
    if short:
        warnings.append(short)
    mser_pending = replications is None
    keep = min(n_warm + 2 * n_meas, 400_000) if mser_pending else 0
    run = _run_class(design, False, path, plan)(design, seed, n_warm, n_meas, whole_day=False, keep_series=keep,
              tail_tokens=plan.tail_tokens if plan is not None else None, **common)
    first = 0  # batches before this index count as warm-up (MSER-5 may move it)
    rule_rel = None  # the p95's relative half-width the precision rule accepted
    keep_upto = None  # with control variates: the result is exactly the complete batches judged
    stopped_by = None
    unstable = False
    if progress is not None:  # the warm-up is a phase of its own: nothing is measured yet
        progress(0.0, Progress("warm-up", text=f"warm-up: {n_warm:,} requests to reach steady state (not measured)"))
    while True:
        reason = run.advance()
        _check_work(run, epr)
        run.refresh()
        if reason == "cut":
            if run.cut == "backlog":
                unstable = True
                warnings.append(f"more than {run.max_in_system:,} requests in flight: the backlog keeps growing, "
                                "the design cannot keep up")
            stopped_by = {"cancel": "interrupted", "max_seconds": "max_seconds"}.get(run.cut or "", "max_requests")
            break
        if reason == "done":  # nothing left to simulate (e.g. a closed loop with no users)
            stopped_by = "max_requests"
            break
        closed = run.segs[first:-1]
        complete = []
        for s in closed:
            if s.outstanding:
                break
            complete.append(s)
        if mser_pending and len(run.segs) - 1 >= 2 and run.segs[1].outstanding == 0 and run.series is not None:
            # MSER-5 over warm-up + two batches: if the transient outlasts the planned warm-up,
            # treat the batches it reaches as warm-up too.
            mser_pending = False
            d = mser5([x for x in run.series if not math.isnan(x)])
            run.stop_series()
            if d > n_warm:
                k = math.ceil((d - n_warm) / n_meas)
                first = k
                warnings.append(f"warm-up extended by MSER-5 from {n_warm:,} to {n_warm + k * n_meas:,} requests")
                continue
        m, hw = p95_interval(complete, plan)
        p95s = complete
        met = m > 0 and not math.isinf(hw) and hw <= precision * m
        wall = time.perf_counter() - t_start
        if progress is not None:
            need = (hw / (precision * m)) ** 2 * len(p95s) if m and not math.isinf(hw) else 2.0 * MIN_REPLICATIONS
            frac = max(run.next_id / max_requests, wall / max_seconds, len(p95s) / max(need, MIN_REPLICATIONS, 1.0))
            progress(min(frac, 0.99), Progress("measuring", requests=run.next_id, batches=len(closed),
                                                p95_ms=m * 1000 if p95s else None,
                                                half_width_ms=None if math.isinf(hw) else hw * 1000))
        if replications is not None:
            if len(closed) >= replications:
                stopped_by = "precision" if met else "max_requests"
                break
        elif met and len(complete) >= MIN_REPLICATIONS:
            stopped_by = "precision"
            rule_rel = hw / m
            if plan is not None:
                keep_upto = first + len(complete)  # the batches the rule judged, no more to drain
            break
        if plan is not None and replications is None and len(closed) >= MIN_REPLICATIONS:
            # LLM designs' long answers keep 2–3 batches draining: look again as they complete
            # (every CHECK_EVERY arrivals), not only when the next batch closes.
            run.pause_checks = True
        if run.next_id + n_meas > max_requests:
            stopped_by = "max_requests"
            break
        per_batch = wall / max(1, len(run.segs) - first)
        if len(closed) >= 2 and wall + 1.5 * per_batch > max_seconds:
            stopped_by = "max_seconds"
            break
    if run.cut is None:
        run.finish() if keep_upto is None else run.finish(upto=keep_upto)  # (ChainRun: never a plan)
        _check_work(run, epr)
        if run.cut == "cancel":
            stopped_by = "interrupted"
    run.refresh()
    end = run.drain_upto if run.drain_upto else len(run.segs)
    outs = [s for s in run.segs[first:end] if s.closed]
    if run.cut is not None and len(outs) > 1:
        outs = [s for s in outs if not s.outstanding] or outs
    if run.drain_capped:
        warnings.append("stopped waiting for the slowest measured requests after 2 batches of further arrivals")
    if progress is not None:
        progress(1.0, Progress("done", requests=run.next_id, batches=len(run.segs)))
    method = f"batch means: {len(outs)} batches of {n_meas:,} requests after {n_warm + first * n_meas:,} warm-up"
    if not unstable and not any(s.measured for s in outs):
        # Nothing measured (the budget ended in the warm-up: no measured arrival at all). An open
        # workload keeps the twin's verdict (ρ < 1 is an analytic fact; no backlog was seen); a
        # closed loop's stability is only what the run measured, so it does not claim it.
        # (Measured requests still in flight or dropped are measured: their batch speaks.)
        msg = (f"nothing was measured: the run stopped ({stopped_by or 'max_requests'}) after "
               f"{run.next_id:,} requests, inside the {n_warm + first * n_meas:,}-request warm-up")
        if wl.closed_loop:
            unstable, outs = True, []
            warnings.append(msg + "; stability is not established (raise max_seconds or max_requests)")
        else:
            warnings.append(msg + "; stable is the analytic twin's verdict (raise max_seconds or max_requests)")
    res = build_result(outs=outs, simulated=run.next_id, stopped_by=stopped_by or "max_requests", stable=not unstable,
                        est=est, sample=sample, warnings=warnings, warmup=n_warm + first * n_meas, ci_method=method,
                        plan=plan if not unstable else None, **kw)
    res.engine_path = getattr(run, "path", "events")
    vr = variance_reduction(outs, plan, precision, n_meas, n_warm + first * n_meas, MIN_REPLICATIONS) \
        if plan is not None and not unstable else None
    if vr is not None:
        from sim.results import VarianceReduction

        res.variance_reduction = VarianceReduction(**vr)
        res.ci_method += f"; control variates: {', '.join(vr['controls'])}"
    if rule_rel is not None and res.precision_achieved is not None and res.precision_achieved > precision:
        # The rule judges the batches whose requests had all finished; the result also keeps
        # the batches that finished draining afterwards (dropping them biases the estimates),
        # which can widen the interval a little past the target. Say so rather than hide it.
        res.warnings.append(
            f"the p95's 95 % interval is ±{res.precision_achieved:.2%} after the last batches drained; "
            f"the stopping rule saw ±{rule_rel:.2%} (target ±{precision:.0%})"
        )
    return res, n_meas


def _check_work(run, epr: float) -> None:
    """Refuse a run whose requests cost far more events than the twin expects (`sim.des.limits`)."""
    if run.cut != "work":
        return
    per = run.events / max(1, run.next_id)
    raise SimulationRefused(
        f"requests cost {per:,.0f} events each so far, over {WORK_FACTOR:g}× the {epr:,.0f} the analytic twin "
        "expects: the flow does far more work per request than its loops suggest (several back edges from one "
        "component are tried one after another, and the twin follows only the first); lower p or max_repeats "
        "on the back edges"
    )


def _pipeline(design):
    try:
        from sim.pipeline import pipeline_result
    except ImportError:
        return None
    return pipeline_result(design)
