"""Typed access to the reference data in ``components/data/*.csv``.

Every number in those CSVs has a source column; this module turns the rows into
frozen dataclasses, resolves names/aliases, and can say where a number came from.
Nothing here reads outside the package, so the data ships with the code.

Usage::

    from components.hardware import get_gpu, get_model, price, factor, source_of

    h100 = get_gpu("h100")                     # case-insensitive, aliases work
    h100.peak_tflops("fp8")                    # 1978.9 (dense)
    llama = get_model("Llama-3.1-8B-Instruct")
    llama.kv_bytes_per_token()                 # 131072 bytes in BF16
    llama.weight_bytes(BYTES_PER_PARAM["fp8"]) # 8.03e9
    price("object_storage_gb_month")           # 0.023
    factor("decode_bw_efficiency")             # 0.65
    source_of("factor", "prefill_mfu")         # where 0.45 comes from
    get_gpu("H10")  # UnknownNameError: unknown GPU 'H10'; did you mean 'H100-SXM-80GB'? ...
"""

from __future__ import annotations

from .errors import Refusal

import csv
import difflib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable, TypeVar

__all__ = [
    "BYTES_PER_PARAM",
    "DEFAULT_COMPUTE",
    "GPU",
    "ModelSpec",
    "Price",
    "Factor",
    "UnknownNameError",
    "get_gpu",
    "get_model",
    "gpu_names",
    "model_names",
    "price",
    "factor",
    "calibration_rows",
    "source_of",
]

DATA_DIR = Path(__file__).parent / "data"

# Bytes per weight for each precision; int4 packs two weights per byte. The 4-bit floating
# formats carry block scales: NVFP4 one FP8 (E4M3) scale per 16 values = 4.5 bits, MXFP4 one
# 8-bit (E8M0) scale per 32 values = 4.25 bits (NVIDIA blog "Introducing NVFP4 for Efficient and
# Accurate Low-Precision Inference", 2025; OCP Microscaling Formats (MX) v1.0 specification).
BYTES_PER_PARAM: dict[str, float] = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5,
                                     "fp4": 4.5 / 8, "mxfp4": 4.25 / 8}
# The math each weight precision runs in by default (W×A): AWQ/GPTQ int4 kernels (Marlin)
# dequantise to 16-bit and compute in BF16 (W4A16); int8 means SmoothQuant-style W8A8; FP8
# checkpoints run FP8 GEMMs (W8A8 FP8); NVFP4 runs FP4 tensor cores (W4A4); MXFP4 (gpt-oss)
# runs FP4 math where the GPU has it, else it is dequantised to BF16 (W4A16).
DEFAULT_COMPUTE: dict[str, str] = {"bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "int8": "int8",
                                   "int4": "bf16", "fp4": "fp4", "mxfp4": "fp4"}


class UnknownNameError(Refusal):
    """A GPU, model, price or factor name that is not in the reference data."""


