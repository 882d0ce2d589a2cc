"""Mixture-of-experts terms of the roofline (issue 11, MoE part), worked by hand.

The routed experts' grouped GEMMs: compute × (1 + share × (base + min(P, t½/t))), weight reads
at their own HBM efficiency (quantised experts only), and trtllm-bench's batch/token limits
that the perf-overview MoE rows ran with."""

from __future__ import annotations

import pytest

from components.catalogue import LLMServer
from components.hardware import factor, get_model
from sim.llm.calibrate import row_component, trtllm_bench_limits
from sim.llm.roofline import ServingSpec


def qwen(**ov) -> ServingSpec:
    comp = LLMServer(id="llm", model="qwen3-235b-a22b", gpu="H200-SXM-141GB", gpus_per_replica=8,
                     precision="fp8", expert_parallel=8)
    return ServingSpec.from_component(comp, **ov)


def test_routed_expert_compute_penalty_by_hand():
    s = qwen(moe_expert_half_tokens=400.0, moe_expert_max_penalty=10.0, moe_expert_base_penalty=2.0,
             moe_routing_flops_per_elem=0.0)
    # routed share of the active compute: 3 × 4096 × 1536 × 8 experts × 94 layers / 22e9
    share = 3 * 4096 * 1536 * 8 * 94 / 22e9
    assert share == pytest.approx(0.64516, rel=1e-4)
    # 2048 tokens → 2048 × 8 / 128 = 128 tokens per expert: 400/128 = 3.125 below the cap
    assert s.moe_scale(2048) == pytest.approx(1 + share * (2 + 3.125), rel=1e-12)
    # 16 tokens → 1 per expert: 400 capped at 10
    assert s.moe_scale(16) == pytest.approx(1 + share * (2 + 10), rel=1e-12)
    # the base penalty alone stays at any size (prefill of 32k tokens: 2048 per expert)
    assert s.moe_scale(32768) == pytest.approx(1 + share * (2 + 400 / 2048), rel=1e-12)
    # dense models are untouched
    dense = ServingSpec.from_component(LLMServer(id="d", model="llama-3.1-8b"), moe_expert_base_penalty=2.0)
    assert dense.moe_scale(2048) == 1.0


def test_routing_work_per_routed_copy_by_hand():
    # Qwen3-30B-A3B: 8 of 128 experts, hidden 2048, 48 MoE layers, 3.3B active
    comp = LLMServer(id="q", model="qwen3-30b-a3b", gpu="B200-180GB", precision="fp4")
    s = ServingSpec.from_component(comp, moe_expert_half_tokens=0.0, moe_expert_base_penalty=0.0,
                                   moe_routing_flops_per_elem=10000.0)
    # 10000 × 8 × 2048 × 48 / (2 × 3.3e9) = 1.1916 extra, at any step size
    assert s.moe_scale(64) == pytest.approx(1 + 10000 * 8 * 2048 * 48 / 6.6e9, rel=1e-12)
    assert s.moe_scale(64) == pytest.approx(2.19156, rel=1e-5)
    assert s.moe_scale(65536) == s.moe_scale(64)
    # Llama 4 Scout: 1 of 16 experts, hidden 5120, 48 MoE layers, 17B active → 0.0723 extra
    sc = ServingSpec.from_component(LLMServer(id="s", model="llama-4-scout", gpu="B200-180GB", precision="fp4"),
                                    moe_expert_half_tokens=0.0, moe_expert_base_penalty=0.0,
                                    moe_routing_flops_per_elem=10000.0)
    assert sc.moe_scale(4096) == pytest.approx(1 + 10000 * 1 * 5120 * 48 / 34e9, rel=1e-12)
    # the fitted values are read from the data file, per GPU generation (Hopper's since issue 11i)
    b200 = ServingSpec.from_component(comp)
    assert b200.moe_routing_flops_per_elem == factor("moe_routing_flops_per_elem@B200-180GB") > 0
    assert qwen().moe_routing_flops_per_elem == factor("moe_routing_flops_per_elem") > 0
    assert factor("moe_routing_flops_per_elem") != factor("moe_routing_flops_per_elem@B200-180GB")


def test_expert_weight_reads_at_their_own_bandwidth_efficiency():
    m = get_model("qwen3-235b-a22b")
    s = qwen(decode_bw_efficiency=0.6, moe_expert_bw_efficiency=0.3)
    shared = (235e9 - m.routed_expert_params) * 8  # a copy per attention-data-parallel rank
    # a large batch hits every expert; their bytes take 0.6/0.3 = 2× as long as dense bytes
    assert s.weights_read_bytes(4096) == pytest.approx((shared + m.routed_expert_params) * 1.0, rel=1e-9)
    assert s.weights_read_bytes(4096, effective=True) == pytest.approx(
        (shared + 2 * m.routed_expert_params) * 1.0, rel=1e-9)
    bw = 8 * 4.8e12 * 0.6
    assert s.memory_s(4096, 0, 4096) == pytest.approx((shared + 2 * m.routed_expert_params) / bw, rel=1e-9)


