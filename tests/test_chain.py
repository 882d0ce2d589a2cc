"""The FIFO recursion (sim.des.chain) against the event loop: the same sample path, figure for figure.

A feed-forward flow of plain FIFO stations (a chain; caches, guardrails, branches and merges)
fed by Poisson arrivals is run both ways from the same seed; the
recursion must give the event loop's latencies (the same floats), its batch plan, drain and
request counts, and its stations' figures (the same integrals, to ~1e-12)."""

from __future__ import annotations

import math
import random

import pytest

from designs.model import Design
from sim.des import chain as chain_mod
from sim.des.chain import _day_times, chain_stations
from sim.des.engine import simulate
from sim.des.workload import OpenLoop


def _design(stations: list[dict], **workload) -> Design:
    return Design.model_validate({
        "name": "chain", "workload": workload, "components": stations, "entry": stations[0]["id"],
        "flow": [{"from": a["id"], "to": b["id"]} for a, b in zip(stations, stations[1:])],
    })


def _svc(cid: str, c: int, dist: dict, **kw) -> dict:
    return {"id": cid, "kind": "service", "concurrency": c, "service_time": dist, **kw}


def _expo(ms: float) -> dict:
    return {"dist": "exponential", "mean_ms": ms}


# Multi- and single-server stations, exponential and non-exponential service (the lb's fixed
# 1 ms, a lognormal); at 80/s ρ = 0.8, 0.56 and 0.53.
CHAIN = [{"id": "lb", "kind": "load_balancer", "replicas": 2}, _svc("a", 4, _expo(40)), _svc("b", 1, _expo(7)),
         _svc("c", 3, {"dist": "lognormal", "mean_ms": 20, "p95_ms": 60})]


