"""Budgets that bind (issue 14): work per request, the deadline and cancel checked by events,
the twin inside the budget. Loose wall-clock sanity only; the timing bounds are in
bench/bench_hostile.py."""

from __future__ import annotations

import threading
import time

import pytest

from designs.model import Design
from sim import SimulationRefused, estimate, simulate, validation_problems
from sim.twin.flow import latency_moments, visits_with
from sim.twin.stations import analyse_station
from sim.twin.flow import visits_per_request


def _chain(n: int, *, back=(), workload=None, mean_ms=1.0, conc=8) -> Design:
    comps = [{"id": f"s{i}", "kind": "service", "concurrency": conc,
              "service_time": {"dist": "exponential", "mean_ms": mean_ms}} for i in range(n)]
    flow = [{"from": f"s{i}", "to": f"s{i + 1}"} for i in range(n - 1)] + list(back)
    return Design.model_validate({"name": "chain", "workload": workload or {"arrival_rps": 1.0},
                                  "components": comps, "entry": "s0", "flow": flow})


def test_a_loop_of_ten_thousand_visits_stops_at_the_deadline_not_after_49_s():
    # The campaign's case: ten services, a back edge p = 1, max_repeats 1000 — 10,010 visits
    # a request. Checked every 2,048 arrivals it ran 49 s under --max-seconds 2.
    d = _chain(10, back=[{"from": "s9", "to": "s0", "p": 1, "max_repeats": 1000}], workload={"arrival_rps": 0.5})
    assert sum(visits_per_request(d).values()) == pytest.approx(10_010)
    t0 = time.perf_counter()
    r = simulate(d, seed=1, max_seconds=1.0)
    assert r.stopped_by == "max_seconds"
    assert time.perf_counter() - t0 < 6.0  # a loose sanity bound (bench: overrun ratio)


def test_back_edges_from_the_last_to_every_earlier_one_are_refused_by_validate_with_the_reason():
    # Thirty services, a back edge from the last to each earlier one (p 0.5): the engine tries
    # them one after another, so a request loops until nearly every edge has used its 1,000
    # repeats; the twin's walk follows one (32 visits). The visit equations see it: the edges
    # tried first fill their caps, so s_k is visited 1 + 1000·(k + 1) times for the first ones.
    back = [{"from": "s29", "to": f"s{k}", "p": 0.5, "max_repeats": 1000} for k in range(29)]
    d = _chain(30, back=back)
    from sim.twin.visits import visit_equations

    v = visit_equations(d)
    assert [v[f"s{k}"] for k in range(4)] == pytest.approx([1001, 2001, 3001, 4001])
    assert sum(v.values()) > 300_000
    (p,) = validation_problems(d)
    assert p.path == "flow" and "visit equations" in p.message and "s29 → s0 (p 0.5, max_repeats 1000)" in p.message
    assert "and 23 more" in p.message  # 29 edges: the reason names six and counts the rest
    t0 = time.perf_counter()
    with pytest.raises(SimulationRefused, match="component visits on average"):
        simulate(d, seed=1, max_seconds=30.0)  # refused before running, not after the work allowance
    assert time.perf_counter() - t0 < 3.0


def _routing_monte_carlo(d: Design, n: int, seed: int) -> dict[str, float]:
    """The engine's routing rule alone (sim.des.routing.Node.after): back edges tried in file
    order, each while taken fewer than max_repeats times in this request, then the one forward edge."""
    import random

    rng = random.Random(seed)
    outs = {c.id: [e for e in d.flow if e.from_ == c.id and not e.is_loop] for c in d.components}
    backs = {c.id: [(i, e) for i, e in enumerate(d.flow) if e.from_ == c.id and e.is_loop] for c in d.components}
    tot = dict.fromkeys(outs, 0)
    for _ in range(n):
        counts: dict[int, int] = {}
        node = d.entry
        while node:
            tot[node] += 1
            nxt = None
            for i, e in backs[node]:
                if counts.get(i, 0) < e.max_repeats and rng.random() < e.p:
                    counts[i] = counts.get(i, 0) + 1
                    nxt = e.to
                    break
            node = nxt or (outs[node][0].to if outs[node] else None)
    return {k: x / n for k, x in tot.items()}


