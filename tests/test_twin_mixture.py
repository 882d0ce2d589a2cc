"""The twin's end-to-end percentiles from a mixture of gammas (loops, branches, shared tokens).

Exact cases first (a geometric sum of exponentials is exponential; a fixed delay repeated a
capped geometric number of times has a discrete quantile worked by hand), then the figures a
flow without loops or branches gave before (one part: the one-gamma fit, unchanged), then the
simulation on the minimal loop design and on agent_workflow, at budgets of 0.6 and 1.5 CPU-s
whose p95 intervals are ±1 % and ±2–4 % wide.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from designs.io import load_design
from designs.model import Design
from sim import simulate
from sim.twin import flow
from sim.twin import queueing as qt
from sim.twin.analytic import _analyse_all, _profiles, estimate

LIB = Path(__file__).resolve().parents[1] / "designs" / "library"


def _design(components: list[dict], edges: list[dict], rps: float = 10.0) -> Design:
    return Design.model_validate({"name": "t", "workload": {"arrival_rps": rps}, "components": components,
                                  "entry": components[0]["id"], "flow": edges})


def _tool(cid: str, latency: dict) -> dict:
    return {"id": cid, "kind": "tool", "latency": latency}  # a pure delay: no queue


def _profiles_of(d: Design) -> dict:
    return _profiles(_analyse_all(d, d.workload.peak_rps, flow.visits_per_request(d)))


def _one_gamma(d: Design, q: float) -> float:
    """What the twin gave before the mixture: one gamma on the end-to-end mean and variance."""
    m, v, _ = flow.latency_moments(d, _profiles_of(d))
    return qt.gamma_quantile(q, m, v) * 1000


# --- exact cases -------------------------------------------------------------------------------


def test_fixed_delay_with_capped_geometric_passes_gives_the_discrete_quantile():
    # a (100 ms) → b (50 ms), back b → a with p 0.5 at most 5 times: N passes of 150 ms,
    # P(N > k) = 0.5ᵏ for k ≤ 5. P(N ≤ 3) = 0.875, P(N ≤ 4) = 0.9375, P(N ≤ 5) = 0.96875,
    # P(N ≤ 6) = 1: p90 = 4 × 150, p95 = 5 × 150, p99 = 6 × 150 ms.
    d = _design([_tool("a", {"dist": "fixed", "value_ms": 100}), _tool("b", {"dist": "fixed", "value_ms": 50})],
                [{"from": "a", "to": "b"}, {"from": "b", "to": "a", "p": 0.5, "max_repeats": 5}])
    _, _, mix, _ = flow.latency_mixture(d, _profiles_of(d))
    assert len(mix) == 6 and sum(w for w, _, _ in mix) == pytest.approx(1.0)
    for q, want in ((0.9, 600.0), (0.95, 750.0), (0.99, 900.0)):
        assert qt.mixture_quantile(q, mix) * 1000 == pytest.approx(want, rel=1e-9)
    est = estimate(d)
    assert est.latency_ms_p95_approx == pytest.approx(750.0, rel=1e-9)
    assert flow.latency_quantile(0.95, d, _profiles_of(d)) * 1000 == pytest.approx(750.0, rel=1e-9)
    assert est.latency_ms_mean == pytest.approx(150 * sum(0.5**k for k in range(6)))
    assert abs(_one_gamma(d, 0.95) / 750.0 - 1) > 0.05  # what one gamma gave: off by more than 5 %


def test_geometric_sum_of_exponentials_is_exponential():
    # An exponential delay (mean 80 ms) repeated with p 0.6 up to 60 times: N ≈ geometric with
    # mean 2.5, so the sum ≈ Exp(200 ms) (the cap's mass 0.6⁶¹ ≈ 3e-14): p95 = 200 ms × ln 20.
    # 61 pass counts are merged into 16 parts (Erlang-k each, exact before merging).
    d = _design([_tool("a", {"dist": "exponential", "mean_ms": 80}), _tool("b", {"dist": "fixed", "value_ms": 0})],
                [{"from": "a", "to": "b"}, {"from": "b", "to": "a", "p": 0.6, "max_repeats": 60}])
    m, v, mix, _ = flow.latency_mixture(d, _profiles_of(d))
    assert len(mix) <= flow.MIX_CAP
    assert m == pytest.approx(0.2, rel=1e-9) and v == pytest.approx(0.04, rel=1e-9)
    for q in (0.5, 0.9, 0.95, 0.99):
        assert qt.mixture_quantile(q, mix) == pytest.approx(-0.2 * math.log(1 - q), rel=0.01)


def test_mixture_quantile_solves_the_mixture_cdf():
    # Two exponentials: P(T > t) = w·e^(−t/m₁) + (1 − w)·e^(−t/m₂), checked at the root found.
    parts = [(0.7, 1.0, 1.0), (0.3, 10.0, 100.0)]
    for q in (0.5, 0.95, 0.99):
        t = qt.mixture_quantile(q, parts)
        assert 1 - (0.7 * math.exp(-t) + 0.3 * math.exp(-t / 10)) == pytest.approx(q, abs=1e-9)
        assert qt.mixture_cdf(t, parts) == pytest.approx(q, abs=1e-9)
    # one part is exactly the gamma fit; equal parts are that gamma too
    assert qt.mixture_quantile(0.95, [(1.0, 2.0, 3.0)]) == qt.gamma_quantile(0.95, 2.0, 3.0)
    assert qt.mixture_quantile(0.95, [(0.5, 2.0, 3.0), (0.5, 2.0, 3.0)]) == pytest.approx(qt.gamma_quantile(0.95, 2.0, 3.0), rel=1e-9)


def test_merging_keeps_the_mean_and_variance():
    d = _design(
        [_tool("plan", {"dist": "lognormal", "mean_ms": 400, "p95_ms": 900}),
         _tool("fast", {"dist": "exponential", "mean_ms": 50}), _tool("slow", {"dist": "lognormal", "mean_ms": 900, "p95_ms": 2500}),
         _tool("store", {"dist": "fixed", "value_ms": 5})],
        [{"from": "plan", "to": "fast", "p": 0.7}, {"from": "plan", "to": "slow", "p": 0.3},
         {"from": "fast", "to": "store"}, {"from": "slow", "to": "store"},
         {"from": "store", "to": "plan", "p": 0.7, "max_repeats": 12}])
    prof = _profiles_of(d)
    m0, v0, _ = flow.latency_moments(d, prof)
    for cap in (2, 4, 16, 64):
        _, _, mix, _ = flow.latency_mixture(d, prof, cap=cap)
        assert len(mix) <= cap
        mean = sum(w * m for w, m, _ in mix)
        var = sum(w * (v + m * m) for w, m, v in mix) - mean * mean
        assert mean == pytest.approx(m0, rel=1e-12) and var == pytest.approx(v0, rel=1e-9)


# --- unchanged where there is nothing to mix ----------------------------------------------------


@pytest.mark.parametrize("name", ["chain", "fanout", "llm_serving"])
def test_flows_without_loops_or_branches_give_the_same_figures_as_before(name):
    if name == "llm_serving":
        d = load_design(LIB / "llm_serving.yaml")
    else:
        svc = lambda cid, ms, c: {"id": cid, "kind": "service", "concurrency": c,  # noqa: E731
                                  "service_time": {"dist": "lognormal", "mean_ms": ms, "p95_ms": 2.2 * ms}}
        comps = [svc("a", 20, 4), svc("b", 35, 8), svc("c", 50, 8), svc("d", 10, 2)]
        edges = ([{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "d"}] if name == "chain" else
                 [{"from": "a", "to": "b", "parallel": True}, {"from": "a", "to": "c", "parallel": True},
                  {"from": "b", "to": "d"}, {"from": "c", "to": "d"}])
        d = _design(comps, edges, rps=60)
    est = estimate(d)
    assert est.latency_ms_p95_approx == _one_gamma(d, 0.95)  # bit for bit
    _, _, mix, _ = flow.latency_mixture(d, _profiles_of(d))
    assert len(mix) == 1


# --- the request's output tokens, shared by its LLM calls ---------------------------------------


def test_calls_sharing_the_output_tokens_are_correlated_through_the_token_bins():
    # Two llm_api calls in a row generate the same n tokens (the simulation's rule): the
    # variance gains 2·u_a·u_b·Cov over independent calls, Cov the spread of n between the
    # token bins (the spread within a bin is left independent: 12 % of Var(n) for this
    # lognormal); each call keeps its own mean and variance.
    api = lambda cid: {"id": cid, "kind": "llm_api", "provider_model": "gpt-4o"}  # noqa: E731
    d = Design.model_validate({
        "name": "t", "entry": "a", "components": [api("a"), api("b")], "flow": [{"from": "a", "to": "b"}],
        "workload": {"arrival_rps": 1, "classes": [{"name": "c", "share": 1.0, "prompt_tokens": {"dist": "fixed", "value": 500},
                                                     "output_tokens": {"dist": "lognormal", "mean": 150, "p95": 400}}]}})
    prof = _profiles_of(d)
    m0, v0, _ = flow.latency_moments(d, prof)
    _, _, mix, _ = flow.latency_mixture(d, prof)
    mean = sum(w * m for w, m, _ in mix)
    var = sum(w * (v + m * m) for w, m, v in mix) - mean * mean
    n = d.workload.classes[0].output_tokens
    u = [(prof[c].outcomes[0][1] - d.component(c).ttft.expected() / 1000) / n.expected() for c in "ab"]
    bins = flow._token_bins(d)
    between = sum(w * m * m for w, m, _ in bins) - n.expected() ** 2
    assert sum(w * m2 for w, _, m2 in bins) == pytest.approx(n.var() + n.expected() ** 2, rel=1e-12)
    assert 0.85 < between / n.var() < 0.9
    assert mean == pytest.approx(m0, rel=1e-9)
    assert var == pytest.approx(v0 + 2 * u[0] * u[1] * between, rel=1e-9)
    assert var > 1.2 * v0
    # one call per request: nothing shared, the figures as before
    one = d.model_copy(update={"components": d.components[:1], "flow": []})
    assert estimate(one).latency_ms_p95_approx == _one_gamma(one, 0.95)


# --- against the simulation -------------------------------------------------------------------


def test_minimal_loop_p95_within_the_simulations_interval():
    # One lognormal service (500 ms mean, 700 ms p95) then 10 ms, back with p 0.5 up to 10 times.
    # 100,000 requests (0.6 CPU-s): p95 2,488–2,510 ms over seeds 0–2, intervals ±1 %.
    # One gamma gave 2,447 ms (−2.5 %); the mixture 2,504 ms.
    d = _design([{"id": "worker", "kind": "service", "concurrency": 64,
                  "service_time": {"dist": "lognormal", "mean_ms": 500, "p95_ms": 700}},
                 {"id": "done", "kind": "service", "concurrency": 64,
                  "service_time": {"dist": "lognormal", "mean_ms": 10, "p95_ms": 12}}],
                [{"from": "worker", "to": "done"}, {"from": "done", "to": "worker", "p": 0.5, "max_repeats": 10}], rps=20)
    r = simulate(d, seed=0, precision=0.5, max_requests=100_000, max_seconds=30)
    est = estimate(d)
    assert est.latency_ms_p95_approx == pytest.approx(r.latency_ms.p95, rel=0.015)
    assert est.latency_ms_mean == pytest.approx(r.latency_ms.mean, rel=0.01)


def test_agent_workflow_p95_and_p99_near_the_simulation():
    # 15,000 requests (1.3–1.7 CPU-s): p95 14,131–14,464 ms over seeds 0–2 (intervals ±2–4 %),
    # p99 21.9–23.5 s. The twin's mean is 1.7 % low (its per-call generation time E[n]/E[v], not
    # E[n]·E[1/v]), so ±5 %. The mixture: 14,026 / 22,441 ms; one gamma 12,986 / 18,186 ms.
    d = load_design(LIB / "agent_workflow.yaml")
    r = simulate(d, seed=0, precision=0.5, max_requests=15_000, max_seconds=30)
    est = estimate(d)
    assert est.latency_ms_p95_approx == pytest.approx(r.latency_ms.p95, rel=0.05)
    _, _, mix, _ = flow.latency_mixture(d, _profiles_of(d))
    assert qt.mixture_quantile(0.99, mix) * 1000 == pytest.approx(r.latency_ms.p99, rel=0.06)
    assert qt.mixture_quantile(0.5, mix) * 1000 == pytest.approx(r.latency_ms.p50, rel=0.05)