def _same(a, b, path: str = "") -> None:
    """JSON values equal: exactly, floats to 1e-9 relative (sums taken in another order)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        # Little's law's relative error is a difference of two nearly equal figures: absolute.
        tol = dict(abs=1e-8) if path.endswith("rel_error") else dict(rel=1e-9, abs=1e-12)
        assert a == pytest.approx(b, **tol), path
    else:
        assert a == b, path


def _both(d: Design, **kw):
    fast, slow = simulate(d, **kw), simulate(d, path="events", **kw)
    assert fast.engine_path == "fifo_recursion" and slow.engine_path == "events"
    a, b = fast.to_json(), slow.to_json()
    for j in (a, b):
        j.pop("wall_s"), j.pop("engine_path")
    return fast, slow, a, b


def test_batch_means_run_is_the_event_loops_run():
    # Warm-up, MSER-5, the precision rule, the drain of the last batches: all as the loop does.
    fast, slow, a, b = _both(_design(CHAIN, arrival_rps=80), seed=3, precision=0.03)
    assert fast.stopped_by == "precision" and fast.replications >= 10
    assert fast.simulated_requests == slow.simulated_requests
    assert fast.latency_ms == slow.latency_ms and fast.latency_ms_ci95 == slow.latency_ms_ci95  # same floats
    assert fast.latency_sample_ms == slow.latency_sample_ms
    _same(a, b)


def test_whole_day_is_the_event_loops_day():
    # Hour 0 empty (no draw), a quiet night, a peak: the day's arrivals, drain and histograms.
    profile = [0.0, 0.3, 0.2] + [1.0] * 15 + [2.5] * 4 + [0.6, 0.4]
    d = _design(CHAIN, requests_per_day=150_000, profile_24h=profile)
    fast, slow, a, b = _both(d, seed=2, whole_day=True)
    assert fast.simulated_requests == slow.simulated_requests == fast.completed_requests
    assert fast.latency_ms == slow.latency_ms
    _same(a, b)


def test_day_arrivals_are_the_open_loops_own():
    rates = [0.0, 0.02, 3.0, 0.0, 40.0, 1e-4] + [5.0] * 18
    a, b = random.Random(8), random.Random(8)
    src = OpenLoop(0.0, a, rates, 86_400.0)
    loop, now = [], 0.0
    while (g := src.gap(now)) is not None:
        now = now + g  # as the event loop schedules it
        loop.append(now)
    assert list(_day_times(b, rates)) == loop and len(loop) > 100_000
    assert a.random() == b.random()  # the same draws, the discarded ones included


def test_results_do_not_depend_on_where_chunks_end(monkeypatch):
    d = _design(CHAIN, arrival_rps=70)
    one = simulate(d, seed=4, replications=4, max_requests=80_000).to_json()
    monkeypatch.setattr(chain_mod, "CHUNK", 37)
    two = simulate(d, seed=4, replications=4, max_requests=80_000).to_json()
    one.pop("wall_s"), two.pop("wall_s")
    assert one == two and one["engine_path"] == "fifo_recursion"


@pytest.mark.parametrize("change, why", [
    (lambda c: c[1].update(timeout_ms=100), "a timeout"),
    (lambda c: c.append({"id": "llm", "kind": "llm_api"}), "an external API"),
])
def test_only_plain_fifo_stations_caches_and_guardrails_qualify(change, why):
    comps = [dict(c) for c in CHAIN]
    assert chain_stations(_design(comps, arrival_rps=50), whole_day=False) is not None
    change(comps)
    d = _design(comps, arrival_rps=50)
    assert chain_stations(d, whole_day=False) is None, why
    assert simulate(d, seed=1, replications=2, max_requests=20_000).engine_path == "events"


# A feed-forward graph: a cache whose hits end the request, a guardrail that blocks 10 %, a
# branch by p (60 % / 30 %, the other 10 % end there) and the two branches merging at the db.
GRAPH = [{"id": "lb", "kind": "load_balancer", "replicas": 2},
         {"id": "cache", "kind": "cache", "replicas": 1, "concurrency": 3, "hit_ratio": 0.3,
          "hit_latency": {"dist": "exponential", "mean_ms": 2}, "miss_latency": {"dist": "fixed", "value_ms": 4}},
         {"id": "guard", "kind": "guardrail", "replicas": 1, "concurrency": 2, "block_ratio": 0.1,
          "service_time": _expo(5)},
         _svc("app", 3, _expo(30)), _svc("api", 1, _expo(20)), _svc("db", 2, _expo(12))]
GRAPH_FLOW = [{"from": "lb", "to": "cache"}, {"from": "cache", "to": "guard"}, {"from": "guard", "to": "app", "p": 0.6},
              {"from": "guard", "to": "api", "p": 0.3}, {"from": "app", "to": "db"}, {"from": "api", "to": "db"}]


def _graph(**workload) -> Design:
    return Design.model_validate({"name": "graph", "workload": workload, "components": GRAPH, "entry": "lb",
                                  "flow": GRAPH_FLOW})


def test_a_feed_forward_graph_is_the_event_loops_run():
    fast, slow, a, b = _both(_graph(arrival_rps=100), seed=6, precision=0.04)
    assert fast.stopped_by == "precision" and fast.components["db"].throughput_rps < 100
    assert fast.latency_ms == slow.latency_ms and fast.simulated_requests == slow.simulated_requests
    _same(a, b)
    profile = [0.5] * 8 + [1.5] * 16
    fast, slow, a, b = _both(_graph(requests_per_day=100_000, profile_24h=profile), seed=1, whole_day=True)
    _same(a, b)


def test_loops_fan_out_closed_loops_and_bursts_take_the_event_loop():
    comps = [_svc("a", 2, _expo(10)), _svc("b", 2, _expo(10)), _svc("c", 2, _expo(10))]
    fan = Design.model_validate({"name": "f", "workload": {"arrival_rps": 50}, "components": comps, "entry": "a",
                                 "flow": [{"from": "a", "to": "b", "parallel": True},
                                          {"from": "a", "to": "c", "parallel": True}]})
    loop = Design.model_validate({"name": "l", "workload": {"arrival_rps": 50}, "components": comps[:2], "entry": "a",
                                  "flow": [{"from": "a", "to": "b"}, {"from": "b", "to": "a", "p": 0.2, "max_repeats": 2}]})
    closed = _design(comps[:1], concurrent_users=5)
    bursty = _design(comps[:1], arrival_rps=50, arrivals={"process": "mmpp"})
    for d in (fan, loop, closed, bursty):
        assert chain_stations(d, whole_day=False) is None, d.name
    assert not math.isnan(simulate(bursty, seed=1, replications=2, max_requests=20_000).latency_ms.mean)


def test_budget_cuts_on_the_fast_path():
    import threading
    import time

    from sim.des.chain import ChainRun

    d = _design([_svc("s", 1, _expo(10))], arrival_rps=95)  # ρ = 0.95: long queues build up
    run = ChainRun(d, 1, 0, 10_000, whole_day=False, deadline=time.perf_counter() + 60, cancel=None,
                   max_in_system=40)
    while (reason := run.advance()) == "boundary":
        pass
    assert reason == "cut" and run.cut == "backlog" and run.arrived - run.fin > 40
    assert run.segs and run.segs[-1].closed  # the batch so far is closed at the cut, as on the loop
    gone = ChainRun(d, 1, 100, 10_000, whole_day=False, deadline=time.perf_counter() - 1, cancel=None)
    assert gone.advance() == "cut" and gone.cut == "max_seconds"
    stop = threading.Event()
    r = simulate(_design(CHAIN, arrival_rps=60), seed=1, precision=0.001, cancel=stop,
                 progress=lambda f, m: stop.set())  # cancelled at the first report (the warm-up's)
    assert r.engine_path == "fifo_recursion" and r.stopped_by == "interrupted" and r.partial


def _random_design(R: random.Random) -> Design:
    """A random feed-forward design: 2–6 services, databases, caches, guardrails and load
    balancers with 1–200 servers, four service distributions, some branches by p."""
    def dist() -> dict:
        k, m = R.choice(["exponential", "fixed", "lognormal", "uniform"]), R.uniform(2, 30)
        return {"exponential": {"dist": k, "mean_ms": m}, "fixed": {"dist": k, "value_ms": m},
                "lognormal": {"dist": k, "mean_ms": m, "p95_ms": m * R.uniform(1.5, 3.5)},
                "uniform": {"dist": k, "low_ms": m / 2, "high_ms": m * 1.5}}[k]

    n = R.randint(2, 6)
    comps = []
    for i in range(n):
        kind = R.choice(["service", "database", "cache", "guardrail", "load_balancer"])
        c = {"id": f"c{i}", "kind": kind, "replicas": 1, "concurrency": R.choice([1, 2, 3, 8, 200])}
        if kind == "cache":
            c.update(hit_ratio=R.uniform(0.1, 0.8), hit_latency=dist(), miss_latency=dist())
        elif kind == "guardrail":
            c.update(block_ratio=R.choice([0.0, 0.05, 0.3]), service_time=dist())
        elif kind == "load_balancer":
            del c["concurrency"]
        else:
            c["query_time" if kind == "database" else "service_time"] = dist()
        comps.append(c)
    flow = []
    for i in range(n - 1):  # to the next one, or (when two are left) a branch to two later ones
        later = list(range(i + 1, n))
        if R.random() < 0.3 and len(later) > 2:
            a, b = R.sample(later[1:], 2)
            flow += [{"from": f"c{i}", "to": f"c{i + 1}", "p": 0.5}, {"from": f"c{i}", "to": f"c{a}", "p": 0.3},
                     {"from": f"c{i}", "to": f"c{b}", "p": 0.1}]
        else:
            flow.append({"from": f"c{i}", "to": f"c{i + 1}"})
    return Design.model_validate({"name": "random", "workload": {"arrival_rps": R.uniform(5, 40)},
                                  "components": comps, "entry": "c0", "flow": flow})


def test_random_feed_forward_designs_run_as_on_the_event_loop():
    R = random.Random(20261202)
    ran = 0
    for _ in range(8):
        d = _random_design(R)
        if chain_stations(d, whole_day=False) is None:
            continue
        kw = dict(seed=R.randint(0, 99), replications=3, max_requests=20_000)
        fast, slow = simulate(d, **kw), simulate(d, path="events", **kw)
        if not fast.stable:
            continue  # a saturated design: one window on the event loop either way
        a, b = fast.to_json(), slow.to_json()
        assert a.pop("engine_path") == "fifo_recursion" and b.pop("engine_path") == "events"
        a.pop("wall_s"), b.pop("wall_s")
        _same(a, b)
        ran += 1
    assert ran >= 5
