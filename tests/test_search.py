"""The sizing search (sim/search/, `sim.size`): space, bisection, bounds, verdicts, messages.

Simulation-heavy checks stay small here (one short run); bench/bench_size.py has the rest.
"""

from __future__ import annotations

import math
import threading

import pytest

from designs.io import DesignFileError, dump_design, load_design, parse_design
from designs.model import Design
from designs.space import SearchSpace, load_space
from sim import estimate, size
from sim.search.bounds import llm_rate_bound
from sim.search.sizing import TwinEvaluator, size_candidate
from sim.search.space import Candidate, resolve
from sim.twin import queueing as qt

SERVING = "designs/library/llm_serving.yaml"
H100_BF16 = {"components": {"llm": {"gpu": ["H100-SXM-80GB"], "precision": ["bf16"], "gpus_per_replica": [1],
                                    "max_batch": [256], "chunked_prefill_tokens": [None]}}}


def _mmc(target_ms: float = 300.0, **slo) -> Design:
    """λ = 100/s, exponential service of 1/12 s, one server per replica: M/M/c with a = 8.33."""
    return Design.model_validate({
        "name": "mmc", "workload": {"arrival_rps": 100},
        "components": [{"id": "svc", "kind": "service", "replicas": 1, "concurrency": 1,
                        "service_time": {"dist": "exponential", "mean_ms": 1000 / 12}}],
        "entry": "svc", "slo": {"latency_p95_ms": target_ms, **slo}})


def _mmc_p95_exact(c: int, lam: float = 100.0, mu: float = 12.0) -> float:
    """Exact M/M/c response-time p95 (ms): T = W + S with P(W > 0) = Erlang C and, given a wait,
    W ~ Exp(cμ − λ); S ~ Exp(μ). P(T > t) = (1 − C)e^{−μt} + C(θe^{−μt} − μe^{−θt})/(θ − μ)."""
    C, th = qt.erlang_c(c, lam / mu), c * mu - lam

    def tail(t):
        return (1 - C) * math.exp(-mu * t) + C * (th * math.exp(-mu * t) - mu * math.exp(-th * t)) / (th - mu)

    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > 0.05 else (lo, mid)
    return hi * 1000


def test_bisection_finds_the_erlang_c_answer_not_the_rho_rule():
    # Hand-worked: a = 100/12 = 8.33 Erlangs. Exact p95: c=9 466 ms, c=10 292 ms, c=11 263 ms.
    # A 300 ms target needs exactly 10 servers (ρ = 0.83); "ρ ≤ 0.8" would say 11.
    assert _mmc_p95_exact(9) > 300 > _mmc_p95_exact(10)
    r = size(_mmc(300), verify=0)
    assert r.status == "ok"
    assert r.winner.replicas == {"svc": 10}
    assert math.ceil(100 / 12 / 0.8) == 11  # what the ρ rule would have bought
    # N−1: with one server down the remaining 10 must still meet it, so 11.
    assert size(_mmc(300), verify=0, n_minus_1=True).winner.replicas == {"svc": 11}


def test_bisection_is_bisection_not_enumeration():
    # 1000 ms on a 5 ms service at 10,000/s: ~51 servers for stability; the answer is found in
    # a handful of evaluations, not ~50.
    d = Design.model_validate({"name": "big", "workload": {"arrival_rps": 10_000},
                               "components": [{"id": "s", "kind": "service", "service_time": {"dist": "exponential", "mean_ms": 5}}],
                               "entry": "s", "slo": {"latency_p95_ms": 16}})
    sp = resolve(d)
    ev = TwinEvaluator(d)
    out = size_candidate(ev, sp.candidates[0], sp.sized)
    c = out.counts["s"]
    assert out.evaluations <= 12
    assert estimate(d.model_copy(update={"components": [d.components[0].model_copy(update={"replicas": c})]})).slo[0].met
    assert not estimate(d.model_copy(update={"components": [d.components[0].model_copy(update={"replicas": c - 1})]})).slo[0].met


@pytest.mark.parametrize("name", ["llm_serving", "rag_qa"])
def test_fast_evaluator_matches_estimate(name):
    d = load_design(f"designs/library/{name}.yaml")
    sp = resolve(d)
    ev = TwinEvaluator(d)
    cand = next(c for c in sp.candidates if c.values("llm")["gpu"] == "H100-SXM-80GB" and c.values("llm")["max_batch"] == 128)
    for r in (8, 12, 20):
        counts = {cid: getattr(d.component(cid), fld) for cid, (fld, _, _) in sp.sized.items()} | {"llm": r}
        p = ev.evaluate(cand, counts)
        est = estimate(cand.apply(d, counts))
        assert p.cost_per_day_usd == pytest.approx(est.cost_per_day_usd, rel=1e-9)
        for chk in est.slo:
            if chk.metric in p.values:
                if chk.value is None:
                    assert not p.stable
                else:
                    assert p.values[chk.metric] == pytest.approx(chk.value, rel=1e-9)
                    assert (p.values[chk.metric] <= chk.target) == chk.met


