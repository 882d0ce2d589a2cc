"""Roofline maths of one `llm_server` replica: memory, KV capacity, step times, config errors.

Pure arithmetic, no SimPy. Everything is derived from the component (model, GPU, TP degree,
precision) and the sourced efficiency factors in ``components/data/efficiency.csv``.

Usage::

    >>> from components.catalogue import LLMServer
    >>> from sim.llm.roofline import ServingSpec
    >>> spec = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b"))
    >>> round(spec.weights_bytes / 1e9, 2), spec.kv_bytes_per_token
    (16.06, 131072)
    >>> round(spec.decode_step_s(1, 1000) * 1e3, 2)    # ms, memory-bound at batch 1
    7.94

The formulas (all per replica of ``g`` GPUs, bandwidth ``BW``, dense peak ``F``):

* decode step  = max((W_read + KV_read) / (g·BW·η_bw), 2·P_active·B / (g·F·MFU_dec))
                 × (1 + tp_comm if g > 1) + overhead
* prefill      = (2·P_active·N + 4·L·H_q·d_h·(N·c + N²/2)) / (g·F·MFU_pre)
  (linear layers, plus causal attention over N new tokens after ``c`` cached ones)
* an iteration that mixes decode and prefill (continuous batching) reads the weights once:
  max((W_read + KV_read) / (g·BW·η_bw), decode FLOP time + prefill FLOP time) × (1 + tp) + overhead
* KV capacity  = (g·HBM·gpu_memory_utilization − W − g·reserve) / kv_bytes_per_token

The load-dependent analytic twin built on these numbers (`llm_estimate`, `llm_service_moments`,
`llm_capacity`) lives in ``sim.llm.twin``, which imports this module (never the reverse).

Mixture-of-experts: compute uses active parameters; the weights read per step are the shared
weights plus the experts the step's tokens actually route to (all of them at large batch,
``k/E`` of them for a single token), so memory never uses less than the active parameters
nor more than the total.
"""

from __future__ import annotations

from components.errors import Refusal

from dataclasses import dataclass, replace

from components.catalogue import LLMServer
from components.hardware import BYTES_PER_PARAM, GPU, ModelSpec, factor, get_gpu, get_model

__all__ = [
    "ServingSpec",
    "ServingConfigError",
    "TokenMoments",
    "token_moments",
    "RESERVE_BYTES_PER_GPU",
    "KV_BYTES_PER_ELEM",
]

# Per-GPU memory the engine keeps outside weights and KV: CUDA context, CUDA graphs, NCCL
# buffers and peak activations of one forward pass. Assumption: vLLM's start-up memory
# profile shows roughly 1-3 GB of such non-KV, non-weight memory per GPU for 7B-70B models;
# 2 GB is the middle of that range.
RESERVE_BYTES_PER_GPU = 2e9
KV_BYTES_PER_ELEM = {"bf16": 2, "fp16": 2, "fp8": 1}
# Tensor-parallel degrees serving engines accept: they must divide the attention heads.
_TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)


class ServingConfigError(Refusal):
    """An `llm_server` that cannot serve: names the component and the numbers."""