def test_visit_equations_against_hand_worked_counts():
    from sim.twin.visits import visit_equations

    # Two back edges from c (to a, then b; p ½ each, caps never reached): from c a request
    # returns to a with ½, to b with ¼, ends with ¼. v_a = 1 + ½v_c, v_b = v_a + ¼v_c, v_c = v_b
    # ⇒ v_c = 1 + ¾v_c = 4, v_a = 3, v_b = 4. The walk follows only c → a (5 visits).
    two = _chain(3, back=[{"from": "s2", "to": "s0", "p": 0.5, "max_repeats": 1000},
                          {"from": "s2", "to": "s1", "p": 0.5, "max_repeats": 1000}])
    assert visit_equations(two) == pytest.approx({"s0": 3.0, "s1": 4.0, "s2": 4.0})
    assert sum(visits_per_request(two).values()) == pytest.approx(5.0)
    mc = _routing_monte_carlo(two, 20_000, seed=3)
    assert mc == pytest.approx({"s0": 3.0, "s1": 4.0, "s2": 4.0}, rel=0.03)
    # Caps that always bind (p = 1): s2 → s0 twice, then s2 → s1 three times, then out:
    # s0 s1 s2 ×3 passes, then (s1 s2) ×3: s0 3, s1 6, s2 6 — deterministic, 15 visits.
    caps = _chain(3, back=[{"from": "s2", "to": "s0", "p": 1, "max_repeats": 2},
                           {"from": "s2", "to": "s1", "p": 1, "max_repeats": 3}])
    assert visit_equations(caps) == pytest.approx({"s0": 3.0, "s1": 6.0, "s2": 6.0})
    assert _routing_monte_carlo(caps, 10, seed=1) == {"s0": 3.0, "s1": 6.0, "s2": 6.0}
    # A cache that answers ⅓ before the loops: everything downstream scales by ⅔.
    cached = Design.model_validate({**two.model_dump(by_alias=True), "components": [
        {"id": "s0", "kind": "cache", "hit_ratio": 1 / 3}, *two.model_dump(by_alias=True)["components"][1:]]})
    # v_a = 1 + ½v_c, v_b = ⅔v_a + ¼v_c, v_c = v_b ⇒ v_c = ⅔ + ⅓v_c + ¼v_c ⇒ v_c = 1.6, v_a = 1.8
    assert visit_equations(cached) == pytest.approx({"s0": 1.8, "s1": 1.6, "s2": 1.6})


def test_visit_equations_where_caps_bind_sometimes_are_an_upper_estimate():
    # Caps reached only on some requests: the fluid value counts min(cap, E[N]) ≥ E[min(cap, N)]
    # (Jensen), so it is high — here by a quarter against the routing rule itself.
    from sim.twin.visits import visit_equations

    d = _chain(4, back=[{"from": "s3", "to": f"s{k}", "p": 0.5, "max_repeats": 3} for k in range(3)])
    fluid = sum(visit_equations(d).values())
    mc = sum(_routing_monte_carlo(d, 4_000, seed=1).values())
    assert mc < fluid < 1.5 * mc


def test_expected_visits_beyond_the_limit_are_refused_before_running_and_by_validate():
    d = _chain(2, back=[{"from": "s1", "to": "s0", "p": 1, "max_repeats": 1000}])
    assert sum(visits_per_request(d).values()) < 100_000
    assert not validation_problems(d)
    # 400 services in a p = 1 loop of 1,000 repeats: 400 × 1001 = 400,400 visits a request,
    # past the 100,000 limit.
    big = _chain(400, back=[{"from": "s399", "to": "s0", "p": 1, "max_repeats": 1000}])
    (p,) = validation_problems(big)
    assert p.path == "flow" and "component visits on average" in p.message
    with pytest.raises(SimulationRefused, match="component visits on average"):
        simulate(big, seed=1)


