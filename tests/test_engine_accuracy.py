"""The simulator against exact queueing results: M/M/c (Erlang C), Pollaczek–Khinchine, Jackson
tandems, a cache branch, a fan-out join and Little's law.

Sizes are chosen so the whole file runs in well under a minute on two cores; the coverage test
(20 seeded runs) is the slowest. Tolerances are the engine's contract: 2 % on means and p95s.
"""

from __future__ import annotations

import pytest

from designs.model import Design
from sim.des.engine import simulate
from sim.twin.queueing import mg1_mean_wait, mmc_mean_response, mmc_response_quantile


def _design(components: list[dict], flow: list[dict] | None = None, entry: str | None = None, **workload) -> Design:
    return Design.model_validate({
        "name": "acc", "workload": workload, "components": components,
        "entry": entry or components[0]["id"], "flow": flow or [],
    })


def _service(cid: str, c: int, dist: dict) -> dict:
    return {"id": cid, "kind": "service", "replicas": 1, "concurrency": c, "service_time": dist}


def _expo(mean_ms: float) -> dict:
    return {"dist": "exponential", "mean_ms": mean_ms}


def _mmc(c: int, rho: float, mean_ms: float = 100.0) -> tuple[Design, float, float]:
    mu = 1000.0 / mean_ms
    lam = rho * c * mu
    return _design([_service("svc", c, _expo(mean_ms))], arrival_rps=lam), lam, mu


@pytest.mark.parametrize("c, rho", [(1, 0.5), (10, 0.8), (70, 0.9), (70, 0.95)])
def test_mmc_mean_and_p95_within_2_percent_of_erlang_c(c, rho):
    d, lam, mu = _mmc(c, rho)
    # A wall budget far beyond the run's CPU time: the precision rule, not machine load, stops it.
    r = simulate(d, seed=11, precision=0.015, max_seconds=900)
    assert r.engine_path == "fifo_recursion"  # a lone M/M/c qualifies (tests/test_chain.py: = the event loop)
    exact_mean = mmc_mean_response(lam, mu, c) * 1000
    exact_p95 = mmc_response_quantile(0.95, lam, mu, c) * 1000
    assert r.stopped_by == "precision" and r.stable
    assert r.latency_ms.mean == pytest.approx(exact_mean, rel=0.02)
    assert r.latency_ms.p95 == pytest.approx(exact_p95, rel=0.02)
    assert r.components["svc"].utilization == pytest.approx(rho, rel=0.02)
    assert r.littles_law is not None and r.littles_law.ok and r.littles_law.rel_error < 0.01


def test_mmc_exact_values_inside_reported_ci_in_19_of_20_seeded_runs():
    # The slowest test here (20 runs, ~1.5M requests in all).
    d, lam, mu = _mmc(10, 0.8)
    exact_mean = mmc_mean_response(lam, mu, 10) * 1000
    exact_p95 = mmc_response_quantile(0.95, lam, mu, 10) * 1000
    hit_mean = hit_p95 = 0
    for seed in range(20):
        r = simulate(d, seed=seed, precision=0.05)
        lo, hi = r.latency_ms_ci95.p95
        hit_p95 += lo <= exact_p95 <= hi
        lo, hi = r.latency_ms_ci95.mean
        hit_mean += lo <= exact_mean <= hi
    assert hit_p95 >= 19, f"p95 CI covered the exact value in {hit_p95}/20 runs"
    assert hit_mean >= 19, f"mean CI covered the exact value in {hit_mean}/20 runs"


@pytest.mark.parametrize("dist, mean_s, scv", [
    ({"dist": "fixed", "value_ms": 80}, 0.08, 0.0),  # M/D/1
    ({"dist": "uniform", "low_ms": 20, "high_ms": 140}, 0.08, (120**2 / 12) / 80**2),  # M/G/1
])
def test_single_server_mean_matches_pollaczek_khinchine(dist, mean_s, scv):
    lam = 8.75  # ρ = 0.7
    r = simulate(_design([_service("svc", 1, dist)], arrival_rps=lam), seed=3, precision=0.02)
    exact_ms = (mg1_mean_wait(lam, mean_s, scv) + mean_s) * 1000
    # By hand for M/D/1: Wq = ρ·E[S]/(2(1−ρ)) = 0.7·80/0.6 = 93.3 ms, so 173.3 ms in all.
    if scv == 0:
        assert exact_ms == pytest.approx(80 + 0.7 * 80 / 0.6)
    assert r.latency_ms.mean == pytest.approx(exact_ms, rel=0.02)


