"""The continuous-batching replica: limits, refusals, determinism, queueing in TTFT."""

import random

import pytest
import simpy

from components.catalogue import LLMServer
from components.distributions import FixedCount, LogNormalCount
from designs.model import RequestClass, Workload
from sim.llm.batching import ReplicaEngine
from sim.llm.kv import KvConfig
from sim.llm.roofline import ServingSpec
from sim.des.request import Request, SimContext


class Req:
    def __init__(self, prompt, output, t0=0.0):
        self.prompt_tokens, self.output_tokens, self.t0 = prompt, output, t0
        self.first_token_at = self.last_token_at = None


def run(spec, arrivals, *, record=True, kv=None, max_output=None, prefix=None):
    """arrivals: list of (time_s, prompt, output). Returns engine, finished, refused."""
    env = simpy.Environment()
    finished, refused = [], []

    def on_done(req, ok, reason):
        (finished if ok else refused).append((req, reason))

    eng = ReplicaEngine(env, spec, on_done, record_iterations=record, kv=kv)
    for t, p, o in arrivals:
        r = Req(p, o, t)
        env.timeout(t).callbacks.append(
            lambda _e, r=r: eng.submit(r, max_output=max_output, prefix=prefix))
    env.run()
    return eng, [r for r, _ in finished], refused


def poisson(seed, n, rate, prompt_mean=1000, out_mean=400):
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append((t, max(1, int(rng.expovariate(1 / prompt_mean))), max(1, int(rng.expovariate(1 / out_mean)))))
    return out


def test_batch_never_exceeds_max_batch():
    spec = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b", max_batch=6))
    eng, done, _ = run(spec, [(0.0, 200, 50)] * 40 + poisson(1, 100, 200))
    batches = [b for _, _, b, _ in eng.record]
    assert max(batches) == 6 and eng.stats(0).max_batch_size == 6
    assert len(done) == 140


RESERVE = KvConfig(policy="reserve_max")


