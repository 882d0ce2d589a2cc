"""The entry's fixed-latency FIFO chain by recursion (sim.des.delay_chain) against the events.

The same design and seed are run by the event loop with the chain computed by recursion (the
default) and with every station on the heap (`DelayChain.build` patched to refuse): latencies,
batch plans and request counts must be the same floats; the stations' figures the same up to
the order of a sum (1e-9 relative), including stations that queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from designs.io import load_design
from designs.model import Design
from sim.des import delay_chain as dc_mod
from sim.des.engine import simulate
from sim.des.run import Run

from test_chain import _same

ROOT = Path(__file__).resolve().parents[1]


def _design(stations: list[dict], flow=None, **workload) -> Design:
    return Design.model_validate({
        "name": "delay", "workload": workload, "components": stations, "entry": stations[0]["id"],
        "flow": flow if flow is not None else [{"from": a["id"], "to": b["id"]} for a, b in zip(stations, stations[1:])],
    })


def _svc(cid: str, c: int, dist: dict) -> dict:
    return {"id": cid, "kind": "service", "concurrency": c, "service_time": dist}


def _fixed(ms: float) -> dict:
    return {"dist": "fixed", "value_ms": ms}


# A one-server gateway at ρ = 0.75 and a two-server fixed stage at ρ = 0.75: both queue, so the
# recursion's waits, starts and in-service edges are exercised; then an exponential station.
QUEUEING = [{"id": "gw", "kind": "api_gateway", "replicas": 1, "concurrency": 1},
            _svc("f", 2, _fixed(10)), _svc("x", 3, {"dist": "exponential", "mean_ms": 12})]


def _runs(d: Design, monkeypatch, **kw):
    fast = simulate(d, path="events", **kw)
    with monkeypatch.context() as m:
        m.setattr(dc_mod.DelayChain, "build", classmethod(lambda cls, *a: None))
        slow = simulate(d, path="events", **kw)
    a, b = fast.to_json(), slow.to_json()
    for j in (a, b):
        j.pop("wall_s")
    return fast, slow, a, b


def _chain_of(d: Design):
    import time

    run = Run(d, 0, 100, 100, whole_day=False, deadline=time.perf_counter() + 30, cancel=None)
    return None if run.delay is None else ([ln.st.id for ln in run.delay.lines], run.delay.nxt.id)


def test_queueing_chain_is_the_event_loops_run(monkeypatch):
    d = _design(QUEUEING, arrival_rps=150)
    assert _chain_of(d) == (["gw", "f"], "x")
    fast, slow, a, b = _runs(d, monkeypatch, seed=5, replications=4)
    assert fast.simulated_requests == slow.simulated_requests
    assert fast.latency_ms == slow.latency_ms and fast.latency_ms_ci95 == slow.latency_ms_ci95  # same floats
    gw = fast.components["gw"]
    assert gw.utilization == pytest.approx(0.75, rel=0.05) and gw.wait_ms_p95 > 5.0  # it did queue
    assert fast.components["f"].wait_ms_p95 > 0.0
    _same(a, b)


def test_chain_to_the_last_station(monkeypatch):
    # The chain's successor ends the path (the request's own continuation is handed on).
    d = _design([_svc("a", 4, _fixed(3)), _svc("b", 1, {"dist": "exponential", "mean_ms": 8})], arrival_rps=90)
    assert _chain_of(d) == (["a"], "b")
    fast, slow, a, b = _runs(d, monkeypatch, seed=2, replications=3)
    assert fast.latency_ms == slow.latency_ms
    _same(a, b)


def test_library_serving_design_takes_the_chain(monkeypatch):
    d = load_design(ROOT / "designs" / "library" / "llm_serving.yaml")
    assert _chain_of(d) == (["gateway", "lb"], "llm")
    fast, slow, a, b = _runs(d, monkeypatch, seed=1, replications=2, max_requests=30_000)
    assert fast.ttft_ms == slow.ttft_ms and fast.tpot_ms == slow.tpot_ms
    _same(a, b)


def test_not_taken_where_it_would_be_wrong():
    # A station fed by another edge too (here a loop back into the chain), an exponential
    # entry, or a chain that is the whole path: the event loop keeps every station.
    loop = _design([_svc("a", 2, _fixed(3)), _svc("b", 2, _fixed(4)), _svc("c", 2, {"dist": "exponential", "mean_ms": 5})],
                   flow=[{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "b", "p": 0.2, "max_repeats": 2}],
                   arrival_rps=50)
    assert _chain_of(loop) == (["a"], "b")  # b has two predecessors: the chain stops before it
    expo = _design([_svc("a", 2, {"dist": "exponential", "mean_ms": 5}), _svc("b", 2, _fixed(4))], arrival_rps=50)
    assert _chain_of(expo) is None
    alone = _design([_svc("a", 2, _fixed(3))], arrival_rps=50)
    assert _chain_of(alone) is None


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stages=st.lists(st.tuples(st.integers(1, 4), st.sampled_from([0.0, 1.0, 4.0, 9.5])), min_size=1, max_size=3),
       rho=st.floats(0.2, 0.9), seed=st.integers(0, 10_000))
def test_any_fixed_chain_is_the_event_loops_run(monkeypatch, stages, rho, seed):
    # Chains of 1–3 fixed-service stations (zero service included) with 1–4 servers each, at a
    # load up to ρ = 0.9 on the busiest, ahead of an exponential station: the same run both ways.
    busiest = max(ms / c for c, ms in stages)
    rate = rho * 1000.0 / busiest if busiest > 0 else 200.0
    comps = [_svc(f"f{i}", c, _fixed(ms)) for i, (c, ms) in enumerate(stages)]
    comps.append(_svc("x", 64, {"dist": "exponential", "mean_ms": 5}))
    d = _design(comps, arrival_rps=round(min(rate, 400.0), 3))
    assert _chain_of(d) == ([f"f{i}" for i in range(len(stages))], "x")
    fast, slow, a, b = _runs(d, monkeypatch, seed=seed, replications=2, max_requests=12_000)
    assert fast.latency_ms == slow.latency_ms
    _same(a, b)