def test_nested_loops_count_their_caps_per_request_as_the_engine_does():
    # max_repeats is "times per request" (designs/model.py): the inner loop s2 → s1 spends its
    # 1,000 repeats in the first outer pass; the other 1,000 outer passes visit each service
    # once. 1 + 1001 + 1001 + 1 + 1000 × 4 = 6,004 visits (the flow walk, which restarts the
    # inner count on every outer pass, said 1001 × (2 + 2 × 1001) = 2,006,004 and refused it).
    nested = _chain(4, back=[{"from": "s3", "to": "s0", "p": 1, "max_repeats": 1000},
                             {"from": "s2", "to": "s1", "p": 1, "max_repeats": 1000}])
    from sim import estimate
    from sim.twin.visits import visit_equations

    assert visit_equations(nested) == pytest.approx({"s0": 1001, "s1": 2001, "s2": 2001, "s3": 1001})
    assert not validation_problems(nested)
    est = estimate(nested)
    r = simulate(nested, seed=1, max_requests=200, max_seconds=30)
    # 6,004 visits of 1 ms each at low load: the twin's mean and the engine's agree on ~6 s.
    assert est.latency_ms_mean == pytest.approx(6004, rel=0.03)
    assert r.latency_ms.mean == pytest.approx(6004, rel=0.05)
    assert r.components["s1"].throughput_rps / r.components["s0"].throughput_rps == pytest.approx(2001 / 1001, rel=0.02)


def test_cancel_is_answered_promptly_inside_a_long_request():
    d = _chain(10, back=[{"from": "s9", "to": "s0", "p": 1, "max_repeats": 1000}], workload={"arrival_rps": 0.5})
    ev = threading.Event()
    threading.Timer(0.3, ev.set).start()
    t0 = time.perf_counter()
    r = simulate(d, seed=1, max_seconds=60.0, cancel=ev)
    assert r.stopped_by == "interrupted" and r.partial
    assert time.perf_counter() - t0 < 5.0


def test_a_million_closed_loop_users_stop_at_the_deadline():
    d = _chain(2, workload={"concurrent_users": 10**6, "think_time": {"dist": "fixed", "value_ms": 1000}})
    t0 = time.perf_counter()
    r = simulate(d, seed=1, max_seconds=1.0)
    assert r.stopped_by == "max_seconds"
    assert time.perf_counter() - t0 < 8.0


def test_closed_loop_mva_on_500_stations_is_bounded_and_exact():
    # 500 users on a 500-station chain took 67 s of CPU; the mean of a flow without fan-outs is
    # Σ visits × time per visit, so the exact recursion now costs O(stations) per user.
    d = _chain(500, workload={"concurrent_users": 500, "think_time": {"dist": "fixed", "value_ms": 1000}})
    t0 = time.perf_counter()
    est = estimate(d)
    assert time.perf_counter() - t0 < 10.0
    assert any("exact MVA recursion" in w for w in est.warnings)
    # Asymptotic bounds: X ≤ N/(Z + D) with D = 500 × 1 ms, and X ≤ 1/D_max = 8 / 1 ms.
    assert est.arrival_rps <= 500 / (1.0 + 0.5) + 1e-9


def test_the_twins_planning_is_inside_the_run_budget():
    # 500 users on 500 stations: the twin's MVA polls the run's deadline as well as its cancel,
    # so a budget shorter than the planning ends the run there — nothing simulated, said so.
    d = _chain(500, workload={"concurrent_users": 500, "think_time": {"dist": "fixed", "value_ms": 1000}})
    r = simulate(d, seed=1, max_seconds=0.01)
    assert r.stopped_by == "max_seconds" and r.simulated_requests == 0
    assert any("while the analytic twin planned the run" in w for w in r.warnings)
    assert r.latency_ms.p95 is None  # nothing measured: null, not 0


