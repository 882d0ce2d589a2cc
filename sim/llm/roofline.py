"""Roofline maths of one `llm_server` replica: memory, KV capacity, step times, estimates.

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

The analytic twin (`llm_estimate`, `llm_service_moments`) runs the same iteration arithmetic
in the mean: sequences in the batch (length-biased towards long outputs), iterations per second
as a fixed point of decode steps and prefill-carrying iterations, Little's law for the batch at
a given load. Against the batching simulation on the serving library workload it lands within
~10 % on max throughput and TPOT up to ~90 % load; TTFT near saturation is underestimated
(prefill lumps queue behind each other), which is why `sdw run` exists.

Mixture-of-experts: compute uses active parameters; the weights read per step are the shared
weights plus the experts the step's tokens actually route to (all of them at large batch,
``k/E`` of them for a single token), so memory never uses less than the active parameters
nor more than the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from components.catalogue import LLMServer
from components.hardware import BYTES_PER_PARAM, GPU, ModelSpec, factor, get_gpu, get_model

__all__ = [
    "ServingSpec",
    "ServingConfigError",
    "TokenMoments",
    "token_moments",
    "llm_estimate",
    "llm_service_moments",
    "RESERVE_BYTES_PER_GPU",
    "TARGET_LOAD",
]

# Per-GPU memory the engine keeps outside weights and KV: CUDA context, CUDA graphs, NCCL
# buffers and peak activations of one forward pass. Assumption: vLLM's start-up memory
# profile shows roughly 1-3 GB of such non-KV, non-weight memory per GPU for 7B-70B models;
# 2 GB is the middle of that range.
RESERVE_BYTES_PER_GPU = 2e9
# Plan replicas so the peak rate uses at most this share of max throughput (issue 4: ≤ 80 %).
TARGET_LOAD = 0.8
KV_BYTES_PER_ELEM = {"bf16": 2, "fp16": 2, "fp8": 1}
# Tensor-parallel degrees serving engines accept: they must divide the attention heads.
_TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)


class ServingConfigError(ValueError):
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


# --- the analytic view ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Operating:
    """Saturation figures of one replica at the workload's mean lengths."""

    spec: ServingSpec
    prompt: float
    output: float
    prefill_tokens: float  # after the prefix cache
    seqs: int  # max concurrent sequences
    step_s: float  # decode step at that batch, KV of a mean sequence half-way through
    kv_hold: float  # KV tokens reserved per sequence in the batch (length-biased P + O)
    kv_read: float  # KV tokens read per sequence per decode step (length-biased P + O/2)
    prefill_s: float  # compute of one mean prompt inside a mixed iteration
    prefill_alone_s: float  # iteration that prefills one mean prompt on an idle replica
    mixed_step_s: float  # mean iteration at saturation (decode of `seqs`, prefill of newcomers)
    max_rps: float


def _iterations(spec: ServingSpec, batch: int, kv_read: float, rate: float,
                prefill_tokens: float, prefill_flops_s: float) -> tuple[float, float, float, float]:
    """Iterations per second of a replica decoding ``batch`` sequences while ``rate`` new
    prompts/s arrive: (iterations/s, prefill-iteration s, prefill iterations/s, decode step s).

    The engine admits at the start of each iteration the prompts that arrived during the
    previous one, so with ``I`` iterations per second a share ``q = 1 − exp(−rate/I)`` of them
    carry prefill (all the prompts that arrived meanwhile, at most ``chunked_prefill_tokens``
    tokens each iteration). Those take max(memory, decode + prefill compute), the rest are
    plain decode steps, and together they fill one second: a fixed point in ``I``.
    """
    step = spec.decode_step_s(batch, kv_read)
    if rate <= 0:
        return 1 / step, step, 0.0, step
    chunk = spec.chunked_prefill_tokens
    tokens_s = rate * prefill_tokens
    compute_s = rate * prefill_flops_s
    it = 1 / step
    t_pf = step
    n_pf = 0.0
    for _ in range(40):
        q = 1 - math.exp(-rate / it)
        n_pf = min(it, max(it * q, tokens_s / chunk if chunk else 0.0))
        t_pf = spec.iteration_s(batch, kv_read, tokens_s / n_pf, compute_s / n_pf)
        n_dec = max(0.0, (1 - n_pf * t_pf) / step)
        it = 0.5 * it + 0.5 * max(n_pf + n_dec, 1e-9)
    return it, t_pf, n_pf, step


