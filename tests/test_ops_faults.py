"""Failures, faults, retries and fallbacks (sim/ops), checked against hand-worked arithmetic."""

from __future__ import annotations

import math

import pytest

from designs.io import DesignFileError, parse_design
from designs.model import Design, Retry
from sim import SimulationRefused, simulate


def mmc(**extra) -> Design:
    """M/M/2: λ = 15/s, two servers of μ = 10/s (mean 100 ms)."""
    data = {
        "name": "mmc", "workload": {"arrival_rps": 15, "timeline_s": 1200},
        "components": [{"id": "svc", "kind": "service", "replicas": 2, "concurrency": 1,
                        "service_time": {"dist": "exponential", "mean_ms": 100}}],
        "entry": "svc", "flow": [], "slo": {"availability": 0.999},
    }
    data.update(extra)
    return Design.model_validate(data)


def test_losing_one_of_two_servers_builds_the_fluid_backlog_and_drains_it():
    # One of 2 servers down for W = 400 s from t = 200 s: capacity 10/s against 15/s arriving,
    # so the queue grows at λ − μ = 5/s — 2,000 requests at t = 600 s (fluid), with a random-walk
    # standard deviation √((λ + μ)W) = √(25 × 400) = 100. Afterwards it drains at 2μ − λ = 5/s:
    # about 400 s, so by t ≈ 1,000 s the queue is back to its M/M/2 level (Lq ≈ 1.9).
    d = mmc(faults=[{"at_s": 200, "component": "svc", "what": "replica_down", "duration_s": 400}])
    r = simulate(d, seed=1)
    ops = r.ops
    fluid, sd = 5 * 400, math.sqrt(25 * 400)
    at_600 = next(w for w in ops.windows if w.t_end_s == 600).queued["svc"]
    assert abs(at_600 - fluid) < 3 * sd, (at_600, fluid)
    assert next(w for w in ops.windows if w.t_end_s == 600).replicas == {"svc": 1}
    assert next(w for w in ops.windows if w.t_end_s == 660).replicas == {"svc": 2}
    assert next(w for w in ops.windows if w.t_end_s == 1200).queued["svc"] < 60
    # Nothing is lost without a timeout: the one request in service on the failed server (if
    # any) fails, everything else waits. Availability = 1 − lost / offered.
    lost = ops.faults[0].lost_requests
    assert lost <= 1
    assert ops.fates.failed == lost
    assert ops.availability == pytest.approx(1 - lost / ops.fates.offered)
    assert abs(ops.fates.offered - 15 * 1200) < 4 * math.sqrt(15 * 1200)


def test_a_zone_outage_fails_fast_and_availability_is_one_minus_its_share_of_the_run():
    # Both replicas in zone 0 (zones: 1) down for W = 120 s of T = 1,200 s: a balancer with no
    # healthy backend fails every arrival at once, so availability = 1 − W/T = 0.9 plus the few
    # requests in the system at the failure (L ≈ 3.4); standard deviation of the failures
    # √(λW) = 42, i.e. ±0.0023 in availability.
    d = mmc(faults=[{"at_s": 300, "component": "svc", "what": "zone_down", "duration_s": 120}])
    r = simulate(d, seed=2)
    a = r.ops.availability
    assert abs(a - (1 - 120 / 1200)) < 3 * math.sqrt(15 * 120) / (15 * 1200) + 5 / (15 * 1200)
    lo, hi = r.ops.availability_ci95
    assert lo <= a <= hi and hi - lo > 0
    chk = next(c for c in r.slo if c.metric == "availability")
    assert chk.met is False and chk.value == pytest.approx(a) and "95 % CI" in chk.detail
    w = next(w for w in r.ops.windows if w.t_start_s == 360)
    assert w.succeeded == 0 and w.failed == w.arrivals > 0 and w.replicas == {"svc": 0}


