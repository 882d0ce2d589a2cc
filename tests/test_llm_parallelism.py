"""Parallelism and precision cost what they cost: hand-worked all-reduces, pipeline bubbles,
expert dispatch, W×A precisions, KV pools — and the configurations that cannot run are refused
with located messages that say what would.

Constants: H100 SXM NVLink 4 = 900 GB/s bidirectional → 450 GB/s each way, 8 GPUs per node;
L40S on PCIe Gen4 x16 = 32 GB/s each way (components/data/gpus.csv). Factors are pinned here so
the arithmetic stays valid when the fitted values move.
"""

import pytest

from components.catalogue import LLMServer
from designs.io import parse_design
from sim.check import config_problems
from sim.llm.roofline import ServingConfigError, ServingSpec

PIN = dict(decode_bw_efficiency=0.65, prefill_mfu=0.45, decode_mfu=0.40, iteration_overhead_s=0.0005,
           allreduce_latency_s=8e-6, allreduce_bus_efficiency=0.8, prefill_mfu_half_tokens=0.0,
           host_overhead_s_per_seq=0.0, moe_expert_half_tokens=0.0, moe_expert_base_penalty=0.0, p2p_latency_s=10e-6,
           attention_serial_share=0.0, decode_mfu_half_tokens=0.0)


def spec(**kw):
    return ServingSpec.from_component(LLMServer(id="llm", **kw), **PIN)


def test_tp_allreduce_worked_by_hand_70b_tp8_nvlink():
    s = spec(model="llama-3.1-70b", gpus_per_replica=8, precision="fp8")
    # One all-reduce of 256 tokens × 8192 hidden × 2 B = 4,194,304 B over 8 GPUs:
    # 8 µs + 2 × 7/8 × 4,194,304 B / (450 GB/s × 0.8) = 8 µs + 20.39 µs = 28.39 µs
    assert s.allreduce_s(256) == pytest.approx(8e-6 + 1.75 * 4_194_304 / 360e9, rel=1e-12)
    assert s.allreduce_s(256) * 1e6 == pytest.approx(28.39, abs=0.01)
    # two per layer (after attention, after the MLP) × 80 layers = 160 per step: 4.54 ms
    assert s.comm_s(256, 256) == pytest.approx(160 * 28.39e-6, rel=1e-3)
    # at batch 1 the latency dominates: 160 × (8 µs + 0.08 µs) = 1.29 ms, paid whatever the batch
    assert s.comm_s(1, 1) == pytest.approx(160 * (8e-6 + 1.75 * 16384 / 360e9), rel=1e-12)
    # the step adds it to max(memory, compute) — it does not overlap
    mem = s.memory_s(256, 256 * 700, 256)
    comp = s.decode_flops_s(256)
    assert s.decode_step_s(256, 256 * 700) == pytest.approx(max(mem, comp) + s.comm_s(256, 256) + 0.0005)


def test_tp_cost_grows_with_degree_and_batch_and_shrinks_with_nvlink():
    per_layer = {g: spec(model="llama-3.1-70b", gpus_per_replica=g, precision="int4").comm_s(64, 64)
                 for g in (1, 2, 4, 8)}
    assert per_layer[1] == 0 and per_layer[2] < per_layer[4] < per_layer[8]
    # ring factor 2(g−1)/g: bandwidth part of TP8 is 1.75 / 1.0 of TP2's
    bw = {g: per_layer[g] - 160 * 8e-6 for g in (2, 8)}
    assert bw[8] / bw[2] == pytest.approx(1.75, rel=1e-9)
    s = spec(model="llama-3.1-70b", gpus_per_replica=4, precision="fp8")
    assert s.comm_s(1024, 1024) > 10 * s.comm_s(8, 8) / 2
    pcie = spec(model="llama-3.1-70b", gpu="L40S-48GB", gpus_per_replica=4, precision="fp8")
    # same model and degree on PCIe Gen4 (32 GB/s each way): 450/32 = 14× the bandwidth term
    nv_bw = s.allreduce_s(256) - 8e-6
    pc_bw = pcie.allreduce_s(256) - 8e-6
    assert pc_bw / nv_bw == pytest.approx(450 / 32, rel=1e-9)


