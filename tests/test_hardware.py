"""Reference data loads, resolves names, and its numbers hold up to simple checks."""

import csv
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from components import hardware as hw
from components.hardware import (
    BYTES_PER_PARAM,
    UnknownNameError,
    calibration_rows,
    factor,
    get_gpu,
    get_model,
    gpu_names,
    model_names,
    price,
    source_of,
)

EFFICIENCY_KEYS = [
    "decode_bw_efficiency", "prefill_mfu", "decode_mfu", "iteration_overhead_ms",
    "training_mfu",
    "embedder_tokens_per_s_per_gpu_l4", "reranker_pairs_per_s_per_gpu",
    "vector_db_qps_per_node", "cache_get_latency_ms",
    "lora_mfu_fp8", "lora_mfu_bf16", "qlora_speed_vs_lora", "gpu_failure_rate_per_hour",
    # issue 11: the LLM model's communication, precision, MoE and host terms
    "allreduce_latency_us", "allreduce_bus_efficiency", "p2p_latency_us", "prefill_mfu_half_tokens",
    "vllm05_host_ms_per_seq", "moe_expert_half_tokens", "mfu_ratio@fp4",
    "decode_bw_efficiency@B200-180GB",
    "decode_bw_efficiency@GB200-186GB", "vllm05_host_ms_per_step", "decode_mfu_half_tokens", "attention_serial_share", "moe_expert_max_penalty",
    # issue 11, MoE part: per-architecture expert kernels (Hopper default, Blackwell @GPU rows)
    "moe_expert_base_penalty", "moe_expert_bw_efficiency",
    *(f"{k}@{g}" for g in ("B200-180GB", "GB200-186GB") for k in
      ("moe_expert_half_tokens", "moe_expert_max_penalty", "moe_expert_base_penalty", "moe_expert_bw_efficiency")),
    # issue 11, joint pass: the TensorRT-LLM PyTorch backend's host time per sequence per step
    "trtllm_host_us_per_seq", "trtllm_host_us_per_seq@GB200-186GB",
    # issue 11f: MoE routing work per routed copy (Blackwell; Hopper keeps the base penalty)
    "moe_routing_flops_per_elem", "moe_routing_flops_per_elem@B200-180GB", "moe_routing_flops_per_elem@GB200-186GB",
    # issue 11g: expert-parallel all-to-all latency (Blackwell; Hopper 0)
    "moe_alltoall_latency_us", "moe_alltoall_latency_us@B200-180GB", "moe_alltoall_latency_us@GB200-186GB",
]
# Coefficients that may legitimately be fitted to 0 (a term the fit rows do not support).
MAY_BE_ZERO = {"prefill_mfu_half_tokens", "decode_mfu_half_tokens", "moe_routing_flops_per_elem", "moe_alltoall_latency_us",
               "moe_expert_base_penalty@B200-180GB", "moe_expert_base_penalty@GB200-186GB"}


def test_all_gpus_load_with_positive_numbers_and_sources():
    assert len(gpu_names()) == 10
    for name in gpu_names():
        g = get_gpu(name)
        assert g.name == name
        for v in (g.bf16_tflops, g.hbm_gb, g.hbm_bandwidth_tbps, g.gpu_hourly_usd):
            assert v > 0
        for v in (g.fp8_tflops, g.int8_tops):
            assert v is None or v > 0
        assert g.spec_source.strip() and g.price_source.strip()
        # FP8 doubles BF16 on every GPU that has it (dense vs dense)
        if g.fp8_tflops:
            assert g.fp8_tflops == pytest.approx(2 * g.bf16_tflops, rel=0.03)