def _retry_design(q: float, attempts: int, **api) -> Design:
    # A 3,000 s timeline: 60,000 requests, a fixed amount of work (≈ 1.5 s CPU) — the steady-state
    # run of the same design was bounded by its wall-clock budget (20–50 s on a loaded machine).
    return Design.model_validate({
        "name": "retry", "workload": {"arrival_rps": 20, "timeline_s": 3000},
        "components": [{"id": "gw", "kind": "api_gateway"},
                       {"id": "api", "kind": "llm_api", "error_rate": q, "error_latency_ms": 50, **api}],
        "entry": "gw",
        "flow": [{"from": "gw", "to": "api", "retry": {"attempts": attempts, "backoff_ms": 20}}],
    })


def test_retry_amplification_is_offered_load_times_expected_attempts():
    # Independent failures q = 0.3, 3 attempts: E[attempts] = (1 − q³)/(1 − q) = 1.39 calls per
    # request reach the provider; a request fails only if all three fail: q³ = 2.7 %.
    q, n = 0.3, 3
    r = simulate(_retry_design(q, n), seed=1)
    api = r.components["api"]
    offered = r.completed_requests + r.dropped_requests
    assert Retry(attempts=n).expected_attempts(q) == pytest.approx(1.39)
    assert api.arrivals / offered == pytest.approx(1.39, rel=0.01)
    assert r.completed_requests / offered == pytest.approx(1 - q**3, abs=0.003)  # sd 0.0007 at 60,000
    assert r.ops.availability == pytest.approx(r.completed_requests / offered)


def test_retried_tokens_are_counted_in_the_provider_cost():
    # Cost per call is per token; with 1.39 calls per request the API's line is 1.39 × the
    # line of the same traffic without errors (errors themselves are not billed: only the
    # calls that reached the model, i.e. λ(1 + q + q²)(1 − q) = λ(1 − q³) billed calls).
    clean = simulate(_retry_design(0.0, 3), seed=1)
    noisy = simulate(_retry_design(0.3, 3), seed=1)
    line = lambda r: next(c.usd_per_day for c in r.cost_breakdown if c.id == "api")  # noqa: E731
    assert line(clean) > 0
    assert line(noisy) / line(clean) == pytest.approx(1 - 0.3**3, rel=0.03)


def test_a_provider_outage_falls_back_to_the_second_provider():
    d = Design.model_validate({
        "name": "fb", "workload": {"arrival_rps": 10, "timeline_s": 600},
        "components": [{"id": "gw", "kind": "api_gateway"},
                       {"id": "api", "kind": "llm_api"},
                       {"id": "backup", "kind": "llm_api", "provider_model": "claude"}],
        "entry": "gw",
        "flow": [{"from": "gw", "to": "api", "retry": {"attempts": 2, "backoff_ms": 10}},
                 {"from": "api", "to": "backup", "fallback": True}],
        "faults": [{"at_s": 100, "component": "api", "what": "provider_outage", "duration_s": 200}],
    })
    r = simulate(d, seed=3)
    ops = r.ops
    # Every call during the 200 s outage fails twice at the primary and goes to the backup:
    # ≈ λ × 200 = 2,000 fallbacks; nothing is lost.
    assert ops.availability == 1.0
    assert abs(ops.fates.fallbacks - 10 * 200) < 4 * math.sqrt(10 * 200)
    assert r.components["backup"].arrivals == ops.fates.fallbacks
    # Each fallback failed both attempts; a call that failed once just before the outage
    # ended and then succeeded on its retry failed once.
    assert r.components["api"].dropped == 2 * ops.fates.fallbacks + ops.fates.retried
    assert ops.faults[0].what == "provider_outage" and ops.faults[0].end_s == 300


