"""Prefill/decode disaggregation of an `llm_server`: two pools and the KV hand-off between them.

With ``prefill_pool`` and ``decode_pool`` set, prefill replicas run prompts only (they produce
the first token), the prompt's KV cache crosses the link to a decode replica, and decode
replicas only decode (DistServe, Zhong et al., OSDI 2024; Splitwise, Patel et al., ISCA 2024).
A request's TTFT is the prefill pool's TTFT (queue + prefill) + the KV transfer; its TPOT is
the decode pool's, whose steps no longer carry other requests' prefills.

KV transfer time = prompt tokens × KV bytes per token / (link bandwidth per GPU × GPUs that
send in parallel), the GPUs in parallel being min(prefill TP, decode TP) (each GPU ships its
tensor-parallel shard over its own link). Link bandwidths per GPU, one direction:

* ``nvlink`` — inside one NVLink domain (same GPU type, SXM parts): H100/H200 NVLink 4
  900 GB/s total = 450 GB/s each way (NVIDIA H100 datasheet); A100 NVLink 3 600 GB/s total
  = 300 GB/s; B200 NVLink 5 1.8 TB/s total = 900 GB/s;
* ``infiniband`` — one 400 Gb/s NDR port per GPU (ConnectX-7, as in DGX H100) = 50 GB/s;
* ``ethernet`` — 100 GbE per GPU = 12.5 GB/s (assumption: a typical cloud instance NIC share).

Assumption: a fixed per-transfer latency is left out (µs against ms of transfer), and a prefill
replica frees the KV of a request as soon as its prompt is done (the transfer overlaps).

The twin (`llm_estimate_pd`) sizes each pool from one replica's roofline at the workload's
lengths: the prefill pool as an M/G/c queue of prompts, the decode pool as replicas whose steps
are plain decode steps (details above `_PrefillPool`). Usage::

    >>> from components.catalogue import LLMServer
    >>> comp = LLMServer(id="llm", model="llama-3.1-8b", prefill_pool={"replicas": 2},
    ...                  decode_pool={"replicas": 6})
    >>> round(kv_transfer_s(comp, 2000) * 1e3, 2)     # 2000 × 128 KiB over one 50 GB/s port
    5.24
"""

from __future__ import annotations

from components.hardware import get_gpu, get_model

__all__ = ["LINK_GB_PER_S", "NVLINK_GB_PER_S", "link_gb_per_s", "link_problem", "kv_transfer_s",
           "pool_components", "prefill_workload", "is_disaggregated"]

# Bandwidths and the NVLink check live with the catalogue (components may not import sim/).
from components.catalogue import LINK_GB_PER_S, NVLINK_GB_PER_S, kv_link_problem as link_problem  # noqa: E402


def is_disaggregated(comp) -> bool:
    return getattr(comp, "prefill_pool", None) is not None


def link_gb_per_s(comp) -> float:
    if comp.kv_link_gb_per_s is not None:
        return comp.kv_link_gb_per_s
    if comp.kv_link == "nvlink":
        return NVLINK_GB_PER_S[get_gpu(comp.prefill_pool.gpu).name]
    return LINK_GB_PER_S[comp.kv_link]


def kv_bytes_per_token(comp) -> float:
    from .roofline import KV_BYTES_PER_ELEM

    return get_model(comp.model).kv_bytes_per_token(KV_BYTES_PER_ELEM[comp.kv_cache_precision])


def kv_transfer_s(comp, prompt_tokens: float) -> float:
    """Seconds to move ``prompt_tokens`` tokens of KV from a prefill to a decode replica."""
    lanes = min(comp.prefill_pool.gpus_per_replica, comp.decode_pool.gpus_per_replica)
    return prompt_tokens * kv_bytes_per_token(comp) / (link_gb_per_s(comp) * 1e9 * lanes)


def pool_components(comp):
    """(prefill, decode) as plain `llm_server` components, one per pool."""
    base = comp.model_dump()
    for k in ("prefill_pool", "decode_pool"):
        base[k] = None
    out = []
    for name, pool in (("prefill", comp.prefill_pool), ("decode", comp.decode_pool)):
        d = dict(base, id=f"{comp.id}-{name}"[:64], gpu=pool.gpu, gpus_per_replica=pool.gpus_per_replica,
                 replicas=pool.replicas, gpu_hourly_usd=pool.gpu_hourly_usd)
        if name == "prefill":
            d["speculative"] = None  # drafts only help decoding
        else:
            d["prefix_cache_hit_ratio"] = 1.0  # the prompt arrives in KV: nothing to prefill
            d["routing"] = "least_outstanding_tokens"
        out.append(type(comp).model_validate(d))
    return tuple(out)