def test_tp_beyond_a_node_is_refused_proposing_pipeline_stages():
    with pytest.raises(ServingConfigError) as e:
        spec(model="llama-3.1-405b", gpus_per_replica=16, precision="fp8")
    msg = str(e.value)
    assert e.value.field == "gpus_per_replica"
    assert "spans nodes" in msg and "8 GPUs on nvlink4" in msg and "use pipeline_stages: 2" in msg
    ok = spec(model="llama-3.1-405b", gpus_per_replica=16, pipeline_stages=2, precision="bf16")
    assert (ok.tp, ok.pp) == (8, 2)
    # GB200 NVL72 is one NVLink domain of 72 GPUs: TP16 stays inside it
    assert spec(model="llama-3.1-405b", gpu="GB200-186GB", gpus_per_replica=16, precision="fp8").tp == 16


def test_pipeline_bubble_and_handover():
    s = spec(model="llama-3.1-405b", gpus_per_replica=16, pipeline_stages=2, precision="bf16")
    # one sequence: one micro-batch, each stage idle half the round
    assert s.bubble(1) == 0.5 and s.bubble(64) == 0.0
    # batch 1 reads all weights once per token, like TP16 would, but over 8-GPU stages in turn:
    # memory = pp × (W + KV) / (16 × BW × η)
    w = 405.85e9 * 2
    assert s.memory_s(1, 1000, 1) == pytest.approx(2 * (w + 1000 * s.kv_bytes_per_token) / (16 * 3.35e12 * 0.65))
    # with ≥ pp sequences each micro-batch re-reads its stage's weights: pp × W + KV over 16 GPUs
    assert s.memory_s(64, 64_000, 64) == pytest.approx((2 * w + 64_000 * s.kv_bytes_per_token) / (16 * 3.35e12 * 0.65))
    # hand-over across the node boundary (16 GPUs > 8 per node): 10 µs + tokens × 16384 × 2 B / 50 GB/s
    assert s.p2p_s(32) == pytest.approx(10e-6 + 32 * 16384 * 2 / 50e9)
    assert s.comm_s(64, 64) == pytest.approx(2 * 126 * s.allreduce_s(32) + s.p2p_s(32))


def test_weights_times_activations_precision():
    w4a16 = spec(model="llama-3.1-70b", gpus_per_replica=2, precision="int4")
    w4a8 = spec(model="llama-3.1-70b", gpus_per_replica=2, precision="int4", activation_precision="fp8")
    assert w4a16.weights_bytes == w4a8.weights_bytes == pytest.approx(70.55e9 / 2)
    assert w4a16.peak_flops_per_gpu == 989.4e12 and w4a8.peak_flops_per_gpu == 1978.9e12
    assert w4a16.compute_precision == "bf16" and w4a8.compute_precision == "fp8"
    # prefill is compute-bound: W4A8 halves it, the weights read per decode step are the same
    assert w4a8.prefill_flops_s(4000) == pytest.approx(w4a16.prefill_flops_s(4000) * 989.4 / 1978.9)
    assert w4a8.memory_s(1, 0, 1) == w4a16.memory_s(1, 0, 1)
    w8a8 = spec(model="llama-3.1-8b", precision="int8")
    w8a16 = spec(model="llama-3.1-8b", precision="int8", activation_precision="bf16")
    assert w8a8.peak_flops_per_gpu == 1978.9e12 and w8a16.peak_flops_per_gpu == 989.4e12
    assert w8a8.weights_bytes == w8a16.weights_bytes == pytest.approx(8.03e9)


