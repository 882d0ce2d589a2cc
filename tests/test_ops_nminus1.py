"""N−1 in the twin and its lint rule: one replica (one zone) down at peak."""

from __future__ import annotations

import pytest

from designs.io import load_design
from designs.model import Design
from review.lint import lint
from sim import n_minus_one, replicas_per_hour


def pool(replicas: int, zones: int = 1, rps: float = 12.4) -> Design:
    # 2 servers of 10/s at 12.4/s: ρ = 0.62; with one down the other needs 124 %.
    return Design.model_validate({
        "name": "n1", "workload": {"arrival_rps": rps},
        "components": [{"id": "svc", "kind": "service", "replicas": replicas, "zones": zones,
                        "service_time": {"dist": "exponential", "mean_ms": 100}}],
        "entry": "svc", "slo": {"latency_p95_ms": 2000},
    })


def test_two_replicas_at_62_percent_need_124_percent_when_one_fails():
    n = n_minus_one(pool(2))["svc"]
    assert n.utilization == pytest.approx(0.62)
    assert n.utilization_one_down == pytest.approx(1.24)  # ρ·R/(R − 1)
    assert n.slo_ok_one_down is False
    # 3 replicas: one down leaves 2 at 62 %, stable, and the p95 SLO holds.
    assert n.replicas_to_survive == 3 and n.utilization_survivor == pytest.approx(0.62)


def test_the_lint_warns_on_the_design_and_not_on_its_fixed_twin():
    msgs = [f.message for f in lint(pool(2)) if f.rule == "n_minus_1"]
    assert msgs == ["`svc`: 2 replicas at 62 % → 124 % if one fails; 3 replicas survive one loss at 62 %"]
    assert not [f for f in lint(pool(3)) if f.rule == "n_minus_1"]


def test_a_latency_slo_that_breaks_on_one_loss_is_flagged_while_still_stable():
    # 3 replicas at 12.4/s: ρ 0.41, one down → 0.62 stable; a tight p95 SLO of 250 ms breaks
    # (M/M/2 at 0.62: p95 wait + service > 250 ms) but holds with all three.
    d = pool(3).model_copy(update={"slo": pool(3).slo.model_copy(update={"latency_p95_ms": 330})})
    n = n_minus_one(d)["svc"]
    assert n.utilization_one_down == pytest.approx(0.62)
    from sim import estimate
    assert estimate(d).slo[0].met is True
    assert n.slo_ok_one_down is False and n.replicas_to_survive is not None and n.replicas_to_survive > 3
    f = [f for f in lint(d) if f.rule == "n_minus_1"]
    assert f and "a latency SLO breaks" in f[0].message


def test_zone_down_takes_the_largest_zone():
    # 6 replicas over 3 zones, ρ 0.62 × 2/6: a zone holds 2, so 4 carry the load at 31 % × 6/4.
    n = n_minus_one(pool(6, zones=3))["svc"]
    assert n.utilization_zone_down == pytest.approx(0.62 * 2 / 4)
    assert n.slo_ok_zone_down is True
    # 2 replicas over 2 zones at 62 %: a zone is a replica; the lint says so.
    n2 = n_minus_one(pool(2, zones=2))["svc"]
    assert n2.utilization_zone_down == pytest.approx(1.24)


def test_llm_server_n_minus_1_comes_from_the_twins_capacity():
    d = load_design("designs/library/llm_serving.yaml")
    n = n_minus_one(d)["llm"]
    # The twin's LLM utilisation is λ / (R·λ*): one replica fewer scales it by R/(R − 1).
    assert n.utilization_one_down == pytest.approx(n.utilization * n.replicas / (n.replicas - 1), rel=1e-6)


def test_twin_replica_count_per_hour_follows_the_profile():
    prof = [1.0] * 12 + [3.0] * 12
    d = Design.model_validate({
        "name": "as", "workload": {"requests_per_day": 864_000, "profile_24h": prof},
        "components": [{"id": "svc", "kind": "service", "replicas": 4,
                        "service_time": {"dist": "exponential", "mean_ms": 100},
                        "autoscale": {"min_replicas": 1, "max_replicas": 10, "target": 0.5}}],
        "entry": "svc"})
    # Mean 10/s; hours at 5/s and 15/s. One replica carries 10/s: ceil(5/(10·0.5)) = 1, ceil(15/5) = 3.
    assert replicas_per_hour(d)["svc"] == [1] * 12 + [3] * 12


def test_the_survivor_bisection_finds_the_first_count_a_scan_would():
    # 30 servers of 10/s at 250/s (ρ 0.83): a loss keeps it stable; the tight p95 SLO decides.
    from sim.ops.nminus1 import _variant

    d = pool(30, rps=250.0)
    d = d.model_copy(update={"slo": d.slo.model_copy(update={"latency_p95_ms": 300.5})})
    n = n_minus_one(d)["svc"]
    scan = next(k for k in range(31, 125) if _variant(d, 0, k - 1)[1])
    assert scan > 31  # an interior answer, not the search's lower bound
    assert n.replicas_to_survive == scan


def test_the_analysis_has_a_wall_budget():
    n = n_minus_one(pool(2), max_seconds=0.0)["svc"]
    assert n.utilization_one_down is None and n.detail.startswith("not analysed")
