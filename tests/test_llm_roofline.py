"""Roofline maths against numbers worked by hand from the published constants.

Constants (components/data): H100 SXM 80 GB, 3.35 TB/s, 989.4 TFLOPS BF16 / 1978.9 FP8 dense;
Llama-3.1-8B 8.03 B params, 32 layers, 8 KV heads × 128; Llama-3.1-70B 70.55 B, 80 layers.
The efficiency factors are pinned here (not read from the data file) so the arithmetic below
stays valid if the calibrated defaults move.
"""

import math

import pytest

from components.catalogue import LLMServer
from components.distributions import FixedCount
from designs.model import RequestClass, Workload
from sim.llm.roofline import ServingConfigError, ServingSpec
from sim.llm.twin import llm_estimate, llm_service_moments

FACTORS = dict(decode_bw_efficiency=0.65, prefill_mfu=0.45, decode_mfu=0.40,
               iteration_overhead_s=0.0005, allreduce_latency_s=8e-6, allreduce_bus_efficiency=0.8,
               prefill_mfu_half_tokens=0.0, host_overhead_s_per_seq=0.0, moe_expert_half_tokens=0.0, moe_expert_base_penalty=0.0,
               moe_routing_flops_per_elem=0.0,
               # the single-max roofline these hand-worked figures use (the session-2 terms are
               # worked in tests/test_llm_parallelism.py::test_attention_serial_share_and_decode_mfu_by_hand)
               attention_serial_share=0.0, decode_mfu_half_tokens=0.0)
# One all-reduce over NVLink 4 (450 GB/s each way × 0.8): 8 µs + 2(g − 1)/g × tokens × hidden × 2 B / 360 GB/s
NVL = 450e9 * 0.8


def allreduce(g, tokens, hidden):
    return 8e-6 + 2 * (g - 1) / g * tokens * hidden * 2 / NVL
GB = 1e9


def spec_of(**kw):
    return ServingSpec.from_component(LLMServer(id="llm", **kw), **FACTORS)


def workload(prompt, output):
    return Workload(arrival_rps=1, classes=[RequestClass(
        name="c", prompt_tokens=FixedCount(value=prompt), output_tokens=FixedCount(value=output))])


def test_llama8b_h100_bf16_memory():
    s = spec_of(model="llama-3.1-8b", gpu="H100-SXM-80GB")
    assert s.weights_bytes == pytest.approx(8.03e9 * 2)  # 16.06 GB
    assert s.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 131072
    # (80 GB × 0.9 − 16.06 GB − 2 GB reserve) / 131072 B
    assert s.kv_capacity_tokens == math.floor((80e9 * 0.9 - 16.06e9 - 2e9) / 131072) == 411529


def test_llama8b_h100_bf16_decode_step_batch1():
    s = spec_of(model="llama-3.1-8b")
    mem = (16.06e9 + 1000 * 131072) / (3.35e12 * 0.65)  # 7.44 ms: memory-bound
    comp = 2 * 8.03e9 * 1 / (989.4e12 * 0.40)  # 0.04 ms
    assert mem > comp
    assert s.decode_step_s(1, 1000) == pytest.approx(mem + 0.0005, rel=1e-9)
    assert s.decode_step_s(1, 1000) * 1e3 == pytest.approx(7.94, abs=0.01)
    assert s.decode_bound(1, 1000) == "memory"


def _chain(lam, tau):
    """Brute force: stationary law of k' ~ Poisson(lam·tau(k)) on k < 60 (power iteration)."""
    K = 60
    rows = []
    for k in range(K):
        mu = lam * tau(k)
        rows.append([math.exp(-mu + j * math.log(mu) - math.lgamma(j + 1)) for j in range(K)])
    pi = [1.0] + [0.0] * (K - 1)
    for _ in range(300):
        new = [0.0] * K
        for k, w in enumerate(pi):
            if w > 1e-15:
                for j, p in enumerate(rows[k]):
                    new[j] += w * p
        tot = sum(new)
        pi = [x / tot for x in new]
    return pi


