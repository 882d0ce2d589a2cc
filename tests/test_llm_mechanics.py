"""Engine mechanics of `llm_server` (issue 12): KV policy in the twin and the simulation, the
prefix cache in KV memory, cache-aware routing. Hand-worked where possible; published effects
with their source."""

import random

import pytest
import simpy

from components.catalogue import LLMServer
from components.distributions import FixedCount, LogNormalCount
from designs.model import RequestClass, Workload
from sim.des.request import Request, SimContext
from sim.llm.batching import ReplicaEngine
from sim.llm.kv import KvConfig, PrefixCache, hold_tokens
from sim.llm.roofline import ServingSpec
from sim.llm.station import LLMServerStation
from sim.llm.twin import llm_capacity, llm_estimate


class Req:
    def __init__(self, prompt, output, t0=0.0):
        self.prompt_tokens, self.output_tokens, self.t0 = prompt, output, t0
        self.first_token_at = self.last_token_at = None


def wl_of(prompt, output, rps=1.0, **cls):
    return Workload(arrival_rps=rps, classes=[RequestClass(name="c", prompt_tokens=prompt, output_tokens=output, **cls)])


def replica_saturated(comp, wl, rate, n=3000, seed=1):
    """One replica fed Poisson arrivals at ``rate``: (output tokens/s, mean batch, stats)."""
    spec = ServingSpec.from_component(comp)
    env = simpy.Environment()
    eng = ReplicaEngine(env, spec, lambda r, ok, why: None, kv=KvConfig.from_component(comp))
    rng = random.Random(seed)
    c = wl.classes[0]
    t = 0.0
    for _ in range(n):
        t += rng.expovariate(rate)
        r = Req(c.prompt_tokens.sample_int(rng), c.output_tokens.sample_int(rng), t)
        env.timeout(t).callbacks.append(lambda _e, r=r: eng.submit(r, max_output=c.max_output_tokens))
    env.run()
    st = eng.stats(env.now)
    return st.output_tokens / env.now, st.mean_batch_size, st


def station_run(comp, wl, rate, n, seed=1):
    env = simpy.Environment()
    ctx = SimContext(env=env, rng=random.Random(seed), design=None, workload=wl, seed=seed)
    st = LLMServerStation(comp, ctx)
    rng = random.Random(seed + 1)
    c = wl.classes[0]
    fin = []
    t = 0.0
    for i in range(n):
        t += rng.expovariate(rate)
        req = Request(i, 0, t, c.prompt_tokens.sample_int(rng), c.output_tokens.sample_int(rng))
        env.timeout(t).callbacks.append(lambda _e, r=req: st.arrive(r, lambda q, ok: fin.append(q)))
    env.run()
    ttft = sorted(q.first_token_at - q.t0 for q in fin)
    return st.stats(env.now).llm, sum(ttft) / len(ttft), fin


# --- KV policy: the twin's admission limit ----------------------------------------------------

SMALL = dict(model="llama-3.1-8b", gpu_memory_utilization=0.35)  # memory binds, not max_batch


