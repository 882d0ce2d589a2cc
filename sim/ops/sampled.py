"""A whole day by sampled windows: one short timeline per hour of `profile_24h`, stitched.

A whole-day timeline of a 10 M requests/day LLM design is 10 M requests (≈ 10 minutes of CPU
on the ops path); the request budget refuses it. `sample_day` answers the same questions —
availability over the day, latency per hour, replica-hours and the autoscaled daily cost —
from 24 windows of `window_s` simulated seconds (default 120 s: 1/30 of the day's requests):

* hour h runs as its own timeline at that hour's rate (`hourly_rates`, the day's mean × the
  profile), each autoscaled component **starting at the twin's replica count for hour h**
  (`replicas_per_hour`) with its autoscaler, random failures and cold starts acting inside
  the window; seed ``seed × 1000 + h``;
* the transitions (``transitions=True``, the default): an hour whose twin count differs from
  the previous hour's also runs a *transition window* of `transition_s` seconds (a cold start
  + the scale-up delay, or the scale-down stabilisation, + two evaluation intervals: long
  enough for the autoscaler to reach the new count) that starts at the **previous** hour's
  count; it stands for the hour's first `transition_s` seconds — the lag, the cold starts
  (billed while they start) and the idle replicas kept through the stabilisation window —
  and the steady window for the rest (f = transition_s / 3600):
  figure_h = f × transition + (1 − f) × steady;
* stitched: availability = Σ_h w_h × availability_h with w_h the hour's share of the day's
  requests, its 95 % interval ± √Σ (w_h × half-width_h)² (the windows are independent runs);
  replica-hours of hour h = the mean provisioned replicas (time-weighted as above) × 1 h; the
  autoscaled daily cost = the twin's daily cost with each autoscaled component billed for
  those replica-hours instead of its fixed replicas × 24 h (every other line is the twin's).

What it does not see, stated in `method`: a backlog carried across an hour boundary (each
window starts empty, a few seconds of warm-up inside it), scheduled `faults:` (at times of day
that the windows do not cover: dropped, listed in `notes`), and failures rarer than the
windows are long (a GPU's MTBF of 50,700 h is ≈ 0.1 failures in 48 minutes of 17 replicas).
The interval covers the windows' own noise, not the error of letting a window stand for its
hour.

Usage::

    from designs.io import load_design
    from sim import sample_day
    day = sample_day(load_design("designs/library/llm_serving.yaml"), seed=0, window_s=120)
    day.availability, day.autoscaled_cost_per_day_usd, day.twin_autoscaled_cost_per_day_usd
    [h.replicas for h in day.hours]
"""

from __future__ import annotations

import math
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from components.docstrings import install as _fast_docstrings

_fast_docstrings()  # the models' field descriptions from one parse of this module (start-up speed)

__all__ = ["SampledHour", "SampledDay", "sample_day", "format_sampled_day", "needs_sampling", "transition_s",
           "DEFAULT_WINDOW_S"]

DEFAULT_WINDOW_S = 120.0
"""Seconds simulated per hour: 1/30 of the day's requests; ≈ 20 s of CPU for `llm_serving`
(2026-12-02, 2.3 s CPU per 42,000-request window at its peak)."""


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class SampledHour(_Rec):
    hour: int
    rate_rps: float
    """The hour's arrival rate (the profile's)."""
    share: float
    """The hour's share of the day's requests (its weight in the stitched availability)."""
    start_replicas: dict[str, int] = Field(default_factory=dict)
    """Each autoscaled component's replicas at the window's start (the twin's count for the hour)."""
    replicas: dict[str, float] = Field(default_factory=dict)
    """Mean provisioned replicas over the window (× 1 h = the hour's replica-hours)."""
    offered: int = 0
    availability: float | None = None
    availability_hw95: float | None = None
    """Half-width of the window's 95 % interval (20 time batches)."""
    latency_ms_p95: float | None = None
    ttft_ms_p95: float | None = None
    cold_starts: int = 0
    faults: int = 0
    """Random failures that started inside the window(s)."""
    transition_s: float = 0.0
    """Seconds of the hour taken from its transition window (0: the count did not change)."""
    transition_start_replicas: dict[str, int] = Field(default_factory=dict)
    """The previous hour's twin count the transition window starts from."""
    transition_availability: float | None = None
    transition_latency_ms_p95: float | None = None
    steady_replicas: dict[str, float] = Field(default_factory=dict)
    """Mean provisioned replicas over the steady window alone."""


