"""Roofline maths of one `llm_server` replica: memory, KV capacity, step times, config errors.

Pure arithmetic, no SimPy. Everything is derived from the component (model, GPU, tensor,
pipeline and expert parallelism, weight × activation × KV precision) and the sourced factors in
``components/data/efficiency.csv`` and ``components/data/gpus.csv``.

Usage::

    >>> from components.catalogue import LLMServer
    >>> from sim.llm.roofline import ServingSpec
    >>> spec = ServingSpec.from_component(LLMServer(id="llm", model="llama-3.1-8b"))
    >>> round(spec.weights_bytes / 1e9, 2), spec.kv_bytes_per_token
    (16.06, 131072)
    >>> spec.decode_step_s(1, 1000) > 0
    True

A replica has ``g = tp × pp`` GPUs (bandwidth ``BW``, dense peak ``F`` in the math the
activations run in). One engine iteration over ``n`` sequences (``T`` tokens in the step) is a
round of the pipeline: the batch is split into ``m = min(pp, n)`` micro-batches, each passing
through the ``pp`` stages, so

* round     = pp × stage,  stage = max(memory − σ·KV time, compute) + σ·KV time + TP all-reduces
  + expert all-to-all + p2p, where σ (``attention_serial_share``) is the share of the attention
  kernels' KV reads that does not overlap the GEMMs: attention and the projections/MLP are
  separate kernels that run one after the other, so the roofline of a step is a sum over its
  operators, not one max over the whole step (σ = 1; σ = 0 is the single-max roofline)
* memory    = (W_read/pp + KV_read/(pp·m)) / (tp·BW·η_bw)   (every micro-batch re-reads its stage's weights)
* compute   = (2·P_active·B/MFU_dec(T) + prefill FLOPs/MFU_pre(T)) / (m·g·F)
* all-reduce (tensor parallelism, two per layer, L/pp layers per stage, message T/m × hidden ×
  2 B): latency + 2(tp − 1)/tp × message / (link bandwidth × bus efficiency)
* expert all-to-all (MoE with ``expert_parallel``): dispatch and combine of T/m × k hidden
  vectors per MoE layer, (ep − 1)/ep of them leaving the GPU
* p2p (pp > 1): one activation hand-over per stage boundary
* + host time that does not overlap the GPU (per step and per sequence)

so a pipeline with fewer sequences than stages idles (the bubble, 1 − m/pp), and a TP8 step
pays 160 all-reduces on a 70B model whatever its batch. Prefill MFU grows with the tokens in
the step, MFU_pre(T) = MFU_pre · T/(T + T½) (short prompts do not fill the GEMMs), and the
decode tokens are rows of the same GEMMs: MFU_dec(T) = MFU_dec + (MFU_pre − MFU_dec) · T/(T + T_d)
(``decode_mfu_half_tokens``) — a small decode batch runs skinny GEMMs, a step of thousands of
tokens (a large batch, or decode riding along a prefill chunk) computes at the prefill rate.

KV capacity = g·HBM·u − W − g·reserve (``kv_memory_basis: total``, vLLM) or
u·(g·HBM − W − g·reserve) (``free``, TensorRT-LLM), over the KV bytes per token — replicated on
every TP rank when there are fewer KV heads than ranks (and always for multi-head latent
attention, whose latent is shared by all heads).

The load-dependent analytic twin built on these numbers (`llm_estimate`, `llm_service_moments`,
`llm_capacity`) lives in ``sim.llm.twin``, which imports this module (never the reverse).

Mixture-of-experts: compute uses active parameters; the weights read per step are the shared
weights plus the experts the step's tokens actually route to (all of them at large batch,
``k/E`` of them for a single token), so memory never uses less than the active parameters
nor more than the total. The routed experts' grouped GEMMs get their own fitted terms per GPU
generation (Hopper; Blackwell ``@B200-180GB`` / ``@GB200-186GB`` rows): a compute penalty
(`moe_scale`) and, for quantised experts, the HBM efficiency of their weight reads
(``moe_expert_bw_efficiency``).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, replace

from components.errors import Refusal

from components.catalogue import LLMServer
from components.hardware import BYTES_PER_PARAM, DEFAULT_COMPUTE, GPU, ModelSpec, factor, get_gpu, get_model

__all__ = [
    "ServingSpec",
    "ServingConfigError",
    "TokenMoments",
    "token_moments",
    "RESERVE_BYTES_PER_GPU",
    "KV_BYTES_PER_ELEM",
    "ACT_BYTES",
]

# Per-GPU memory the engine keeps outside weights and KV: CUDA context, CUDA graphs, NCCL
# buffers and peak activations of one forward pass. Assumption: vLLM's start-up memory
# profile shows roughly 1-3 GB of such non-KV, non-weight memory per GPU for 7B-70B models;
# 2 GB is the middle of that range.
RESERVE_BYTES_PER_GPU = 2e9
# NVFP4 KV cache: 4-bit values with an FP8 scale per 16 (as the weights, hardware.BYTES_PER_PARAM).
KV_BYTES_PER_ELEM = {"bf16": 2, "fp16": 2, "fp8": 1, "fp4": 4.5 / 8}
# Tensor-parallel degrees serving engines accept: they must divide the attention heads.
_TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)
# Activations travel between GPUs in 16-bit (all-reduce, all-to-all, pipeline hand-over), also
# behind FP8/FP4 GEMMs. Assumption: TensorRT-LLM and vLLM all-reduce BF16 activations by default.
ACT_BYTES = 2


class ServingConfigError(Refusal):
    """An `llm_server` that cannot serve: names the component, the numbers and what would work.

    ``field`` is the component field to blame (e.g. ``precision``), for located messages."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ServingSpec:
    """Everything the roofline needs about one replica (SI units: bytes, FLOP/s, seconds)."""

    component_id: str
    model: ModelSpec
    gpu: GPU
    gpus: int  # per replica: tp × pp
    precision: str  # weights
    kv_precision: str
    bytes_per_param: float
    peak_flops_per_gpu: float  # in the compute (activation) precision
    hbm_bytes_per_gpu: float
    bw_bytes_per_s_per_gpu: float
    kv_bytes_per_token: float  # per replica, replication over TP ranks included
    gpu_memory_utilization: float
    max_batch: int
    chunked_prefill_tokens: int | None
    prefix_cache_hit_ratio: float
    decode_bw_efficiency: float
    prefill_mfu: float
    decode_mfu: float
    iteration_overhead_s: float
    compute_precision: str = "bf16"
    tp: int = 1
    pp: int = 1
    ep: int = 1
    link_bytes_per_s: float = 450e9  # GPU-to-GPU, each way, inside the node
    inter_node_bytes_per_s: float = 50e9
    allreduce_latency_s: float = 0.0
    allreduce_bus_efficiency: float = 1.0
    p2p_latency_s: float = 0.0
    prefill_mfu_half_tokens: float = 0.0
    host_overhead_s_per_seq: float = 0.0
    kv_memory_basis: str = "total"
    kv_replication: float = 1.0
    moe_expert_half_tokens: float = 0.0
    moe_expert_max_penalty: float = 1.0  # cap on the routed experts' extra compute (× their share)
    # Extra routed-expert compute that remains at any tokens per expert (× their share; MoE only).
    moe_expert_base_penalty: float = 0.0
    # Routing work per routed copy of a token's hidden vector (top-k, permute, gather/scatter,
    # combine), in FLOP-equivalents per hidden element at the step's compute rate (MoE only).
    moe_routing_flops_per_elem: float = 0.0
    # HBM efficiency of the routed experts' weight reads (quantised grouped GEMMs; 0 = decode_bw_efficiency).
    moe_expert_bw_efficiency: float = 0.0
    # Expert parallelism: latency of each MoE all-to-all (dispatch, combine) beyond an
    # all-reduce's start-up (MoE only; 0 = the all-reduce latency alone).
    moe_alltoall_latency_s: float = 0.0
    # Tokens in a step at which decode rows reach half-way from decode_mfu to prefill_mfu
    # (0 = decode always at decode_mfu).
    decode_mfu_half_tokens: float = 0.0
    # Share of the KV-read (attention) time that does not overlap the GEMMs (0 = one max).
    attention_serial_share: float = 0.0
    # Share of wall time the GPU computes, kept for what-if studies (1 = host work overlapped).
    gpu_busy_fraction: float = 1.0
    reserve_bytes_per_gpu: float = RESERVE_BYTES_PER_GPU
    # CUDA-graph batch sizes a decode-only step is padded up to (TensorRT-LLM PyTorch backend
    # with cuda_graph_config.enable_padding); () = no padding (a step computes its own batch).
    # A decode batch above the largest size runs eagerly, unpadded.
    graph_batch_sizes: tuple = ()
    # Host time per sequence per step of an engine whose scheduler overlaps the GPU (TensorRT-LLM
    # PyTorch backend): a step lasts at least this × its sequences (0 = off). Calibration rows
    # only (`calibrate.row_component`); designs do not set it.
    host_floor_s_per_seq: float = 0.0

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_component(cls, comp: LLMServer, **overrides) -> "ServingSpec":
        """Resolve names and factors; raise `ServingConfigError` when it cannot serve.

        ``overrides`` replace any field (e.g. ``decode_bw_efficiency=0.6``), which is how
        calibration and what-if studies change a factor without editing the data file.
        """
        try:
            model = get_model(comp.model)
            gpu = get_gpu(comp.gpu)
        except ValueError as e:  # hardware.UnknownNameError, with its suggestion
            raise ServingConfigError(f"{comp.id}: {e}") from None
        pp = getattr(comp, "pipeline_stages", 1) or 1
        n = comp.gpus_per_replica
        if n % pp:
            raise ServingConfigError(
                f"{comp.id}: gpus_per_replica {n} is not a multiple of pipeline_stages {pp}; each "
                f"stage needs the same number of GPUs (e.g. gpus_per_replica {pp * max(1, n // pp)})",
                "pipeline_stages")
        tp = n // pp
        ep = getattr(comp, "expert_parallel", None) or 1
        compute = _compute_precision(comp, model, gpu)
        kv_prec = comp.kv_cache_precision
        if kv_prec == "fp4" and not gpu.has_fp4:
            raise ServingConfigError(
                f"{comp.id}: kv_cache_precision fp4 (NVFP4) needs Blackwell FP4 support; {gpu.name} "
                f"has none: use kv_cache_precision fp8, or gpu B200-180GB / GB200-186GB", "kv_cache_precision")
        # Expert parallelism runs attention data-parallel over the ep GPUs (each holds its own
        # sequences and a copy of the non-expert weights) and tensor-parallel over tp/ep.
        a_tp = tp // ep if ep > 1 and tp % ep == 0 else tp
        rep = 1.0
        if a_tp > 1:  # KV heads (or the MLA latent) replicated on the ranks that share them
            rep = float(a_tp) if model.is_mla else max(1.0, a_tp / model.kv_heads)
        mfu_ratio = factor("mfu_ratio@fp4") if compute == "fp4" else 1.0
        cross = n > gpu.gpus_per_node
        spec = cls(
            component_id=comp.id, model=model, gpu=gpu, gpus=n,
            precision=comp.precision, kv_precision=kv_prec,
            bytes_per_param=BYTES_PER_PARAM[comp.precision],
            peak_flops_per_gpu=gpu.peak_tflops(compute) * 1e12,
            hbm_bytes_per_gpu=gpu.hbm_gb * 1e9,
            bw_bytes_per_s_per_gpu=gpu.hbm_bandwidth_tbps * 1e12,
            kv_bytes_per_token=model.kv_bytes_per_token(KV_BYTES_PER_ELEM[kv_prec]) * rep,
            gpu_memory_utilization=comp.gpu_memory_utilization,
            max_batch=comp.max_batch, chunked_prefill_tokens=comp.chunked_prefill_tokens,
            prefix_cache_hit_ratio=comp.prefix_cache_hit_ratio,
            decode_bw_efficiency=_gpu_factor("decode_bw_efficiency", gpu),
            prefill_mfu=factor("prefill_mfu") * mfu_ratio, decode_mfu=factor("decode_mfu") * mfu_ratio,
            moe_expert_half_tokens=_gpu_factor("moe_expert_half_tokens", gpu) if model.is_moe else 0.0,
            moe_expert_max_penalty=_gpu_factor("moe_expert_max_penalty", gpu),
            moe_expert_base_penalty=_gpu_factor("moe_expert_base_penalty", gpu) if model.is_moe else 0.0,
            moe_routing_flops_per_elem=_gpu_factor("moe_routing_flops_per_elem", gpu) if model.is_moe else 0.0,
            # Fitted on quantised (FP8/NVFP4) MoE rows only; 16-bit experts (Mixtral BF16 on vLLM,
            # held out) read at the dense efficiency.
            moe_expert_bw_efficiency=(_gpu_factor("moe_expert_bw_efficiency", gpu)
                                      if model.is_moe and comp.precision not in ("bf16", "fp16") else 0.0),
            moe_alltoall_latency_s=_gpu_factor("moe_alltoall_latency_us", gpu) / 1e6 if model.is_moe else 0.0,
            iteration_overhead_s=factor("iteration_overhead_ms") / 1e3,
            compute_precision=compute, tp=tp, pp=pp, ep=ep,
            link_bytes_per_s=gpu.intra_node_gb_s * 1e9,
            inter_node_bytes_per_s=(gpu.inter_node_gb_s if cross else gpu.intra_node_gb_s) * 1e9,
            allreduce_latency_s=factor("allreduce_latency_us") / 1e6,
            allreduce_bus_efficiency=factor("allreduce_bus_efficiency"),
            p2p_latency_s=factor("p2p_latency_us") / 1e6,
            prefill_mfu_half_tokens=factor("prefill_mfu_half_tokens"),
            decode_mfu_half_tokens=factor("decode_mfu_half_tokens"),
            attention_serial_share=factor("attention_serial_share"),
            kv_memory_basis=getattr(comp, "kv_memory_basis", "total"),
            kv_replication=rep,
        )
        if overrides:
            spec = replace(spec, **overrides)
        spec._check_parallelism()
        spec._check_fits()
        return spec

    def _check_parallelism(self) -> None:
        m, g, tp, pp, ep = self.model, self.gpu, self.tp, self.pp, self.ep
        cid = self.component_id
        if tp > g.gpus_per_node:
            stages = math.ceil(tp / g.gpus_per_node)
            while self.gpus % stages or m.q_heads % (self.gpus // stages):
                stages += 1
            raise ServingConfigError(
                f"{cid}: tensor parallelism over {tp} GPUs spans nodes: a {g.name} node has "
                f"{g.gpus_per_node} GPUs on {g.intra_node_link} ({g.intra_node_gb_s:g} GB/s each way) and "
                f"nodes talk over {g.inter_node_gb_s:g} GB/s per GPU, so every layer's all-reduces "
                f"would cross the network; use pipeline_stages: {stages} "
                f"({self.gpus // stages} GPUs of tensor parallelism per stage, inside one node)",
                "gpus_per_replica")
        if m.q_heads % tp:
            raise ServingConfigError(
                f"{cid}: tensor parallelism {tp} does not divide {m.name}'s {m.q_heads} attention "
                f"heads; tensor parallelism needs one of {', '.join(str(t) for t in self._valid_tp())}",
                "gpus_per_replica")
        if pp > m.layers:
            raise ServingConfigError(
                f"{cid}: pipeline_stages {pp} exceeds {m.name}'s {m.layers} layers", "pipeline_stages")
        if ep > 1:
            if not m.is_moe:
                raise ServingConfigError(
                    f"{cid}: expert_parallel {ep} is for mixture-of-experts models; {m.name} is dense: "
                    f"leave expert_parallel empty", "expert_parallel")
            if m.experts % ep or tp % ep:
                ok = [d for d in range(2, tp + 1) if m.experts % d == 0 and tp % d == 0]
                raise ServingConfigError(
                    f"{cid}: expert_parallel {ep} must divide {m.name}'s {m.experts} experts and the "
                    f"{tp} GPUs of a pipeline stage; use one of {', '.join(map(str, ok)) or 'none (leave it empty)'}",
                    "expert_parallel")

    def _check_fits(self) -> None:
        if self.kv_capacity_tokens < 1:
            raise ServingConfigError(self._no_fit_message(), "gpus_per_replica")

    def _valid_tp(self) -> list[int]:
        return [t for t in _TP_CANDIDATES if self.model.q_heads % t == 0 and t <= self.gpu.gpus_per_node]

    def _usable_bytes(self, gpus: int, weights_bytes: float = 0.0) -> float:
        """Bytes of KV pool left on ``gpus`` GPUs after ``weights_bytes`` (per `kv_memory_basis`)."""
        u = self.gpu_memory_utilization
        if self.kv_memory_basis == "free":
            return u * (gpus * (self.hbm_bytes_per_gpu - self.reserve_bytes_per_gpu) - weights_bytes)
        return gpus * (self.hbm_bytes_per_gpu * u - self.reserve_bytes_per_gpu) - weights_bytes

    def _min_gpus(self, weights_bytes: float) -> int | None:
        for t in self._valid_tp():
            if self._usable_bytes(t, weights_bytes) > 0:
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
        if n is None:  # no TP degree inside one node holds it: pipeline stages across nodes
            per_node = self._usable_bytes(self._valid_tp()[-1]) if self._valid_tp() else 0
            if per_node > 0:
                stages = math.ceil(w / per_node)
                tips.append(f"pipeline_stages {stages} with gpus_per_replica {stages * self._valid_tp()[-1]} "
                            f"({self._valid_tp()[-1]} GPUs per stage, one node each)")
        return head + ("; use " + " or ".join(tips) if tips else "; no tensor-parallel degree of this GPU fits it")

    # --- memory --------------------------------------------------------------------------

    @property
    def _non_expert_params(self) -> float:
        return max(0.0, self.model.params_total_b * 1e9 - self.model.routed_expert_params)

    @property
    def weights_bytes(self) -> float:
        """All weights of one replica: total parameters × bytes per parameter, plus the copies of
        the non-expert weights that attention data parallelism keeps (expert parallelism)."""
        copies = (self.ep - 1) * self._non_expert_params if self.ep > 1 else 0.0
        return self.model.weight_bytes(self.bytes_per_param) + copies * self.bytes_per_param

    @property
    def weights_bytes_per_gpu(self) -> float:
        return self.weights_bytes / self.gpus

    @property
    def kv_capacity_bytes(self) -> float:
        return self._usable_bytes(self.gpus, self.weights_bytes)

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens of KV cache one replica holds after weights and the per-GPU reserve."""
        return max(0, int(self.kv_capacity_bytes // self.kv_bytes_per_token))

    def kv_tokens_of(self, prompt_tokens: float, output_tokens: float) -> float:
        """KV tokens reserved for one sequence (sliding-window layers keep only the window)."""
        return self.model.kv_tokens(prompt_tokens + output_tokens)

    # --- time ----------------------------------------------------------------------------

    @property
    def _peak_flops(self) -> float:
        return self.gpus * self.peak_flops_per_gpu

    @property
    def _bandwidth(self) -> float:
        return self.gpus * self.bw_bytes_per_s_per_gpu * self.decode_bw_efficiency

    @property
    def _slowdown(self) -> float:
        """Multiplier on GPU time for host work that does not overlap it (what-if only)."""
        return 1.0 / self.gpu_busy_fraction

    def weights_read_bytes(self, tokens: float, effective: bool = False) -> float:
        """Weight bytes one forward pass over ``tokens`` tokens reads (MoE: experts routed to).

        ``effective``: the routed experts' bytes scaled by decode_bw_efficiency /
        moe_expert_bw_efficiency (grouped-GEMM weight streams reach another share of HBM bandwidth
        than dense GEMMs), i.e. the bytes at ``decode_bw_efficiency`` that take as long (what
        `memory_s` charges)."""
        m = self.model
        if not m.is_moe or tokens <= 0:
            return self.weights_bytes
        expert_params = m.routed_expert_params
        shared = self._non_expert_params * max(1, self.ep)
        # Expected share of experts hit when `tokens` tokens each pick k of E (uniform routing).
        hit = 1 - (1 - m.experts_per_token / m.experts) ** tokens
        slow = (self.decode_bw_efficiency / self.moe_expert_bw_efficiency
                if effective and self.moe_expert_bw_efficiency > 0 else 1.0)
        return (shared + expert_params * hit * slow) * self.bytes_per_param

    def moe_scale(self, step_tokens: float) -> float:
        """Compute multiplier of an MoE step: the routed experts' grouped GEMMs see only
        t = T·k/E tokens each and lose 1 − t/(t + t½) of their rate, the extra bounded at
        ``moe_expert_max_penalty`` × (a small step is memory-bound anyway: its expert weights are
        read for a few tokens, which the memory term charges), plus ``moe_expert_base_penalty`` ×
        at any t (routing, token permutation, load imbalance: published MoE prefill stays far
        below dense MFU at thousands of tokens per expert):
        routed compute × (1 + base + min(P, t½/t)); plus the routing work, a cost per routed copy
        of a token (``moe_routing_flops_per_elem`` r FLOP-equivalents per hidden element, so it
        weighs k·hidden·layers against 2·active params: heavy for many small experts, Qwen3-30B,
        light for one big one, Llama 4 Scout): + r·k·hidden·L_moe / (2·active)."""
        m, h, c = self.model, self.moe_expert_half_tokens, self.moe_expert_base_penalty
        if not m.is_moe or (h <= 0 and c <= 0 and self.moe_routing_flops_per_elem <= 0) or step_tokens <= 0:
            return 1.0
        routed = 3 * m.hidden * m.ffn_intermediate * m.experts_per_token * m.n_moe_layers
        share = routed / (m.params_active_b * 1e9)
        per_expert = step_tokens * m.experts_per_token / m.experts
        route = (self.moe_routing_flops_per_elem * m.experts_per_token * m.hidden * m.n_moe_layers
                 / (2 * m.params_active_b * 1e9))
        return 1 + route + share * (c + min(self.moe_expert_max_penalty, h / per_expert))

    def attention_flops(self, new_tokens: float, cached_tokens: float = 0.0) -> float:
        """Causal attention FLOPs of ``new_tokens`` appended after ``cached_tokens``."""
        m = self.model
        pairs = new_tokens * cached_tokens + new_tokens * new_tokens / 2
        if m.sliding_window:  # local layers see at most the window; global layers everything
            local = min(pairs, new_tokens * m.sliding_window)
            pairs = (m.global_layers * pairs + (m.layers - m.global_layers) * local) / m.layers
        d = m.head_dim + (m.qk_rope_head_dim or 0)
        return 4 * m.layers * m.q_heads * d * pairs  # QKᵀ and AV, 2 FLOPs per MAC

    def prefill_flops_s(self, tokens: float, cached_tokens: float = 0.0) -> float:
        """GPU compute time of prefilling ``tokens`` prompt tokens at full-size GEMMs (no
        overhead, no communication; `iteration_s` applies the MFU of the step's token count)."""
        flops = 2 * self.model.params_active_b * 1e9 * tokens + self.attention_flops(tokens, cached_tokens)
        return flops / (self._peak_flops * self.prefill_mfu)

    def mfu_scale(self, step_tokens: float) -> float:
        """Prefill-time multiplier at ``step_tokens`` tokens in the step: (T + T½) / T."""
        h = self.prefill_mfu_half_tokens
        return (step_tokens + h) / step_tokens if h > 0 and step_tokens > 0 else 1.0

    def prefill_s(self, tokens: float, cached_tokens: float = 0.0) -> float:
        """A lone prompt's prefill: compute at its own token count plus its communication."""
        return (self.prefill_flops_s(tokens, cached_tokens) * self.mfu_scale(tokens) * self.moe_scale(tokens)
                + self.comm_s(tokens, 1)) * self._slowdown

    # communication ----------------------------------------------------------------------

    @property
    def attention_tp(self) -> int:
        """GPUs one sequence's attention is split over: tp, or tp/ep with expert parallelism."""
        return self.tp // self.ep if self.ep > 1 else self.tp

    def allreduce_s(self, tokens: float) -> float:
        """One ring all-reduce of ``tokens`` hidden vectors over the attention-TP group:
        latency + 2(g − 1)/g × tokens × hidden × 2 B / (link bandwidth × bus efficiency)."""
        g = self.attention_tp
        if g <= 1 or tokens <= 0:
            return 0.0
        if self.ep > 1:
            tokens = tokens / self.ep  # each data-parallel group holds 1/ep of the tokens
        msg = tokens * self.model.hidden * ACT_BYTES
        bw = self.link_bytes_per_s * self.allreduce_bus_efficiency
        return self.allreduce_latency_s + 2 * (g - 1) / g * msg / bw

    def alltoall_s(self, tokens: float) -> float:
        """Expert-parallel dispatch + combine in one MoE layer: each GPU sends its T/ep tokens to
        the GPUs of their min(k, ep) experts, (ep − 1)/ep of them elsewhere, and gets them back;
        each of the two pays an all-reduce's start-up plus ``moe_alltoall_latency_s`` (the
        collective waits for every rank of the attention-data-parallel group: fitted per GPU
        generation, 0 on Hopper)."""
        if self.ep <= 1 or tokens <= 0:
            return 0.0
        m = self.model
        msg = tokens / self.ep * min(m.experts_per_token, self.ep) * m.hidden * ACT_BYTES * (self.ep - 1) / self.ep
        bw = self.link_bytes_per_s * self.allreduce_bus_efficiency
        return 2 * (self.allreduce_latency_s + self.moe_alltoall_latency_s + msg / bw)

    def p2p_s(self, tokens: float) -> float:
        """One pipeline hand-over of ``tokens`` activations to the next stage."""
        if self.pp <= 1 or tokens <= 0:
            return 0.0
        return self.p2p_latency_s + tokens * self.model.hidden * ACT_BYTES / self.inter_node_bytes_per_s

    def comm_s(self, tokens: float, seqs: float) -> float:
        """Communication of one round over ``tokens`` tokens of ``seqs`` sequences.

        A round is pp stage-times of one micro-batch (T/m tokens): over its pp stages that is
        every layer's all-reduces (two per layer — after attention and after the MLP — or one
        when the MoE layer dispatches over expert parallelism instead), the MoE all-to-alls and
        pp − 1 hand-overs."""
        if tokens <= 0:
            return 0.0
        t = tokens / self.microbatches(seqs)
        mod = self.model
        n_moe = mod.n_moe_layers if self.ep > 1 else 0
        return ((2 * mod.layers - n_moe) * self.allreduce_s(t) + n_moe * self.alltoall_s(t)
                + (self.pp - 1) * self.p2p_s(t))

    def microbatches(self, seqs: float) -> int:
        """Micro-batches a round is split into: min(pp, sequences), at least 1."""
        return max(1, min(self.pp, math.ceil(seqs))) if self.pp > 1 else 1

    def bubble(self, seqs: float) -> float:
        """Share of a round the pipeline stages idle: 1 − m/pp."""
        return 1 - self.microbatches(seqs) / self.pp

    def host_s(self, seqs: float) -> float:
        """Host time per step that does not overlap the GPU: scheduler + per-sequence work."""
        return self.iteration_overhead_s + self.host_overhead_s_per_seq * seqs

    # iterations ---------------------------------------------------------------------------

    def memory_s(self, weight_tokens: float, kv_tokens_read: float, seqs: float) -> float:
        """Memory time of a round: pp × (stage weights + a micro-batch's KV) per stage, i.e.
        pp · (W_read(T/m) + KV/m) / (g·BW·η) — each micro-batch re-reads its stage's weights."""
        m_b = self.microbatches(seqs)
        return (self.pp * (self.weights_read_bytes(weight_tokens / m_b, effective=True)
                           + kv_tokens_read * self.kv_bytes_per_token / m_b) / self._bandwidth)

    def serial_kv_s(self, kv_tokens_read: float, seqs: float) -> float:
        """The part of `memory_s`'s KV reads that runs outside the max(memory, compute):
        σ · pp · KV/m / (g·BW·η) (attention kernels between the GEMMs)."""
        sig = self.attention_serial_share
        if sig <= 0 or kv_tokens_read <= 0:
            return 0.0
        return sig * (self.pp * (kv_tokens_read * self.kv_bytes_per_token / self.microbatches(seqs))) / self._bandwidth

    def compute_scale(self, seqs: float) -> float:
        """pp/m: a pipeline with m < pp micro-batches computes on m/pp of its GPUs at a time."""
        return self.pp / self.microbatches(seqs)

    def iteration_s(self, decode_batch: int, kv_tokens_read: float,
                    prefill_tokens: float = 0.0, prefill_flops_s: float | None = None,
                    prefill_seqs: int | None = None) -> float:
        """Wall time of one engine iteration: ``decode_batch`` sequences decode one token each
        while reading ``kv_tokens_read`` KV tokens, and ``prefill_tokens`` prompt tokens (of
        ``prefill_seqs`` prompts, one by default) are prefilled (their compute time
        ``prefill_flops_s`` from `prefill_flops_s`, which includes attention; computed without
        attention when omitted)."""
        if prefill_flops_s is None:
            prefill_flops_s = self.prefill_flops_s(prefill_tokens) if prefill_tokens else 0.0
        seqs = decode_batch + ((prefill_seqs or 1) if prefill_tokens else 0)
        tokens = decode_batch + prefill_tokens
        serial = self.serial_kv_s(kv_tokens_read, seqs)
        mem = self.memory_s(tokens, kv_tokens_read, seqs) - serial
        pf = prefill_flops_s * self.mfu_scale(tokens) if prefill_tokens else 0.0
        if prefill_tokens or not self.graph_batch_sizes:
            comp = (self.decode_flops_s(decode_batch, tokens) + pf) * self.compute_scale(seqs) * self.moe_scale(tokens)
            comm = self.comm_s(tokens, seqs)
        else:  # a decode-only step replays a CUDA graph padded to the next captured batch size
            g = self.graph_batch(decode_batch)
            comp = self.decode_flops_s(g) * self.compute_scale(seqs) * self.moe_scale(g)
            comm = self.comm_s(g, seqs)
        gpu = (max(mem, comp) + serial + comm) * self._slowdown
        if self.host_floor_s_per_seq:
            gpu = max(gpu, self.host_floor_s_per_seq * seqs)
        return gpu + self.host_s(seqs)

    def graph_batch(self, batch: float) -> float:
        """Rows a decode-only step of ``batch`` sequences computes: the smallest captured CUDA
        graph size ≥ batch when `graph_batch_sizes` is set (padding rows run through every GEMM
        and all-reduce but read no KV), else the batch itself."""
        sizes = self.graph_batch_sizes
        if not sizes or batch <= 0 or batch > sizes[-1]:
            return batch
        return float(sizes[bisect.bisect_left(sizes, batch)])

    def decode_mfu_at(self, step_tokens: float) -> float:
        """MFU of the decode rows of a step of ``step_tokens`` tokens (they share its GEMMs):
        decode_mfu + (prefill_mfu − decode_mfu) · T/(T + T_d)."""
        h = self.decode_mfu_half_tokens
        if h <= 0 or step_tokens <= 0:
            return self.decode_mfu
        return self.decode_mfu + (self.prefill_mfu - self.decode_mfu) * (step_tokens / (step_tokens + h))

    def decode_flops_s(self, batch: float, step_tokens: float | None = None) -> float:
        """GPU compute time of ``batch`` decode tokens in a step of ``step_tokens`` tokens
        (default: a pure decode step, ``batch`` tokens)."""
        t = batch if step_tokens is None else step_tokens
        return 2 * self.model.params_active_b * 1e9 * batch / (self._peak_flops * self.decode_mfu_at(t))

    def decode_step_s(self, batch: int, kv_tokens_total: float) -> float:
        """One decode iteration of ``batch`` sequences holding ``kv_tokens_total`` KV tokens."""
        return self.iteration_s(batch, kv_tokens_total)

    def decode_bound(self, batch: int, kv_tokens_total: float) -> str:
        mem = self.memory_s(batch, kv_tokens_total, batch) - self.serial_kv_s(kv_tokens_total, batch)
        g = self.graph_batch(batch)
        comp = self.decode_flops_s(g) * self.compute_scale(batch) * self.moe_scale(g)
        return "memory" if mem >= comp else "compute"


def _gpu_factor(key: str, gpu: GPU) -> float:
    """A factor fitted per GPU when efficiency.csv has ``key@GPU``, else the global one."""
    try:
        return factor(f"{key}@{gpu.name}")
    except ValueError:
        return factor(key)


def _compute_precision(comp: LLMServer, model: ModelSpec, gpu: GPU) -> str:
    """The math the matmuls run in (W×A), refused with a suggestion when the GPU lacks it."""
    w = comp.precision
    a = getattr(comp, "activation_precision", "auto") or "auto"
    if a == "auto":
        a = DEFAULT_COMPUTE[w]
        if w == "mxfp4" and not gpu.has_fp4:
            a = "bf16"  # MXFP4 weights dequantised to 16-bit where there is no FP4 math
    if a == "fp16":
        a = "bf16"
    if a == "fp4" and not gpu.has_fp4:
        field = "precision" if w == "fp4" else "activation_precision"
        raise ServingConfigError(
            f"{comp.id}: {'precision fp4 (NVFP4 weights and activations)' if w == 'fp4' else 'activation_precision fp4'} "
            f"needs FP4 tensor cores; {gpu.name} has none (Blackwell B200-180GB and GB200-186GB do): use "
            f"precision fp8" + (" (W8A8)" if gpu.has_fp8 else "") + ", int4 (W4A16, AWQ/GPTQ) or a Blackwell gpu",
            field)
    if a == "fp8" and not gpu.has_fp8:
        raise ServingConfigError(
            f"{comp.id}: activation_precision fp8 needs FP8 tensor cores; {gpu.name} has none: use "
            f"activation_precision auto (FP8 weights then run as W8A16) or int8", "activation_precision")
    if a in ("fp4",) and w in ("bf16", "fp16", "fp8", "int8"):
        raise ServingConfigError(
            f"{comp.id}: activation_precision fp4 with {w} weights is not a serving kernel; FP4 "
            f"math needs FP4 weights: use precision fp4", "activation_precision")
    return a


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