def test_llama8b_h100_bf16_max_throughput():
    from sim.llm.twin import _capacity

    comp = LLMServer(id="llm", model="llama-3.1-8b")
    e = llm_estimate(comp, workload(500, 200), arrival_rps=100, overrides=FACTORS)
    # 256 sequences fit (411529 / 700 = 587 > max_batch 256); KV read: each half-way, 600 tokens
    seqs = min(256, 411529 // 700)
    assert e.max_concurrent_seqs == seqs == 256
    bw = 3.35e12 * 0.65

    def mem(b):
        return (16.06e9 + b * 600 * 131072) / bw

    def dec(b):
        return 2 * 8.03e9 * b / (989.4e12 * 0.40)

    step = max(mem(seqs), dec(seqs)) + 0.0005  # 16.8 ms vs 10.4 ms: memory-bound
    assert e.decode_step_ms == pytest.approx(step * 1e3, rel=1e-6)  # 17.12 ms
    assert e.bound == "memory"
    pf = (2 * 8.03e9 * 500 + 4 * 32 * 32 * 128 * 500 ** 2 / 2) / (989.4e12 * 0.45)  # 18.2 ms
    lam = e.max_requests_per_s_per_replica
    # Ceilings: prefill compute alone, and decode-only iterations at the full batch.
    assert lam < 1 / pf and lam < seqs / (199 * step)
    # At λ*, re-derive by brute force what the twin solved in closed form: an iteration that
    # admits k prompts lasts max(mem, dec + k·pf) + overhead, k ~ Poisson(λ·previous iteration).
    sat = _capacity(comp, workload(500, 200), FACTORS).sat
    b = sat.b

    def tau(k):
        return max(mem(b), dec(b) + k * pf) + 0.0005

    pi = _chain(lam, tau)
    T = sum(p * tau(k) for k, p in enumerate(pi))
    assert sat.tau_s == pytest.approx(T, rel=1e-6)
    assert sat.p_prefill == pytest.approx(1 - pi[0], rel=1e-6)
    # Little's law for the decode batch: each request decodes 199 tokens after its prefill.
    assert b == pytest.approx(lam * 199 * T, rel=1e-4)
    # Slots full: decoders + prompts in their prefill iteration (with the ones admitted alongside).
    m2 = sum(p * tau(k) ** 2 for k, p in enumerate(pi))
    mu = lam * m2 / T
    own = sum(math.exp(-mu + j * math.log(mu) - math.lgamma(j + 1)) * tau(1 + j) for j in range(60))
    assert b + lam * own == pytest.approx(256, rel=1e-4)
    assert e.max_output_tokens_per_s_per_replica == pytest.approx(200 * lam, rel=1e-12)
    assert 5000 < e.max_output_tokens_per_s_per_replica < 7300  # prefill takes ~60 % of GPU time
    # 100 req/s at ≤ 80 % of per-replica max
    assert e.replicas_needed == math.ceil(100 / (0.8 * lam)) == e.gpus_needed
    assert any("GPUs" in line for line in e.explanation)


def test_prefill_heavy_workload_is_compute_bound_and_overloaded():
    """579 req/s of 300-token prompts on 2 × H100: prefill alone needs 2 × 8.03e9 × 300 × 290 ≈
    1.4 PFLOP/s per replica against 989 TFLOPS × 0.45 — the twin must call it overloaded."""
    comp = LLMServer(id="llm", model="llama-3.1-8b", replicas=2)
    wl = workload(300, 40)
    e = llm_estimate(comp, wl, 579, overrides=FACTORS)
    pf = (2 * 8.03e9 * 300 + 4 * 32 * 32 * 128 * 300 ** 2 / 2) / (989.4e12 * 0.45)  # 10.9 ms
    assert e.max_requests_per_s_per_replica < 1 / pf  # ≈ 92 req/s: prefill compute alone
    mean_s, _, servers = llm_service_moments(comp, wl, overrides=FACTORS)
    assert servers == 2 * 256
    rho = 579 * mean_s / servers
    assert rho == pytest.approx(579 / (2 * e.max_requests_per_s_per_replica), rel=1e-9)
    assert rho > 579 * pf / 2 > 3  # more than the prefill share alone
    assert e.replicas_needed >= math.ceil(579 * pf / 0.8)
    assert any("saturated" in line for line in e.explanation)


def test_more_replicas_never_make_latency_worse():
    """serve-10m reference (400 in / 50 out, 347 req/s): TTFT and TPOT, mean and p95, fall as
    replicas are added (they used to rise from 2 to 4 replicas)."""
    wl = workload(400, 50)
    figs = []
    for r in (2, 3, 4, 6, 7, 8, 10, 20):
        e = llm_estimate(LLMServer(id="llm", model="llama-3.1-8b", replicas=r), wl, 347.2, overrides=FACTORS)
        figs.append((347.2 / (r * e.max_requests_per_s_per_replica), e.ttft_ms_estimate, e.ttft_ms_p95_estimate,
                     e.tpot_ms_estimate, e.tpot_ms_p95_estimate))
    assert [f[0] > 1 for f in figs] == [True, True, True, False, False, False, False, False]
    stable = figs[3:]
    for col in range(1, 5):
        vals = [f[col] for f in stable]
        assert vals == sorted(vals, reverse=True) and vals[0] > 1.5 * vals[-1], (col, vals)
    for f in figs:
        assert f[2] >= f[1] and f[4] >= f[3]  # p95 ≥ mean


def test_light_load_limits_are_the_batch1_step_and_the_lone_prefill():
    comp = LLMServer(id="llm", model="llama-3.1-8b")
    e = llm_estimate(comp, workload(500, 200), arrival_rps=0.001, overrides=FACTORS)
    s = spec_of(model="llama-3.1-8b")
    # A lone sequence decodes at batch 1 with its 600 KV tokens (half-way through its output).
    assert e.tpot_ms_estimate == pytest.approx(s.decode_step_s(1, 600) * 1e3, rel=0.01)
    # Its prompt is prefilled alone, on an idle replica.
    assert e.ttft_ms_estimate == pytest.approx(e.prefill_ms, rel=0.01)


def test_llama70b_2xh100_fp8():
    s = spec_of(model="llama-3.1-70b", gpus_per_replica=2, precision="fp8")
    assert s.weights_bytes == pytest.approx(70.55e9)
    assert s.weights_bytes_per_gpu == pytest.approx(35.275e9)
    assert s.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2 == 327680
    assert s.peak_flops_per_gpu == 1978.9e12  # FP8 weights run on the FP8 tensor cores
    assert s.kv_capacity_tokens == math.floor((2 * 80e9 * 0.9 - 70.55e9 - 2 * 2e9) / 327680) == 211944
    # Batch 1 at a 5250-token context: memory-bound, + 2 all-reduces in each of 80 layers
    mem = (70.55e9 + 5250 * 327680) / (2 * 3.35e12 * 0.65)
    comm = 160 * allreduce(2, 1, 8192)  # 160 × 8.05 µs = 1.29 ms: latency-bound at batch 1
    assert comm == pytest.approx(1.2873e-3, rel=1e-3)
    assert s.decode_step_s(1, 5250) == pytest.approx(mem + comm + 0.0005, rel=1e-9)  # 18.38 ms
    # Prefill of 5000 tokens: linear layers + causal attention on 2 × FP8 peak, + its all-reduces
    flops = 2 * 70.55e9 * 5000 + 4 * 80 * 64 * 128 * 5000 ** 2 / 2
    comm = 160 * allreduce(2, 5000, 8192)  # 160 × 235.6 µs = 37.7 ms
    assert s.prefill_s(5000) == pytest.approx(flops / (2 * 1978.9e12 * 0.45) + comm, rel=1e-9)


def test_fp8_kv_cache_halves_kv_bytes():
    s = spec_of(model="llama-3.1-70b", gpus_per_replica=2, precision="fp8", kv_cache_precision="fp8")
    assert s.kv_bytes_per_token == 163840


def test_70b_bf16_on_one_h100_is_refused_with_the_numbers():
    with pytest.raises(ServingConfigError) as e:
        spec_of(model="llama-3.1-70b", gpu="H100-SXM-80GB", precision="bf16")
    msg = str(e.value)
    assert msg.startswith("llm: llama-3.1-70b in BF16 needs 141 GB of weights; 1 × H100-SXM-80GB has 80 GB")
    # 2 × (72 − 2) = 140 GB < 141 GB, 4 GPUs fit; FP8 (71 GB) needs 2 GPUs (70 GB usable on one)
    assert "gpus_per_replica ≥ 4" in msg and "fp8 (71 GB) with gpus_per_replica ≥ 2" in msg


def test_unknown_names_suggest():
    # Unknown names are refused when the component is built, located at the field.
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"gpu\n.*unknown GPU 'H100-SXM-8GB'; did you mean 'H100-SXM-80GB'"):
        spec_of(model="llama-3.1-8b", gpu="H100-SXM-8GB")
    with pytest.raises(ValidationError, match=r"model\n.*unknown model 'llama-3.1-8bb'; did you mean 'llama-3.1-8b'"):
        spec_of(model="llama-3.1-8bb")


