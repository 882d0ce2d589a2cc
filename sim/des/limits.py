"""What the engine refuses before it runs, and the work it allows a run while it runs.

A simulation's cost is events, not arrivals: one request of a ten-step agent loop repeated a
thousand times is ten thousand events. So the engine budgets by *events* and by *simulated
time*, both set from what the analytic twin predicts:

* `run_problems(design, est)` — located problems for designs no run could answer: a peak
  rate above `MAX_PEAK_RPS`; one so low that the run's simulated span (requests ÷ rate)
  passes `MAX_SIM_SECONDS`, where a double no longer resolves a microsecond; more than
  `MAX_VISITS_PER_REQUEST` component visits per request (the twin's expected visits: loops
  with high `p` and `max_repeats`); more than `MAX_IN_FLIGHT` requests in flight at once
  (L = λW from the twin: memory). `sdw validate` reports the same problems.
* `events_per_request(design, est)` — the events one request is expected to cost (visits ×
  events per visit of each kind). The run refuses mid-way (`SimulationRefused`) when the
  events it has processed exceed `WORK_FACTOR` times that per arrival. Where a component has
  several back edges (the twin's walk follows one) the visits come from the flow's visit
  equations instead (`sim.twin.visits`: v = e + vP, one linear solve per active set), so
  `sdw validate` refuses a design whose requests would loop hundreds of thousands of times.
* `in_flight_cap(est)` — the in-flight count past which a run is cut as a growing backlog:
  `MAX_IN_SYSTEM`, or a few times the twin's λW when many requests are legitimately in flight
  (a 5-minute tool call at 1,000 requests/s holds 300,000 with no queue at all).

Usage::

    >>> from designs.io import load_design
    >>> from sim.twin.analytic import estimate
    >>> from sim.des.limits import run_problems
    >>> d = load_design("designs/library/rag_qa.yaml")
    >>> run_problems(d, estimate(d))
    []
"""

from __future__ import annotations

import math

from designs.model import Problem

__all__ = [
    "run_problems",
    "validation_problems",
    "events_per_request",
    "equation_visits",
    "in_flight_cap",
    "horizon_requests",
    "MAX_PEAK_RPS",
    "MAX_SIM_SECONDS",
    "MIN_PLANNED_REQUESTS",
    "MAX_VISITS_PER_REQUEST",
    "MAX_IN_FLIGHT",
    "MAX_IN_SYSTEM",
    "WORK_FACTOR",
    "RELAX_MULTIPLE",
    "relaxation_arrivals",
    "short_run_warning",
]

MAX_PEAK_RPS = 1e6
"""Arrivals per second a run accepts (beyond: simulate one shard of the fleet)."""
MAX_SIM_SECONDS = 1e9
"""Simulated seconds a run may span: at 1e9 s a double resolves 1.2e-7 s (ulp), fine for
millisecond latencies; at 1e13 s it resolves 2 ms and latencies come out as multiples of it."""
MIN_PLANNED_REQUESTS = 20_000
"""Requests a run needs at least (warm-up and ten batches of a few thousand)."""
MAX_VISITS_PER_REQUEST = 100_000
"""Expected component visits per request a run accepts (~0.1–0.5 s of CPU per request)."""
MAX_IN_SYSTEM = 200_000
"""Requests in flight before a run is cut as a growing backlog, unless the twin expects more."""
MAX_IN_FLIGHT = 1_000_000
"""Requests in flight the engine holds at most (~300 bytes each): a design whose λW is above
this is refused before it runs."""
RELAX_MULTIPLE = 5.0
"""Warm-up and batches shorter than this many relaxation times get a warning."""
WORK_FACTOR = 20.0
"""Events per arrival a run may use, as a multiple of the twin's expectation, before it is
stopped (the slack absorbs retries, timeouts and batching iterations the estimate rounds)."""


def horizon_requests(rate_rps: float) -> int:
    """Requests that fit in `MAX_SIM_SECONDS` of simulated time at `rate_rps`."""
    if not (rate_rps > 0 and math.isfinite(rate_rps)):
        return 0
    return int(min(1e18, MAX_SIM_SECONDS * rate_rps))


def _in_flight(est) -> float:
    """The twin's L = λW (requests in flight at once), 0 when unknown or unbounded."""
    if est is None or not est.arrival_rps or est.latency_ms_mean is None or not math.isfinite(est.latency_ms_mean):
        return 0.0
    return est.arrival_rps * est.latency_ms_mean / 1000.0


def in_flight_cap(est) -> int:
    """In-flight requests past which the run is cut as an unstable backlog."""
    lw = _in_flight(est)
    return int(min(MAX_IN_FLIGHT, max(MAX_IN_SYSTEM, 2.0 * lw + 10.0 * math.sqrt(lw))))


def equation_visits(design) -> dict[str, float] | None:
    """Expected visits from the flow's visit equations (`sim.twin.visits`) when some component
    has several back edges — the flow walk follows one of them — else None (the walk is exact)."""
    from sim.twin.visits import needs_visit_equations, visit_equations

    if not needs_visit_equations(design):
        return None
    return visit_equations(design)  # solved once per design object (the twin asked first)


def _visits(design, est) -> dict[str, float]:
    """Per-component expected visits: the twin's, or the visit equations' where they see more."""
    twin = {cid: st.visits_per_request for cid, st in est.stations.items()}
    eq = equation_visits(design)
    if eq is None:
        return twin
    return {cid: max(x, eq.get(cid, 0.0)) for cid, x in twin.items()}


