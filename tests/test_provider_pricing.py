"""Provider pricing as it is: prompt caching, batch API and agent context growth, by hand."""

from __future__ import annotations

import math

import pytest

from designs.model import Design
from sim.cost import daily_cost
from sim.pipeline import pipeline_result
from sim.quality.agents import call_tokens, loop_calls


def _agent(steps: int, **api) -> Design:
    # The agent calls the model, then a tool, then the model again: exactly `steps` model calls
    # (back edge p = 1, max_repeats = steps − 1).
    return Design.model_validate({
        "name": "agent", "workload": {"requests_per_day": 864_000,
                                      "classes": [{"name": "step", "prompt_tokens": {"dist": "fixed", "value": 2000},
                                                   "output_tokens": {"dist": "fixed", "value": 100}}]},
        "components": [{"id": "agent", "kind": "llm_api", **api}, {"id": "tool", "kind": "tool"}],
        "entry": "agent",
        "flow": [{"from": "agent", "to": "tool"}]
        + ([{"from": "tool", "to": "agent", "p": 1.0, "max_repeats": steps - 1}] if steps > 1 else []),
    })


def _api_line(design):
    _, lines = daily_cost(design)
    return next(line for line in lines if line.id == "agent")


def test_three_steps_without_growth_or_caching_is_todays_bill():
    line = _api_line(_agent(3))
    # 864,000 tasks × 3 calls × (2,000 × $2.50 + 100 × $10) / 1M = $15,552/day.
    assert line.usd_per_day == pytest.approx(864_000 * 3 * (2000 * 2.5 + 100 * 10) / 1e6)


def test_agent_cost_over_three_steps_with_growth_and_caching_by_hand():
    design = _agent(3, context_growth_tokens_per_step=500, shared_prefix_tokens=1500)
    # Calls see 2,000, 2,500 and 3,000 prompt tokens (each step adds 500): 7,500 per task.
    # Cached: call 1 the shared prefix, 1,500 → 1,408 (128-token steps), warm with
    # p = 1 − exp(−30 calls/s × 300 s) = 1; call 2 the whole of call 1 (2,000); call 3 call 2's (2,500).
    cached = 1408 + 2000 + 2500
    fresh = 7500 - cached
    per_task = (fresh * 2.5 + cached * 1.25 + 3 * 100 * 10) / 1e6      # GPT-4o: $2.50, $1.25 cached, $10 out
    assert per_task == pytest.approx(0.014365)
    line = _api_line(design)
    assert line.usd_per_day == pytest.approx(864_000 * per_task, rel=1e-9)
    assert "cached × $1.25" in line.rule and "context growth" in line.rule
    # Growth without caching costs more than today's flat prompt; caching brings it below.
    no_cache = _api_line(_agent(3, context_growth_tokens_per_step=500, usd_per_1m_cached_input_tokens=2.5))
    assert no_cache.usd_per_day == pytest.approx(864_000 * (7500 * 2.5 + 3000) / 1e6)
    assert line.usd_per_day < 864_000 * 0.018 < no_cache.usd_per_day


def test_anthropic_style_cache_writes_pay_the_premium():
    # Reads 0.1× ($0.30 of $3), writes 1.25×: 3 calls, growth 500, shared prefix 1,500.
    d = _agent(3, context_growth_tokens_per_step=500, shared_prefix_tokens=1500, usd_per_1m_input_tokens=3.0,
               usd_per_1m_cached_input_tokens=0.3, usd_per_1m_output_tokens=15.0, cache_write_multiplier=1.25)
    t = call_tokens(d, d.component("agent"), 2000, 100, 864_000 * 3)
    fresh_task = 3 * t.fresh  # 1,592 per task: every call's new tokens but the last are written
    writes_task = fresh_task * (1 - 1 / 3)
    per_task = ((fresh_task - writes_task) * 3.0 + writes_task * 3.75 + 3 * t.cached * 0.3 + 300 * 15.0) / 1e6
    assert _api_line(d).usd_per_day == pytest.approx(864_000 * per_task, rel=1e-9)


def test_cache_is_cold_at_a_trickle():
    # One call every 1,000 s with a 300 s TTL: warm with p = 1 − exp(−0.3) = 0.259.
    d = _agent(1, shared_prefix_tokens=1500)
    t = call_tokens(d, d.component("agent"), 2000, 100, 86.4)
    assert t.hit_ratio == pytest.approx(1 - math.exp(-0.3))
    assert t.cached == pytest.approx(t.hit_ratio * 1408)
    # A prefix under the 1,024-token minimum is never cached.
    small = _agent(1, shared_prefix_tokens=1000)
    assert call_tokens(small, small.component("agent"), 2000, 100, 86_400).cached == 0


def test_loop_moments_match_the_flow_and_enumeration():
    # The agent_workflow loop: a pass reaches the tool with r = 0.85, repeats with p = 0.6, ≤ 4 times.
    d = Design.model_validate({
        "name": "loop", "workload": {"requests_per_day": 1000},
        "components": [{"id": "plan", "kind": "llm_api"}, {"id": "tool", "kind": "tool"}, {"id": "out", "kind": "tool"}],
        "entry": "plan",
        "flow": [{"from": "plan", "to": "tool", "p": 0.85}, {"from": "plan", "to": "out", "p": 0.15},
                 {"from": "tool", "to": "plan", "p": 0.6, "max_repeats": 4}],
    })
    lc = loop_calls(d, "plan")
    q = 0.85 * 0.6
    assert lc.q == pytest.approx(q, rel=1e-6)
    pn = [q**k * (1 - q) for k in range(4)] + [q**4]            # P(N = 1..5)
    assert lc.mean_calls == pytest.approx(sum((k + 1) * p for k, p in enumerate(pn)))
    assert lc.pairs == pytest.approx(sum((k + 1) * k / 2 * p for k, p in enumerate(pn)))
    assert lc.pairs_before == pytest.approx(sum(k * (k - 1) / 2 * p for k, p in enumerate(pn)))


def test_batch_api_halves_the_price_and_takes_its_turnaround():
    base = {
        "name": "evals", "workload": {"requests_per_day": 1000, "batch": {"items_per_run": 10_000, "window_hours": 30}},
        "components": [{"id": "judge", "kind": "judge", "prompt_tokens": {"dist": "fixed", "value": 2000},
                        "output_tokens": {"dist": "fixed", "value": 150}, "rpm_limit": 10_000}],
        "entry": "judge", "flow": [],
    }
    sync = pipeline_result(Design.model_validate(base))
    base["components"][0]["batch_api"] = True
    batch = pipeline_result(Design.model_validate(base))
    assert batch.cost_per_run_usd == pytest.approx(0.5 * sync.cost_per_run_usd)
    assert sync.cost_per_run_usd == pytest.approx(10_000 * (2000 * 2.5 + 150 * 10) / 1e6)
    assert batch.duration_h == pytest.approx(24) and batch.fits          # 24 h turnaround in a 30 h window
    assert sync.duration_h < 1