def test_zero_tokens_and_oversized_sequences_are_refused():
    comp = LLMServer(id="llm", model="llama-3.1-8b")
    with pytest.raises(ServingConfigError, match="at least 1"):
        llm_estimate(comp, workload(500, 0), 1)
    with pytest.raises(ServingConfigError, match="131,072-token context"):
        llm_estimate(comp, workload(130_000, 5_000), 1)
    small = LLMServer(id="llm", model="llama-3.1-8b", gpu_memory_utilization=0.25)
    # (20 − 16.06 − 2) GB / 131072 B = 14,801 tokens < 20,000 + 500
    with pytest.raises(ServingConfigError, match=r"14,801 tokens"):
        llm_estimate(small, workload(20_000, 500), 1)


def test_moe_uses_active_params_for_compute_and_routed_experts_for_memory():
    mix = spec_of(model="mixtral-8x7b", gpus_per_replica=2)
    # Prefill compute: 12.88 B active, not 46.7 B total
    flops = 2 * 12.88e9 * 1000 + 4 * 32 * 32 * 128 * 1000 ** 2 / 2
    assert mix.prefill_s(1000) == pytest.approx(flops / (2 * 989.4e12 * 0.45) + 64 * allreduce(2, 1000, 4096), rel=1e-9)
    # Memory: one token reads the shared weights + 2 of 8 experts (= the active params);
    # a large batch reads every expert (= all 46.7 B)
    experts = 3 * 4096 * 14336 * 8 * 32
    assert mix.weights_read_bytes(1) == pytest.approx((46.7e9 - experts + experts * 2 / 8) * 2)
    assert mix.weights_read_bytes(1) == pytest.approx(12.88e9 * 2, rel=0.001)
    assert mix.weights_read_bytes(256) == pytest.approx(46.7e9 * 2, rel=1e-6)
    assert mix.weights_bytes == pytest.approx(46.7e9 * 2)  # capacity counts every expert
    # Compute-bound decode at a huge batch uses active params
    b = 8192
    comp = 2 * 12.88e9 * b / (2 * 989.4e12 * 0.40)
    assert mix.decode_bound(b, 0) == "compute"
    assert mix.decode_step_s(b, 0) == pytest.approx(comp + 64 * allreduce(2, b, 4096) + 0.0005, rel=1e-9)