def events_per_request(design, est) -> float:
    """Events one request is expected to cost: Σ visits × events per visit (at least 2)."""
    if est is None:
        return 0.0
    visits = _visits(design, est)
    out_tokens = max((c.output_tokens.expected() for c in design.workload.request_classes()), default=1.0)
    total = 2.0  # the arrival and the end
    for c in design.components:
        st = est.stations.get(c.id)
        if st is None or not visits.get(c.id):
            continue
        # Events per visit: a completion, a timeout timer, a hand-off; an LLM server steps once
        # per decode iteration (~one per output token of a lone request); an API may retry.
        per = 3.0
        if c.kind == "llm_server":
            per = 4.0 + out_tokens
        elif c.kind in ("llm_api", "judge"):
            per = 4.0 + 2.0 * getattr(c, "max_retries", 0)
        total += visits[c.id] * per
    return total


def relaxation_arrivals(est) -> tuple[float, float]:
    """(ρ, τ): the busiest stable station's utilisation and its relaxation time in arrivals,
    τ = ρ / (1 − √ρ)² (an M/M/c queue forgets its start in about 1/(μ(√c − √(cρ))²) seconds,
    i.e. that many arrivals). (0, 0) without an estimate."""
    if est is None:
        return 0.0, 0.0
    rhos = [s.utilization for s in est.stations.values() if s.servers and 0 < s.utilization < 1]
    if not rhos:
        return 0.0, 0.0
    rho = max(rhos)
    return rho, rho / (1.0 - math.sqrt(rho)) ** 2


def short_run_warning(est, n_warm: int, n_meas: int) -> str | None:
    """A warning when the warm-up or the batches are short against the relaxation time: the
    figures are then biased (an emptier-than-steady start) and the interval too narrow."""
    rho, tau = relaxation_arrivals(est)
    if tau <= 0 or (n_warm >= RELAX_MULTIPLE * tau and n_meas >= RELAX_MULTIPLE * tau):
        return None
    return (f"warm-up ({n_warm:,} requests) and batches ({n_meas:,}) are short against the relaxation time at "
            f"ρ = {rho:.4g} (τ ≈ {tau:,.0f} arrivals, want ≥ {RELAX_MULTIPLE:g}τ each): the percentiles are biased "
            f"low and the interval too narrow; raise --max-requests to ≥ {int(RELAX_MULTIPLE * tau * 12):,} or read "
            "the analytic twin")


def run_problems(design, est=None, *, max_requests: int = 2_000_000) -> list[Problem]:
    """Problems that make the engine refuse `design` before running (empty: it will run).

    `est` is the twin's estimate (None when the twin cannot model the design: only the
    workload checks apply).
    """
    wl = design.workload
    out: list[Problem] = []
    field = "workload.arrival_rps" if wl.arrival_rps is not None else "workload.requests_per_day"
    if wl.batch is not None and wl.arrival_rps is None:
        return out  # a pipeline: no request traffic to simulate
    if not wl.closed_loop:
        rate = wl.peak_rps
        if rate > MAX_PEAK_RPS:
            out.append(Problem(field, f"peak rate {rate:,.0f} requests/s is above {MAX_PEAK_RPS:,.0f}/s; "
                                      "check requests_per_day / peak_to_average (or simulate one shard of the fleet)"))
        elif horizon_requests(rate) < MIN_PLANNED_REQUESTS:
            out.append(Problem(field, f"peak rate {rate:.3g} requests/s is too low to simulate: {MIN_PLANNED_REQUESTS:,} "
                                      f"requests would span {MIN_PLANNED_REQUESTS / rate:.3g} s of simulated time, past "
                                      f"{MAX_SIM_SECONDS:.0e} s where a double no longer resolves a microsecond; at this "
                                      "rate requests never meet — read the no-load latency from `sdw estimate`"))
    if est is None:
        return out
    twin_visits = sum(st.visits_per_request for st in est.stations.values())
    visits = sum(_visits(design, est).values())
    if visits > MAX_VISITS_PER_REQUEST:
        loops = [f"{e.from_} → {e.to} (p {e.p:g}, max_repeats {e.max_repeats})" for e in design.flow if e.is_loop]
        how = ("expected visits from the flow's visit equations v = e + vP, every back edge of a component tried in "
               "turn up to its max_repeats" if equation_visits(design) is not None or visits > twin_visits
               else "the twin's expected visits")
        shown = ", ".join(loops[:6]) + (f" and {len(loops) - 6} more" if len(loops) > 6 else "")
        out.append(Problem("flow", f"a request makes {visits:,.0f} component visits on average ({how}), above "
                                   f"{MAX_VISITS_PER_REQUEST:,}: too much work per request to simulate; "
                                   f"lower p or max_repeats on the back edges {shown or '(none)'}"))
    lw = _in_flight(est)
    if lw > MAX_IN_FLIGHT:
        out.append(Problem(field, f"the design holds {lw:,.0f} requests in flight at once (λW: {est.arrival_rps:,.4g} "
                                  f"requests/s × {est.latency_ms_mean / 1000:,.4g} s), above the {MAX_IN_FLIGHT:,} a run "
                                  "can hold; simulate a shard (a lower rate) — the twin's figures stand"))
    return out


def validation_problems(design) -> list[Problem]:
    """Every check `estimate` and `simulate` would refuse on, as problems (what `sdw validate`
    adds to the file's own checks): hardware configuration, the twin's refusals, the run's.

    Only deliberate refusals become problems; anything else the twin raises is a bug and
    propagates.
    """
    from components.errors import Refusal
    from sim.check import config_problems
    from sim.twin.analytic import estimate

    problems = config_problems(design)
    if problems:
        return problems
    try:
        est = estimate(design)
    except Refusal as e:
        return [Problem("", f"the analytic twin refuses: {e}")]
    from sim.ops.plan import timeline_problems  # faults past the run, bad trace rows (issue 13)

    return run_problems(design, est) + timeline_problems(design)