def test_expert_bandwidth_efficiency_only_for_quantised_experts():
    assert qwen().moe_expert_bw_efficiency == factor("moe_expert_bw_efficiency")
    b200 = ServingSpec.from_component(LLMServer(id="q", model="qwen3-30b-a3b", gpu="B200-180GB", precision="fp4"))
    assert b200.moe_expert_bw_efficiency == factor("moe_expert_bw_efficiency@B200-180GB")
    assert b200.moe_expert_base_penalty == factor("moe_expert_base_penalty@B200-180GB")
    # Mixtral BF16 (vLLM, held-out rows) reads its experts at the dense efficiency
    mix = ServingSpec.from_component(LLMServer(id="m", model="mixtral-8x7b", gpus_per_replica=2))
    assert mix.moe_expert_bw_efficiency == 0.0
    assert mix.weights_read_bytes(256, effective=True) == mix.weights_read_bytes(256)


ROW = {"model_name": "qwen3-30b-a3b", "gpu_name": "B200-180GB", "tp": 1, "pp": 1, "ep": 1,
       "weight_precision": "fp4", "kv_cache_precision": "fp8", "input_len": "1000", "input_tokens": 1000,
       "output_tokens": 1000, "engine": "TRT-LLM (pytorch backend)", "mode": "max_throughput", "arch": "moe", "id": "x",
       "source": "github NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md"}


def test_trtllm_bench_limits_by_hand():
    # KV per token 2 × 48 × max(1, 4) × 128 × 1 B = 49,152 B; free 180 GiB (NVML) − 30.5e9 × 0.5 B
    # = 165.80 GiB × 0.95 / (49,152 B × 2000 in GiB) = 1,720 requests → 256 × ⌈1720/256⌉ = 1792;
    # tokens 1720 × (1 + 1) = 3441 → 256 × ⌈3441/256⌉ = 3584 (≥ 1000 + 1792)
    assert trtllm_bench_limits(ROW) == (1792, 3584)
    # 20000/2000 on H200 TP8 (KV heads padded to 8): 224 sequences; chunking off → ISL + batch tokens
    q = dict(ROW, model_name="qwen3-235b-a22b", gpu_name="H200-SXM-141GB", tp=8, ep=8, weight_precision="fp8",
             input_tokens=20000, output_tokens=2000)
    assert trtllm_bench_limits(q) == (224, 20224)
    # every perf-overview row runs with them (one implementation for dense and MoE rows); the
    # MoE rows (attention data parallelism: each rank pads its own share) get no padded CUDA
    # graphs, dense rows the perf overview's sizes up to the batch limit
    comp, ov = row_component(ROW)
    assert (comp.max_batch, comp.chunked_prefill_tokens) == (1792, 3584) and "graph_batch_sizes" not in ov
    # 8B FP8 on one H100: 0.95 × (80 − 7.48) / (2 × 32 × 8 × 128 B × 2000 in GiB) = 564 → 640; tokens 1128 → 2048
    dense, ov = row_component(dict(ROW, model_name="llama-3.1-8b", gpu_name="H100-SXM-80GB", weight_precision="fp8",
                                   arch="dense"))
    assert (dense.max_batch, dense.chunked_prefill_tokens) == (640, 2048)
    assert ov["graph_batch_sizes"][-3:] == (384, 512, 640)  # … and the cap min(640, 2048) (issue 11h)
    # rows not run by trtllm-bench's perf overview keep the LLM API defaults 2048 / 8192
    nim, _ = row_component(dict(ROW, source="NVIDIA NIM benchmarking", engine="NIM (TRT-LLM)"))
    assert (nim.max_batch, nim.chunked_prefill_tokens) == (2048, 8192)


def test_estimate_explains_the_expert_kernels():
    from designs.model import Workload
    from sim.llm.twin import llm_estimate

    comp = LLMServer(id="llm", model="qwen3-235b-a22b", gpu="H200-SXM-141GB", gpus_per_replica=8,
                     precision="fp8", expert_parallel=8, max_batch=256)
    e = llm_estimate(comp, Workload(arrival_rps=1.0), 1.0)
    line = next(x for x in e.explanation if x.startswith("mixture of experts"))
    s = ServingSpec.from_component(comp)
    # 256 sequences × 8 / 128 experts = 16 tokens per expert
    assert "16.0 tokens per expert at batch 256" in line
    assert f"compute × {s.moe_scale(256):.2f}" in line
    assert f"stream at {factor('moe_expert_bw_efficiency'):g} of paper bandwidth" in line