def test_prefix_cache_reduces_prefill():
    plain = llm_estimate(LLMServer(id="llm", model="llama-3.1-8b"), workload(4000, 100), 1, overrides=FACTORS)
    cached = llm_estimate(LLMServer(id="llm", model="llama-3.1-8b", prefix_cache_hit_ratio=0.75),
                          workload(4000, 100), 1, overrides=FACTORS)
    assert cached.prefill_ms < 0.35 * plain.prefill_ms  # a quarter of the tokens (attention over all)
    assert cached.max_requests_per_s_per_replica > plain.max_requests_per_s_per_replica
    assert cached.ttft_ms_estimate < plain.ttft_ms_estimate


def test_service_moments_match_the_estimate_capacity():
    comp = LLMServer(id="llm", model="llama-3.1-8b", replicas=3)
    wl = workload(500, 200)
    mean_s, scv, servers = llm_service_moments(comp, wl, overrides=FACTORS)
    e = llm_estimate(comp, wl, 10, overrides=FACTORS)
    assert servers == 3 * e.max_concurrent_seqs
    assert servers / mean_s == pytest.approx(3 * e.max_requests_per_s_per_replica, rel=1e-9)
    assert scv == 0.0  # fixed lengths
    # The moments do not move with the load (the utilisation stays λ / (replicas × λ*)).
    assert llm_service_moments(comp, wl, overrides=FACTORS, arrival_rps=50) == (mean_s, scv, servers)