def prefill_workload(workload):
    """The workload a prefill pool sees: the same prompts, one output token each."""
    from components.distributions import FixedCount

    classes = [c.model_copy(update={"output_tokens": FixedCount(value=1), "max_output_tokens": None})
               for c in workload.request_classes()]
    return workload.model_copy(update={"classes": classes})


# --- the twin of a disaggregated server ---------------------------------------------------------
# `sim.llm.twin` calls these with its `_shape` (one replica at the workload's lengths) and
# TARGET_LOAD, so this module never imports the twin (no import circle).
#
# Prefill pool: compute-bound prompts, one after another in GPU time (an iteration of k prompts
# costs k prefills), so a replica serves prompts at S_p = prefill(P) × TP factor + iteration
# overhead each (the overhead counted per prompt: conservative); two-choice routing is close to a
# shared queue, so the pool is M/G/c with c = prefill replicas (Allen–Cunneen, the prompt-length
# spread as the service SCV). TTFT = wait + S_p (+ the KV transfer).
# Decode pool: replicas that only decode, so an iteration is a plain decode step at the batch
# (or a speculative one): τ(b) = step(b, b × KV read per sequence). A request holds a slot for
# (O − 1)/E steps (E tokens per step), so λ* = S / ((O − 1)/E × τ(S)); at λ the batch solves
# b = λ × (O − 1)/E × τ(b), and TPOT = τ(b + 1)/E. TPOT p95: the batch a request sees varies
# like an M/G/∞ occupancy (Poisson, sd √b), so τ at b + 1 + 1.645 √b — an approximation.


class _PrefillPool:
    """One prefill-only replica: service time per prompt and its variance."""

    def __init__(self, pc, workload, overrides, shape):
        sh = shape(pc, workload, overrides)
        spec = sh.spec
        self.sh, self.spec = sh, spec
        self.mean_s = sh.pf_s * spec._slowdown + spec.iteration_overhead_s
        self.var_s2 = sh.pf_var_s2 * spec._slowdown ** 2
        self.scv = self.var_s2 / self.mean_s ** 2
        self.max_rps = 1 / self.mean_s

    def at(self, lam_total: float, replicas: int) -> tuple[float, float, bool]:
        """(TTFT mean s, TTFT p95 s, saturated) with ``lam_total`` prompts/s over the pool."""
        from sim.twin import queueing as qt

        a = lam_total * self.mean_s
        if a >= replicas:
            return self.mean_s, self.mean_s + 1.645 * self.var_s2 ** 0.5, True
        w1 = qt.allen_cunneen_wait(lam_total, self.mean_s, self.scv, replicas) if lam_total > 0 else 0.0
        pw = qt.erlang_c(replicas, a) if lam_total > 0 else 0.0
        w2 = 2 * w1 * w1 / pw if pw > 0 else 0.0
        mean = w1 + self.mean_s
        var = max(0.0, w2 - w1 * w1) + self.var_s2
        return mean, (qt.gamma_quantile(0.95, mean, var) if var > 0 else mean), False


class _DecodePool:
    """Load-independent figures of one decode-only replica."""

    def __init__(self, dc, workload, overrides, shape):
        sh = shape(dc, workload, overrides)
        self.sh, self.spec, self.S, self.rate = sh, sh.spec, sh.seqs, sh.rate
        self.steps = max(1.0, (sh.output - 1) / sh.rate)
        self.max_rps = self.S / (self.steps * self.tau(self.S))

    def tau(self, b: float) -> float:
        sh, spec = self.sh, self.spec
        if b <= 0:
            return spec.iteration_overhead_s
        kv = b * sh.kv_read
        return sh.specu.step_s(spec, b, kv) if sh.specu is not None else spec.iteration_s(b, kv)

    def batch_at(self, lam: float) -> float | None:
        """Decode batch at ``lam`` requests/s per replica; None when saturated."""
        if lam >= self.max_rps:
            return None
        lo, hi = 0.0, float(self.S)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if lam * self.steps * self.tau(mid) > mid:
                lo = mid
            else:
                hi = mid
        return hi

    def moments(self, replicas: int) -> tuple[float, float, int]:
        hold = self.S / self.max_rps
        scv = (self.tau(self.S) / self.rate) ** 2 * self.sh.tm.output_var / hold ** 2
        return hold, scv, replicas * self.S


