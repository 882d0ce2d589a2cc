"""A timeline's plan, without running it: whether a design runs as a timeline, its horizon,
its trace, and what it would refuse (for `sdw validate` through `sim.des.limits`).

Usage::

    from sim.ops.plan import wants_timeline, plan_horizon, timeline_problems
    trace, scale, horizon_s = plan_horizon(design, whole_day=False)   # TimelineRefused if it cannot
    timeline_problems(design)                                          # [Problem(path, message), …]
"""

from __future__ import annotations

from components.errors import Refusal

from .traffic import TraceError, load_trace

__all__ = ["TimelineRefused", "wants_timeline", "plan_horizon", "timeline_problems", "DEFAULT_HORIZON_S", "DAY_S"]

DEFAULT_HORIZON_S = 3600.0  # one peak hour
DAY_S = 86_400.0


class TimelineRefused(Refusal):
    """The timeline cannot be run as stated; the message is located (field path or file:line)."""


def _has_ops(design) -> bool:
    return bool(design.faults) or design.workload.trace is not None or any(
        c.failures is not None or getattr(c, "autoscale", None) is not None for c in design.components
    ) or (design.workload.arrivals is not None and design.workload.arrivals.process != "poisson")


def wants_timeline(design, whole_day: bool) -> bool:
    """Whether `simulate` runs this design as a timeline: with `faults`, a trace or
    `timeline_s`; on a whole day, with any operations setting (see `sim.ops.timeline`)."""
    wl = design.workload
    if whole_day:
        return _has_ops(design)
    return bool(design.faults) or wl.trace is not None or wl.timeline_s is not None


def plan_horizon(design, whole_day: bool):
    """(trace or None, time scale, horizon in seconds) of the timeline; refuses a bad trace or a
    fault that starts after the run ends, naming the field (and file:line:column)."""
    wl = design.workload
    if wl.closed_loop:
        raise TimelineRefused("workload.concurrent_users: a timeline run (faults, traces, timeline_s, autoscaling) "
                              "needs open-loop traffic; give requests_per_day or arrival_rps instead")
    trace = None
    scale = 1.0
    if wl.trace is not None:
        names = [c.name for c in wl.request_classes()]
        try:
            trace = load_trace(wl.trace.path, names)
            scale = trace.scale_for(wl.trace.target_rps, wl.trace.time_scale)
        except TraceError as e:
            raise TimelineRefused(f"workload.trace.path: {e}") from None
    if whole_day:
        horizon_s = DAY_S
    elif wl.timeline_s is not None:
        horizon_s = wl.timeline_s
    elif trace is not None:
        horizon_s = max(trace.span_s * scale, 1e-6) * (1 + 1e-9) + 1e-9
    else:
        horizon_s = DEFAULT_HORIZON_S
    for n, f in enumerate(design.faults):
        if f.at_s >= horizon_s:
            where = "the day" if whole_day else "workload.timeline_s" if wl.timeline_s else (
                "the trace" if trace is not None else "the default peak hour")
            raise TimelineRefused(f"faults[{n}].at_s: the fault starts at {f.at_s:g} s, after the run's "
                                  f"{horizon_s:g} s ({where}) end; start it earlier, set workload.timeline_s "
                                  "or run --whole-day")
    return trace, scale, horizon_s


def timeline_problems(design) -> list:
    """What a timeline run of `design` would refuse (a bad trace row, a fault past the run's
    end), as located problems for `sdw validate`; empty when it would run (or is no timeline)."""
    from designs.model import Problem

    out = []
    for whole_day in (False, True):
        if not wants_timeline(design, whole_day) or (whole_day and design.workload.closed_loop):
            continue  # a whole-day closed loop is refused (and located) by the engine's own checks
        try:
            plan_horizon(design, whole_day)
        except TimelineRefused as e:
            path, _, msg = str(e).partition(": ")
            if whole_day and any(p.path == path for p in out):
                continue
            out.append(Problem(path, msg + (" (in a --whole-day run)" if whole_day else "")))
    return out