@pytest.mark.parametrize("path", ["auto", "events"])  # the FIFO recursion (sim.des.chain) and the event loop
def test_tandem_of_three_matches_sum_of_mmc_responses(path):
    stations = [(4, 30.0), (2, 60.0), (8, 20.0)]  # (servers, rate): ρ = 0.75, 0.75, 0.56 at λ = 90/s
    comps = [_service(f"s{i}", c, _expo(1000.0 / mu)) for i, (c, mu) in enumerate(stations)]
    flow = [{"from": "s0", "to": "s1"}, {"from": "s1", "to": "s2"}]
    r = simulate(_design(comps, flow, arrival_rps=90.0), seed=5, precision=0.015, path=path)
    assert r.engine_path == ("events" if path == "events" else "fifo_recursion")
    exact_ms = sum(mmc_mean_response(90.0, mu, c) for c, mu in stations) * 1000  # Jackson network
    assert r.latency_ms.mean == pytest.approx(exact_ms, rel=0.02)
    assert r.littles_law.ok and r.littles_law.rel_error < 0.01
    for i, (c, mu) in enumerate(stations):
        assert r.components[f"s{i}"].utilization == pytest.approx(90.0 / (c * mu), rel=0.03)


def test_cache_hit_branch_matches_hand_worked_rates():
    # λ = 50/s; 30 % hits answer in 1 ms; misses take 2 ms then an M/M/2 with 20 ms service.
    cache = {"id": "cache", "kind": "cache", "replicas": 1, "concurrency": 1000, "hit_ratio": 0.3,
             "hit_latency": {"dist": "fixed", "value_ms": 1}, "miss_latency": {"dist": "fixed", "value_ms": 2}}
    comps = [cache, _service("db", 2, _expo(20))]
    r = simulate(_design(comps, [{"from": "cache", "to": "db"}], arrival_rps=50.0), seed=2, precision=0.015)
    assert r.components["cache"].throughput_rps == pytest.approx(50.0, rel=0.02)
    assert r.components["db"].throughput_rps == pytest.approx(35.0, rel=0.02)  # 0.7 × 50
    assert r.components["db"].utilization == pytest.approx(35.0 * 0.020 / 2, rel=0.03)
    exact_ms = 0.3 * 1.0 + 0.7 * (2.0 + mmc_mean_response(35.0, 50.0, 2) * 1000)
    assert r.latency_ms.mean == pytest.approx(exact_ms, rel=0.02)


def test_fan_out_join_waits_for_the_slower_branch():
    # Two exponential branches (unbounded tools, means 50 and 100 ms) between 1 ms steps:
    # E[max] = 1/μ1 + 1/μ2 − 1/(μ1 + μ2) = 50 + 100 − 33.33 ms.
    fixed1 = {"dist": "fixed", "value_ms": 1}
    comps = [
        {"id": "split", "kind": "service", "concurrency": 10_000, "service_time": fixed1},
        {"id": "a", "kind": "tool", "latency": _expo(50)},
        {"id": "b", "kind": "tool", "latency": _expo(100)},
        {"id": "join", "kind": "service", "concurrency": 10_000, "service_time": fixed1},
    ]
    flow = [{"from": "split", "to": "a", "parallel": True}, {"from": "split", "to": "b", "parallel": True},
            {"from": "a", "to": "join"}, {"from": "b", "to": "join"}]
    r = simulate(_design(comps, flow, arrival_rps=40.0), seed=4, precision=0.02)
    exact_ms = 1 + (50 + 100 - 1 / (1 / 50 + 1 / 100)) + 1
    assert r.latency_ms.mean == pytest.approx(exact_ms, rel=0.02)
    assert r.components["join"].throughput_rps == pytest.approx(40.0, rel=0.03)  # joined once, not twice
