"""Cost rules: every kind has one, worked examples by hand, sources filled in."""

from __future__ import annotations

import pytest

from components.catalogue import KINDS
from components.hardware import get_gpu, price
from designs.model import Design
from sim.cost import COST_RULES, DAYS_PER_MONTH, daily_cost


def every_kind_design() -> Design:
    """One component of each kind on one request path (monitoring off it)."""
    chain = [
        {"id": "gw", "kind": "api_gateway"},
        {"id": "lb", "kind": "load_balancer"},
        {"id": "guard", "kind": "guardrail"},
        {"id": "cache", "kind": "cache", "hit_ratio": 0.3},
        {"id": "svc", "kind": "service", "replicas": 2},
        {"id": "emb", "kind": "embedder"},
        {"id": "vdb", "kind": "vector_db"},
        {"id": "kw", "kind": "keyword_search"},
        {"id": "rr", "kind": "reranker"},
        {"id": "llm", "kind": "llm_server", "model": "llama-3.1-8b", "replicas": 2, "gpus_per_replica": 2},
        {"id": "api", "kind": "llm_api"},
        {"id": "judge", "kind": "judge"},
        {"id": "tool", "kind": "tool", "usd_per_call": 0.001},
        {"id": "db", "kind": "database"},
        {"id": "obj", "kind": "object_storage", "storage_gb": 500},
        {"id": "q", "kind": "queue"},
        {"id": "stage", "kind": "batch_stage"},
        {"id": "train", "kind": "training_job", "model": "llama-3.1-8b", "tokens": 1e8},
    ]
    return Design.model_validate({
        "name": "all", "workload": {"requests_per_day": 1_000_000, "peak_to_average": 3.0},
        "components": chain + [{"id": "mon", "kind": "monitoring"}], "entry": "gw",
        "flow": [{"from": a["id"], "to": b["id"]} for a, b in zip(chain, chain[1:])],
    })


def test_every_kind_has_a_cost_rule():
    assert set(COST_RULES) == set(KINDS)


def test_every_line_has_a_rule_text_and_a_source():
    d = every_kind_design()
    assert {c.kind for c in d.components} == set(KINDS)
    total, lines = daily_cost(d)
    assert [ln.id for ln in lines] == [c.id for c in d.components]
    for ln in lines:
        assert ln.rule and ln.source, ln
        assert ln.usd_per_day >= 0
    assert total == pytest.approx(sum(ln.usd_per_day for ln in lines))


def test_replica_hours_by_hand():
    d = every_kind_design()
    lines = {ln.id: ln for ln in daily_cost(d)[1]}
    cpu = price("cpu_replica_hour")
    assert lines["svc"].usd_per_day == pytest.approx(2 * cpu * 24)
    assert lines["svc"].rule == f"2 replicas × ${cpu:g}/h × 24 h"
    h100 = get_gpu("H100-SXM-80GB").gpu_hourly_usd
    assert lines["llm"].usd_per_day == pytest.approx(4 * h100 * 24)  # 2 replicas × 2 GPUs
    assert lines["llm"].rule == f"4 GPUs × ${h100:g}/h × 24 h"
    assert lines["llm"].source == get_gpu("H100-SXM-80GB").price_source
    l4 = get_gpu("L4-24GB").gpu_hourly_usd
    assert lines["emb"].usd_per_day == pytest.approx(l4 * 24)
    assert lines["obj"].usd_per_day == pytest.approx(500 * price("object_storage_gb_month") / DAYS_PER_MONTH)
    assert lines["mon"].usd_per_day == pytest.approx(500 / DAYS_PER_MONTH)


def test_api_token_cost_by_hand_uses_the_whole_day_not_the_peak():
    # 1 M requests/day (peak 3× is irrelevant to a daily bill); a 30 % cache hit leaves 700k calls.
    # Default class: 500 prompt + 200 output tokens; GPT-4o defaults $2.50 / $10 per 1M tokens.
    d = Design.model_validate({
        "name": "api", "workload": {"requests_per_day": 1_000_000, "peak_to_average": 3.0},
        "components": [{"id": "cache", "kind": "cache", "hit_ratio": 0.3}, {"id": "api", "kind": "llm_api"}],
        "entry": "cache", "flow": [{"from": "cache", "to": "api"}],
    })
    lines = {ln.id: ln for ln in daily_cost(d)[1]}
    by_hand = 700_000 * (500 * 2.5 + 200 * 10.0) / 1e6
    assert by_hand == pytest.approx(2275.0)
    assert lines["api"].usd_per_day == pytest.approx(by_hand)
    assert lines["api"].rule.startswith("700,000 calls/day × (500 in × $2.5 + 200 out × $10)")
    # Measured rates and measured token means (what the simulator passes) give the same arithmetic.
    peak = d.workload.peak_rps
    _, measured = daily_cost(d, {"cache": peak, "api": 0.5 * peak}, tokens={"api": (400.0, 100.0)})
    api = {ln.id: ln for ln in measured}["api"]
    assert api.usd_per_day == pytest.approx(500_000 * (400 * 2.5 + 100 * 10.0) / 1e6)


def test_queue_and_load_balancer_per_request_prices():
    d = every_kind_design()
    lines = {ln.id: ln for ln in daily_cost(d)[1]}
    # Queue after the 30 % cache: 700k enqueues/day at the SQS price per 1M requests.
    assert lines["q"].usd_per_day == pytest.approx(0.7 * price("queue_usd_per_million_requests"))
    assert lines["lb"].usd_per_day == pytest.approx(price("lb_hour") * 24 + price("lb_usd_per_million_requests"))


def test_training_job_cost_per_run_spread_over_the_week():
    from sim.pipeline import training_estimate

    d = Design.model_validate({
        "name": "ft", "workload": {"batch": {"items_per_run": 1000, "runs_per_week": 2}},
        "components": [{"id": "train", "kind": "training_job", "model": "llama-3.1-8b", "tokens": 1e9, "gpus": 8}],
        "entry": "train",
    })
    (line,) = daily_cost(d)[1]
    per_run = training_estimate(d.component("train"))["cost_usd"]
    assert line.usd_per_day == pytest.approx(per_run * 2 / 7)
    assert "per run × 2 runs/week / 7" in line.rule


def test_price_set_on_the_component_wins():
    d = Design.model_validate({
        "name": "p", "workload": {},
        "components": [{"id": "llm", "kind": "llm_server", "model": "llama-3.1-8b", "gpu_hourly_usd": 2.0}],
        "entry": "llm",
    })
    (line,) = daily_cost(d)[1]
    assert line.usd_per_day == pytest.approx(2.0 * 24) and line.source == "set in the design"