def test_rate_bound_is_an_upper_bound_on_the_twin_capacity():
    from sim.llm.twin import llm_capacity

    d = load_design(SERVING)
    llm = d.component("llm")
    for gpu, prec, mb in (("H100", "bf16", 256), ("H100", "fp8", 64), ("L4", "bf16", 128), ("MI300X", "fp8", 256)):
        comp = llm.model_copy(update={"gpu": gpu, "precision": prec, "max_batch": mb})
        assert llm_rate_bound(comp, d.workload) >= llm_capacity(comp, d.workload)[0]


def test_default_space_and_rejected_families_in_numbers():
    d = load_design(SERVING).model_copy()
    seventy = d.model_copy(update={"components": [c.model_copy(update={"model": "llama-3.1-70b"}) if c.id == "llm" else c
                                                  for c in d.components]})
    sp = resolve(seventy)
    fams = {r.family: r.reason for r in sp.rejected}
    bad = fams["llm: llama-3.1-70b BF16 on 1×H100-SXM-80GB"]
    assert "141 GB" in bad and "80 GB" in bad  # weights 141 GB do not fit 80 GB
    # Every candidate can hold the model; fixed facts are not in the settings.
    keys = {k for c in sp.candidates for _, vals in c.settings for k, _ in vals}
    assert keys == {"gpu", "precision", "kv_cache_precision", "gpus_per_replica", "max_batch", "chunked_prefill_tokens"}


def test_search_block_validates_with_located_errors(tmp_path):
    text = open(SERVING).read() + "\nsearch:\n  components:\n    gatway: {min_replicas: 2}\n    lb: {gpu: [H100]}\n"
    with pytest.raises(DesignFileError) as e:
        parse_design(text, "x.yaml")
    msgs = [p.format("x.yaml") for p in e.value.problems]
    assert any("search.components.gatway" in m and "did you mean 'gateway'" in m and m.startswith("x.yaml:") for m in msgs)
    assert any("search.components.lb.gpu" in m and "only an llm_server" in m for m in msgs)
    f = tmp_path / "space.yaml"
    f.write_text("components:\n  llm:\n    gpus_per_replica: [3, 16]\n")
    with pytest.raises(DesignFileError) as e2:
        load_space(f, {"llm": "llm_server"})
    assert e2.value.problems[0].line == 3 or "outside 1..8" in str(e2.value)
    ok = parse_design(open(SERVING).read() + "\nsearch:\n  n_minus_1: true\n  components:\n    llm: {gpu: [H100]}\n")
    assert ok.search.n_minus_1 and parse_design(dump_design(ok)) == ok  # lossless round trip


def _twin_meets(d, replicas: int) -> bool:
    from sim import estimate

    v = d.model_copy(update={"components": [c.model_copy(update={"replicas": replicas}) if c.id == "llm" else c
                                            for c in d.components]})
    est = estimate(v)
    return est.stable and all(c.met is not False for c in est.slo)


def test_serving_h100_bf16_needs_fewer_than_17_and_the_winner_is_a_valid_design():
    # The what-if found fewer H100s than the ρ ≤ 0.8 sizing's 17 pass every SLO; the
    # search's count must be exactly the smallest the twin passes (n meets, n − 1 does not).
    d = load_design(SERVING)
    r = size(d, space=SearchSpace.model_validate(H100_BF16), verify=0)
    n = r.winner.replicas["llm"]
    assert r.status == "ok" and n < 17
    assert _twin_meets(d, n) and not _twin_meets(d, n - 1)
    assert r.winner.cost_per_day_usd < r.baseline.cost_per_day_usd  # 17 replicas as given
    won = Design.model_validate(r.winner_design)
    assert won.component("llm").replicas == n
    assert parse_design(dump_design(won)) == won
    # Everything else is the input's: same workload, SLOs, flow, other fields.
    assert won.workload == d.workload and won.slo == d.slo and won.flow == d.flow


def test_default_space_beats_the_rho_sizing_by_the_twin():
    d = load_design(SERVING)
    r = size(d, verify=0)
    assert r.status == "ok"
    assert r.winner.cost_per_day_usd < 0.5 * r.baseline.cost_per_day_usd  # FP8 / cheaper GPUs, fewer of them
    assert r.candidates_pruned > 0 and r.candidates_evaluated + r.candidates_pruned == r.candidates_total
    assert any("meets SLOs at" in f.reason for f in r.rejected)
    assert r.frontier[0].pareto