def test_reserve_max_admits_what_prompt_plus_max_output_allows():
    # (80 GB × 0.25 − 16.06 − 2) / 131072 B = 14,801 tokens; each request reserves its prompt +
    # max_output_tokens at admission (not its actual output): 1500 + 500 → 7, 1500 + 800 → 6
    spec = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b", gpu_memory_utilization=0.25))
    assert spec.kv_capacity_tokens == 14801
    for max_out, admitted in ((500, 14801 // 2000), (800, 14801 // 2300)):
        eng, done, _ = run(spec, [(0.0, 1500, 500)] * 30, kv=RESERVE, max_output=max_out)
        assert max(kv for *_, kv in eng.record) <= 14801
        assert max(b for _, _, b, _ in eng.record) == admitted
        assert len(done) == 30 and eng.preemptions == 0
        assert eng.kv_reserved == 0 and eng.kv_ctx == 0  # everything released
    assert (7, 6) == (14801 // 2000, 14801 // 2300)


def test_paged_admits_by_prompt_blocks_and_preempts_when_a_step_finds_no_block():
    # 14,801 tokens = 925 blocks of 16 (14,800 tokens); watermark 1 % = 9 blocks. A 1500-token
    # prompt takes ⌈1501/16⌉ = 94 blocks (its first output token included): the first is
    # admitted on an empty pool, the next ones need 94 + 9 free → 9 sequences (9 × 94 = 846
    # blocks, a 10th would need 940 + 9 > 925). 79 blocks are left. Each sequence fills its
    # last block after 1504 − 1501 = 3 more tokens and then every 16: the 9 sequences take 9
    # blocks at steps 4, 20, …, 116 (8 rounds, 72 blocks); at step 132 they need 9 more with 7
    # left, so the most recently admitted one is preempted, having produced 132 tokens: its
    # 1500 + 132 tokens are prefilled again when it is readmitted.
    spec = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b", gpu_memory_utilization=0.25))
    paged = KvConfig(policy="paged", block_tokens=16)
    eng, done, _ = run(spec, [(0.0, 1500, 132)] * 9, kv=paged)
    assert eng.preemptions == 0 and len(done) == 9  # the last token is produced at step 132
    eng, done, _ = run(spec, [(0.0, 1500, 133)] * 30, kv=paged)
    assert max(b for _, _, b, _ in eng.record) == 9
    assert len(done) == 30
    eng1, done1, _ = run(spec, [(0.0, 1500, 133)] * 9, kv=paged)
    assert eng1.preemptions == 1 and eng1.recomputed == 1500 + 132
    assert len(done1) == 9 and eng1.kv_reserved == 0 and eng1.kv_ctx == 0
    victim = max(done1, key=lambda r: r.last_token_at)
    assert victim.first_token_at == min(r.first_token_at for r in done1)  # TTFT kept; only its end is late
    assert max(kv for *_, kv in eng.record) <= 14800
    # reserve_max never preempts; with prompt + the same 133-token cap it fits 14801 // 1633 = 9 too
    eng2, done2, _ = run(spec, [(0.0, 1500, 133)] * 9, kv=RESERVE, max_output=133)
    assert eng2.preemptions == 0 and len(done2) == 9


def test_prompt_that_cannot_fit_is_refused_with_a_reason():
    spec = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b", gpu_memory_utilization=0.25))
    eng, done, refused = run(spec, [(0.0, 20_000, 100), (0.0, 500, 100), (0.0, 131_000, 500)])
    assert len(done) == 1
    reasons = [r for _, r in refused]
    # paged: whole 16-token blocks, 925 × 16 = 14,800 tokens
    assert "20,000 + output 100 tokens need 2.6 GB of KV cache; a replica holds 14,800 tokens" in reasons[0]
    assert "131,072-token context" in reasons[1]
    assert eng.stats(1).rejected == 2
    # reserve_max refuses what its reservation cannot hold, and says what would work
    _, done, refused = run(spec, [(0.0, 500, 100)], kv=RESERVE, max_output=16_000)
    assert not done and ("prompt 500 + max output 16,000 tokens reserve 2.2 GB of KV cache; a replica holds "
                         "14,801 tokens") in refused[0][1] and "lower max_output_tokens" in refused[0][1]


def test_same_seed_same_result():
    spec = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b", chunked_prefill_tokens=2048))
    a = run(spec, poisson(7, 300, 20))[1]
    b = run(spec, poisson(7, 300, 20))[1]
    c = run(spec, poisson(8, 300, 20))[1]
    key = lambda done: [(r.t0, r.first_token_at, r.last_token_at) for r in done]  # noqa: E731
    assert key(a) == key(b)
    assert key(a) != key(c)


def test_ttft_includes_queueing():
    spec = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b", max_batch=1))
    _, done, _ = run(spec, [(0.0, 1000, 100)] * 3)
    done.sort(key=lambda r: r.first_token_at)
    e2e_first = done[0].last_token_at
    ttft_alone = done[0].first_token_at
    # One at a time: the third waits for two whole requests before its own prefill
    assert done[2].first_token_at == pytest.approx(2 * e2e_first + ttft_alone, rel=1e-9)
    assert done[2].first_token_at - done[2].t0 > 2 * e2e_first


def test_chunked_prefill_and_prefix_cache_shorten_lone_ttft():
    base = LLMServer(id="llm", model="llama-3.1-8b")
    one = [(0.0, 8000, 10)]
    plain = run(ServingSpec.from_component(base), one)[1][0].first_token_at
    cached = run(ServingSpec.from_component(base.model_copy(update={"prefix_cache_hit_ratio": 0.5})), one)[1][0].first_token_at
    chunked = run(ServingSpec.from_component(base.model_copy(update={"chunked_prefill_tokens": 2048})), one)[1][0].first_token_at
    assert cached < 0.6 * plain
    assert chunked > plain  # four iterations, each with its own overhead and weight reads


def test_station_routes_and_reports():
    from sim.llm.station import LLMServerStation

    comp = LLMServer(id="llm", model="llama-3.1-8b", replicas=2, max_batch=64)
    wl = Workload(arrival_rps=20, classes=[RequestClass(
        name="c", prompt_tokens=LogNormalCount(mean=800, p95=2000), output_tokens=FixedCount(value=200))])
    env = simpy.Environment()
    ctx = SimContext(env=env, rng=random.Random(1), design=None, workload=wl, seed=1)
    st = LLMServerStation(comp, ctx)
    rng = random.Random(3)
    finished = []
    t = 0.0
    for i in range(400):
        t += rng.expovariate(20)
        req = Request(i, 0, t, wl.classes[0].prompt_tokens.sample_int(rng), 200)
        env.timeout(t).callbacks.append(lambda _e, r=req: st.arrive(r, lambda q, ok: finished.append((q, ok))))
    env.run()
    assert len(finished) == 400 and all(ok for _, ok in finished)
    reqs = [q for q, _ in finished]
    assert all(q.t0 < q.first_token_at < q.last_token_at and q.answer_output_tokens == 200 for q in reqs)
    s = st.stats(env.now)
    assert s.throughput_rps == pytest.approx(400 / env.now)
    assert s.llm.output_tokens_per_s == pytest.approx(400 * 200 / env.now)
    assert 1 < s.llm.mean_batch_size <= s.llm.max_batch_size <= 64
    assert 0 < s.llm.kv_cache_occupancy < 1 and 0 < s.utilization <= 1
    # Token-aware routing spreads the work: both replicas produced a similar share
    shares = [e.stats(env.now).output_tokens for e in st.engines]
    assert min(shares) > 0.4 * sum(shares)


def test_station_timeout_withdraws_waiting_requests_only():
    from sim.llm.station import LLMServerStation

    # One sequence at a time; each takes ~100 decode steps of ~8 ms ≈ 0.8 s > timeout 0.5 s
    comp = LLMServer(id="llm", model="llama-3.1-8b", max_batch=1, timeout_ms=500)
    env = simpy.Environment()
    ctx = SimContext(env=env, rng=random.Random(1), design=None, workload=Workload(), seed=1)
    st = LLMServerStation(comp, ctx)
    out = []
    for i in range(3):
        st.arrive(Request(i, 0, 0.0, 100, 100), lambda q, ok: out.append((q.id, ok, env.now)))
    env.run()
    assert [(i, ok) for i, ok, _ in out] == [(1, False), (2, False), (0, True)]
    assert out[0][2] == pytest.approx(0.5) and out[2][2] > 0.5  # admitted ones run to the end
    s = st.stats(env.now)
    assert s.dropped == 2 and s.llm.rejected_prompts == 0 and s.throughput_rps > 0