@dataclass(frozen=True)
class GPU:
    """One accelerator; compute figures are dense (no 2:4 sparsity)."""

    name: str
    aliases: tuple[str, ...]
    bf16_tflops: float
    fp8_tflops: float | None
    int8_tops: float | None
    hbm_gb: float
    hbm_bandwidth_tbps: float
    gpu_hourly_usd: float
    spec_source: str
    price_source: str
    notes: str
    fp4_tflops: float | None = None
    gpus_per_node: int = 8
    intra_node_link: str = "pcie4"  # nvlink3/4/5, pcie4/5, infinity_fabric
    intra_node_gb_s: float = 32.0  # GPU-to-GPU bandwidth inside a node, GB/s each way
    inter_node_gb_s: float = 12.5  # network bandwidth per GPU between nodes, GB/s
    link_source: str = ""

    def peak_tflops(self, precision: str) -> float:
        """Dense peak tensor throughput (TFLOPS or TOPS) of the math ``precision`` runs in.

        ``precision`` is a compute (activation) precision or a weight precision, which then
        runs in its default math (`DEFAULT_COMPUTE`):

        - ``bf16``/``fp16``: the BF16 tensor rate.
        - ``fp8``: the FP8 rate; GPUs without FP8 tensor cores (A100, A10G) fall
          back to the BF16 rate, because FP8 weights are upcast and run as BF16.
        - ``int8``: the INT8 rate, else BF16 when none is published (W8A8).
        - ``int4``: AWQ/GPTQ weights dequantised to 16-bit (W4A16): the BF16 rate. Ask for
          ``fp8``/``int8`` explicitly for W4A8 kernels.
        - ``fp4``/``mxfp4``: the FP4 rate where the GPU has FP4 tensor cores (Blackwell);
          ``fp4`` raises on other GPUs, ``mxfp4`` falls back to BF16 (dequantised, W4A16).
        """
        p = precision.lower()
        if p in ("bf16", "fp16", "int4"):
            return self.bf16_tflops
        if p == "fp8":
            return self.fp8_tflops or self.bf16_tflops
        if p == "int8":
            return self.int8_tops or self.bf16_tflops
        if p == "mxfp4":
            return self.fp4_tflops or self.bf16_tflops
        if p == "fp4":
            if self.fp4_tflops is None:
                raise ValueError(f"{self.name} has no FP4 tensor cores (FP4 needs Blackwell: B200, GB200)")
            return self.fp4_tflops
        raise ValueError(f"unknown precision {precision!r}; expected one of {sorted(BYTES_PER_PARAM)}")

    @property
    def has_fp8(self) -> bool:
        return self.fp8_tflops is not None

    @property
    def has_fp4(self) -> bool:
        return self.fp4_tflops is not None

    @property
    def nvlink(self) -> bool:
        return self.intra_node_link.startswith("nvlink")


@dataclass(frozen=True)
class ModelSpec:
    """Transformer shape from the model's config.json; params in billions."""

    name: str
    aliases: tuple[str, ...]
    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    ffn_intermediate: int  # per expert for MoE models
    vocab: int
    params_total_b: float
    params_active_b: float
    max_context_tokens: int
    experts: int
    experts_per_token: int
    qkv_bias: bool
    tied_embeddings: bool
    sliding_window: int | None  # caps live KV tokens per sequence when set
    source: str
    notes: str
    dense_ffn_intermediate: int | None = None  # MLP width of the dense layers of an MoE model
    moe_layers: int | None = None  # layers with experts (None: all layers of an MoE model)
    shared_experts: int = 0  # always-on experts per MoE layer (width ffn_intermediate)
    q_lora_rank: int | None = None  # multi-head latent attention (DeepSeek): low-rank Q
    kv_lora_rank: int | None = None  # MLA: the compressed KV latent cached per token
    qk_rope_head_dim: int | None = None  # MLA: the decoupled RoPE key, cached per token
    v_head_dim: int | None = None  # MLA: value head size
    global_layers: int = 0  # with a sliding window: layers that still attend to everything

    def weight_bytes(self, bytes_per_param: float | str) -> float:
        """Bytes to hold all weights; accepts a number or a BYTES_PER_PARAM key."""
        bpp = BYTES_PER_PARAM[bytes_per_param] if isinstance(bytes_per_param, str) else bytes_per_param
        return self.params_total_b * 1e9 * bpp

    def kv_bytes_per_token(self, kv_bytes_per_elem: float = 2) -> float:
        """KV-cache bytes per token of a full-attention sequence.

        Grouped-query attention: K and V for every layer's KV heads, 2·L·kv_heads·d_h. Multi-head
        latent attention: the compressed latent and the RoPE key, L·(kv_lora_rank + rope dim),
        shared by all heads (DeepSeek-V3 paper, §2.1.1)."""
        if self.is_mla:
            return self.layers * (self.kv_lora_rank + self.qk_rope_head_dim) * kv_bytes_per_elem
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_bytes_per_elem

    def kv_tokens(self, tokens: float) -> float:
        """Full-attention-equivalent KV tokens one sequence of ``tokens`` tokens keeps.

        Sliding-window layers keep at most the window; global layers keep everything, so a
        hybrid model (Gemma 3: 10 global of 62, gpt-oss: every other layer) keeps
        (g·n + (L − g)·min(n, w)) / L full-layer tokens."""
        sw = self.sliding_window
        if not sw or tokens <= sw:
            return tokens
        g = self.global_layers
        return (g * tokens + (self.layers - g) * sw) / self.layers

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def is_mla(self) -> bool:
        return bool(self.kv_lora_rank)

    @property
    def n_moe_layers(self) -> int:
        if not self.is_moe:
            return 0
        return self.moe_layers or self.layers

    @property
    def routed_expert_params(self) -> float:
        """Parameters of the routed experts (gate, up, down per expert): what routing skips."""
        return 3 * self.hidden * self.ffn_intermediate * self.experts * self.n_moe_layers