class SampledDay(_Rec):
    """The stitched day (`sdw run --whole-day --json` key `sampled_day` when the day is over budget)."""

    design: str
    seed: int
    window_s: float
    hours: list[SampledHour]
    simulated_requests: int
    day_requests: float
    """The day's requests in expectation (what a full whole-day run would simulate)."""
    availability: float | None
    availability_ci95: tuple[float, float] | None = None
    replica_hours: dict[str, float] = Field(default_factory=dict)
    twin_replica_hours: dict[str, float] = Field(default_factory=dict)
    """Σ of the twin's replicas per hour (`replicas_per_hour`), per autoscaled component."""
    autoscaled_cost_per_day_usd: float | None = None
    twin_autoscaled_cost_per_day_usd: float | None = None
    fixed_cost_per_day_usd: float
    """The design's own daily cost (its fixed replicas all day; the twin's cost lines)."""
    method: str
    notes: list[str] = Field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0


def needs_sampling(design, max_requests: int) -> bool:
    """Whether `sdw run --whole-day` samples the day: a design whose whole day runs as a timeline
    (operations settings: autoscaling, failures, bursty arrivals) and is more requests than
    `max_requests` — the run that would otherwise be refused by the budget."""
    from sim.des.workload import hourly_rates

    from .plan import wants_timeline

    wl = design.workload
    if wl.closed_loop or wl.batch is not None or wl.trace is not None or not wants_timeline(design, True):
        return False
    return sum(hourly_rates(wl)) * 3600.0 > max_requests


def _hour_design(design, rate: float, window_s: float, start: dict[str, int]):
    from designs.model import Design

    data = design.model_dump(by_alias=True)
    wl = data["workload"]
    wl["arrival_rps"] = rate
    wl["timeline_s"] = window_s
    wl["trace"] = None
    data["faults"] = []
    for c in data["components"]:
        if c["id"] in start:
            c["replicas"] = start[c["id"]]
    return Design.model_validate(data)


def transition_s(design, window_s: float = DEFAULT_WINDOW_S) -> float:
    """Length of an hour's transition window: long enough for every autoscaler to have reached the
    new hour's count — a cold start plus the scale-up delay, or the scale-down stabilisation,
    plus two evaluation intervals — and at least `window_s`, at most 3,600 s."""
    from .control import cold_start_s

    t = window_s
    for c in design.components:
        a = getattr(c, "autoscale", None)
        if a is not None:
            t = max(t, cold_start_s(c) + a.scale_up_delay_s + 2 * a.interval_s, a.scale_down_delay_s + 2 * a.interval_s)
    return min(3600.0, t)


def _window(design, rate, window_s, start, seed, budget, cancel, notes, h, what):
    """One window's (result, {cid: mean provisioned replicas}); a cut window is noted in `notes`."""
    from .timeline import run_timeline

    res = run_timeline(_hour_design(design, rate, window_s, start), seed=seed, max_seconds=budget, cancel=cancel)
    if res.stopped_by in ("max_seconds", "interrupted"):
        notes.append(f"hour {h}: the {what} window was cut ({res.stopped_by}); its figures cover part of it")
    mean = {}
    for cid in start:
        prov = [w.provisioned.get(cid) for w in res.ops.windows if w.provisioned.get(cid) is not None]
        mean[cid] = sum(prov) / len(prov) if prov else float(start[cid])
    return res, mean


def _hw(ops):
    if ops.availability_ci95 is None or ops.availability is None:
        return None
    return (ops.availability_ci95[1] - ops.availability_ci95[0]) / 2