def test_all_models_load_with_positive_numbers_and_sources():
    assert {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mistral-7b", "mixtral-8x7b",
            "qwen2.5-72b", "qwen3-235b-a22b", "qwen3-30b-a3b", "qwen3-32b", "llama-4-scout",
            "llama-4-maverick", "deepseek-v3", "gpt-oss-120b", "gpt-oss-20b", "mistral-small-24b",
            "gemma-3-27b"} == set(model_names())
    for name in model_names():
        m = get_model(name)
        for v in (m.layers, m.hidden, m.q_heads, m.kv_heads, m.head_dim, m.ffn_intermediate,
                  m.vocab, m.params_total_b, m.params_active_b, m.max_context_tokens):
            assert v > 0
        assert m.params_active_b <= m.params_total_b
        assert m.q_heads % m.kv_heads == 0  # GQA groups must divide evenly
        assert m.sliding_window is None or 0 <= m.global_layers < m.layers
        assert m.source.strip()
    assert get_model("llama-3.1-8b").max_context_tokens == 131072
    assert get_model("qwen2.5-72b").max_context_tokens == 32768


@pytest.mark.parametrize("alias,canonical", [
    ("h100", "H100-SXM-80GB"), ("H100 SXM5 80GB", "H100-SXM-80GB"), ("h100_sxm", "H100-SXM-80GB"),
    ("H100 PCIe", "H100-PCIE-80GB"), ("a100", "A100-SXM-80GB"), ("L40S", "L40S-48GB"),
    ("mi300x", "MI300X-192GB"), ("b200", "B200-180GB"),
])
def test_gpu_aliases_resolve(alias, canonical):
    assert get_gpu(alias).name == canonical


@pytest.mark.parametrize("alias,canonical", [
    ("Llama-3.1-8B-Instruct", "llama-3.1-8b"), ("LLAMA-3.1-70B", "llama-3.1-70b"),
    ("Llama-3.3-70B-Instruct", "llama-3.1-70b"), ("Mixtral-8x7B-v0.1", "mixtral-8x7b"),
    ("Qwen/Qwen2.5-72B", "qwen2.5-72b"),
])
def test_model_aliases_resolve(alias, canonical):
    assert get_model(alias).name == canonical


def test_unknown_gpu_suggests_closest_and_lists_known():
    with pytest.raises(UnknownNameError) as e:
        get_gpu("H10")
    msg = str(e.value)
    assert msg.startswith("unknown GPU 'H10'; did you mean 'H100-SXM-80GB'?")
    assert "known:" in msg and "MI300X-192GB" in msg
    assert isinstance(e.value, ValueError)


def test_unknown_model_and_keys_raise():
    with pytest.raises(UnknownNameError, match="did you mean 'llama-3.1-8b'"):
        get_model("llama-3.1-8")
    with pytest.raises(UnknownNameError, match="known: .*object_storage_gb_month"):
        price("no_such_price")
    with pytest.raises(UnknownNameError):
        factor("no_such_factor")


def test_kv_bytes_per_token():
    assert get_model("llama-3.1-8b").kv_bytes_per_token() == 131072
    assert get_model("llama-3.1-70b").kv_bytes_per_token() == 327680
    assert get_model("llama-3.1-8b").kv_bytes_per_token(kv_bytes_per_elem=1) == 65536


def _params_from_config(m) -> tuple[float, float, float]:
    """Decoder count from the config: embeddings + layers × (attention + MLP/experts + norms) +
    final norm + lm_head. Returns (total, active, active without the input embedding) in B.

    Attention: GQA q/k/v/o projections (+ biases), or DeepSeek's multi-head latent attention
    (q down/up, kv down to the latent + RoPE key, kv up to per-head K_nope and V, o). MoE: the
    routed experts in the MoE layers (k of them active), shared experts and the router; the
    other layers are dense MLPs."""
    h = m.hidden
    if m.is_mla:
        qk = m.head_dim + m.qk_rope_head_dim  # qk_nope + rope per head
        attn = (h * m.q_lora_rank + m.q_lora_rank * m.q_heads * qk
                + h * (m.kv_lora_rank + m.qk_rope_head_dim)
                + m.kv_lora_rank * m.q_heads * (m.head_dim + m.v_head_dim)
                + m.q_heads * m.v_head_dim * h + m.q_lora_rank + m.kv_lora_rank)
    else:
        q_out, kv_out = m.q_heads * m.head_dim, m.kv_heads * m.head_dim
        attn = h * q_out + 2 * h * kv_out + q_out * h
        if m.qkv_bias:
            attn += q_out + 2 * kv_out
    expert = 3 * h * m.ffn_intermediate  # gate, up, down (SwiGLU)
    n_moe = m.n_moe_layers
    dense_mlp = 3 * h * (m.dense_ffn_intermediate or m.ffn_intermediate)
    norms = 2 * h
    moe_total = m.experts * expert + m.shared_experts * expert + h * m.experts
    moe_active = (m.experts_per_token + m.shared_experts) * expert + h * m.experts
    embed = m.vocab * h
    head = 0 if m.tied_embeddings else m.vocab * h
    base = m.layers * (attn + norms) + (m.layers - n_moe) * dense_mlp + h
    total = embed + head + base + n_moe * moe_total
    active = embed + head + base + n_moe * moe_active
    return total / 1e9, active / 1e9, (active - (embed if head else 0)) / 1e9