def test_in_flight_requests_on_a_failed_replica_are_retried_and_complete_late():
    d = Design.model_validate({
        "name": "lb", "workload": {"arrival_rps": 15, "timeline_s": 600},
        "components": [{"id": "lb", "kind": "load_balancer"},
                       {"id": "svc", "kind": "service", "replicas": 4, "concurrency": 4,
                        "service_time": {"dist": "exponential", "mean_ms": 500}}],
        "entry": "lb",
        "flow": [{"from": "lb", "to": "svc", "retry": {"attempts": 3, "backoff_ms": 50}}],
        "faults": [{"at_s": 200, "component": "svc", "what": "replica_down", "replicas": 2, "duration_s": 100}],
    })
    r = simulate(d, seed=4)
    ops = r.ops
    lost = ops.faults[0].lost_requests
    # 15/s × 0.5 s = 7.5 busy servers spread over 4 replicas: two replicas hold ≈ 3.75.
    assert lost >= 1
    assert ops.fates.retried == lost  # each retried once, on a surviving replica
    assert ops.availability == 1.0
    assert ops.fates.attempts == ops.fates.offered + lost


def test_same_seed_same_timeline_with_faults_and_random_failures():
    d = mmc(faults=[{"at_s": 100, "component": "svc", "what": "slow", "factor": 3, "duration_s": 60}],
            components=[{"id": "svc", "kind": "service", "replicas": 3, "concurrency": 1,
                         "service_time": {"dist": "exponential", "mean_ms": 100},
                         "failures": {"mtbf_hours": 0.05, "mttr_minutes": 1}}])
    a, b = simulate(d, seed=7), simulate(d, seed=7)
    assert a.ops.to_json() == b.ops.to_json()
    assert a.latency_ms == b.latency_ms
    assert [f.source for f in a.ops.faults].count("random") > 3
    c = simulate(d, seed=8)
    assert c.ops.to_json() != a.ops.to_json()


def test_random_failures_give_the_mtbf_availability_of_one_replica():
    # One replica, fail-fast while down: availability → MTBF / (MTBF + MTTR) = 6/7 = 0.857
    # over many cycles (here ≈ 86 cycles in 10 h; the down share's sd ≈ 0.015).
    d = Design.model_validate({
        "name": "one", "workload": {"arrival_rps": 2, "timeline_s": 36_000},
        "components": [{"id": "svc", "kind": "service", "replicas": 1, "concurrency": 4,
                        "failures": {"mtbf_hours": 0.1, "mttr_minutes": 1}}],
        "entry": "svc",
    })
    r = simulate(d, seed=5)
    assert r.ops.availability == pytest.approx(6 / 7, abs=0.05)
    assert all(f.source == "random" for f in r.ops.faults)


def test_slow_fault_multiplies_service_time():
    # Fixed 100 ms service at ρ = 0.05 per server: the median latency is the service time,
    # 100 ms, and 400 ms while the ×4 slow fault lasts (then ρ = 0.2: the median still waits 0).
    d = mmc(workload={"arrival_rps": 1, "timeline_s": 2000},
            components=[{"id": "svc", "kind": "service", "replicas": 2, "concurrency": 1,
                         "service_time": {"dist": "fixed", "value_ms": 100}}],
            faults=[{"at_s": 1000, "component": "svc", "what": "slow", "factor": 4, "duration_s": 1000}])
    r = simulate(d, seed=1)
    whole = [w for w in r.ops.windows if w.t_end_s <= 1000 or w.t_start_s >= 1000]  # not the one straddling
    assert len(whole) == len(r.ops.windows) - 1
    for w in whole:
        want = 100 if w.t_end_s <= 1000 else 400
        assert w.latency_ms_p50 == pytest.approx(want, rel=0.01), w


def _windows_in_and_out(r, start, end):
    """(p50s of windows wholly inside [start, end), p50s of windows wholly outside)."""
    ws = [w for w in r.ops.windows if w.latency_ms_p50 is not None]
    inside = [w.latency_ms_p50 for w in ws if w.t_start_s >= start and w.t_end_s <= end]
    outside = [w.latency_ms_p50 for w in ws if w.t_end_s <= start or w.t_start_s >= end]
    return inside, outside


