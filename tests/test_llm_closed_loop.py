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