def sample_day(design, *, seed: int = 0, window_s: float = DEFAULT_WINDOW_S, max_seconds: float = 600.0,
               cancel=None, est=None, transitions: bool = True) -> SampledDay:
    """Simulate one `window_s` timeline per hour of the profile and stitch them (module docstring).

    Raises ValueError for a design with no open-loop daily traffic or a trace (replay it instead)."""
    from sim.des.workload import hourly_rates
    from sim.twin.analytic import estimate

    from .nminus1 import autoscaled_cost, replicas_per_hour

    wl = design.workload
    if wl.closed_loop or wl.batch is not None:
        raise ValueError("workload: a sampled day needs open-loop traffic (requests_per_day with profile_24h)")
    if wl.trace is not None:
        raise ValueError("workload.trace: a replayed trace runs as its own timeline; a sampled day is for profile_24h")
    if not 1.0 <= window_s <= 3600.0:
        raise ValueError(f"window_s must be between 1 and 3,600 seconds; got {window_s:g}")
    t0, c0 = time.perf_counter(), time.process_time()
    est = est if est is not None else estimate(design)
    rates = hourly_rates(wl)
    total = sum(rates)
    hourly = replicas_per_hour(design, est)
    notes = []
    if design.faults:
        notes.append(f"{len(design.faults)} scheduled fault(s) dropped: they fall at times of day the windows "
                     "do not cover (run them as a timeline: workload.timeline_s)")
    hours: list[SampledHour] = []
    simulated = 0
    deadline = t0 + max_seconds
    t_tr = transition_s(design, window_s) if transitions and hourly else 0.0
    for h, rate in enumerate(rates):
        start = {cid: counts[h] for cid, counts in hourly.items()}
        prev = {cid: counts[h - 1] for cid, counts in hourly.items()}  # hour 0 follows hour 23
        row = SampledHour(hour=h, rate_rps=rate, share=rate / total if total else 0.0, start_replicas=start)
        hours.append(row)
        if rate <= 0:
            row.replicas = {cid: float(n) for cid, n in start.items()}
            continue
        if cancel is not None and cancel.is_set():
            notes.append(f"cancelled at hour {h}: the hours after it were not simulated")
            break
        left = deadline - time.perf_counter()
        if left <= 0:
            notes.append(f"the {max_seconds:g} s budget ran out at hour {h}: the hours after it were not simulated")
            break
        res, mean = _window(design, rate, window_s, start, seed * 1000 + h, left / (24 - h), cancel, notes, h, "steady")
        ops = res.ops
        simulated += ops.fates.offered
        row.offered = ops.fates.offered
        row.availability, row.availability_hw95 = ops.availability, _hw(ops)
        row.latency_ms_p95 = res.latency_ms.p95
        row.ttft_ms_p95 = res.ttft_ms.p95 if res.ttft_ms is not None else None
        row.cold_starts = len(ops.cold_starts)
        row.faults = sum(f.source == "random" for f in ops.faults)
        row.replicas = dict(mean)
        row.steady_replicas = dict(mean)
        if t_tr and prev != start:
            # The hour's first t_tr seconds from a window that starts at the previous hour's count:
            # the autoscaler's lag, cold starts and scale-down stabilisation, billed and felt.
            tr, tmean = _window(design, rate, t_tr, prev, seed * 1000 + 500 + h,
                                max(1.0, (deadline - time.perf_counter()) / (24 - h)), cancel, notes, h, "transition")
            f = t_tr / 3600.0
            simulated += tr.ops.fates.offered
            row.offered += tr.ops.fates.offered
            row.transition_s, row.transition_start_replicas = t_tr, prev
            row.transition_availability = tr.ops.availability
            row.transition_latency_ms_p95 = tr.latency_ms.p95
            row.cold_starts += len(tr.ops.cold_starts)
            row.faults += sum(x.source == "random" for x in tr.ops.faults)
            row.replicas = {cid: f * tmean[cid] + (1 - f) * mean[cid] for cid in start}
            if row.availability is not None and tr.ops.availability is not None:
                row.availability = f * tr.ops.availability + (1 - f) * row.availability
                hw_t = _hw(tr.ops)
                row.availability_hw95 = (math.sqrt((f * hw_t) ** 2 + ((1 - f) * row.availability_hw95) ** 2)
                                         if hw_t is not None and row.availability_hw95 is not None else None)
    done = [r for r in hours if r.availability is not None]
    avail = ci = None
    if done and len(done) == sum(1 for r in rates if r > 0):
        avail = sum(r.share * r.availability for r in done)
        if all(r.availability_hw95 is not None for r in done):
            hw = math.sqrt(sum((r.share * r.availability_hw95) ** 2 for r in done))
            ci = (max(0.0, avail - hw), min(1.0, avail + hw))
    elif done:
        notes.append("availability not stitched: not every hour was simulated")
    rep_hours = {cid: sum(r.replicas.get(cid, 0.0) for r in hours) for cid in hourly}
    twin_hours = {cid: float(sum(counts)) for cid, counts in hourly.items()}
    fixed = est.cost_per_day_usd
    auto = None
    if hourly and len(done) == sum(1 for r in rates if r > 0):
        lines = {ln.id: ln.usd_per_day for ln in est.cost_breakdown}
        auto = fixed
        for cid, used in rep_hours.items():
            line = lines.get(cid, 0.0)
            auto += line / (24.0 * max(1, design.component(cid).replicas)) * used - line
    twin = autoscaled_cost(design, est)
    n_tr = sum(1 for r in hours if r.transition_s)
    method = (f"24 sampled windows of {window_s:g} s, one per hour of profile_24h at that hour's rate, each "
              "autoscaled component starting at the twin's replica count for the hour"
              + (f"; for the {n_tr} hours whose count changes, the hour's first {t_tr:,.0f} s come from a "
                 "transition window that starts at the previous hour's count (the autoscaler's lag, cold starts "
                 "and scale-down stabilisation)" if t_tr else
                 "; not simulated: the transitions between hours (scale-up lag and cold starts at an hour boundary)")
              + ". Stitched by the hours' shares of the day's requests. Not simulated: scheduled faults, failures "
              "rarer than the windows are long, a backlog carried across an hour boundary (each window starts "
              "empty). The availability interval covers the windows' own noise, not the error of a window "
              "standing for its hour.")
    return SampledDay(design=design.name, seed=seed, window_s=window_s, hours=hours, simulated_requests=simulated,
                      day_requests=total * 3600.0, availability=avail, availability_ci95=ci, replica_hours=rep_hours,
                      twin_replica_hours=twin_hours, autoscaled_cost_per_day_usd=auto,
                      twin_autoscaled_cost_per_day_usd=twin[0] if twin else None, fixed_cost_per_day_usd=fixed,
                      method=method, notes=notes, wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0)