def _pools(comp, workload, overrides, shape):
    pc, dc = pool_components(comp)
    wp = prefill_workload(workload)
    return pc, dc, _PrefillPool(pc, wp, overrides, shape), _DecodePool(dc, workload, overrides, shape)


def llm_capacity_pd(comp, workload, overrides, shape) -> tuple[float, float]:
    """(max requests/s, max output tokens/s) of the WHOLE disaggregated server: the pool that
    saturates first (prefill: prompts/s; decode: sequences/s)."""
    pc, dc, pp, dp = _pools(comp, workload, overrides, shape)
    rps = min(pc.replicas * pp.max_rps, dc.replicas * dp.max_rps)
    return rps, rps * dp.sh.output


def llm_service_moments_pd(comp, workload, overrides, shape):
    """The M/G/c view of the pool that saturates first (its ρ is the server's)."""
    pc, dc, pp, dp = _pools(comp, workload, overrides, shape)
    if pc.replicas * pp.max_rps <= dc.replicas * dp.max_rps:
        return pp.mean_s, pp.scv, pc.replicas
    return dp.moments(dc.replicas)


def llm_estimate_pd(comp, workload, arrival_rps: float, overrides, shape, target_load: float):
    """TTFT = prefill pool's TTFT (queue + prefill) + KV transfer; TPOT = the decode pool's;
    each pool sized for ≤ TARGET_LOAD at ``arrival_rps``."""
    import math

    from sim.results import LLMEstimate

    TARGET_LOAD = target_load
    pc, dc, pp, dp = _pools(comp, workload, overrides, shape)
    spec, S, E = dp.spec, dp.S, dp.rate
    t_mean, t95, p_sat = pp.at(arrival_rps, pc.replicas)
    b = dp.batch_at(arrival_rps / dc.replicas)
    bb = float(S) if b is None else b
    tpot = dp.tau(min(S, bb + 1)) / E
    tpot95 = dp.tau(min(S, bb + 1 + 1.645 * math.sqrt(bb))) / E
    # A request whose KV arrived waits for a decode slot after its first token: that wait
    # stretches the gap to its second token, i.e. its TPOT by wait / (O − 1) (M/G/c on the slots).
    wd = wd95 = 0.0
    if b is not None and arrival_rps > 0:
        from sim.twin import queueing as qt

        hold, scv, c = dp.moments(dc.replicas)
        wd = qt.allen_cunneen_wait(arrival_rps, hold, scv, c)
        pw = qt.erlang_c(c, arrival_rps * hold)
        tpot += wd / max(1.0, dp.sh.output - 1)
        if wd > 0 and pw > 0:
            # p95 over requests: P(TPOT > x) = Σ_o w_o · pw · exp(−(x − τ95)(o − 1) pw / wd), the
            # wait exponential given it is positive, mixed over the output lengths.
            grid = [(w, o - 1) for w, o in dp.sh.out_grid if o > 1.5]
            tot = sum(w for w, _ in grid) or 1.0

            def tail(x: float) -> float:
                return sum(w * pw * math.exp(-max(0.0, x - tpot95) * g * pw / wd) for w, g in grid) / tot

            lo, hi = tpot95, tpot95 + 50 * wd
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if tail(mid) > 0.05 else (lo, mid)
            wd95, tpot95 = hi - tpot95, hi

    def needed(cap: float) -> int:
        return max(1, math.ceil(arrival_rps / (TARGET_LOAD * cap) - 1e-9)) if arrival_rps > 0 else 1

    p_needed, d_needed = needed(pp.max_rps), needed(dp.max_rps)
    prompt = dp.sh.prompt
    xfer = kv_transfer_s(comp, prompt)
    bw = link_gb_per_s(comp)
    lanes = min(pc.gpus_per_replica, dc.gpus_per_replica)
    ttft, ttft95 = (t_mean + xfer) * 1e3, (t95 + xfer) * 1e3  # mean transfer: assumption
    step_s = dp.tau(S)
    pspec = pp.spec
    pools = {
        "prefill": {"replicas": pc.replicas, "gpus_per_replica": pc.gpus_per_replica, "gpu": pc.gpu,
                    "replicas_needed": p_needed, "gpus_needed": p_needed * pc.gpus_per_replica,
                    "max_requests_per_s_per_replica": pp.max_rps, "ttft_ms": t_mean * 1e3, "ttft_ms_p95": t95 * 1e3},
        "decode": {"replicas": dc.replicas, "gpus_per_replica": dc.gpus_per_replica, "gpu": dc.gpu,
                   "replicas_needed": d_needed, "gpus_needed": d_needed * dc.gpus_per_replica,
                   "max_requests_per_s_per_replica": dp.max_rps, "tpot_ms": tpot * 1e3, "tpot_ms_p95": tpot95 * 1e3},
    }
    ex = [
        f"prefill pool: a {pp.sh.prefill_tokens:,.0f}-token prompt takes {pp.mean_s * 1e3:.1f} ms of {pc.gpus_per_replica} × "
        f"{pspec.gpu.name} (2 × {pspec.model.params_active_b:g} B × tokens + attention at MFU {pspec.prefill_mfu:g}, "
        f"+ {pspec.iteration_overhead_s * 1e3:g} ms overhead) → {pp.max_rps:.2f} prompts/s per replica; "
        f"M/G/{pc.replicas} (Allen–Cunneen) at {arrival_rps:.3f} req/s: TTFT at the pool {t_mean * 1e3:.1f} ms"
        + (" (saturated)" if p_sat else ""),
        f"decode pool: {S} sequences per replica ({dp.sh.kv_notes[0] if dp.sh.kv_notes else 'KV policy'}); a decode step "
        f"at batch {S} takes {step_s * 1e3:.2f} ms; a request holds a slot for {dp.steps:.0f} steps → λ* = {S} / "
        f"({dp.steps:.0f} × {step_s * 1e3:.2f} ms) = {dp.max_rps:.3f} req/s per decode replica",
        (f"decode pool at {arrival_rps / dc.replicas:.3f} req/s per replica: batch b = λ × {dp.steps:.0f} × τ(b) ≈ {bb:.0f}, "
         f"TPOT ≈ τ(b + 1) + decode-slot wait {wd * 1e3:.1f} ms / (O − 1) = {tpot * 1e3:.2f} ms (p95 ≈ "
         f"{tpot95 * 1e3:.2f} ms at b + 1.645 √b)") if b is not None else
        f"decode pool saturated at {arrival_rps / dc.replicas:.3f} req/s per replica (λ* = {dp.max_rps:.3f})",
        f"KV transfer: {prompt:,.0f} prompt tokens × {kv_bytes_per_token(comp):,.0f} B / ({bw:g} GB/s {comp.kv_link} × "
        f"{lanes} GPU(s)) = {xfer * 1e3:.2f} ms",
        f"TTFT ≈ prefill pool {t_mean * 1e3:.1f} ms (queue + prefill) + transfer {xfer * 1e3:.2f} ms = {ttft:.1f} ms; "
        f"TPOT ≈ decode pool {tpot * 1e3:.2f} ms (its steps carry no prefill)",
        f"pools for {arrival_rps:.3f} req/s at ≤ {TARGET_LOAD:.0%} load: prefill {p_needed} × {pc.gpus_per_replica} "
        f"{pc.gpu} + decode {d_needed} × {dc.gpus_per_replica} {dc.gpu} = "
        f"{p_needed * pc.gpus_per_replica + d_needed * dc.gpus_per_replica} GPUs (configured: {pc.replicas} + "
        f"{dc.replicas} replicas, {comp.gpus} GPUs)",
    ] + [f"decode pool: {x}" for x in dp.sh.kv_notes[1:]]
    return LLMEstimate(
        weights_gb=spec.weights_bytes / 1e9, kv_bytes_per_token=spec.kv_bytes_per_token,
        kv_capacity_tokens=float(spec.kv_capacity_tokens), max_concurrent_seqs=S,
        decode_step_ms=step_s * 1e3, prefill_ms=pp.mean_s * 1e3,
        max_output_tokens_per_s_per_replica=dp.max_rps * dp.sh.output, max_requests_per_s_per_replica=dp.max_rps,
        replicas_needed=p_needed + d_needed,
        gpus_needed=p_needed * pc.gpus_per_replica + d_needed * dc.gpus_per_replica,
        ttft_ms_estimate=ttft, tpot_ms_estimate=tpot * 1e3, ttft_ms_p95_estimate=ttft95, tpot_ms_p95_estimate=tpot95 * 1e3,
        bound=spec.decode_bound(S, S * dp.sh.kv_read), explanation=ex,
        decode_batch_at_load=b, prefix_cache_hit_ratio=pp.sh.prefix_hit,
        speculative_tokens_per_step=E if dp.sh.specu is not None else None,
        speculative_breakeven_batch=(dp.sh.specu.breakeven_batch(spec, dp.sh.kv_read, spec.max_batch)
                                     if dp.sh.specu is not None else None),
        pools=pools, kv_transfer_ms=xfer * 1e3,
    )