@dataclass(frozen=True)
class Price:
    key: str
    value: float
    unit: str
    source: str
    notes: str


@dataclass(frozen=True)
class Factor:
    key: str
    value: float
    unit: str
    source: str
    notes: str


def _norm(name: str) -> str:
    # "H100 SXM5 80GB", "h100_sxm5_80gb" and "H100-SXM5-80GB" should all match.
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


def _read(filename: str) -> list[dict[str, str]]:
    with open(DATA_DIR / filename, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _aliases(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(a.strip() for a in row["aliases"].split(";") if a.strip())


@cache
def _gpus() -> dict[str, GPU]:
    out = {}
    for r in _read("gpus.csv"):
        out[r["name"]] = GPU(
            name=r["name"], aliases=_aliases(r),
            bf16_tflops=float(r["bf16_tflops"]), fp8_tflops=_num(r["fp8_tflops"]),
            int8_tops=_num(r["int8_tops"]), hbm_gb=float(r["hbm_gb"]),
            hbm_bandwidth_tbps=float(r["hbm_bandwidth_tbps"]), gpu_hourly_usd=float(r["gpu_hourly_usd"]),
            spec_source=r["spec_source"], price_source=r["price_source"], notes=r["notes"],
            fp4_tflops=_num(r["fp4_tflops"]), gpus_per_node=int(r["gpus_per_node"]),
            intra_node_link=r["intra_node_link"], intra_node_gb_s=float(r["intra_node_gb_s"]),
            inter_node_gb_s=float(r["inter_node_gb_s"]), link_source=r["link_source"],
        )
    return out


@cache
def _models() -> dict[str, ModelSpec]:
    out = {}
    for r in _read("models.csv"):
        ints = {k: int(r[k]) for k in ("layers", "hidden", "q_heads", "kv_heads", "head_dim",
                                       "ffn_intermediate", "vocab", "max_context_tokens",
                                       "experts", "experts_per_token")}
        sw = _num(r["sliding_window"])
        opt = {k: (int(v) if v is not None else None) for k in (
            "dense_ffn_intermediate", "moe_layers", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim",
            "v_head_dim") for v in [_num(r[k])]}
        out[r["name"]] = ModelSpec(
            name=r["name"], aliases=_aliases(r), **ints,
            params_total_b=float(r["params_total_b"]), params_active_b=float(r["params_active_b"]),
            qkv_bias=r["qkv_bias"] == "1", tied_embeddings=r["tied_embeddings"] == "1",
            sliding_window=int(sw) if sw is not None else None,
            source=r["source"], notes=r["notes"], **opt,
            shared_experts=int(r["shared_experts"] or 0), global_layers=int(r["global_layers"] or 0),
        )
    return out


@cache
def _prices() -> dict[str, Price]:
    return {r["key"]: Price(r["key"], float(r["value"]), r["unit"], r["source"], r["notes"])
            for r in _read("prices.csv")}


@cache
def _factors() -> dict[str, Factor]:
    return {r["key"]: Factor(r["key"], float(r["value"]), r["unit"], r["source"], r["notes"])
            for r in _read("efficiency.csv")}


# Numeric columns of serving_calibration.csv; everything else stays text.
_CAL_INT = ("n_gpu", "tp", "pp", "ep", "concurrency", "batch", "num_prompts", "input_tokens", "output_tokens")
_CAL_FLOAT = ("throughput_tok_s", "ttft_ms", "tpot_ms", "rate_rps")


@cache
def _calibration() -> tuple[dict, ...]:
    rows = []
    for r in _read("serving_calibration.csv"):
        row: dict = dict(r)
        for k in _CAL_INT:
            v = _num(r[k])
            row[k] = int(v) if v is not None else None
        for k in _CAL_FLOAT:
            row[k] = _num(r[k])
        rows.append(row)
    return tuple(rows)


T = TypeVar("T")


# The normalised name index of each table, and the message of each miss, built once per table:
# a serving spec resolves a dozen names, and a sizing search builds hundreds of specs.
_INDEX: dict[str, tuple[dict, dict[str, str], dict[str, str]]] = {}


def _lookup(kind: str, name: str, table: dict[str, T], aliases_of: Callable[[T], tuple[str, ...]] = lambda _: ()) -> T:
    """Resolve ``name`` over canonical names and aliases; suggest on a miss."""
    entry = _INDEX.get(kind)
    if entry is None or entry[0] is not table:  # the tables are cached: same object, same index
        index: dict[str, str] = {}
        for canonical, item in table.items():
            for n in (canonical, *aliases_of(item)):
                index[_norm(n)] = canonical
        entry = _INDEX[kind] = (table, index, {})
    _, index, misses = entry
    key = _norm(name)
    if key in index:
        return table[index[key]]
    hint = misses.get(key)
    if hint is None:
        close = difflib.get_close_matches(key, list(index), n=1, cutoff=0.5)
        hint = misses[key] = f" did you mean {index[close[0]]!r}?" if close else ""
    raise UnknownNameError(f"unknown {kind} {name!r};{hint} known: {', '.join(table)}")


def get_gpu(name: str) -> GPU:
    return _lookup("GPU", name, _gpus(), lambda g: g.aliases)


def get_model(name: str) -> ModelSpec:
    return _lookup("model", name, _models(), lambda m: m.aliases)


def gpu_names() -> list[str]:
    return list(_gpus())


def model_names() -> list[str]:
    return list(_models())


def price(key: str) -> float:
    """Default unit price (see prices.csv ``unit`` for what the number means)."""
    return _lookup("price", key, _prices()).value


def factor(key: str) -> float:
    """Efficiency / throughput factor from efficiency.csv."""
    return _lookup("factor", key, _factors()).value


def calibration_rows(split: str | None = None) -> list[dict]:
    """Measured serving rows with numeric columns parsed (empty -> None); fresh copies.

    ``split`` keeps only the rows tagged ``fit`` (the factors may be fitted on them) or
    ``held_out`` (never used to set a number: the accuracy scoreboard's test set)."""
    if split not in (None, "fit", "held_out"):
        raise ValueError(f"unknown split {split!r}; expected 'fit' or 'held_out'")
    return [dict(r) for r in _calibration() if split is None or r.get("split") == split]


def source_of(kind: str, key: str) -> str:
    """Where a number comes from: kind is gpu, model, price, factor or calibration."""
    if kind == "gpu":
        g = get_gpu(key)
        return f"spec: {g.spec_source} | price: {g.price_source} | links: {g.link_source}"
    if kind == "model":
        return get_model(key).source
    if kind == "price":
        p = _lookup("price", key, _prices())
        return f"{p.source} | {p.notes}"
    if kind == "factor":
        f = _lookup("factor", key, _factors())
        return f"{f.source} | {f.notes}"
    if kind == "calibration":
        rows = {r["id"]: r for r in _calibration()}
        return _lookup("calibration row", key, rows)["source"]
    raise ValueError(f"unknown kind {kind!r}; expected gpu, model, price, factor or calibration")