def test_visits_on_a_flow_without_loops_or_fan_outs_match_the_walk():
    # The one-pass topological visits (linear in the flow) against the walk, on a flow with
    # branches, a cache, a guardrail and a queue whose consumer runs off the caller's path.
    from sim.twin import flow

    d = Design.model_validate({
        "name": "dag", "workload": {"arrival_rps": 5.0}, "entry": "c",
        "components": [{"id": "c", "kind": "cache", "hit_ratio": 0.25}, {"id": "g", "kind": "guardrail", "block_ratio": 0.1},
                       {"id": "a", "kind": "service"}, {"id": "b", "kind": "service"}, {"id": "q", "kind": "queue"},
                       {"id": "w", "kind": "service"}, {"id": "z", "kind": "service"}],
        "flow": [{"from": "c", "to": "g"}, {"from": "g", "to": "a", "p": 0.7}, {"from": "g", "to": "b", "p": 0.3},
                 {"from": "a", "to": "z"}, {"from": "b", "to": "z", "p": 0.5}, {"from": "z", "to": "q"},
                 {"from": "q", "to": "w"}]})
    prof = {c.id: flow._routing_profile(c) for c in d.components}
    seg = flow._Walker(d, prof).run()
    walk = {c.id: seg.visits.get(c.id, 0.0) for c in d.components}
    # by hand: g ¾, a 0.7·0.675 = 0.4725, b 0.2025, z a + ½b = 0.57375, q = w = z
    hand = {"c": 1.0, "g": 0.75, "a": 0.4725, "b": 0.2025, "z": 0.57375, "q": 0.57375, "w": 0.57375}
    assert flow._dag_visits(d, prof) == pytest.approx(hand) == walk
    assert flow.visits_per_request(d) == pytest.approx(hand)


def test_mean_latency_is_the_sum_of_visits_times_time_per_visit_without_fan_outs():
    # The identity the fast MVA path rests on, checked against the full flow walk on a flow
    # with a branch, a cache (hits end the request) and a loop.
    d = Design.model_validate({
        "name": "mix", "workload": {"arrival_rps": 5.0},
        "components": [
            {"id": "c", "kind": "cache", "hit_ratio": 0.3, "hit_latency": {"dist": "fixed", "value_ms": 1},
             "miss_latency": {"dist": "fixed", "value_ms": 2}},
            {"id": "a", "kind": "service", "service_time": {"dist": "exponential", "mean_ms": 10}},
            {"id": "b", "kind": "service", "service_time": {"dist": "fixed", "value_ms": 20}},
            {"id": "z", "kind": "service", "service_time": {"dist": "fixed", "value_ms": 5}},
        ],
        "entry": "c",
        "flow": [{"from": "c", "to": "a", "p": 0.6}, {"from": "c", "to": "b", "p": 0.4},
                 {"from": "a", "to": "z"}, {"from": "b", "to": "z"},
                 {"from": "z", "to": "a", "p": 0.5, "max_repeats": 3}]})
    visits = visits_per_request(d)
    profiles = {c.id: analyse_station(c, 5.0 * visits[c.id], d).profile(False) for c in d.components}
    vis = visits_with(d, profiles)
    by_sum = sum(vis[k] * (pr.wait1 + sum(p * s for p, s, _, _ in pr.outcomes)) for k, pr in profiles.items())
    mean, _, _ = latency_moments(d, profiles)
    assert by_sum == pytest.approx(mean, rel=1e-12)


def test_cancel_while_the_twin_plans_returns_an_empty_partial_result():
    ev = threading.Event()
    ev.set()
    r = simulate(_chain(3), seed=1, cancel=ev)
    assert r.stopped_by == "interrupted" and r.partial and r.simulated_requests == 0
    assert r.latency_ms.p95 is None and r.latency_ms_ci95.p95 is None


