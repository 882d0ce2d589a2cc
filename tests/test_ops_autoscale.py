"""The autoscaler: cold starts, recovery from a step in traffic, replica-hours and daily cost."""

from __future__ import annotations

import random

import pytest

from components.hardware import BYTES_PER_PARAM, get_model
from designs.model import Design
from sim import replicas_per_hour, simulate
from sim.ops.control import cold_start_s

COLD = {"provisioning_s": 20, "image_pull_s": 10, "weights_gb": 0, "warmup_s": 5}  # 35 s


def _step_trace(path, rates=(10.0, 25.0), span=300.0, seed=5):
    rng, t, rows = random.Random(seed), 0.0, ["timestamp_s,prompt_tokens,output_tokens"]
    for k, rate in enumerate(rates):
        while True:
            t += rng.expovariate(rate)
            if t >= (k + 1) * span:
                t = (k + 1) * span
                break
            rows.append(f"{t:.6f},100,10")
    path.write_text("\n".join(rows) + "\n")


def test_recovery_from_a_step_is_interval_plus_delay_plus_cold_start(tmp_path):
    # 10/s → 25/s at t = 300 s, a tick of the 15 s evaluation clock. Two servers of 10/s run at
    # 50 % (below the 0.8 target: no scaling) until the step saturates them; the tick at 315 s
    # reads utilisation 1 over [300, 315] and asks for ceil(2 × 1/0.8) = 3 replicas; the ask
    # goes out after the 5 s scale-up delay (320 s) and the replica serves after its 35 s cold
    # start: recovery begins at 300 + 15 + 5 + 35 = 355 s.
    p = tmp_path / "step.csv"
    _step_trace(p)
    d = Design.model_validate({
        "name": "step", "workload": {"trace": {"path": str(p)}},
        "components": [{"id": "svc", "kind": "service", "replicas": 2,
                        "service_time": {"dist": "exponential", "mean_ms": 100},
                        "autoscale": {"min_replicas": 2, "max_replicas": 8, "target": 0.8, "interval_s": 15,
                                      "scale_up_delay_s": 5, "scale_down_delay_s": 300, "cold_start": COLD}}],
        "entry": "svc"})
    r = simulate(d, seed=1)
    cs = r.ops.cold_starts
    assert cs, "the step must trigger a scale-up"
    assert cs[0].requested_s == pytest.approx(320.0)
    assert cs[0].ready_s - 300.0 == pytest.approx(15 + 5 + 35)
    assert all(c.requested_s > 300 for c in cs)  # nothing before the step
    before = [w for w in r.ops.windows if w.t_end_s <= 300]
    assert all(w.replicas["svc"] == 2 for w in before)
    # Capacity catches up (≥ 3 serving, 30/s > 25/s) and the backlog drains by the end.
    assert r.ops.windows[-1].replicas["svc"] >= 3
    assert r.ops.windows[-1].queued["svc"] < 30
    assert r.ops.availability == 1.0
    # Every request that queued between the ask (320 s) and the replicas serving waited for them;
    # before the step nobody did (nothing was starting).
    assert r.ops.waited_for_cold_start["svc"] > 100


def test_llm_cold_start_loads_the_weights_at_the_stated_bandwidth():
    d = Design.model_validate({
        "name": "llm", "workload": {"arrival_rps": 1},
        "components": [{"id": "llm", "kind": "llm_server", "model": "llama-3.1-8b", "replicas": 2,
                        "autoscale": {"min_replicas": 1, "max_replicas": 4}}],
        "entry": "llm"})
    c = d.components[0]
    gb = get_model("llama-3.1-8b").weight_bytes(BYTES_PER_PARAM["bf16"]) / 1e9
    # Defaults: 60 s provisioning + 60 s image pull + weights ÷ 1 GB/s + 30 s warm-up.
    assert cold_start_s(c) == pytest.approx(60 + 60 + gb / 1.0 + 30)
    assert 15 < gb < 17  # 8.03 B parameters × 2 bytes


def test_whole_day_autoscaling_uses_fewer_replica_hours_than_the_fixed_peak():
    # Mean 2/s: 1/s for 12 h, 3/s for 12 h; one replica serves 2/s (0.5 s mean service). At a
    # 0.6 target the twin wants ceil(1/1.2) = 1 replica then ceil(3/1.2) = 3: 12 × 1 + 12 × 3 = 48
    # replica-hours (each then at 50 %, inside the target's tolerance), against
    # 3 × 24 = 72 for a fixed fleet sized for the peak. A 60 s evaluation interval keeps the
    # utilisation reading from being mostly noise at these rates.
    d = Design.model_validate({
        "name": "day", "workload": {"requests_per_day": 172_800, "profile_24h": [1.0] * 12 + [3.0] * 12},
        "components": [{"id": "svc", "kind": "service", "replicas": 1,
                        "service_time": {"dist": "exponential", "mean_ms": 500},
                        "autoscale": {"min_replicas": 1, "max_replicas": 6, "target": 0.6, "interval_s": 60,
                                      "scale_down_delay_s": 300, "cold_start": COLD}}],
        "entry": "svc"})
    assert replicas_per_hour(d)["svc"] == [1] * 12 + [3] * 12
    r = simulate(d, seed=2, whole_day=True, max_seconds=60)
    ops = r.ops
    hours = ops.replica_hours["svc"]
    # The HPA rule reacts to noise and lags the step at noon: within 15 % of the twin's 48.
    assert 48 * 0.95 < hours < 48 * 1.15
    assert ops.autoscaled_cost_per_day_usd < ops.fixed_cost_per_day_usd
    per_replica_day = next(c.usd_per_day for c in r.cost_breakdown if c.id == "svc")  # 1 replica × 24 h
    assert ops.autoscaled_cost_per_day_usd == pytest.approx(r.cost_per_day_usd - per_replica_day
                                                            + per_replica_day * hours / 24, rel=1e-9)
    # The fleet follows the day: small at night, larger in the afternoon.
    night = [w.provisioned["svc"] for w in ops.windows if w.t_end_s <= 12 * 3600 and w.t_start_s >= 3600]
    day = [w.provisioned["svc"] for w in ops.windows if w.t_start_s >= 13 * 3600]
    assert sum(night) / len(night) < 2 < sum(day) / len(day)
    assert ops.availability == 1.0