def _operating_point(comp: LLMServer, workload, overrides: dict | None = None) -> _Operating:
    spec = ServingSpec.from_component(comp, **(overrides or {}))
    tm = token_moments(workload)
    prompt, output = tm.prompt_mean, tm.output_mean
    if prompt < 1 or output < 1:
        raise ServingConfigError(
            f"{comp.id}: the workload's mean prompt is {prompt:g} tokens and mean output "
            f"{output:g} tokens; an LLM request needs at least 1 of each")
    ctx = spec.model.max_context_tokens
    if prompt + output > ctx:
        raise ServingConfigError(
            f"{comp.id}: a mean request of {prompt:.0f} prompt + {output:.0f} output tokens "
            f"exceeds {spec.model.name}'s {ctx:,}-token context")
    per_seq = spec.kv_tokens_of(prompt, output)
    cap = spec.kv_capacity_tokens
    if per_seq > cap:
        raise ServingConfigError(
            f"{comp.id}: one sequence of {prompt:.0f} + {output:.0f} tokens needs "
            f"{per_seq * spec.kv_bytes_per_token / 1e9:.1f} GB of KV cache "
            f"({spec.kv_bytes_per_token:,.0f} B/token); {spec.gpus} × {spec.gpu.name} leaves "
            f"{spec.kv_capacity_bytes / 1e9:.1f} GB ({cap:,} tokens) after "
            f"{spec.weights_bytes / 1e9:.1f} GB of weights; add GPUs per replica, use fp8 KV "
            f"cache or shorter requests")
    # Sequences in the batch are the long-output ones more often than arrivals are, and each is
    # on average half-way through its output when a step reads its KV.
    hold = max(per_seq, spec.kv_tokens_of(tm.in_batch(1.0), 0))
    read1 = spec.kv_tokens_of(tm.in_batch(0.5), 0)
    seqs = max(1, min(spec.max_batch, int(cap // hold)))
    prefill_tokens = max(1.0, prompt * (1 - spec.prefix_cache_hit_ratio))
    cached = prompt - prefill_tokens
    kv_read = seqs * read1
    step = spec.decode_step_s(seqs, kv_read)
    pf = spec.prefill_flops_s(prefill_tokens, cached)
    prefill_alone = spec.iteration_s(0, 0, prefill_tokens, pf)
    # Saturation: every iteration decodes `seqs` sequences and retires seqs/output of them on
    # average; the iterations that follow a retirement prefill the newcomers (see _iterations).
    per_iter = seqs / output
    rate = per_iter / step
    for _ in range(60):  # damped fixed point: rate = iterations/s × retirements per iteration
        it, _, _, _ = _iterations(spec, seqs, kv_read, rate, prefill_tokens, pf)
        rate = 0.5 * rate + 0.5 * it * per_iter
    it, _, _, _ = _iterations(spec, seqs, kv_read, rate, prefill_tokens, pf)
    mixed = 1 / it
    max_rps = per_iter * it
    return _Operating(spec, prompt, output, prefill_tokens, seqs, step, hold, read1,
                      pf * spec._slowdown, prefill_alone, mixed, max_rps)


def llm_service_moments(comp: LLMServer, workload, overrides: dict | None = None,
                        arrival_rps: float | None = None) -> tuple[float, float, int]:
    """(mean service s, service SCV, servers): an M/G/c view of the whole `llm_server`.

    Without ``arrival_rps``: servers are the sequence slots, ``replicas × max concurrent
    sequences``, each held for ``output`` saturated iterations (whose length includes the
    prefill of the prompts entering meanwhile), so ``servers / mean`` is exactly the replicas'
    max request rate — but the mean is the *saturated* latency, pessimistic at light load.

    With ``arrival_rps`` (requests/s reaching the component): the mean is a request's TTFT +
    output × TPOT at that load, and the server count is chosen so that ``servers / mean`` is
    still the max request rate — the M/G/c then has the right utilisation *and* the right
    response time at that load. The SCV comes from the output-length spread.
    """
    op = _operating_point(comp, workload, overrides)
    tm = token_moments(workload)
    scv = tm.output_var / (tm.output_mean ** 2) if tm.output_mean else 0.0
    capacity_rps = comp.replicas * op.max_rps
    if arrival_rps is not None and 0 < arrival_rps < capacity_rps:
        _, _, ttft, tpot = _at_load(op, arrival_rps / comp.replicas)
        mean_s = ttft + (op.output - 1) * tpot
        return mean_s, scv, max(comp.replicas, round(capacity_rps * mean_s))
    return op.output * op.mixed_step_s, scv, comp.replicas * op.seqs


def _at_load(op: _Operating, per_replica: float) -> tuple[int, float, float, float]:
    """(sequences in flight, decode step s, TTFT s, TPOT s) of a replica at this request rate.

    TPOT is one second over the iterations run in it (`_iterations`); TTFT is the residual of
    the running, length-biased iteration (E[τ²] / 2E[τ]) plus the prompt's own prefill
    iterations; the batch follows from Little's law, N = λ·(TTFT + (output − 1)·TPOT).
    """
    spec = op.spec
    lam = per_replica
    if lam < op.max_rps:
        chunk = spec.chunked_prefill_tokens
        own_chunks = max(1, math.ceil(op.prefill_tokens / chunk)) if chunk else 1
        pf = op.prefill_s / spec._slowdown

        def figures(b: int):
            it, t_pf, n_pf, step = _iterations(spec, b, b * op.kv_read, lam, op.prefill_tokens, pf)
            n_dec = max(0.0, it - n_pf)
            residual = (n_pf * t_pf ** 2 + n_dec * step ** 2) / 2  # Σ τ = 1 s
            return step, residual + own_chunks * t_pf, 1 / it

        lo, hi = 0.0, float(op.seqs)
        for _ in range(40):  # bisection on the monotone fixed point of Little's law
            n = (lo + hi) / 2
            _, ttft, tpot = figures(max(1, round(n)))
            if lam * (ttft + (op.output - 1) * tpot) > n:
                lo = n
            else:
                hi = n
        b = max(1, round(hi))
        step, ttft, tpot = figures(b)
        return b, step, ttft, tpot
    # Saturated: the queue grows; report a request's own figures once it holds a slot.
    b = op.seqs
    kv = b * op.kv_read
    ttft = 0.5 * op.mixed_step_s + spec.iteration_s(b, kv, op.prefill_tokens, op.prefill_s / spec._slowdown)
    return b, op.step_s, ttft, op.mixed_step_s


def llm_estimate(comp: LLMServer, workload, arrival_rps: float, overrides: dict | None = None):
    """The analytic twin of one `llm_server` at ``arrival_rps`` (requests/s reaching it).

    ``overrides`` replace `ServingSpec` fields (efficiency factors) for what-if studies."""
    from sim.results import LLMEstimate  # sim.results is plain pydantic; keep import local

    op = _operating_point(comp, workload, overrides)
    spec = op.spec
    gb = 1e9
    max_tok_s = op.max_rps * op.output
    needed = max(1, math.ceil(arrival_rps / (TARGET_LOAD * op.max_rps))) if arrival_rps > 0 else 1
    per_replica = arrival_rps / comp.replicas
    b, step, ttft, tpot = _at_load(op, per_replica)
    bound = spec.decode_bound(op.seqs, op.seqs * op.kv_read)
    cap = spec.kv_capacity_tokens
    per_seq = spec.kv_tokens_of(op.prompt, op.output)
    ex = [
        f"weights: {spec.model.params_total_b:g} B params × {spec.bytes_per_param:g} B "
        f"({spec.precision}) = {spec.weights_bytes / gb:.2f} GB, {spec.weights_bytes_per_gpu / gb:.2f} GB "
        f"on each of {spec.gpus} × {spec.gpu.name}",
        f"KV per token: 2 × {spec.model.layers} layers × {spec.model.kv_heads} KV heads × "
        f"{spec.model.head_dim} × {KV_BYTES_PER_ELEM[spec.kv_precision]} B ({spec.kv_precision}) = "
        f"{spec.kv_bytes_per_token:,.0f} B",
        f"KV capacity: ({spec.gpus} × {spec.gpu.hbm_gb:g} GB × {spec.gpu_memory_utilization:g} − "
        f"{spec.weights_bytes / gb:.2f} GB weights − {spec.gpus} × {spec.reserve_bytes_per_gpu / gb:g} GB reserve) "
        f"/ {spec.kv_bytes_per_token:,.0f} B = {cap:,} tokens",
        f"concurrent sequences: min(max_batch {spec.max_batch}, {cap:,} / {op.kv_hold:.0f} tokens "
        f"reserved per sequence in the batch) = {op.seqs}"
        + (f" (mean request {op.prompt:.0f} + {op.output:.0f} tokens; long outputs stay longer, so "
           f"the batch holds {op.kv_hold:.0f} on average)" if op.kv_hold > per_seq + 0.5 else ""),
        f"decode step at batch {op.seqs}: max(({spec.weights_read_bytes(op.seqs) / gb:.2f} GB weights + "
        f"{op.seqs * op.kv_read * spec.kv_bytes_per_token / gb:.2f} GB KV) / "
        f"({spec.gpus} × {spec.gpu.hbm_bandwidth_tbps:g} TB/s × {spec.decode_bw_efficiency:g}), "
        f"2 × {spec.model.params_active_b:g} B × {op.seqs} / ({spec.gpus} × "
        f"{spec.peak_flops_per_gpu / 1e12:g} TFLOPS × {spec.decode_mfu:g}))"
        + (f" × (1 + {spec.tp_comm_overhead:g} TP)" if spec.gpus > 1 else "")
        + f" + {spec.iteration_overhead_s * 1e3:g} ms = {op.step_s * 1e3:.2f} ms ({bound}-bound)",
        f"prefill of {op.prefill_tokens:.0f} tokens"
        + (f" ({spec.prefix_cache_hit_ratio:.0%} prefix-cached)" if spec.prefix_cache_hit_ratio else "")
        + f": 2 × {spec.model.params_active_b:g} B × tokens + attention / ({spec.gpus} × "
        f"{spec.peak_flops_per_gpu / 1e12:g} TFLOPS × {spec.prefill_mfu:g}) = {op.prefill_s * 1e3:.2f} ms",
        f"saturated: {op.seqs} sequences decode while {op.seqs / op.output:.2f} new prompts per iteration "
        f"prefill, mean iteration {op.mixed_step_s * 1e3:.2f} ms → max {op.seqs} / {op.output:.0f} / "
        f"{op.mixed_step_s * 1e3:.2f} ms = "
        f"{op.max_rps:.3f} req/s = {max_tok_s:,.0f} output tok/s per replica",
        f"replicas for {arrival_rps:.3f} req/s at ≤ {TARGET_LOAD:.0%} load: ⌈{arrival_rps:.3f} / "
        f"({TARGET_LOAD:g} × {op.max_rps:.3f})⌉ = {needed} → {needed} × {spec.gpus} = "
        f"{needed * spec.gpus} GPUs (configured: {comp.replicas} × {spec.gpus} = {comp.gpus})",
    ]
    if per_replica < op.max_rps:
        ex.append(f"at {per_replica:.3f} req/s per configured replica: ~{b} sequences in flight, "
                  f"TTFT ≈ {ttft * 1e3:.1f} ms, TPOT ≈ {tpot * 1e3:.2f} ms (no queueing for a slot)")
    else:
        ex.append(f"at {per_replica:.3f} req/s per configured replica the server is saturated "
                  f"(max {op.max_rps:.3f} req/s): the queue grows without bound; TTFT ≈ "
                  f"{ttft * 1e3:.1f} ms and TPOT ≈ {tpot * 1e3:.2f} ms once a request holds a slot")
    return LLMEstimate(
        weights_gb=spec.weights_bytes / gb, kv_bytes_per_token=spec.kv_bytes_per_token,
        kv_capacity_tokens=float(cap), max_concurrent_seqs=op.seqs,
        decode_step_ms=op.step_s * 1e3, prefill_ms=op.prefill_alone_s * 1e3,
        max_output_tokens_per_s_per_replica=max_tok_s, max_requests_per_s_per_replica=op.max_rps,
        replicas_needed=needed, gpus_needed=needed * spec.gpus,
        ttft_ms_estimate=ttft * 1e3,
        tpot_ms_estimate=tpot * 1e3, bound=bound, explanation=ex,
    )
