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
    "tp_comm_overhead", "training_mfu",
    "embedder_tokens_per_s_per_gpu_l4", "reranker_pairs_per_s_per_gpu",
    "vector_db_qps_per_node", "cache_get_latency_ms",
    "lora_mfu_fp8", "lora_mfu_bf16", "qlora_speed_vs_lora", "gpu_failure_rate_per_hour",
]


def test_all_gpus_load_with_positive_numbers_and_sources():
    assert len(gpu_names()) == 9
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
    assert set(model_names()) == {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b",
                                  "mistral-7b", "mixtral-8x7b", "qwen2.5-72b"}
    for name in model_names():
        m = get_model(name)
        for v in (m.layers, m.hidden, m.q_heads, m.kv_heads, m.head_dim, m.ffn_intermediate,
                  m.vocab, m.params_total_b, m.params_active_b, m.max_context_tokens):
            assert v > 0
        assert m.params_active_b <= m.params_total_b
        assert m.q_heads % m.kv_heads == 0  # GQA groups must divide evenly
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


def _params_from_config(m) -> tuple[float, float]:
    """Standard decoder count: embeddings + layers*(attention + MLP + 2 norms) + norm + lm_head."""
    q_out = m.q_heads * m.head_dim
    kv_out = m.kv_heads * m.head_dim
    attn = m.hidden * q_out + 2 * m.hidden * kv_out + q_out * m.hidden
    if m.qkv_bias:
        attn += q_out + 2 * kv_out
    mlp = 3 * m.hidden * m.ffn_intermediate  # gate, up, down (SwiGLU)
    router = m.hidden * m.experts if m.is_moe else 0
    norms = 2 * m.hidden
    embed = m.vocab * m.hidden * (1 if m.tied_embeddings else 2)
    total = embed + m.layers * (attn + m.experts * mlp + router + norms) + m.hidden
    active = embed + m.layers * (attn + m.experts_per_token * mlp + router + norms) + m.hidden
    return total / 1e9, active / 1e9


@pytest.mark.parametrize("name", ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b",
                                  "mistral-7b", "mixtral-8x7b", "qwen2.5-72b"])
def test_params_match_standard_formula_within_1pct(name):
    m = get_model(name)
    total, active = _params_from_config(m)
    assert total == pytest.approx(m.params_total_b, rel=0.01)
    assert active == pytest.approx(m.params_active_b, rel=0.01)


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
    assert a100.peak_tflops("int4") == a100.int8_tops == 624  # int4 served on int8 math
    a10g = get_gpu("A10G")
    assert a10g.peak_tflops("int4") == a10g.peak_tflops("int8") == a10g.bf16_tflops
    with pytest.raises(ValueError):
        h100.peak_tflops("fp4")


def test_every_efficiency_key_present_with_source():
    for key in EFFICIENCY_KEYS:
        assert factor(key) > 0
        assert source_of("factor", key).strip(" |")
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
    assert [r["id"] for r in rows] == ["S1", "S5", "S12", "S16", "S20"]
    for r in rows:
        get_model(r["model_name"])  # canonical ids must resolve
        assert get_gpu(r["gpu_name"]).name == r["gpu_name"]
        assert r["mode"] in {"closed_loop", "fixed_batch", "max_throughput", "rate_inf"}
        assert r["input_tokens"] > 0 and r["output_tokens"] > 0 and r["throughput_tok_s"] > 0
        assert r["source"].strip()
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