def test_messages_nothing_fits_unreachable_budget():
    d = load_design(SERVING)
    seventy = d.model_copy(update={"components": [c.model_copy(update={"model": "llama-3.1-70b"}) if c.id == "llm" else c
                                                  for c in d.components]})
    r = size(seventy, space=SearchSpace.model_validate({"components": {"llm": {"gpu": ["L4"], "gpus_per_replica": [1],
                                                                                 "precision": ["bf16"]}}}), verify=0)
    assert r.status == "nothing_fits" and "141 GB" in r.message
    r = size(_mmc(50), verify=0)  # the service alone takes 83 ms on average: p95 ≥ 250 ms
    assert r.status == "slo_unreachable" and "at any svc count" in r.message and r.closest is not None
    r = size(_mmc(300, daily_budget_usd=1.0), verify=0)
    assert r.status == "over_budget" and "budget" in r.message and r.winner is None


def test_cancel_and_wall_budget_return_partial_results():
    ev = threading.Event()
    ev.set()
    r = size(load_design(SERVING), verify=0, cancel=ev)
    assert r.partial and r.stopped_by == "interrupted"
    r = size(load_design(SERVING), verify=0, max_seconds=1e-6)
    assert r.partial and r.stopped_by == "max_seconds"


def test_two_local_workers_give_the_same_answer():
    d = load_design(SERVING)
    a = size(d, verify=0, workers=1)
    b = size(d, verify=0, workers=2)
    assert a.to_json() | {"wall_s": 0} == b.to_json() | {"wall_s": 0}