def test_a_cdf_of_a_raw_batch_is_the_histograms_bit_for_bit():
    # The run's TTFT/TPOT CDFs ask 256 quantiles per batch: binned once instead of 256
    # selections (2.7 s past the deadline on the agent workflow), with the same numbers.
    import random

    from sim.des.stats import LogHistogram, RawSample, log_quantile

    qs = tuple((i + 0.5) / 256 for i in range(256))
    rng = random.Random(5)
    raw, hist = RawSample(), LogHistogram()
    for _ in range(3000):
        x = 0.0 if rng.random() < 0.05 else rng.lognormvariate(0, 2)
        raw.add(x)
        hist.add(x)
    pos = [x for x in raw if x > 0]
    assert raw.quantiles(qs) == hist.quantiles(qs) == [log_quantile(pos, len(raw) - len(pos), q) for q in qs]


def test_visit_equations_match_the_engine_on_a_fan_out_with_two_back_edges():
    # gw → cache (hit ⅕) → plan ⇉ (t1, t2) → merge → check; check returns to plan (p 0.3) or,
    # failing that, to merge (p 0.4). By hand: from check 0.3 back to plan, 0.7·0.4 = 0.28 to
    # merge, 0.42 out; v_plan = 0.8 + 0.3 v_check, v_check = v_merge = v_plan + 0.28 v_check
    # ⇒ v_check = 0.8 / 0.42 = 1.9048, v_plan = t1 = t2 = 1.3714 (each fan-out branch runs,
    # the join once). The engine's measured arrivals per request agree.
    from sim.twin.visits import visit_equations

    svc = {"kind": "service", "concurrency": 64, "service_time": {"dist": "exponential", "mean_ms": 1}}
    d = Design.model_validate({
        "name": "agent", "workload": {"arrival_rps": 2.0}, "entry": "gw",
        "components": [{"id": "gw", **svc}, {"id": "c", "kind": "cache", "hit_ratio": 0.2}, {"id": "plan", **svc},
                       {"id": "t1", **svc}, {"id": "t2", **svc}, {"id": "merge", **svc}, {"id": "check", **svc}],
        "flow": [{"from": "gw", "to": "c"}, {"from": "c", "to": "plan"},
                 {"from": "plan", "to": "t1", "parallel": True}, {"from": "plan", "to": "t2", "parallel": True},
                 {"from": "t1", "to": "merge"}, {"from": "t2", "to": "merge"}, {"from": "merge", "to": "check"},
                 {"from": "check", "to": "plan", "p": 0.3, "max_repeats": 50},
                 {"from": "check", "to": "merge", "p": 0.4, "max_repeats": 50}]})
    hand = {"gw": 1.0, "c": 1.0, "plan": 0.8 + 0.3 * 0.8 / 0.42, "t1": 0.8 + 0.3 * 0.8 / 0.42,
            "t2": 0.8 + 0.3 * 0.8 / 0.42, "merge": 0.8 / 0.42, "check": 0.8 / 0.42}
    assert visit_equations(d) == pytest.approx(hand, rel=1e-9)
    r = simulate(d, seed=1, max_requests=40_000, max_seconds=30, precision=0.2)
    n = r.components["gw"].arrivals
    measured = {k: r.components[k].arrivals / n for k in hand}
    assert measured == pytest.approx(hand, rel=0.02)


def test_the_twin_counts_every_back_edge_of_a_component():
    # c → a (p ½) and c → b (p ½): visits 3, 4, 4 (hand-worked above), 1 ms each at a light load,
    # so the mean is ≈ 11 ms; the walk alone followed c → a (5 visits, 5 ms). The engine agrees.
    d = _chain(3, back=[{"from": "s2", "to": "s0", "p": 0.5, "max_repeats": 1000},
                        {"from": "s2", "to": "s1", "p": 0.5, "max_repeats": 1000}], workload={"arrival_rps": 20.0})
    est = estimate(d)
    assert {k: s.visits_per_request for k, s in est.stations.items()} == pytest.approx({"s0": 3, "s1": 4, "s2": 4})
    assert est.latency_ms_mean == pytest.approx(11.0, rel=0.01)
    assert any("visit equations" in w for w in est.warnings)
    r = simulate(d, seed=1, max_requests=30_000, precision=0.1)
    assert r.latency_ms.mean == pytest.approx(est.latency_ms_mean, rel=0.04)
