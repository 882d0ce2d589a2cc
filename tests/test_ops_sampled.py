"""A whole day by sampled windows (sim.ops.sampled): stitching, replica-hours and cost by hand."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from designs.io import dump_design
from designs.model import Design
from sim import estimate, needs_sampling, replicas_per_hour, sample_day
from sim.ops.sampled import transition_s


def day_design(**svc) -> Design:
    # 691,200 requests/day = 8/s on average; 12 hours at × 1 and 12 at × 3 (mean 2) → 4/s and 12/s.
    # One replica serves 10/s (exponential 100 ms, concurrency 1); at the 0.8 target the twin needs
    # ⌈4 / 8⌉ = 1 replica by night and ⌈12 / 8⌉ = 2 by day (ρ 0.4 and 0.6: well inside the HPA's
    # 10 % tolerance, and a scale-down waits out a 300 s stabilisation the 120 s windows never reach).
    comp = {"id": "svc", "kind": "service", "replicas": 4, "concurrency": 1,
            "service_time": {"dist": "exponential", "mean_ms": 100},
            "autoscale": {"min_replicas": 1, "max_replicas": 8, "target": 0.8}}
    comp.update(svc)
    return Design.model_validate({
        "name": "day", "workload": {"requests_per_day": 691_200, "profile_24h": [1] * 12 + [3] * 12},
        "components": [comp], "entry": "svc"})


def test_replica_hours_and_the_autoscaled_cost_by_hand():
    d = day_design()
    assert replicas_per_hour(d)["svc"] == [1] * 12 + [2] * 12
    # Transition window: the scale-down stabilisation 300 s + 2 × 15 s intervals = 330 s (longer
    # than the default cold start + 30 s).
    assert transition_s(d) == 330
    day = sample_day(d, seed=1, window_s=120)
    assert [h.rate_rps for h in day.hours] == pytest.approx([4.0] * 12 + [12.0] * 12)
    assert [h.share for h in day.hours] == pytest.approx([1 / 48] * 12 + [3 / 48] * 12)
    # Steady hours: the twin's count throughout (12 × 1 + 10 × 2 of them).
    steady = [h for h in day.hours if not h.transition_s]
    assert [h.hour for h in day.hours if h.transition_s] == [0, 12]  # hour 0 follows hour 23 (2 → 1)
    assert all(h.replicas["svc"] == h.start_replicas["svc"] for h in steady)
    # Hour 0, 2 → 1 at 4/s: the initial recommendation (2) holds the 300 s stabilisation window, so
    # the scale-down comes at the first tick past it, 315 s: 1 + 315 / 3,600 = 1.0875 replica-hours
    # (read at the window's 20 samples of 16.5 s: within one sample).
    h0 = day.hours[0]
    assert h0.replicas["svc"] == pytest.approx(1 + 315 / 3600, abs=16.5 / 3600)
    # Hour 12, 1 → 2 at 12/s: one replica until the first tick (15 s) asks for the second, which is
    # billed from then on: at least 2 − 15 / 3,600; the backlog built meanwhile may ask for a third.
    h12 = day.hours[12]
    assert h12.cold_starts >= 1 and h12.replicas["svc"] >= 2 - 15 / 3600 - 1e-9
    assert h12.transition_availability == 1.0
    assert day.replica_hours["svc"] == pytest.approx(sum(h.replicas["svc"] for h in day.hours))
    assert day.twin_replica_hours["svc"] == 36.0
    # The service is the only cost line: the autoscaled day costs replica-hours / (4 × 24) of the fixed one.
    fixed = estimate(d).cost_per_day_usd
    assert day.fixed_cost_per_day_usd == pytest.approx(fixed)
    assert day.autoscaled_cost_per_day_usd == pytest.approx(fixed * day.replica_hours["svc"] / 96, rel=1e-9)
    assert day.twin_autoscaled_cost_per_day_usd == pytest.approx(fixed * 36 / 96)
    # Every request is served; 120 s × (12 × 4 + 12 × 12) = 23,040 steady + 330 s × (4 + 12) = 5,280
    # in the transitions = 28,320 expected.
    assert day.availability == 1.0
    assert day.simulated_requests == pytest.approx(28_320, rel=0.03)
    assert "transition window" in day.method
    flat = sample_day(d, seed=1, window_s=60, transitions=False)  # steady windows only: the twin's counts
    assert flat.replica_hours["svc"] == 36.0 and "not simulated: the transitions" in flat.method


def test_the_stitched_availability_weights_each_hour_by_its_requests():
    # One replica that fails every 36 s on average and is back after 6 s (fail-fast while down):
    # availability MTBF / (MTBF + MTTR) = 36 / 42 = 0.857 in every hour (≈ 3 cycles a window,
    # ≈ 80 in the day; the stitched figure's sd ≈ 0.02).
    d = day_design(replicas=1, autoscale=None, concurrency=4,
                   failures={"mtbf_hours": 0.01, "mttr_minutes": 0.1})
    day = sample_day(d, seed=3, window_s=120)
    assert day.availability == pytest.approx(36 / 42, abs=0.05)
    assert day.availability == pytest.approx(sum(h.share * h.availability for h in day.hours), rel=1e-12)
    lo, hi = day.availability_ci95
    assert lo < day.availability < hi and hi - lo < 0.2
    assert sum(h.faults for h in day.hours) > 30
    # Same seed, same day (failures included); another seed, another one.
    a, b = sample_day(d, seed=4, window_s=30), sample_day(d, seed=4, window_s=30)
    strip = lambda x: x.to_json() | {"wall_s": 0, "cpu_s": 0}  # noqa: E731
    assert strip(a) == strip(b) and strip(a) != strip(sample_day(d, seed=5, window_s=30))


def test_a_day_over_the_budget_is_sampled_by_the_cli(tmp_path, capsys):
    d = day_design()
    assert needs_sampling(d, max_requests=100_000) and not needs_sampling(d, max_requests=2_000_000)
    plain = Design.model_validate({"name": "p", "workload": {"requests_per_day": 691_200},
                                   "components": [{"id": "svc", "kind": "service"}], "entry": "svc"})
    assert not needs_sampling(plain, max_requests=100_000)  # no operations settings: refused as before
    f = tmp_path / "day.yaml"
    f.write_text(dump_design(d))
    assert main(["run", str(f), "--whole-day", "--max-requests", "100000", "--json", "--seed", "1"]) == 0
    out = capsys.readouterr()
    day = json.loads(out.out)["sampled_day"]
    assert len(day["hours"]) == 24 and day["window_s"] == 120
    assert "sampling one window per hour" in out.err
    assert main(["run", str(f), "--whole-day", "--sample-window", "30", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "whole day by sampled windows" in text and "30 s per hour" in text and "autoscaled cost $" in text