def test_twin_admission_limit_per_policy_is_the_hand_arithmetic():
    comp = LLMServer(id="llm", **SMALL)
    cap = ServingSpec.from_component(comp).kv_capacity_tokens
    assert cap == int(((80 * 0.35 - 2) * 1e9 - 8.03e9 * 2) // 131072)  # 75,766 tokens
    wl = wl_of(FixedCount(value=1000), FixedCount(value=500), max_output_tokens=1000)
    # reserve_max: every sequence holds 1000 + 1000 whatever it generates
    rm = llm_estimate(comp.model_copy(update={"kv_policy": "reserve_max"}), wl, 1)
    assert rm.max_concurrent_seqs == cap // 2000 == 37
    # paged: prompt + half the output on average + half a 16-token block = 1258
    pg = llm_estimate(comp, wl, 1)
    assert pg.max_concurrent_seqs == cap // 1258 == 60
    assert any("reserve_max" in line for line in rm.explanation)
    assert any("paged KV (16-token blocks)" in line for line in pg.explanation)
    # length-biased: a long-tailed output mix holds more per sequence than its mean suggests
    hold, _ = hold_tokens(KvConfig(), ServingSpec.from_component(comp),
                          wl_of(FixedCount(value=1000), LogNormalCount(mean=500, p95=1500)))
    assert hold > 1258


@pytest.mark.parametrize("policy", ["reserve_max", "paged"])
def test_twin_capacity_matches_a_saturated_replica(policy):
    comp = LLMServer(id="llm", kv_policy=policy, **SMALL)
    # reserve_max needs a cap (else it reserves the context); paged runs uncapped answers
    cap = {"max_output_tokens": 4000} if policy == "reserve_max" else {}
    wl = wl_of(FixedCount(value=1000), LogNormalCount(mean=500, p95=1500), **cap)
    rps, tok_s = llm_capacity(comp, wl)
    thr, batch, st = replica_saturated(comp, wl, 1.3 * rps)
    if policy == "reserve_max":
        assert st.preemptions == 0
        assert thr == pytest.approx(tok_s, rel=0.05)
    else:
        # The twin leaves out the recompute of preempted sequences, so it is optimistic at
        # memory-bound saturation (measured: +6 % here; +15 % with exactly fixed lengths).
        assert st.preemptions > 0 and st.recomputed_tokens > 0
        assert tok_s * 0.85 < thr <= tok_s * 1.02
    # paged packs more sequences than reserve_max in the same memory
    assert batch == pytest.approx(llm_estimate(comp, wl, 1).max_concurrent_seqs, rel=0.1)


def test_paged_serves_more_than_reserve_max_in_the_same_memory():
    wl = wl_of(FixedCount(value=1000), LogNormalCount(mean=500, p95=1500), max_output_tokens=1000)
    out = {}
    for policy in ("reserve_max", "paged"):
        comp = LLMServer(id="llm", kv_policy=policy, **SMALL)
        out[policy] = replica_saturated(comp, wl, 8.0, n=2000)[0]
    assert out["paged"] > 1.05 * out["reserve_max"]


def test_reserve_max_without_a_cap_reserves_the_context():
    # What TensorRT-LLM does without max_tokens: the whole context left after the prompt.
    comp = LLMServer(id="llm", model="llama-3.1-8b", kv_policy="reserve_max")
    e = llm_estimate(comp, wl_of(FixedCount(value=1000), FixedCount(value=200)), 1)
    cap = ServingSpec.from_component(comp).kv_capacity_tokens
    assert e.max_concurrent_seqs == cap // 131072 == 3


# --- prefix cache in KV memory -----------------------------------------------------------------


def test_prefix_cache_lru_bookkeeping():
    pc = PrefixCache()
    pc.insert("a", 64)
    pc.insert("b", 32)
    assert pc.lookup("a") == 0  # not computed yet
    pc.ready("a")
    pc.ready("b")
    pc.release("a")
    pc.release("b")
    assert pc.tokens == 96 and pc.evictable == 96
    pc.acquire("a")
    pc.release("a")  # "a" is now the most recently used
    assert pc.evict_one() == 32 and not pc.has("b")
    assert pc.evict_one() == 64 and pc.evict_one() == 0 and pc.tokens == 0
    pc.insert("c", 16)
    pc.release("c")  # its only user left before computing it: dropped
    assert not pc.has("c") and pc.tokens == 0


def test_one_shared_prefix_hit_ratio_is_the_hand_arithmetic():
    # One replica, one 2000-token system prompt, 2200-token prompts arriving one by one:
    # the first request computes the prefix, every later one reuses its 2000 tokens (125 blocks).
    comp = LLMServer(id="llm", model="llama-3.1-8b")
    wl = wl_of(FixedCount(value=2200), FixedCount(value=20), shared_prefix_tokens=2000)
    env = simpy.Environment()
    st = LLMServerStation(comp, SimContext(env=env, rng=random.Random(1), design=None, workload=wl, seed=1))
    fin = []
    for i in range(10):
        req = Request(i, 0, i * 1.0, 2200, 20)
        env.timeout(i * 1.0).callbacks.append(lambda _e, r=req: st.arrive(r, lambda q, ok: fin.append(q)))
    env.run()
    llm = st.stats(env.now).llm
    assert llm.prefix_hit_ratio == pytest.approx(9 * 2000 / (10 * 2200))
    spec = st.spec
    assert llm.ttft_saved_ms_mean == pytest.approx(1e3 * 9 * spec.prefill_s(2000) / 10)
    ttft = [q.first_token_at - q.t0 for q in sorted(fin, key=lambda q: q.id)]
    # the first pays the whole prefill, the others only 200 tokens after 2000 cached
    iter_full = spec.iteration_s(0, 0, 2200, spec.prefill_flops_s(2200))
    iter_hit = spec.iteration_s(0, 0, 200, spec.prefill_flops_s(200, 2000))
    assert ttft[0] == pytest.approx(iter_full) and ttft[5] == pytest.approx(iter_hit)
    # the cached blocks stay in the pool after everything finished (evictable, LRU)
    eng = st.engines[0]
    assert eng.pcache.tokens == 2000 and eng.kv_reserved == 2000 and eng.pcache.evictable == 2000


def test_shared_system_prompt_cuts_ttft_like_the_published_reuse_figures():
    # NVIDIA, "5x Faster Time to First Token with NVIDIA TensorRT-LLM KV Cache Early Reuse"
    # (developer.nvidia.com blog, 2024-11): reusing a system prompt's KV "can significantly
    # accelerate inference for use cases requiring system prompts by up to 5x"; Anthropic,
    # "Prompt caching with Claude" (2024-08): latency reduced "by up to 85% for long prompts".
    # Ours: Llama-3.1-8B on one H100, 4000-token system prompt + 200-token question, 4 req/s.
    comp = LLMServer(id="llm", model="llama-3.1-8b")
    base = dict(prompt=FixedCount(value=4200), output=FixedCount(value=100), rps=4)
    _, cold, _ = station_run(comp, wl_of(**base), 4, n=600)
    llm, warm, _ = station_run(comp, wl_of(**base, shared_prefix_tokens=4000), 4, n=600)
    assert llm.prefix_hit_ratio > 0.9
    assert warm < cold / 5  # at least the published 5×; the prefill was most of TTFT
    # the twin sees the same effect from the same fields
    t_cold = llm_estimate(comp, wl_of(**base), 4).ttft_ms_estimate
    t_warm = llm_estimate(comp, wl_of(**base, shared_prefix_tokens=4000), 4).ttft_ms_estimate
    assert t_warm < t_cold / 5
    assert warm * 1e3 == pytest.approx(t_warm, rel=0.25)


def test_prefix_affinity_keeps_prefixes_cached_where_round_robin_thrashes():
    # 4 replicas, 64 tenants each with a 4000-token prompt prefix; a replica's KV holds about
    # 40 % of them beside its batch. Round robin sends every tenant everywhere (each replica
    # needs all 64); prefix-affinity gives each replica ~16.
    wl = wl_of(FixedCount(value=4200), FixedCount(value=100), rps=40, shared_prefix_tokens=4000, distinct_prefixes=64)
    hits, ttft, twin = {}, {}, {}
    for routing in ("round_robin", "prefix_affinity"):
        comp = LLMServer(id="llm", model="llama-3.1-8b", replicas=4, gpu_memory_utilization=0.5, routing=routing)
        llm, mean_ttft, fin = station_run(comp, wl, 40, n=2500)
        assert len(fin) == 2500
        hits[routing], ttft[routing] = llm.prefix_hit_ratio, mean_ttft
        assert len(llm.prefix_hit_ratio_per_replica) == 4
        twin[routing] = next(x for x in llm_estimate(comp, wl, 40).explanation if x.startswith("prefix cache"))
    assert hits["prefix_affinity"] > 0.85 and hits["round_robin"] < 0.6
    assert ttft["prefix_affinity"] < ttft["round_robin"] / 10
    assert "keeps 100%" in twin["prefix_affinity"] and "keeps 40%" in twin["round_robin"]


def test_routing_round_robin_cycles_and_flat_override_needs_no_memory():
    comp = LLMServer(id="llm", model="llama-3.1-8b", replicas=3, routing="round_robin")
    wl = wl_of(FixedCount(value=500), FixedCount(value=50), rps=3)
    env = simpy.Environment()
    st = LLMServerStation(comp, SimContext(env=env, rng=random.Random(1), design=None, workload=wl, seed=1))
    for i in range(9):
        st.arrive(Request(i, 0, 0.0, 500, 50), lambda q, ok: None)
    assert [e.in_system for e in st.engines] == [3, 3, 3]
    env.run()
    # the flat override skips prefill without holding cache blocks
    comp = LLMServer(id="llm", model="llama-3.1-8b", prefix_cache_hit_ratio=0.5)
    env = simpy.Environment()
    st = LLMServerStation(comp, SimContext(env=env, rng=random.Random(1), design=None, workload=wl, seed=1))
    st.arrive(Request(0, 0, 0.0, 500, 50), lambda q, ok: None)
    env.run()
    assert st.engines[0].pcache.tokens == 0 and st.stats(env.now).llm.prefix_hit_ratio == pytest.approx(250 / 500)


# --- lint ---------------------------------------------------------------------------------------


def _serving(**llm_update):
    from designs.io import load_design

    d = load_design("designs/library/llm_serving.yaml")
    comps = [type(c).model_validate({**c.model_dump(), **llm_update}) if c.kind == "llm_server" else c
             for c in d.components]
    return d.model_copy(update={"components": comps})


def test_lint_flags_prefix_affinity_without_a_shared_prefix_and_uncapped_reserve_max():
    from review.lint import lint

    rules = {f.rule: f for f in lint(_serving(routing="prefix_affinity", kv_policy="reserve_max"))}
    assert "nothing to keep cached" in rules["prefix_affinity_no_prefix"].message
    f = rules["reserve_max_uncapped"]
    assert "only 3 sequence(s) fit per replica" in f.message and "max_output_tokens" in f.fix
    assert not {"prefix_affinity_no_prefix", "reserve_max_uncapped"} & {f.rule for f in lint(_serving())}


def test_lint_flags_heavy_preemption_from_a_run():
    from review.lint import RULES, _heavy_preemption
    from sim.results import ComponentStats, LLMReplicaStats

    class Run:  # the fields the rule reads from a RunResult
        components = {"llm": ComponentStats(
            kind="llm_server", utilization=0.9, mean_queue_len=0, wait_ms_p95=0, throughput_rps=100, dropped=0,
            llm=LLMReplicaStats(mean_batch_size=100, max_batch_size=256, kv_cache_occupancy=0.98,
                                output_tokens_per_s=1e4, preemptions_per_s=12.5, recomputed_tokens_per_s=15_000))}

    d = _serving()
    f = next(iter(_heavy_preemption(d, None, Run(), None, d.reachable())))
    assert f.rule in RULES
    assert "preempts 12.5 sequences/s (12% of its requests) and recomputes 15,000 tokens/s" in f.message
    assert "more KV" in f.fix


# --- speculative decoding -----------------------------------------------------------------------


def _wave(comp, n, prompt=500, output=300):
    """n identical requests at t = 0 on one replica: (mean TPOT ms, engine)."""
    from sim.llm.speculative import Speculation

    spec = ServingSpec.from_component(comp)
    env = simpy.Environment()
    done = []
    eng = ReplicaEngine(env, spec, lambda r, ok, why: done.append(r), kv=KvConfig.from_component(comp),
                        speculation=Speculation.from_component(comp, spec))
    for _ in range(n):
        eng.submit(Req(prompt, output))
    env.run()
    assert len(done) == n
    return 1e3 * sum((r.last_token_at - r.first_token_at) / (output - 1) for r in done) / n, eng


def test_tokens_per_step_formula():
    from sim.llm.kv import tokens_per_step

    # (1 − α^(k+1)) / (1 − α): k = 4, α = 0.8 → (1 − 0.32768) / 0.2; k = 1, α = 0.85 → 1.85
    assert tokens_per_step(0.8, 4) == pytest.approx(3.3616)
    assert tokens_per_step(0.85, 1) == pytest.approx(1.85)
    assert tokens_per_step(0.5, 3) == pytest.approx(1 + 0.5 + 0.25 + 0.125)


def test_speculative_gains_at_batch_1_and_loses_at_large_batch_like_published():
    # EAGLE (Li et al., ICML 2024, abstract): "a latency speedup ratio of 2.7x-3.5x" on
    # LLaMA2-Chat 70B at batch 1. SpecDecode-Bench ("Speculative Decoding: Performance or
    # Illusion?", arXiv 2601.11580, vLLM on H100): "speedups shrink as batch size grows (the
    # system becomes compute-bound)". DeepSeek-V3 report §5.4.3: MTP with 85–90 % acceptance
    # gives "1.8 times TPS".
    plain = LLMServer(id="llm", model="llama-3.1-70b", gpus_per_replica=4)
    eagle = plain.model_copy(update={"speculative": {"method": "eagle"}})
    eagle = LLMServer.model_validate(eagle.model_dump(mode="json", warnings=False))
    mtp = LLMServer.model_validate({**plain.model_dump(mode="json"), "speculative": {"method": "mtp"}})
    t1, _ = _wave(plain, 1)
    e1, _ = _wave(eagle, 1)
    assert 2.5 < t1 / e1 < 3.5  # ours 2.73×
    m1, _ = _wave(mtp, 1)
    assert t1 / m1 == pytest.approx(1.8, rel=0.1)  # ours 1.80×
    t256, _ = _wave(plain, 256)
    e256, eng = _wave(eagle, 256)
    assert t256 / e256 < 1  # compute-bound verify: ours 0.61×
    assert eng.kv_reserved == 0  # paged growth at E tokens a step, all released
    est = llm_estimate(eagle, wl_of(FixedCount(value=500), FixedCount(value=300)), 0.1)
    lines = [x for x in est.explanation if "speculative" in x]
    assert "= 3.05 tokens per step" in lines[0]
    assert "stops paying at batch" in lines[1]
    assert est.tpot_ms_estimate == pytest.approx(e1, rel=0.1)  # the twin's low-load TPOT


def test_speculative_draft_model_takes_memory_and_survives_preemption():
    from sim.llm.speculative import Speculation

    comp = LLMServer.model_validate({"id": "llm", "model": "llama-3.1-70b", "gpus_per_replica": 2, "precision": "fp8",
                                     "speculative": {"method": "draft_model", "draft_model": "llama-3.1-8b"}})
    spec = ServingSpec.from_component(comp)
    sp = Speculation.from_component(comp, spec)
    # the 8B draft's FP8 weights and its 128 KiB/token of KV come out of the target's KV room
    assert sp.kv_capacity_tokens(spec) == int((spec.kv_capacity_bytes - 8.03e9) // (spec.kv_bytes_per_token + 131072))
    _, eng = _wave(comp, 120, prompt=2000, output=600)
    assert eng.preemptions > 0 and eng.kv_reserved == 0 and eng.kv_ctx == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("bad, says", [
    ({"method": "eagle", "draft_tokens": 0}, "draft_tokens 0 drafts nothing: use 1–16"),
    ({"method": "mtp", "acceptance_rate": 1.0}, "acceptance_rate 1 is outside (0, 1)"),
    ({"method": "eagle", "acceptance_rate": 0}, "acceptance_rate 0 is outside (0, 1)"),
    ({"method": "draft_model"}, "method draft_model needs draft_model"),
    ({"method": "draft_model", "draft_model": "llama-3.1-405b"}, "is not smaller than the model llama-3.1-70b"),
])
def test_bad_speculative_blocks_are_located_errors_that_say_what_works(bad, says):
    from designs.io import DesignFileError, parse_design

    text = (_serving_yaml().replace("    max_batch: 256\n", "    max_batch: 256\n    speculative: " + _flow(bad) + "\n")
            .replace("model: llama-3.1-8b", "model: llama-3.1-70b\n    gpus_per_replica: 4", 1)
            .replace("    gpus_per_replica: 1\n", ""))
    with pytest.raises(DesignFileError) as ei:
        parse_design(text, "serve.yaml")
    msg = str(ei.value)
    assert says in msg and "components[2]" in msg.replace("components.2", "components[2]")


def _serving_yaml() -> str:
    with open("designs/library/llm_serving.yaml") as f:
        return f.read()


def _flow(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"


def test_lint_flags_speculative_decoding_at_a_compute_bound_batch():
    from review.lint import lint

    # The library design runs ~90 sequences per replica at peak; EAGLE on an 8B model stops
    # paying above ~200 — but with draft_tokens 8 verification costs 9 tokens per sequence.
    quiet = {f.rule for f in lint(_serving(speculative={"method": "eagle"}))}
    assert "speculative_compute_bound" not in quiet
    f = next(f for f in lint(_serving(speculative={"method": "eagle", "draft_tokens": 8}, replicas=6))
             if f.rule == "speculative_compute_bound")
    assert "stops paying" in f.message and "turn speculative off" in f.fix


# --- prefill/decode disaggregation --------------------------------------------------------------


def test_disaggregated_ttft_is_queue_plus_prefill_plus_transfer():
    # One prefill and one decode replica, one sequence at a time; two 2000-token prompts at t = 0.
    # The first: prefill τ + transfer; the second waits for the first's prefill (queue τ) first.
    # Transfer: 2000 tokens × 131,072 B / 50 GB/s (one 400 Gb/s InfiniBand port) = 5.243 ms.
    from sim.llm.disagg import kv_transfer_s, pool_components

    comp = LLMServer(id="llm", model="llama-3.1-8b", max_batch=1,
                     prefill_pool={"replicas": 1}, decode_pool={"replicas": 1})
    assert kv_transfer_s(comp, 2000) == pytest.approx(2000 * 131072 / 50e9) == pytest.approx(5.24288e-3)
    wl = wl_of(FixedCount(value=2000), FixedCount(value=10))
    env = simpy.Environment()
    st = LLMServerStation(comp, SimContext(env=env, rng=random.Random(1), design=None, workload=wl, seed=1))
    out = []
    for i in range(2):
        st.arrive(Request(i, 0, 0.0, 2000, 10), lambda q, ok: out.append((q, ok)))
    env.run()
    pspec = ServingSpec.from_component(pool_components(comp)[0])
    tau = pspec.iteration_s(0, 0, 2000, pspec.prefill_flops_s(2000))
    xfer = 2000 * 131072 / 50e9
    first, second = sorted((q for q, ok in out if ok), key=lambda q: q.id)
    assert first.first_token_at == pytest.approx(tau + xfer)
    assert second.first_token_at == pytest.approx(2 * tau + xfer)
    assert all(q.answer_output_tokens == 10 and q.last_token_at > q.first_token_at for q in (first, second))
    llm = st.stats(env.now).llm
    assert llm.kv_transfer_ms_mean == pytest.approx(xfer * 1e3) and llm.prefill_busy_fraction > 0
    assert all(e.kv_reserved == 0 for e in st.engines + st.d_engines)


def test_disaggregation_trades_ttft_for_tpot_at_a_fixed_gpu_count():
    # DistServe (Zhong et al., OSDI 2024, §2): batching prefills with decodes stretches the decode
    # steps ("prefill-decoding interference"); disaggregation removes it, and the split of GPUs
    # between the pools sets the TTFT/TPOT trade. Ours: 8 × H100, Llama-3.1-8B, 3000-token
    # prompts, 30 req/s: aggregated 8 replicas vs 5 prefill + 3 decode vs 4 + 4.
    wl = wl_of(LogNormalCount(mean=3000, p95=6000), LogNormalCount(mean=200, p95=500), rps=30)

    def run(comp):
        env = simpy.Environment()
        st = LLMServerStation(comp, SimContext(env=env, rng=random.Random(1), design=None, workload=wl, seed=1))
        rng = random.Random(2)
        fin, t = [], 0.0
        for i in range(700):
            t += rng.expovariate(30)
            req = Request(i, 0, t, wl.classes[0].prompt_tokens.sample_int(rng), wl.classes[0].output_tokens.sample_int(rng))
            env.timeout(t).callbacks.append(lambda _e, r=req: st.arrive(r, lambda q, ok: fin.append(q)))
        env.run()
        ttft = sum(q.first_token_at - q.t0 for q in fin) / len(fin)
        tpot = sorted((q.last_token_at - q.first_token_at) / (q.output_tokens - 1) for q in fin if q.output_tokens > 1)
        return ttft, tpot[int(0.95 * len(tpot))]

    agg = run(LLMServer(id="llm", model="llama-3.1-8b", replicas=8))
    p5d3 = run(LLMServer(id="llm", model="llama-3.1-8b", prefill_pool={"replicas": 5}, decode_pool={"replicas": 3}))
    p4d4 = run(LLMServer(id="llm", model="llama-3.1-8b", prefill_pool={"replicas": 4}, decode_pool={"replicas": 4}))
    assert p5d3[1] < 0.75 * agg[1] and p4d4[1] < p5d3[1]  # TPOT p95: no prefills in the decode steps
    assert p5d3[0] < 1.3 * agg[0] < p4d4[0] * 1.3  # TTFT: fine with 5 prefill GPUs, worse with 4
    assert p4d4[0] > p5d3[0]


def test_twin_sizes_both_pools_and_costs_each_pool():
    from sim.cost import COST_RULES
    from sim.llm.twin import llm_capacity as cap_of

    wl = wl_of(FixedCount(value=3000), FixedCount(value=200), rps=40)
    comp = LLMServer(id="llm", model="llama-3.1-8b", prefill_pool={"replicas": 3},
                     decode_pool={"replicas": 5, "gpu": "H200"})
    e = llm_estimate(comp, wl, 40)
    p, d = e.pools["prefill"], e.pools["decode"]
    import math
    assert p["replicas_needed"] == math.ceil(40 / (0.8 * p["max_requests_per_s_per_replica"]))
    assert d["replicas_needed"] == math.ceil(40 / (0.8 * d["max_requests_per_s_per_replica"]))
    assert e.gpus_needed == p["gpus_needed"] + d["gpus_needed"]
    assert e.kv_transfer_ms == pytest.approx(3000 * 131072 / 50e9 * 1e3)
    assert any(x.startswith("KV transfer:") for x in e.explanation)
    rps, _ = cap_of(comp, wl)
    assert rps == pytest.approx(min(3 * p["max_requests_per_s_per_replica"], 5 * d["max_requests_per_s_per_replica"]))
    line = COST_RULES["llm_server"](comp, None)
    assert line.usd_per_day == pytest.approx((3 * 3.99 + 5 * 3.99) * 24) and "H200" in line.rule


@pytest.mark.parametrize("bad, says", [
    ({"prefill_pool": {"replicas": 2}}, "prefill_pool and decode_pool go together"),
    ({"prefill_pool": {"gpu": "H100"}, "decode_pool": {"gpu": "A100"}, "kv_link": "nvlink"},
     "share no NVLink (an NVLink domain is one GPU type in one node or rack): use kv_link: infiniband"),
    ({"prefill_pool": {"gpu": "L4"}, "decode_pool": {"gpu": "L4"}, "kv_link": "nvlink"},
     "L4-24GB has no NVLink between replicas: use kv_link: infiniband"),
])
def test_pools_without_a_link_are_refused_with_what_works(bad, says):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as ei:
        LLMServer(id="llm", model="llama-3.1-8b", **bad)
    assert says in str(ei.value)


def test_sdw_compare_runs_aggregated_against_disaggregated():
    from sim import compare

    agg = _serving(replicas=17)
    pd = _serving(prefill_pool={"replicas": 6}, decode_pool={"replicas": 11})
    a, b = compare([agg, pd], seed=1, max_requests=8_000, max_seconds=20)
    cost = {line.id: line.usd_per_day for line in b.cost_breakdown}
    assert cost["llm"] == pytest.approx(17 * 3.99 * 24)  # the same 17 H100s, split 6 + 11
    sa, sb = a.components["llm"].llm, b.components["llm"].llm
    assert sb.kv_transfer_ms_mean > 0 and sa.kv_transfer_ms_mean is None
    assert b.tpot_ms.p95 < a.tpot_ms.p95  # decode steps without prefills


# --- multi-LoRA ---------------------------------------------------------------------------------


def test_adapter_cache_and_zipf_arithmetic():
    from sim.llm.lora import AdapterCache, distinct_in_batch, miss_probability, zipf_cdf

    c = AdapterCache(2)
    assert [c.admit(0), c.admit(1), c.admit(0)] == [1, 1, 0] and c.swaps == 2
    assert not c.can_admit(2)  # both slots held by running sequences
    c.release(1)
    assert c.admit(2) == 1 and 1 not in c.refs  # the unused one is evicted
    # Zipf s = 1 over 4 adapters: weights 1, 1/2, 1/3, 1/4 over H_4 = 25/12
    assert zipf_cdf(4, 1.0)[0] == pytest.approx(12 / 25)
    comp = LLMServer(id="llm", model="llama-3.1-8b", adapters=4, max_resident_adapters=2)
    assert miss_probability(comp) == pytest.approx(1 - (1 + 1 / 2) * 12 / 25)
    one = LLMServer(id="llm", model="llama-3.1-8b", adapters=4, adapter_zipf_s=0.0)
    assert distinct_in_batch(one, 2) == pytest.approx(4 * (1 - 0.75 ** 2))


def test_adapter_swap_and_slot_rules_in_the_replica():
    # One resident slot. Requests on adapters 0, 1, 0 at t = 0: the first swaps adapter 0 in
    # (its iteration is longer by the copy), the second must wait for the slot and is passed
    # over, the third shares adapter 0 and joins the first batch.
    from sim.llm.lora import AdapterCache, lora_overrides, swap_s

    comp = LLMServer(id="llm", model="llama-3.1-8b", adapters=2, max_resident_adapters=1)
    spec = ServingSpec.from_component(comp, **lora_overrides(comp))
    env = simpy.Environment()
    eng = ReplicaEngine(env, spec, lambda r, ok, why: None, kv=KvConfig(), lora=AdapterCache(1), swap_s=swap_s(comp))
    reqs = [Req(500, 20) for _ in range(3)]
    for r, a in zip(reqs, (0, 1, 0)):
        eng.submit(r, adapter=a)
    env.run()
    # 84 MB of rank-16 BF16 adapter at 25 GB/s, and Punica's +2 ms per step
    assert swap_s(comp) == pytest.approx(83.88608e6 / 25e9)
    assert spec.iteration_overhead_s == pytest.approx(0.5e-3 + 2e-3)
    first = spec.iteration_s(0, 0, 1000, 2 * spec.prefill_flops_s(500)) + swap_s(comp)
    assert reqs[0].first_token_at == pytest.approx(first) == pytest.approx(reqs[2].first_token_at)
    assert reqs[1].first_token_at >= reqs[0].last_token_at  # waited for adapter 0's requests
    assert eng.lora.swaps == 2 and eng.kv_reserved == 0


def test_twin_matches_the_simulation_with_many_adapters():
    wl = wl_of(LogNormalCount(mean=800, p95=2000), LogNormalCount(mean=200, p95=500), rps=16)
    comp = LLMServer(id="llm", model="llama-3.1-8b", adapters=200, max_resident_adapters=64)
    e = llm_estimate(comp, wl, 16)
    llm, ttft, fin = station_run(comp, wl, 16, n=1200)
    tpot = sum((q.last_token_at - q.first_token_at) / (q.output_tokens - 1) for q in fin if q.output_tokens > 1) / len(fin)
    assert ttft * 1e3 == pytest.approx(e.ttft_ms_estimate, rel=0.15)
    assert tpot * 1e3 == pytest.approx(e.tpot_ms_estimate, rel=0.1)
    assert any(x.startswith("multi-LoRA: 200 adapters") for x in e.explanation)
    plain = llm_capacity(comp.model_copy(update={"adapters": 0}), wl)[0]
    assert llm_capacity(comp, wl)[0] < 0.9 * plain  # slots, memory and the 2 ms per step cost


def test_more_resident_adapters_than_memory_holds_is_a_located_error():
    from designs.io import DesignFileError, parse_design

    text = _serving_yaml().replace("    max_batch: 256\n",
                                   "    max_batch: 256\n    adapters: 5000\n    max_resident_adapters: 2000\n"
                                   "    adapter_rank: 64\n")
    with pytest.raises(DesignFileError) as ei:
        parse_design(text, "serve.yaml")
    msg = str(ei.value)
    assert "serve.yaml:" in msg and "components[2]" in msg
    assert "2000 resident LoRA adapters of rank 64 (336 MB each) need 671.1 GB" in msg
    assert "use max_resident_adapters ≤ 159" in msg


def test_new_replicas_keep_the_mechanics_and_affinity_follows_the_live_replicas():
    # sim.ops (autoscaling, repairs) builds replicas with `_new_engine` and routes among the live
    # ones by narrowing `engines`: both must keep the component's mechanics.
    comp = LLMServer.model_validate({"id": "llm", "model": "llama-3.1-8b", "replicas": 4, "kv_policy": "reserve_max",
                                     "routing": "prefix_affinity", "speculative": {"method": "eagle"}, "adapters": 4})
    wl = wl_of(FixedCount(value=500), FixedCount(value=20), shared_prefix_tokens=256, distinct_prefixes=8)
    env = simpy.Environment()
    st = LLMServerStation(comp, SimContext(env=env, rng=random.Random(1), design=None, workload=wl, seed=1))
    e = st._new_engine()
    assert e.kv.policy == "reserve_max" and e.specu is not None and e.lora is not None
    st.engines = st.engines[:2]  # two replicas down
    for i in range(20):
        st.arrive(Request(i, 0, 0.0, 500, 20), lambda q, ok: None)
    env.run()
    assert sum(x.completed for x in st.engines) == 20