def test_fp4_on_blackwell_and_refused_on_hopper():
    b = spec(model="llama-3.1-70b", gpu="B200-180GB", precision="fp4", kv_cache_precision="fp8")
    assert b.compute_precision == "fp4" and b.peak_flops_per_gpu == 9000e12
    assert b.bytes_per_param == 4.5 / 8  # NVFP4: 4 bits + an FP8 scale per 16 values
    assert b.weights_bytes == pytest.approx(70.55e9 * 0.5625)
    with pytest.raises(ServingConfigError) as e:
        spec(model="llama-3.1-70b", gpu="H100", gpus_per_replica=2, precision="fp4")
    assert e.value.field == "precision"
    assert "H100-SXM-80GB has none" in str(e.value) and "use precision fp8" in str(e.value)
    with pytest.raises(ServingConfigError, match="kv_cache_precision fp4"):
        spec(model="llama-3.1-8b", gpu="H100", kv_cache_precision="fp4")
    nv = spec(model="llama-3.1-8b", gpu="B200", kv_cache_precision="fp4")
    assert nv.kv_bytes_per_token == pytest.approx(131072 * 0.5625 / 2)
    # MXFP4 weights (gpt-oss) run dequantised on Hopper, on FP4 math on Blackwell
    assert spec(model="gpt-oss-120b", gpu="H100", precision="mxfp4").compute_precision == "bf16"
    assert spec(model="gpt-oss-120b", gpu="B200", precision="mxfp4").compute_precision == "fp4"


def test_precision_errors_are_located_in_the_design():
    text = """
name: fp4_on_hopper
workload: {arrival_rps: 1}
components:
  - id: llm
    kind: llm_server
    model: llama-3.1-70b
    gpu: H100
    gpus_per_replica: 2
    precision: fp4
entry: llm
"""
    (p,) = config_problems(parse_design(text))
    assert p.path == "components[0].precision"
    assert "FP4 tensor cores" in p.message and "B200-180GB" in p.message


def test_expert_parallel_dispatch_worked_by_hand():
    s = spec(model="qwen3-235b-a22b", gpus_per_replica=8, precision="fp8", expert_parallel=8)
    # attention data-parallel over 8 GPUs: no attention all-reduce, no KV replication
    assert s.attention_tp == 1 and s.allreduce_s(1024) == 0 and s.kv_replication == 1
    # dispatch + combine of 1024/8 tokens × min(8, 8) copies × 4096 × 2 B × 7/8 per GPU
    msg = 1024 / 8 * 8 * 4096 * 2 * 7 / 8
    assert s.alltoall_s(1024) == pytest.approx(2 * (8e-6 + msg / 360e9))
    assert s.comm_s(1024, 1024) == pytest.approx(94 * s.alltoall_s(1024))
    # every GPU keeps a copy of the non-expert weights
    m = s.model
    non_expert = 235e9 - m.routed_expert_params
    assert s.weights_bytes == pytest.approx((235e9 + 7 * non_expert) * 1.0)
    # without expert parallelism the 4 KV heads are replicated over the 8 TP ranks
    tp8 = spec(model="qwen3-235b-a22b", gpus_per_replica=8, precision="fp8")
    assert tp8.kv_replication == 2 and tp8.kv_bytes_per_token == 2 * m.kv_bytes_per_token(2)
    with pytest.raises(ServingConfigError, match="expert_parallel 2 is for mixture-of-experts"):
        spec(model="llama-3.1-70b", gpus_per_replica=2, precision="fp8", expert_parallel=2)


def test_mla_kv_is_the_latent_replicated_over_tp_ranks():
    one = spec(model="deepseek-r1", gpu="GB200-186GB", gpus_per_replica=8, precision="fp4",
               kv_cache_precision="fp8", expert_parallel=8)
    assert one.kv_bytes_per_token == 61 * (512 + 64) * 1  # 35,136 B, attention data-parallel
    tp = spec(model="deepseek-r1", gpu="GB200-186GB", gpus_per_replica=8, precision="fp4",
              kv_cache_precision="fp8")
    assert tp.kv_bytes_per_token == 8 * 61 * 576  # every TP rank holds the whole latent