def test_trtllm_bench_host_floor_per_sequence():
    """Perf-overview rows carry the PyTorch backend's host time per sequence per step, per host
    CPU (GB200's Grace its own value); a step lasts max(GPU time, floor × sequences) + host."""
    from dataclasses import replace

    from sim.llm.batching import fast_step_times

    gb = dict(ROW, gpu_name="GB200-186GB", id="y")
    comp, ov = row_component(gb)
    assert ov["host_floor_s_per_seq"] == pytest.approx(factor("trtllm_host_us_per_seq@GB200-186GB") / 1e6)
    _, ov_b = row_component(ROW)
    assert ov_b["host_floor_s_per_seq"] == pytest.approx(factor("trtllm_host_us_per_seq") / 1e6)
    _, ov_nim = row_component(dict(ROW, source="NVIDIA NIM benchmarking", engine="NIM (TRT-LLM)"))
    assert "host_floor_s_per_seq" not in ov_nim
    spec = ServingSpec.from_component(comp, **ov)
    bare = replace(spec, host_floor_s_per_seq=0.0)
    fl, host = spec.host_floor_s_per_seq, spec.host_s(4096)
    kv = 4096 * 192
    # 4,096 short sequences: the floor binds (GPU step < floor × 4096) …
    assert bare.iteration_s(4096, kv) - host < fl * 4096
    assert spec.iteration_s(4096, kv) == pytest.approx(fl * 4096 + host, rel=1e-12)
    # … 8 sequences: the GPU time does, the floor changes nothing
    assert spec.iteration_s(8, 8 * 192) == pytest.approx(bare.iteration_s(8, 8 * 192), rel=1e-12)
    # the replica's fast step table does not fold the floor: it takes the spec's own methods
    assert fast_step_times(spec)[0] == spec.iteration_s


def test_expert_parallel_alltoall_latency_by_hand():
    # Qwen3-235B-A22B NVFP4 on 8 × B200, experts over 8 (attention data-parallel: no all-reduce)
    comp = LLMServer(id="q", model="qwen3-235b-a22b", gpu="B200-180GB", gpus_per_replica=8,
                     precision="fp4", expert_parallel=8)
    s = ServingSpec.from_component(comp, allreduce_latency_s=15e-6, moe_alltoall_latency_s=50e-6)
    # dispatch + combine of 4096/8 tokens × min(8, 8) copies × 4096 hidden × 2 B × 7/8 leaving the GPU
    msg = 4096 / 8 * 8 * 4096 * 2 * 7 / 8
    assert msg == 29_360_128
    wire = msg / (900e9 * 0.8)  # NVLink 5 900 GB/s each way × allreduce_bus_efficiency 0.8
    assert wire == pytest.approx(40.78e-6, rel=1e-3)
    assert s.alltoall_s(4096) == pytest.approx(2 * (15e-6 + 50e-6 + wire), rel=1e-12)
    assert s.alltoall_s(4096) == pytest.approx(211.55e-6, rel=1e-4)
    # 94 MoE layers, each one dispatch + combine: 19.9 ms per step of 4096 tokens
    assert s.comm_s(4096, 4096) == pytest.approx(94 * 211.55e-6, rel=1e-4)
    # outside the GPU max: a decode step is 94 × 2 × 50 µs = 9.4 ms longer than without it
    s0 = ServingSpec.from_component(comp, allreduce_latency_s=15e-6, moe_alltoall_latency_s=0.0)
    kv = 4096 * 1500
    assert s.iteration_s(4096, kv) - s0.iteration_s(4096, kv) == pytest.approx(94 * 2 * 50e-6, rel=1e-9)
    # the fitted value is read per GPU from the data file: Blackwell has one, Hopper none
    assert ServingSpec.from_component(comp).moe_alltoall_latency_s == pytest.approx(
        factor("moe_alltoall_latency_us@B200-180GB") / 1e6) and factor("moe_alltoall_latency_us@B200-180GB") > 0
    assert qwen().moe_alltoall_latency_s == factor("moe_alltoall_latency_us") == 0
    # without expert parallelism (Qwen3-30B TP1) there is no all-to-all to pay it on
    q30 = ServingSpec.from_component(LLMServer(id="q30", model="qwen3-30b-a3b", gpu="B200-180GB", precision="fp4"))
    assert q30.alltoall_s(4096) == 0.0 and q30.comm_s(4096, 4096) == 0.0
    # dense models never carry it
    assert ServingSpec.from_component(LLMServer(id="d", model="llama-3.1-8b", gpu="B200-180GB")).moe_alltoall_latency_s == 0.0