# (total, active) published on each model card, next to the config-derived count. Llama 4's
# card totals include the vision encoder (text-only derivation ~1 % lower); gpt-oss's card
# counts active parameters without the input embedding; Mistral's "24B" is rounded (23.6).
CARD = {"qwen3-235b-a22b": (235, 22), "qwen3-30b-a3b": (30.5, 3.3), "qwen3-32b": (32.8, 32.8),
        "llama-4-scout": (109, 17), "llama-4-maverick": (400, 17), "deepseek-v3": (671, 37),
        "gpt-oss-120b": (116.8, 5.1), "gpt-oss-20b": (20.9, 3.6), "mistral-small-24b": (23.6, 23.6),
        "gemma-3-27b": (27, 27)}


@pytest.mark.parametrize("name", sorted(set(model_names())))
def test_params_rederived_from_config_match_the_card(name):
    m = get_model(name)
    total, active, active_no_embed = _params_from_config(m)
    tol = 0.02 if name.startswith("llama-4") else 0.01
    assert total == pytest.approx(m.params_total_b, rel=tol)
    assert (active == pytest.approx(m.params_active_b, rel=0.02)
            or active_no_embed == pytest.approx(m.params_active_b, rel=0.02))
    if name in CARD:  # the data file carries the card's figures
        assert (m.params_total_b, m.params_active_b) == CARD[name]
    assert m.source.startswith("https://huggingface.co/") or "config" in m.source


def test_mla_and_hybrid_attention_kv():
    ds = get_model("deepseek-r1")
    # 61 layers × (512 latent + 64 RoPE) × 2 B = 70,272 B/token, vs 2·61·128·128·2 = 4.0 MB as MHA
    assert ds.is_mla and ds.kv_bytes_per_token() == 61 * 576 * 2
    g = get_model("gemma-3-27b")
    # 10 global layers keep all 8,000 tokens, 52 local ones the 1,024-token window
    assert g.kv_tokens(8000) == pytest.approx((10 * 8000 + 52 * 1024) / 62)
    assert g.kv_tokens(900) == 900
    assert get_model("mistral-7b").kv_tokens(10_000) == 4096  # every layer sliding


def test_moe_and_weight_bytes():
    mix = get_model("mixtral-8x7b")
    assert mix.is_moe and not get_model("mistral-7b").is_moe
    llama = get_model("llama-3.1-8b")
    assert llama.weight_bytes(2) == pytest.approx(16.06e9)
    assert llama.weight_bytes("int4") == pytest.approx(llama.weight_bytes(BYTES_PER_PARAM["bf16"]) / 4)


def test_peak_tflops_fallbacks():
    h100, a100 = get_gpu("H100-SXM-80GB"), get_gpu("A100-SXM-80GB")
    assert h100.peak_tflops("fp8") == 1978.9 and h100.peak_tflops("FP16") == 989.4
    assert a100.peak_tflops("fp8") == a100.peak_tflops("bf16") == 312  # no FP8 -> BF16
    assert a100.peak_tflops("int4") == a100.bf16_tflops == 312  # AWQ/GPTQ int4 is W4A16
    a10g = get_gpu("A10G")
    assert a10g.peak_tflops("int4") == a10g.peak_tflops("int8") == a10g.bf16_tflops
    with pytest.raises(ValueError):
        h100.peak_tflops("fp4")


