"""Verdicts at the edges (issue 14): many in flight is not a growing queue, what was not
measured is null, no interval from fewer than two batches, a warning when the run is short
against the queue's relaxation time."""

from __future__ import annotations

import json
import math

import pytest

from cli.main import main
from designs.model import Design
from sim import estimate, simulate, validation_problems
from sim.des.limits import in_flight_cap, relaxation_arrivals


def _tool(rps: float, latency_ms: float) -> Design:
    return Design.model_validate({"name": "tool", "workload": {"arrival_rps": rps},
                                  "components": [{"id": "t", "kind": "tool",
                                                  "latency": {"dist": "fixed", "value_ms": latency_ms}}],
                                  "entry": "t"})


def _mm1(rps: float) -> Design:
    return Design.model_validate({"name": "mm1", "workload": {"arrival_rps": rps},
                                  "components": [{"id": "s", "kind": "service",
                                                  "service_time": {"dist": "exponential", "mean_ms": 1}}],
                                  "entry": "s"})


def test_many_in_flight_with_no_queue_is_not_called_unstable():
    # A fixed 5-minute tool call at 1,000 requests/s: L = λW = 300,000 in flight, no queue at all.
    # The backlog cut was a fixed 200,000 in flight, so it read as "the queue grows without bound".
    d = _tool(1000.0, 300_000.0)
    est = estimate(d)
    assert est.stable and est.arrival_rps * est.latency_ms_mean / 1000 == pytest.approx(300_000)
    assert in_flight_cap(est) >= 600_000
    r = simulate(d, seed=1, max_seconds=1.5)
    assert r.stable
    assert not any("backlog keeps growing" in w for w in r.warnings)


def test_more_in_flight_than_a_run_can_hold_is_refused_with_the_reason():
    (p,) = validation_problems(_tool(10_000.0, 300_000.0))  # λW = 3,000,000
    assert p.path == "workload.arrival_rps" and "3,000,000 requests in flight" in p.message


def test_nothing_completed_gives_null_figures_not_zeros(tmp_path, capsys):
    f = tmp_path / "drop.yaml"
    f.write_text("name: drop\nworkload: {arrival_rps: 50}\n"
                 "components:\n  - {id: s, kind: service, timeout_ms: 1, concurrency: 100,\n"
                 "     service_time: {dist: fixed, value_ms: 50}}\nentry: s\n")
    assert main(["run", str(f), "--json", "--max-requests", "30000", "--max-seconds", "20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["completed_requests"] == 0 and out["dropped_requests"] > 0
    assert out["latency_ms"] == {k: None for k in ("mean", "p50", "p90", "p95", "p99")}
    assert out["latency_ms_ci95"] == {k: None for k in ("mean", "p50", "p90", "p95", "p99")}
    assert any("not measured" in w for w in out["warnings"])


def test_no_interval_from_one_batch():
    r = simulate(_mm1(500.0), seed=1, replications=1, max_seconds=20)
    assert r.replications == 1 and r.latency_ms.p95 is not None
    assert r.latency_ms_ci95.p95 is None and r.precision_achieved is None
    r2 = simulate(_mm1(500.0), seed=1, replications=3, max_seconds=20)
    lo, hi = r2.latency_ms_ci95.p95
    assert lo < r2.latency_ms.p95 < hi


def test_unstable_window_has_no_interval():
    r = simulate(_mm1(1500.0), seed=1, max_seconds=10)  # ρ = 1.5
    assert not r.stable
    assert r.latency_ms_ci95.p95 is None


def test_short_run_against_the_relaxation_time_is_warned():
    # M/M/1 at ρ = 0.999: τ = ρ/(1 − √ρ)² ≈ 3.99 million arrivals; the exact p95 sojourn is
    # ln(20)/(μ − λ) = 2,996 ms, which a run of a few hundred thousand requests cannot reach.
    d = _mm1(999.0)
    rho, tau = relaxation_arrivals(estimate(d))
    assert rho == pytest.approx(0.999) and tau == pytest.approx(0.999 / (1 - math.sqrt(0.999)) ** 2)
    r = simulate(d, seed=1, max_requests=60_000, max_seconds=20)
    assert any("short against the relaxation time" in w for w in r.warnings)
    assert not any("short against" in w for w in simulate(_mm1(500.0), seed=1, max_seconds=20).warnings)