@dataclass(frozen=True)
class ServingSpec:
    """Everything the roofline needs about one replica (SI units: bytes, FLOP/s, seconds)."""

    component_id: str
    model: ModelSpec
    gpu: GPU
    gpus: int  # per replica (tensor parallel degree)
    precision: str
    kv_precision: str
    bytes_per_param: float
    peak_flops_per_gpu: float
    hbm_bytes_per_gpu: float
    bw_bytes_per_s_per_gpu: float
    kv_bytes_per_token: float
    gpu_memory_utilization: float
    max_batch: int
    chunked_prefill_tokens: int | None
    prefix_cache_hit_ratio: float
    decode_bw_efficiency: float
    prefill_mfu: float
    decode_mfu: float
    iteration_overhead_s: float
    tp_comm_overhead: float
    # Share of wall time the GPU computes. 1 for engines that overlap CPU scheduling with GPU
    # work (TensorRT-LLM, vLLM >= 0.6); lower only for calibrating older engines.
    gpu_busy_fraction: float = 1.0
    reserve_bytes_per_gpu: float = RESERVE_BYTES_PER_GPU

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_component(cls, comp: LLMServer, **overrides) -> "ServingSpec":
        """Resolve names and factors; raise `ServingConfigError` when the weights do not fit.

        ``overrides`` replace any field (e.g. ``decode_bw_efficiency=0.6``), which is how
        calibration and what-if studies change a factor without editing the data file.
        """
        try:
            model = get_model(comp.model)
            gpu = get_gpu(comp.gpu)
        except ValueError as e:  # hardware.UnknownNameError, with its suggestion
            raise ServingConfigError(f"{comp.id}: {e}") from None
        spec = cls(
            component_id=comp.id, model=model, gpu=gpu, gpus=comp.gpus_per_replica,
            precision=comp.precision, kv_precision=comp.kv_cache_precision,
            bytes_per_param=BYTES_PER_PARAM[comp.precision],
            peak_flops_per_gpu=gpu.peak_tflops(comp.precision) * 1e12,
            hbm_bytes_per_gpu=gpu.hbm_gb * 1e9,
            bw_bytes_per_s_per_gpu=gpu.hbm_bandwidth_tbps * 1e12,
            kv_bytes_per_token=model.kv_bytes_per_token(KV_BYTES_PER_ELEM[comp.kv_cache_precision]),
            gpu_memory_utilization=comp.gpu_memory_utilization,
            max_batch=comp.max_batch, chunked_prefill_tokens=comp.chunked_prefill_tokens,
            prefix_cache_hit_ratio=comp.prefix_cache_hit_ratio,
            decode_bw_efficiency=factor("decode_bw_efficiency"),
            prefill_mfu=factor("prefill_mfu"), decode_mfu=factor("decode_mfu"),
            iteration_overhead_s=factor("iteration_overhead_ms") / 1e3,
            tp_comm_overhead=factor("tp_comm_overhead"),
        )
        if overrides:
            spec = replace(spec, **overrides)
        spec._check_fits()
        return spec

    def _check_fits(self) -> None:
        if self.model.q_heads % self.gpus:
            raise ServingConfigError(
                f"{self.component_id}: gpus_per_replica {self.gpus} does not divide "
                f"{self.model.name}'s {self.model.q_heads} attention heads; tensor parallelism "
                f"needs one of {', '.join(str(t) for t in self._valid_tp())}")
        if self.kv_capacity_tokens < 1:
            raise ServingConfigError(self._no_fit_message())

    def _valid_tp(self) -> list[int]:
        return [t for t in _TP_CANDIDATES if self.model.q_heads % t == 0]

    def _usable_bytes(self, gpus: int) -> float:
        return gpus * (self.hbm_bytes_per_gpu * self.gpu_memory_utilization - self.reserve_bytes_per_gpu)

    def _min_gpus(self, weights_bytes: float) -> int | None:
        for t in self._valid_tp():
            if self._usable_bytes(t) > weights_bytes:
                return t
        return None

    def _no_fit_message(self) -> str:
        gb = 1e9
        w = self.weights_bytes
        usable = self._usable_bytes(self.gpus)
        head = (
            f"{self.component_id}: {self.model.name} in {self.precision.upper()} needs "
            f"{w / gb:.0f} GB of weights; {self.gpus} × {self.gpu.name} has "
            f"{self.gpus * self.gpu.hbm_gb:.0f} GB ({usable / gb:.0f} GB usable at "
            f"gpu_memory_utilization {self.gpu_memory_utilization:g} after "
            f"{self.reserve_bytes_per_gpu / gb:.0f} GB per GPU for activations and buffers)")
        tips = []
        n = self._min_gpus(w)
        if n is not None and n > self.gpus:
            tips.append(f"gpus_per_replica ≥ {n}")
        for p in ("fp8", "int4"):
            if BYTES_PER_PARAM[p] < self.bytes_per_param:
                wp = self.model.weight_bytes(p)
                np_ = self._min_gpus(wp)
                if np_ is not None:
                    tips.append(f"precision {p} ({wp / gb:.0f} GB)" + (f" with gpus_per_replica ≥ {np_}" if np_ > self.gpus else ""))
                    break
        return head + ("; use " + " or ".join(tips) if tips else "; no tensor-parallel degree of this GPU fits it")

    # --- memory --------------------------------------------------------------------------

    @property
    def weights_bytes(self) -> float:
        """All weights of one replica (total parameters × bytes per parameter)."""
        return self.model.weight_bytes(self.bytes_per_param)

    @property
    def weights_bytes_per_gpu(self) -> float:
        return self.weights_bytes / self.gpus

    @property
    def kv_capacity_bytes(self) -> float:
        return self._usable_bytes(self.gpus) - self.weights_bytes

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens of KV cache one replica holds after weights and the per-GPU reserve."""
        return max(0, int(self.kv_capacity_bytes // self.kv_bytes_per_token))

    def kv_tokens_of(self, prompt_tokens: float, output_tokens: float) -> float:
        """KV tokens reserved for one sequence (a sliding window caps the live part)."""
        n = prompt_tokens + output_tokens
        sw = self.model.sliding_window
        return min(n, sw) if sw else n

    # --- time ----------------------------------------------------------------------------

    @property
    def _peak_flops(self) -> float:
        return self.gpus * self.peak_flops_per_gpu

    @property
    def _bandwidth(self) -> float:
        return self.gpus * self.bw_bytes_per_s_per_gpu * self.decode_bw_efficiency

    @property
    def _slowdown(self) -> float:
        """Multiplier on GPU time: tensor-parallel all-reduces, and host time not overlapped."""
        tp = 1 + self.tp_comm_overhead if self.gpus > 1 else 1.0
        return tp / self.gpu_busy_fraction

    def weights_read_bytes(self, tokens: float) -> float:
        """Weight bytes one forward pass over ``tokens`` tokens reads (MoE: experts routed to)."""
        m = self.model
        if not m.is_moe or tokens <= 0:
            return self.weights_bytes
        expert_params = 3 * m.hidden * m.ffn_intermediate * m.experts * m.layers
        shared = max(0.0, m.params_total_b * 1e9 - expert_params)
        # Expected share of experts hit when `tokens` tokens each pick k of E (uniform routing).
        hit = 1 - (1 - m.experts_per_token / m.experts) ** tokens
        return (shared + expert_params * hit) * self.bytes_per_param

    def attention_flops(self, new_tokens: float, cached_tokens: float = 0.0) -> float:
        """Causal attention FLOPs of ``new_tokens`` appended after ``cached_tokens``."""
        m = self.model
        pairs = new_tokens * cached_tokens + new_tokens * new_tokens / 2
        if m.sliding_window:
            pairs = min(pairs, new_tokens * m.sliding_window)
        return 4 * m.layers * m.q_heads * m.head_dim * pairs  # QKᵀ and AV, 2 FLOPs per MAC

    def prefill_flops_s(self, tokens: float, cached_tokens: float = 0.0) -> float:
        """GPU compute time of prefilling ``tokens`` prompt tokens (no overhead, no TP factor)."""
        flops = 2 * self.model.params_active_b * 1e9 * tokens + self.attention_flops(tokens, cached_tokens)
        return flops / (self._peak_flops * self.prefill_mfu)

    def prefill_s(self, tokens: float, cached_tokens: float = 0.0) -> float:
        """Prefill compute of one prompt: 2·P_active·N (+ attention) / (g·F·MFU), with TP factor."""
        return self.prefill_flops_s(tokens, cached_tokens) * self._slowdown

    def iteration_s(self, decode_batch: int, kv_tokens_read: float,
                    prefill_tokens: float = 0.0, prefill_flops_s: float | None = None) -> float:
        """Wall time of one engine iteration: ``decode_batch`` sequences decode one token each
        while reading ``kv_tokens_read`` KV tokens, and ``prefill_tokens`` prompt tokens are
        prefilled (their compute time ``prefill_flops_s`` from `prefill_flops_s`, which
        includes attention; computed without attention when omitted)."""
        if prefill_flops_s is None:
            prefill_flops_s = self.prefill_flops_s(prefill_tokens) if prefill_tokens else 0.0
        sw = self.model.sliding_window
        if sw:
            kv_tokens_read = min(kv_tokens_read, decode_batch * sw)
        mem = (self.weights_read_bytes(decode_batch + prefill_tokens)
               + kv_tokens_read * self.kv_bytes_per_token) / self._bandwidth
        comp = 2 * self.model.params_active_b * 1e9 * decode_batch / (self._peak_flops * self.decode_mfu)
        return max(mem, comp + prefill_flops_s) * self._slowdown + self.iteration_overhead_s

    def decode_step_s(self, batch: int, kv_tokens_total: float) -> float:
        """One decode iteration of ``batch`` sequences holding ``kv_tokens_total`` KV tokens."""
        return self.iteration_s(batch, kv_tokens_total)

    def decode_bound(self, batch: int, kv_tokens_total: float) -> str:
        mem = (self.weights_read_bytes(batch) + kv_tokens_total * self.kv_bytes_per_token) / self._bandwidth
        comp = 2 * self.model.params_active_b * 1e9 * batch / (self._peak_flops * self.decode_mfu)
        return "memory" if mem >= comp else "compute"


# --- workload token moments ---------------------------------------------------------------


@dataclass(frozen=True)
class TokenMoments:
    prompt_mean: float
    prompt_var: float
    output_mean: float
    output_var: float
    prompt_x_output_mean: float  # E[P·O] (lengths independent within a class)

    def in_batch(self, output_share: float) -> float:
        """Mean of P + share·O over the sequences *in the batch* at a random instant.

        A sequence stays for about O iterations, so the batch over-represents long outputs
        (length-biased sampling): weight each request by O, E[(P + sO)·O] / E[O].
        """
        o2 = self.output_var + self.output_mean ** 2
        return (self.prompt_x_output_mean + output_share * o2) / self.output_mean


def token_moments(workload) -> TokenMoments:
    """Mean and variance of prompt and output tokens over the workload's class mix."""
    pm = pv = om = ov = po = 0.0
    for c in workload.request_classes():
        p, o = c.prompt_tokens, c.output_tokens
        pm += c.share * p.expected()
        pv += c.share * (p.var() + p.expected() ** 2)
        om += c.share * o.expected()
        ov += c.share * (o.var() + o.expected() ** 2)
        po += c.share * p.expected() * o.expected()
    return TokenMoments(pm, max(0.0, pv - pm * pm), om, max(0.0, ov - om * om), po)