def test_slow_fault_on_an_llm_server_multiplies_its_step_time():
    # One replica at 0.05 requests/s (a request almost always alone): its latency is the sum of its
    # prefill and 100 decode step times, so while every step time is × 3 the median latency is × 3
    # (to 0.1 %: a fraction of a millisecond of it is not step time), and × 1 again after.
    d = Design.model_validate({
        "name": "slow-llm", "workload": {"arrival_rps": 0.05, "timeline_s": 1800, "classes": [
            {"name": "c", "share": 1, "prompt_tokens": {"dist": "fixed", "value": 500},
             "output_tokens": {"dist": "fixed", "value": 100}}]},
        "components": [{"id": "llm", "kind": "llm_server", "model": "llama-3.1-8b", "gpu": "h100-80gb", "replicas": 1}],
        "entry": "llm",
        "faults": [{"at_s": 600, "component": "llm", "what": "slow", "factor": 3, "duration_s": 600}]})
    r = simulate(d, seed=1)
    inside, outside = _windows_in_and_out(r, 600, 1200)
    base = sorted(outside)[len(outside) // 2]
    assert len(inside) >= 8 and len(outside) >= 16
    assert sorted(inside)[len(inside) // 2] == pytest.approx(3 * base, rel=1e-3)
    after = [w.latency_ms_p50 for w in r.ops.windows if w.t_start_s >= 1260 and w.latency_ms_p50 is not None]
    assert after and max(after) < 1.05 * base  # the window ended: steps are × 1 again
    assert [(f.what, f.start_s, f.end_s) for f in r.ops.faults] == [("slow", 600, 1200)]


@pytest.mark.parametrize("dist, rel", [({"dist": "fixed", "value_ms": 100}, 0.01),
                                       ({"dist": "exponential", "mean_ms": 100}, 0.08)])
def test_slow_fault_on_a_capped_tool_multiplies_its_service_time(dist, rel):
    # A tool with max_concurrency 16 at 3 calls/s (1.2 busy slots of 16 even slowed: a call
    # practically never waits), behind a fixed 5 ms gateway: the median call is 5 ms + its
    # service time — 100 ms fixed, or ln 2 × 100 = 69 ms exponential — and 5 ms + 4 × that during
    # the × 4 slow fault. (Exponential: the median of ~180 calls per window has a standard
    # deviation of ≈ 7.5 %, the mean of the 10 windows inside ≈ 2.4 %; seeds 2–7 land within 5.5 %.)
    d = Design.model_validate({
        "name": "slow-tool", "workload": {"arrival_rps": 3, "timeline_s": 1800},
        "components": [{"id": "gw", "kind": "api_gateway", "latency": {"dist": "fixed", "value_ms": 5}},
                       {"id": "t", "kind": "tool", "max_concurrency": 16, "latency": dist}],
        "entry": "gw", "flow": [{"from": "gw", "to": "t"}],
        "faults": [{"at_s": 600, "component": "t", "what": "slow", "factor": 4, "duration_s": 600}]})
    r = simulate(d, seed=2)
    inside, outside = _windows_in_and_out(r, 600, 1200)
    gw_ms = 5.0  # the gateway's fixed 5 ms in front
    med = 100.0 if dist["dist"] == "fixed" else 100.0 * math.log(2)
    assert sum(outside) / len(outside) == pytest.approx(med + gw_ms, rel=rel)
    assert sum(inside) / len(inside) == pytest.approx(4 * med + gw_ms, rel=rel)


# --- bad input: located errors ---------------------------------------------------------------

BASE = """name: bad
workload: {arrival_rps: 10}
components:
  - {id: svc, kind: service, replicas: 2}
  - {id: api, kind: llm_api}
  - {id: alt, kind: llm_api}
entry: svc
flow:
  - {from: svc, to: api}
"""


def _problems(text: str):
    with pytest.raises(DesignFileError) as e:
        parse_design(text, "bad.yaml")
    return e.value.problems


def test_slow_on_a_kind_without_an_ops_station_is_located():
    text = BASE.replace("  - {id: alt, kind: llm_api}\n", "  - {id: emb, kind: embedder}\n").replace("to: api", "to: emb")
    (p,) = _problems(text + "faults:\n  - {at_s: 10, component: emb, what: slow, duration_s: 5}\n")
    assert p.path == "faults[0].what" and "slow is not modelled for a embedder" in p.message


def test_a_fault_on_an_unknown_component_is_located_with_a_suggestion():
    ps = _problems(BASE + "faults:\n  - {at_s: 10, component: svx, what: replica_down, duration_s: 5}\n")
    p = next(p for p in ps if p.path == "faults[0].component")
    assert p.line == 11 and p.suggestion == "svc" and "not a component id" in p.message


def test_a_fault_beyond_the_run_is_located():
    text = BASE.replace("{arrival_rps: 10}", "{arrival_rps: 10, timeline_s: 600}")
    ps = _problems(text + "faults:\n  - {at_s: 900, component: svc, what: replica_down, duration_s: 5}\n")
    assert any(p.path == "faults[0].at_s" and "after the 600 s run" in p.message for p in ps)
    # Without timeline_s the peak-hour run is 3,600 s long: refused before any work.
    d = parse_design(BASE + "faults:\n  - {at_s: 4000, component: svc, what: replica_down, duration_s: 5}\n")
    with pytest.raises(SimulationRefused, match=r"faults\[0\]\.at_s: .*4000 s.*3600 s"):
        simulate(d, seed=1)


def test_min_above_max_replicas_is_located():
    text = BASE.replace("{id: svc, kind: service, replicas: 2}",
                        "{id: svc, kind: service, replicas: 2, autoscale: {min_replicas: 5, max_replicas: 3}}")
    ps = _problems(text)
    assert any(p.path.startswith("components[0].autoscale") and "min_replicas 5 > max_replicas 3" in p.message
               and p.line == 4 for p in ps)


def test_a_fallback_cycle_is_located():
    ps = _problems(BASE + "  - {from: api, to: alt, fallback: true}\n  - {from: alt, to: api, fallback: true}\n")
    assert any("fallback cycle api → alt → api" in p.message and p.path.startswith("flow[") for p in ps)


def test_fault_kind_must_fit_the_component():
    ps = _problems(BASE + "faults:\n  - {at_s: 1, component: api, what: replica_down, duration_s: 5}\n")
    assert any(p.path == "faults[0].what" and "provider_outage" in p.message for p in ps)


def test_validate_reports_what_the_timeline_would_refuse(tmp_path):
    from sim import validation_problems

    d = parse_design(BASE + "faults:\n  - {at_s: 4000, component: svc, what: replica_down, duration_s: 5}\n")
    (p,) = validation_problems(d)
    assert p.path == "faults[0].at_s" and "3600 s (the default peak hour)" in p.message
    bad = tmp_path / "t.csv"
    bad.write_text("timestamp_s,prompt_tokens,output_tokens\n0,5,5\n1,x,5\n")
    d2 = parse_design(BASE.replace("{arrival_rps: 10}", "{arrival_rps: 10, trace: {path: '%s'}}" % bad))
    (p2,) = validation_problems(d2)
    assert p2.path == "workload.trace.path" and "t.csv:3: column 2 ('prompt_tokens')" in p2.message
    assert validation_problems(parse_design(BASE)) == []


@pytest.mark.parametrize("flow, join, path, words", [
    ("  - {from: svc, to: api}\n  - {from: api, to: svc, p: 0.5, max_repeats: 2, retry: {attempts: 2}}\n", False,
     "flow[1].retry", "retries on a back edge are not modelled; put them on the forward edge"),
    ("  - {from: svc, to: api, parallel: true}\n  - {from: svc, to: alt, parallel: true}\n"
     "  - {from: api, to: j, retry: {attempts: 2}}\n  - {from: alt, to: j}\n", True,
     "flow[2].retry", "'j' is where a fan-out joins; retries into a join are not modelled"),
])
def test_retries_on_a_back_edge_or_into_a_join_are_located(flow, join, path, words):
    text = BASE.replace("flow:\n  - {from: svc, to: api}\n", "flow:\n" + flow)
    if join:
        text = text.replace("entry: svc", "  - {id: j, kind: service}\nentry: svc")
    (p,) = _problems(text)
    assert p.path == path and words in p.message