def test_every_efficiency_key_present_with_source():
    for key in EFFICIENCY_KEYS:
        assert factor(key) > 0 or (key in MAY_BE_ZERO and factor(key) == 0)
        src = source_of("factor", key)
        assert src.strip(" |")
        if key in EFFICIENCY_KEYS[EFFICIENCY_KEYS.index("allreduce_latency_us"):]:  # issue 11's: fitted or an assumption
            assert "fit" in src or "ASSUMPTION" in src, key
    for key in ("decode_bw_efficiency", "prefill_mfu", "decode_mfu", "training_mfu"):
        assert 0 < factor(key) < 1
    # efficiency.csv holds exactly the agreed keys, nothing stale
    with open(hw.DATA_DIR / "efficiency.csv", newline="") as f:
        assert [r["key"] for r in csv.DictReader(f)] == EFFICIENCY_KEYS


def test_prices_have_sources_and_known_anchors():
    with open(hw.DATA_DIR / "prices.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert 10 <= len(rows) <= 15
    for r in rows:
        assert price(r["key"]) > 0 and r["source"].strip() and r["unit"].strip()
    assert price("object_storage_gb_month") == 0.023
    assert price("queue_usd_per_million_requests") == 0.40


def test_calibration_rows_are_machine_readable():
    rows = calibration_rows()
    # The five rows the model was first calibrated on stay first; every row is tagged.
    assert [r["id"] for r in rows[:5]] == ["S1", "S5", "S12", "S16", "S20"]
    assert len({r["id"] for r in rows}) == len(rows) > 200
    assert {r["split"] for r in rows} == {"fit", "held_out"}
    assert len(calibration_rows("fit")) + len(calibration_rows("held_out")) == len(rows)
    assert all(r["split"] == "fit" for r in rows[:5])
    for r in rows:
        get_model(r["model_name"])  # canonical ids must resolve
        assert get_gpu(r["gpu_name"]).name == r["gpu_name"]
        assert r["mode"] in {"closed_loop", "fixed_batch", "max_throughput", "rate_inf", "poisson"}
        assert r["input_tokens"] > 0 and r["output_tokens"] > 0
        assert r["throughput_tok_s"] or r["ttft_ms"]  # every row publishes something
        assert r["source"].strip() and r["tp"] >= 1 and r["pp"] >= 1
        if r["mode"] == "poisson":
            assert r["rate_rps"] > 0
        if r["mode"] == "closed_loop":
            assert r["concurrency"] >= 1
        if r["mode"] == "fixed_batch":
            assert r["batch"] >= 1
    s16 = next(r for r in rows if r["id"] == "S16")
    assert s16["tpot_ms"] == pytest.approx(997.54 / 128, abs=0.01)
    # returned dicts are copies: mutating one must not leak into the cache
    rows[0]["ttft_ms"] = -1
    assert calibration_rows()[0]["ttft_ms"] == 406.77


def test_source_of_and_frozen():
    assert "glennklockwood" in source_of("gpu", "h100")
    assert "Lambda" in source_of("gpu", "h100")
    assert "config" in source_of("model", "llama-3.1-8b")
    assert "aws" in source_of("price", "object_storage_gb_month").lower()
    assert "nvidia" in source_of("calibration", "S1").lower()
    with pytest.raises(ValueError):
        source_of("widget", "x")
    with pytest.raises(FrozenInstanceError):
        get_gpu("h100").hbm_gb = 1  # type: ignore[misc]


def test_data_is_inside_the_package():
    # The project must not read /work/shared at run time.
    assert hw.DATA_DIR == Path(hw.__file__).parent / "data"
    assert "/work/shared" not in Path(hw.__file__).read_text()