def test_simulation_verifies_the_serving_search_at_an_eighth_of_the_traffic():
    # The search's verification end to end on the serving design (gateway, balancer, LLM
    # replicas simulated token by token), at 1/8 of its traffic so that one run is ~55k
    # requests, not 480k: the full design's check (17 as given → the verified count, cheaper)
    # takes ~270 CPU-s a run and lives in bench/bench_size.py (`--only verify`).
    d = load_design(SERVING)
    wl = d.workload.model_copy(update={"requests_per_day": d.workload.requests_per_day // 8})
    d = d.model_copy(update={"workload": wl})
    r = size(d, space=SearchSpace.model_validate(H100_BF16), verify=1, seed=0, max_seconds=600)
    w = r.winner
    assert r.status == "ok" and w.verified is True and all(c.met for c in w.sim) and r.simulations >= 1
    twin_n = w.replicas["llm"]
    if twin_n > 1:  # the twin's count is its smallest passing one: one fewer misses by the twin
        won = Design.model_validate(r.winner_design)
        short = won.model_copy(update={"components": [c.model_copy(update={"replicas": twin_n - 1}) if c.id == "llm" else c
                                                      for c in won.components]})
        e = estimate(short)
        assert not e.stable or any(x.met is False for x in e.slo if x.metric in ("ttft_p95_ms", "tpot_p95_ms"))
    if w.sim_replicas["llm"] != twin_n:  # the simulation moved the twin's count: reported, with its cost
        assert any(o.twin_replicas == twin_n and o.sim_replicas == w.sim_replicas["llm"] for o in r.overturned)
    for metric, target in (("ttft_p95_ms", 1000), ("tpot_p95_ms", 50)):
        c = next(x for x in w.sim if x.metric == metric)
        assert c.value <= c.upper <= target  # judged on the interval's upper end
    assert w.sim_cost_per_day_usd < r.baseline.cost_per_day_usd


def test_candidate_apply_keeps_everything_else():
    d = load_design(SERVING)
    c = Candidate(0, (("llm", (("gpu", "H200-SXM-141GB"), ("precision", "fp8"))),))
    v = c.apply(d, {"llm": 3})
    assert v.component("llm").gpu == "H200-SXM-141GB" and v.component("llm").replicas == 3
    assert v.component("gateway") == d.component("gateway")


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_during_verification_returns_the_best_so_far(workers):
    ev = threading.Event()

    def progress(frac, msg):
        if msg.startswith("verifying"):
            ev.set()  # what the CLI's Ctrl-C handler does

    r = size(_mmc(300), verify=3, workers=workers, progress=progress, cancel=ev)
    assert r.partial and r.stopped_by == "interrupted"
    assert r.winner is not None and r.winner.replicas == {"svc": 10}  # the twin's answer, unverified
    assert "partial" in r.message


def test_headroom_sizes_and_simulates_for_more_than_the_peak():
    # 1.2 × 100/s = 120/s on servers of 1/12 s: stability alone needs 11 (a = 10 Erlangs).
    r = size(_mmc(300), verify=1, headroom=1.2, seed=1)
    assert r.winner.replicas["svc"] >= 11
    assert r.winner.verified is not None
    c = r.winner.sim_replicas["svc"]
    sim_p95 = next(x for x in r.winner.sim if x.metric == "latency_p95_ms").value
    # Simulated at 120/s, not 100/s: the p95 matches exact M/M/c at λ = 120 (and not at 100).
    at120, at100 = _mmc_p95_exact(c, lam=120.0), _mmc_p95_exact(c, lam=100.0)
    assert abs(sim_p95 - at120) < abs(sim_p95 - at100)
    assert sim_p95 == pytest.approx(at120, rel=0.1)


def test_pipeline_designs_size_their_counts_and_verify():
    r = size(load_design("designs/library/eval_at_scale.yaml"), verify=1)
    assert r.status == "ok" and r.winner.verified is True
    assert {c.metric for c in r.winner.sim} >= {"pipeline_hours", "cost_per_day_usd"}  # no request count to judge availability on
    assert r.candidates_total == 1  # the pipeline keeps its LLM settings: only counts vary


def test_n_minus_1_is_verified_by_simulation_for_the_winner():
    # M/M/c (the twin is exact there: Erlang C). At 400 ms the twin needs 10 servers (9: 466 ms),
    # 11 for N−1; simulated with one down (10: exact p95 292 ms) it holds: 11 stands.
    r = size(_mmc(400), verify=1, n_minus_1=True, seed=0)
    w = r.winner
    assert w.replicas == {"svc": 11} and w.verified and w.sim_replicas == {"svc": 11}
    assert w.n_minus_1_sim and all(c.met for c in w.n_minus_1_sim) and w.sim_runs == 2
    assert next(c for c in w.n_minus_1_sim if c.metric == "latency_p95_ms").value == pytest.approx(
        _mmc_p95_exact(10), rel=0.1)
    # A target just above the twin's p95 at 10 servers (293.0 ms; exact 291.9): the twin passes
    # 10, so N−1 sizes 11; the simulation's interval at 10 reaches above the target, so N−1
    # misses in simulation and the winner gets a 12th server (its N−1 is the run at 11, which
    # met every SLO).
    r = size(_mmc(293.5), verify=1, n_minus_1=True, seed=0)
    w = r.winner
    assert w.replicas == {"svc": 11} and w.verified and w.sim_replicas == {"svc": 12} and w.sim_runs == 3
    assert all(c.met for c in w.sim) and all(c.met for c in w.n_minus_1_sim)
    assert any(o.twin_replicas == 11 and o.sim_replicas == 12 and "N−1" in o.detail for o in r.overturned)
    assert any("replica down" in m for m in r.warnings) and "12 svc" in r.message


def test_verification_runs_longest_first_with_results_in_rank_order():
    from sim.search.verify import expected_requests

    # Fewer servers, higher ρ, longer batches and warm-up: the work estimate that orders the runs.
    def at(n: int) -> Design:
        return _mmc().model_copy(update={"components": [_mmc().component("svc").model_copy(update={"replicas": n})]})

    assert expected_requests(at(9)) > expected_requests(at(10)) > expected_requests(at(12)) > 0
    a = size(_mmc(300), verify=2, workers=1, seed=2)
    b = size(_mmc(300), verify=2, workers=2, seed=2)
    assert a.to_json() | {"wall_s": 0} == b.to_json() | {"wall_s": 0}
    verified = [c for c in a.frontier if c.verified is not None]
    assert verified and [c.rank for c in verified] == list(range(1, len(verified) + 1))


def test_a_step_down_that_cannot_beat_the_cheapest_verified_is_not_simulated():
    # Alone, the twin's 10 servers pass at 400 ms and the simulation tries 9 (exact p95 466 ms:
    # misses), so 10 stands after 2 runs.
    alone = size(_mmc(400), verify=1, seed=0).winner
    assert alone.sim_replicas == {"svc": 10} and alone.sim_runs == 2
    # Beside 5 replicas of concurrency 2 ($24/day, verified; 4 × 2 servers cannot keep up, so no
    # step down), 9 replicas of concurrency 1 ($44/day) could not win: not simulated.
    r = size(_mmc(400), space=SearchSpace.model_validate({"components": {"svc": {"concurrency": [1, 2]}}}),
             verify=2, seed=0)
    a, b = r.frontier[:2]
    assert a.settings == {"svc": {"concurrency": 2}} and a.sim_replicas == {"svc": 5} and a.sim_runs == 1
    assert b.settings == {"svc": {"concurrency": 1}} and b.verified and b.sim_replicas == {"svc": 10}
    assert b.sim_runs == 1 and r.simulations == 2 and r.winner is a