def format_sampled_day(day: SampledDay) -> str:
    """The text of `sdw run --whole-day` for a sampled day."""
    lines = [f"{day.design}: whole day by sampled windows — {day.simulated_requests:,} requests simulated "
             f"of the day's {day.day_requests:,.0f} ({day.window_s:g} s per hour; {day.cpu_s:.1f} s CPU)",
             f"  method: {day.method}"]
    if day.availability is not None:
        band = (f" (95 % CI {day.availability_ci95[0] * 100:.4g}–{day.availability_ci95[1] * 100:.4g} %)"
                if day.availability_ci95 else "")
        lines.append(f"  availability over the day {day.availability * 100:.4g} %{band}")
    for cid, used in day.replica_hours.items():
        twin = day.twin_replica_hours.get(cid, 0.0)
        same = abs(used - twin) < 0.05
        lines.append(f"  {cid}: {used:,.1f} replica-hours (the twin's {twin:,.0f})"
                     + (": the autoscaler kept the twin's count in every window, so this cost is the twin's, "
                        "checked by the simulation to carry each hour's load (availability, p95 below)" if same else ""))
    if day.autoscaled_cost_per_day_usd is not None:
        save = day.fixed_cost_per_day_usd - day.autoscaled_cost_per_day_usd
        twin = (f"; the twin's ${day.twin_autoscaled_cost_per_day_usd:,.0f}" if day.twin_autoscaled_cost_per_day_usd
                is not None else "")
        lines.append(f"  autoscaled cost ${day.autoscaled_cost_per_day_usd:,.0f}/day vs fixed "
                     f"${day.fixed_cost_per_day_usd:,.0f}/day (saves ${save:,.0f}{twin})")
    lines.append("  hour  rate/s  replicas (start → mean)  availability  p95 ms  TTFT p95 ms  transition")
    for r in day.hours:
        reps = ", ".join(f"{cid} {r.transition_start_replicas.get(cid, r.start_replicas[cid])} → {n:.1f}"
                         for cid, n in r.replicas.items())
        av = f"{r.availability * 100:.4g} %" if r.availability is not None else "—"
        p95 = f"{r.latency_ms_p95:,.0f}" if r.latency_ms_p95 is not None else "—"
        ttft = f"{r.ttft_ms_p95:,.0f}" if r.ttft_ms_p95 is not None else "—"
        tr = ""
        if r.transition_s:
            tav = f"{r.transition_availability * 100:.4g} %" if r.transition_availability is not None else "—"
            tp = f"{r.transition_latency_ms_p95:,.0f} ms" if r.transition_latency_ms_p95 is not None else "—"
            tr = f"first {r.transition_s:,.0f} s: {tav}, p95 {tp}, {r.cold_starts} cold start(s)"
        lines.append(f"  {r.hour:>4}  {r.rate_rps:>6.1f}  {reps or '—':<22}  {av:>12}  {p95:>6}  {ttft:>11}  {tr}")
    for n in day.notes:
        lines.append(f"  note: {n}")
    return "\n".join(lines)
