"""Closed-loop LLM designs: the analytic twin must satisfy Little's law on its own figures.

Before issue 11 the twin ran mean-value analysis on the LLM's light-load service time, then
re-analysed the server at the resulting throughput, where TPOT (and the open model's slot
wait) is much larger: X·(Z + R) came out 501 for 300 users here, and the reported TTFT held an
open-model wait near ρ = 1. The fixed point runs the MVA on the service times at its own
throughput.
"""

import pytest

from designs.model import Design
from sim.twin.analytic import estimate


def _design(users: int) -> Design:
    return Design.model_validate({
        "name": "cl", "entry": "llm", "flow": [],
        "workload": {"concurrent_users": users, "think_time": {"dist": "fixed", "value_ms": 1000},
                     "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": 500},
                                  "output_tokens": {"dist": "fixed", "value": 200}}]},
        "components": [{"id": "llm", "kind": "llm_server", "model": "llama-3.1-8b"}]})


@pytest.mark.parametrize("users", [20, 300])
def test_littles_law_holds_on_the_twins_own_figures(users):
    e = estimate(_design(users))
    x = e.stations["llm"].arrival_rps
    r = e.latency_ms_mean / 1000
    assert x * (1.0 + r) == pytest.approx(users, rel=0.01)
    llm = e.llm["llm"]
    # a request's time at the server = TTFT + 199 × TPOT, and the TTFT is the closed loop's
    assert r == pytest.approx(llm.ttft_ms_estimate / 1000 + 199 * llm.tpot_ms_estimate / 1000, rel=0.02)
    assert llm.ttft_ms_estimate < 2000


def test_more_users_more_throughput_until_the_slots_fill():
    x = [estimate(_design(n)).stations["llm"].arrival_rps for n in (20, 100, 300)]
    assert x[0] < x[1] < x[2]
    cap = estimate(_design(300)).llm["llm"].max_requests_per_s_per_replica
    assert x[2] <= cap * 1.001


def test_simulation_plans_its_warm_up_from_the_population_not_from_rho():
    # 300 users on one replica: the twin's server runs at ρ ≈ 0.99 (the slots are full), where
    # the open-queue rule τ = ρ/(1 − √ρ)² planned 20 × 35,800 ≈ 716,932 warm-up requests.
    # In a closed loop a deviation decays within one cycle, N = 300 arrivals: warm-up
    # max(n_meas/5, 20·N, 15·N, 200) = 6,000 and batches max(5,000, 100·N, 10·N) = 30,000.
    from sim.des.engine import _rep_plan

    d = _design(300)
    e = estimate(d)
    assert e.stations["llm"].utilization > 0.98
    n_meas, n_warm = _rep_plan(e, d.workload)
    assert (n_meas, n_warm) == (30_000, 6_000)


def test_a_short_run_measures_and_one_that_measures_nothing_does_not_claim_stable():
    from sim import simulate

    d = _design(300)
    # A 20,000-request budget: 10 batches of ⌊20,000/11⌋ = 1,818 after min(6,000, 20,000/5) = 4,000
    # warm-up requests — measured (before: 716,932 warm-up requests planned, nothing measured at
    # the default time budget, `stable: true`).
    r = simulate(d, seed=1, max_requests=20_000, max_seconds=60)
    assert r.warmup_requests == 4_000 and r.completed_requests >= 5 * 1_818 and r.replications >= 5
    assert r.stable is True
    # and the closed loop's throughput is the twin's within a few per cent (slots full: λ*)
    assert r.arrival_rps == pytest.approx(estimate(d).stations["llm"].arrival_rps, rel=0.08)
    # A budget that ends inside the warm-up measures nothing, and says so instead of "stable".
    r0 = simulate(d, seed=1, max_seconds=0.01)
    assert r0.completed_requests == 0 and r0.stable is False
    assert any("stability is not established" in w for w in r0.warnings)  # in planning or in the warm-up