def test_kv_pool_per_engine_total_vs_free():
    vllm = spec(model="llama-3.1-70b", gpus_per_replica=2, precision="fp8")
    trt = spec(model="llama-3.1-70b", gpus_per_replica=2, precision="fp8", kv_memory_basis="free")
    # vLLM: 0.9 × 160 GB − 70.55 GB − 4 GB; TensorRT-LLM: 0.9 × (160 GB − 4 GB − 70.55 GB)
    assert vllm.kv_capacity_bytes == pytest.approx(0.9 * 160e9 - 70.55e9 - 4e9)
    assert trt.kv_capacity_bytes == pytest.approx(0.9 * (160e9 - 4e9 - 70.55e9))
    # with FP8 KV (163,840 B/token) that is 77 vs 85 sequences of 5,500 tokens: the NIM rows at
    # concurrency 100 (5000 in / 500 out) decode ~85 at once, which only the free-memory basis holds
    assert int(2 * vllm.kv_capacity_tokens / 5500) == 77 and int(2 * trt.kv_capacity_tokens / 5500) == 85


def test_a_model_that_fits_no_node_proposes_pipeline_stages():
    with pytest.raises(ServingConfigError) as e:
        spec(model="deepseek-v3", gpu="H100", gpus_per_replica=8, precision="bf16")
    msg = str(e.value)
    assert "1342 GB of weights" in msg and "pipeline_stages" in msg


def test_attention_serial_share_and_decode_mfu_by_hand():
    """Session 2 terms: attention's KV reads partly outside the GEMMs' max, decode MFU by step height.

    Llama-3.1-8B BF16 on one H100 (3.35 TB/s × 0.65, 989.4 TFLOPS), KV 131,072 B/token.
    """
    s = spec(model="llama-3.1-8b", gpu="H100")
    ser = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b", gpu="H100"),
                                     **{**PIN, "attention_serial_share": 0.75, "decode_mfu_half_tokens": 1000.0})
    bw = 3.35e12 * 0.65
    w, kvb = s.weights_bytes, 131072
    # Batch 64, 64 × 2,000 KV tokens = 16.78 GB of KV: memory-bound either way.
    kv = 64 * 2000
    mem_w, mem_kv = w / bw, kv * kvb / bw  # 7.37 ms, 7.70 ms
    assert s.decode_step_s(64, kv) == pytest.approx(max(mem_w + mem_kv, s.decode_flops_s(64)) + 0.0005, rel=1e-12)
    # σ = 0.75: a quarter of the KV reads overlap the GEMMs, three quarters follow them.
    comp = 2 * 8.03e9 * 64 / (989.4e12 * (0.40 + (0.45 - 0.40) * 64 / (64 + 1000)))
    assert ser.decode_flops_s(64) == pytest.approx(comp, rel=1e-3)
    assert ser.serial_kv_s(kv, 64) == pytest.approx(0.75 * mem_kv, rel=1e-12)
    assert ser.decode_step_s(64, kv) == pytest.approx(max(mem_w + 0.25 * mem_kv, comp) + 0.75 * mem_kv + 0.0005,
                                                       rel=1e-12)
    # memory-bound: the step is unchanged by σ (the KV reads are paid once, inside or outside)
    assert ser.decode_step_s(64, kv) == pytest.approx(s.decode_step_s(64, kv), rel=1e-12)
    # Compute-bound, batch 1,024 at 300 KV tokens: the KV time now adds to the compute.
    kv2 = 1024 * 300
    comp2 = 2 * 8.03e9 * 1024 / (989.4e12 * (0.40 + 0.05 * 1024 / 2024))  # 40.5 ms > 7.37 + 0.25·5.4 ms
    assert ser.decode_step_s(1024, kv2) == pytest.approx(comp2 + 0.75 * kv2 * kvb / bw + 0.0005, rel=1e-3)
    assert ser.decode_bound(1024, kv2) == "compute"
    # Decode rows riding along an 8,192-token prefill chunk compute at nearly the prefill MFU.
    assert ser.decode_mfu_at(64 + 8192) == pytest.approx(0.40 + 0.05 * 8256 / 9256, rel=1e-12)
    assert ser.decode_mfu_at(0) == 0.40 and s.decode_mfu_at(5000) == 0.40
