"""Budgets that bind (issue 14): work per request, the deadline and cancel checked by events,
the twin inside the budget. Loose wall-clock sanity only; the timing bounds are in
bench/bench_hostile.py."""

from __future__ import annotations

import threading
import time

import pytest

from designs.model import Design
from sim import SimulationRefused, estimate, simulate, validation_problems
from sim.twin.flow import latency_moments, visits_with
from sim.twin.stations import analyse_station
from sim.twin.flow import visits_per_request


def _chain(n: int, *, back=(), workload=None, mean_ms=1.0, conc=8) -> Design:
    comps = [{"id": f"s{i}", "kind": "service", "concurrency": conc,
              "service_time": {"dist": "exponential", "mean_ms": mean_ms}} for i in range(n)]
    flow = [{"from": f"s{i}", "to": f"s{i + 1}"} for i in range(n - 1)] + list(back)
    return Design.model_validate({"name": "chain", "workload": workload or {"arrival_rps": 1.0},
                                  "components": comps, "entry": "s0", "flow": flow})


def test_a_loop_of_ten_thousand_visits_stops_at_the_deadline_not_after_49_s():
    # The campaign's case: ten services, a back edge p = 1, max_repeats 1000 — 10,010 visits
    # a request. Checked every 2,048 arrivals it ran 49 s under --max-seconds 2.
    d = _chain(10, back=[{"from": "s9", "to": "s0", "p": 1, "max_repeats": 1000}], workload={"arrival_rps": 0.5})
    assert sum(visits_per_request(d).values()) == pytest.approx(10_010)
    t0 = time.perf_counter()
    r = simulate(d, seed=1, max_seconds=1.0)
    assert r.stopped_by == "max_seconds"
    assert time.perf_counter() - t0 < 6.0  # a loose sanity bound (bench: overrun ratio)


def test_back_edges_from_the_last_to_every_earlier_one_are_refused_for_work_not_run_forever():
    # Thirty services, a back edge from the last to each earlier one (p 0.5): the engine tries
    # them one after another, so a request loops ~30,000 times; the twin follows one (32 visits).
    back = [{"from": "s29", "to": f"s{k}", "p": 0.5, "max_repeats": 1000} for k in range(29)]
    d = _chain(30, back=back)
    with pytest.raises(SimulationRefused, match="events each"):
        simulate(d, seed=1, max_seconds=30.0)


def test_expected_visits_beyond_the_limit_are_refused_before_running_and_by_validate():
    d = _chain(2, back=[{"from": "s1", "to": "s0", "p": 1, "max_repeats": 1000}])
    nested = _chain(4, back=[{"from": "s3", "to": "s0", "p": 1, "max_repeats": 1000},
                             {"from": "s2", "to": "s1", "p": 1, "max_repeats": 1000}])
    # The inner loop s1 → s2 runs 1001 times in each of the outer loop's 1001 passes.
    assert sum(visits_per_request(nested).values()) == pytest.approx(1001 * (2 + 2 * 1001))
    assert sum(visits_per_request(d).values()) < 100_000
    (p,) = validation_problems(nested)
    assert p.path == "flow" and "component visits on average" in p.message
    with pytest.raises(SimulationRefused, match="component visits on average"):
        simulate(nested, seed=1)


def test_cancel_is_answered_promptly_inside_a_long_request():
    d = _chain(10, back=[{"from": "s9", "to": "s0", "p": 1, "max_repeats": 1000}], workload={"arrival_rps": 0.5})
    ev = threading.Event()
    threading.Timer(0.3, ev.set).start()
    t0 = time.perf_counter()
    r = simulate(d, seed=1, max_seconds=60.0, cancel=ev)
    assert r.stopped_by == "interrupted" and r.partial
    assert time.perf_counter() - t0 < 5.0


def test_a_million_closed_loop_users_stop_at_the_deadline():
    d = _chain(2, workload={"concurrent_users": 10**6, "think_time": {"dist": "fixed", "value_ms": 1000}})
    t0 = time.perf_counter()
    r = simulate(d, seed=1, max_seconds=1.0)
    assert r.stopped_by == "max_seconds"
    assert time.perf_counter() - t0 < 8.0


def test_closed_loop_mva_on_500_stations_is_bounded_and_exact():
    # 500 users on a 500-station chain took 67 s of CPU; the mean of a flow without fan-outs is
    # Σ visits × time per visit, so the exact recursion now costs O(stations) per user.
    d = _chain(500, workload={"concurrent_users": 500, "think_time": {"dist": "fixed", "value_ms": 1000}})
    t0 = time.perf_counter()
    est = estimate(d)
    assert time.perf_counter() - t0 < 10.0
    assert any("exact MVA recursion" in w for w in est.warnings)
    # Asymptotic bounds: X ≤ N/(Z + D) with D = 500 × 1 ms, and X ≤ 1/D_max = 8 / 1 ms.
    assert est.arrival_rps <= 500 / (1.0 + 0.5) + 1e-9


def test_mean_latency_is_the_sum_of_visits_times_time_per_visit_without_fan_outs():
    # The identity the fast MVA path rests on, checked against the full flow walk on a flow
    # with a branch, a cache (hits end the request) and a loop.
    d = Design.model_validate({
        "name": "mix", "workload": {"arrival_rps": 5.0},
        "components": [
            {"id": "c", "kind": "cache", "hit_ratio": 0.3, "hit_latency": {"dist": "fixed", "value_ms": 1},
             "miss_latency": {"dist": "fixed", "value_ms": 2}},
            {"id": "a", "kind": "service", "service_time": {"dist": "exponential", "mean_ms": 10}},
            {"id": "b", "kind": "service", "service_time": {"dist": "fixed", "value_ms": 20}},
            {"id": "z", "kind": "service", "service_time": {"dist": "fixed", "value_ms": 5}},
        ],
        "entry": "c",
        "flow": [{"from": "c", "to": "a", "p": 0.6}, {"from": "c", "to": "b", "p": 0.4},
                 {"from": "a", "to": "z"}, {"from": "b", "to": "z"},
                 {"from": "z", "to": "a", "p": 0.5, "max_repeats": 3}]})
    visits = visits_per_request(d)
    profiles = {c.id: analyse_station(c, 5.0 * visits[c.id], d).profile(False) for c in d.components}
    vis = visits_with(d, profiles)
    by_sum = sum(vis[k] * (pr.wait1 + sum(p * s for p, s, _, _ in pr.outcomes)) for k, pr in profiles.items())
    mean, _, _ = latency_moments(d, profiles)
    assert by_sum == pytest.approx(mean, rel=1e-12)


def test_cancel_while_the_twin_plans_returns_an_empty_partial_result():
    ev = threading.Event()
    ev.set()
    r = simulate(_chain(3), seed=1, cancel=ev)
    assert r.stopped_by == "interrupted" and r.partial and r.simulated_requests == 0
    assert r.latency_ms.p95 is None and r.latency_ms_ci95.p95 is None
