"""The analytic twin of an `llm_server`: capacity, M/G/c service moments, TTFT/TPOT at a load.

Pure arithmetic on top of ``sim.llm.roofline`` (memory, step times): no SimPy, a few ms per
component, memoised on the component and workload.

Usage::

    >>> from components.catalogue import LLMServer
    >>> from designs.model import Workload
    >>> from sim.llm.twin import llm_capacity, llm_estimate
    >>> comp, wl = LLMServer(id="llm", model="llama-3.1-8b", replicas=2), Workload(arrival_rps=20)
    >>> rps, tok_s = llm_capacity(comp, wl)              # one replica's max request rate
    >>> e = llm_estimate(comp, wl, arrival_rps=20)
    >>> e.ttft_ms_estimate <= e.ttft_ms_p95_estimate      # means and 95th percentiles
    True

The analytic twin (`llm_estimate`, `llm_service_moments`, `llm_capacity`) runs the same
iteration arithmetic in the mean for one replica fed Poisson arrivals (details above
`_Shape`): iterations that admit k prompts, k depending on the previous iteration's length (a
chain solved exactly when prefill iterations are compute-bound), the decode batch from Little's
law at the actual load, and the max request rate λ* where the sequence slots fill. Prefill work
is counted inside λ*, so a prefill-heavy workload saturates on compute. Against the batching
simulation (tests/test_llm_twin.py; serving library design, 17 and 14 replicas): capacity
within 6 %, utilisation within 1 %, TTFT mean within 5 % and p95 within 15 %, TPOT mean and p95
within 10 %. Known gaps: long prompts with small prefill chunks (TTFT −35 %) and exactly fixed
output lengths at > 80 % load (cohorts; TTFT −45 %) — that is what `sdw run` is for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

from components.catalogue import LLMServer
from sim.llm.kv import KvConfig, hold_tokens, twin_prefix_hit
from sim.llm import disagg
from sim.llm.disagg import is_disaggregated
from sim.llm.lora import lora_overrides, miss_probability as lora_miss_probability, swap_s as lora_swap_s
from sim.llm.lora import batch_cap as lora_batch_cap, twin_lines as lora_lines
from sim.llm.speculative import Speculation
from sim.llm.roofline import KV_BYTES_PER_ELEM, ServingConfigError, ServingSpec, TokenMoments, token_moments

__all__ = ["llm_estimate", "llm_service_moments", "llm_capacity", "TARGET_LOAD"]

# Plan replicas so the peak rate uses at most this share of max throughput (issue 4: ≤ 80 %).
TARGET_LOAD = 0.8


# --- the analytic view ---------------------------------------------------------------------
#
# One replica in the mean (the twin of `sim.llm.batching`). At decode batch b and λ prompts/s:
#
# * an iteration that admits k new prompts (those that arrived during the previous one) lasts
#   τ(k) = max(mem(b), dec(b) + k·pf)·slow + overhead; with chunked prefill a group of k prompts
#   needs max(1, k·P/chunk) iterations of at most `chunk` tokens each;
# * k | previous iteration ~ Poisson(λ·τ_prev). This chain alternates short decode iterations
#   and long prefill ones, which makes k clump: P(k = 0) = E[exp(−λτ)] > exp(−λ·E[τ]). When
#   every prefill iteration is compute-bound (the usual case), the chain is solved exactly
#   through its generating function (`_gf_p0`); otherwise k is taken as Poisson(λ·E[τ]);
# * the decode batch follows from Little's law, b = λ·(E[O] − 1)·E[τ] (a sequence decodes for
#   O − 1 iterations after the one that prefilled it) — a fixed point, since E[τ] grows with b;
# * sequence slots in use N = b + λ·(time a prompt spends in its prefill iteration); the
#   replica's max request rate λ* is where N reaches the max concurrent sequences S. Near λ* the
#   prefill share λ·pf·slow of GPU time approaches 1 and E[τ] ∝ 1/(1 − λ·pf·slow): prefill-heavy
#   workloads saturate on compute long before the batch is full of cheap decode steps.
#
# The M/G/c view of the whole component (`llm_service_moments`) uses c = replicas × S slots held
# for h* = S/λ* each (the saturated TTFT + (O − 1) iterations), so ρ = λ·h*/c = λ/(replicas·λ*).

_Z95 = 1.6448536269514722


@dataclass(frozen=True)
class _Shape:
    """One replica at the workload's token lengths: everything that does not depend on load."""

    spec: ServingSpec
    tm: TokenMoments
    prompt: float
    output: float
    prefill_tokens: float  # per request, after the prefix cache
    cached_tokens: float
    pf_s: float  # GPU time of one mean prompt's prefill: compute at the step's MFU + its all-reduces
    pf_raw_s: float  # its compute at full-size GEMMs (what `ServingSpec.iteration_s` takes)
    pf_var_s2: float  # its variance over the prompt-length mix (linear part)
    kv_hold: float  # KV tokens reserved per sequence in the batch (length-biased P + O)
    kv_read: float  # KV tokens read per decoding sequence per step (length-biased P + O/2)
    seqs: int  # max concurrent sequences S
    out_grid: tuple  # ((weight, output tokens), …) for the TPOT mixture
    kv_notes: tuple = ()  # explanation lines of the KV policy and prefix cache (sim.llm.kv)
    prefix_hit: float = 0.0  # share of prompt tokens served from the prefix cache
    specu: Speculation | None = None  # speculative decoding (sim.llm.speculative)

    @property
    def rate(self) -> float:
        """Output tokens per decode iteration per sequence (1 without speculative decoding)."""
        return self.specu.tokens_per_step if self.specu is not None else 1.0


@dataclass(frozen=True)
class _Iter:
    """Stationary iteration figures of one replica at decode batch ``b`` and ``lam`` prompts/s."""

    b: float
    lam: float
    step_s: float  # a pure decode iteration at this batch
    tau_s: float  # mean iteration (count average): what a decoding sequence waits per token
    tau_m2: float  # E[τ²] over iterations
    p_prefill: float  # share of iterations that carry prefill work
    own_s: float  # mean length of the iteration(s) that prefill an arriving prompt (with others)
    own_var: float
    phi: float  # lag-1 correlation of iteration lengths (a long one admits more prompts)

    @property
    def residual_s(self) -> float:
        """Mean remaining time of the iteration running when a prompt arrives, E[τ²]/2E[τ]."""
        return self.tau_m2 / (2 * self.tau_s)


def _pois_head(mu: float, j_max: int) -> list[float]:
    if mu <= 0:
        return [1.0] + [0.0] * (j_max - 1)
    lm = math.log(mu)
    return [math.exp(-mu + j * lm - math.lgamma(j + 1)) for j in range(j_max)]


class _Parts:
    """The iteration-time function τ(k) of one replica at decode batch ``b``."""

    __slots__ = ("s", "ov", "fl", "host1", "pf", "tau0", "mem1", "dec", "chunk_k", "k_lin", "A", "C", "na", "nc", "tau_full",
                 "sh", "b")
    # τ(0) = max(mem(b), dec(b))·s + host + comm(b); τ(k ≥ 1) = max(mem(b + P), dec + k·pf)·s + ov

    def __init__(self, sh: _Shape, b: float):
        spec = sh.spec
        self.sh, self.b = sh, b
        self.s = spec._slowdown
        self.pf = sh.pf_s
        # Speculative decoding (sim.llm.speculative): verify k + 1 tokens per sequence, + drafts.
        sp = sh.specu
        bt = b * (sp.k + 1) if sp is not None else b
        draft = sp.draft_s(spec, b, b * sh.kv_read) if sp is not None else 0.0
        kv = b * sh.kv_read
        # KV reads outside the GEMMs' max (attention_serial_share) go with the additive terms.
        ser0, ser1 = spec.serial_kv_s(kv, b), spec.serial_kv_s(kv, b + 1)
        mem0 = spec.memory_s(bt, kv, b) - ser0
        self.mem1 = spec.memory_s(bt + sh.prefill_tokens, kv, b + 1) - ser1
        # A step that admits prompts computes its decode rows in GEMMs as tall as the step
        # (the prompt, or the chunk under chunked prefill), the same token count `_shape` gives pf.
        pf_t = max(sh.prefill_tokens, spec.chunked_prefill_tokens or 0)
        self.dec = (spec.decode_flops_s(bt, bt + pf_t) * spec.compute_scale(b + 1)
                    * spec.moe_scale(bt + sh.prefill_tokens))
        # Communication of the decode tokens and host time are outside the max (they do not
        # overlap the GPU's work); a prompt's own all-reduces are folded into pf (`_shape`).
        self.ov = spec.host_s(b + 1) + (spec.comm_s(bt, b + 1) + ser1) * self.s + draft
        # Host floor per sequence (spec.host_floor_s_per_seq): a step lasts at least fl × seqs.
        self.fl, self.host1 = spec.host_floor_s_per_seq * (b + 1), spec.host_s(b + 1)
        # A decode-only iteration computes (and all-reduces) its CUDA-graph-padded batch, if any.
        g0 = spec.graph_batch(bt) if sp is None else bt
        gpu0 = (max(mem0, spec.decode_flops_s(g0) * spec.compute_scale(b) * spec.moe_scale(g0)) * self.s
                + (spec.comm_s(g0, b) + ser0) * self.s + draft)
        self.tau0 = max(gpu0, spec.host_floor_s_per_seq * b) + spec.host_s(b)
        gap = self.mem1 - self.dec
        k0 = 1 if gap <= self.pf else min(400, math.ceil(gap / self.pf))
        chunk = spec.chunked_prefill_tokens
        if chunk:
            # k prompts of P tokens fit one iteration up to chunk/P of them; beyond, the group
            # runs k·P/chunk full iterations: time linear in k with no intercept.
            self.chunk_k = chunk / sh.prefill_tokens
            self.k_lin = min(400, math.floor(self.chunk_k) + 1)
            self.tau_full = self._floor(max(self.mem1, self.dec + self.chunk_k * self.pf) * self.s + self.ov)
            self.A, self.C = 0.0, self.tau_full / self.chunk_k
            self.na, self.nc = 0.0, 1 / self.chunk_k
        else:
            self.chunk_k = None
            self.k_lin = k0
            self.tau_full = 0.0
            # k prompts of P tokens: k·raw·(kP + b + T½)/(kP + b) = k·raw + raw·T½·k/(kP + b), i.e.
            # (for kP ≫ b) a per-prompt slope raw and a per-iteration intercept raw·T½/P: several
            # prompts in one step share its small-GEMM penalty (pf_k), as the simulation's do.
            h = spec.prefill_mfu_half_tokens
            pf_lin, knee = self.pf, 0.0
            if h > 0:
                w = sh.pf_raw_s * spec.moe_scale(sh.prefill_tokens)
                pf_lin = self.pf - w * (spec.mfu_scale(sh.prefill_tokens) - 1)
                knee = w * h / sh.prefill_tokens
            self.A, self.C = (self.dec + knee) * self.s + self.ov, pf_lin * self.s
            self.na, self.nc = 1.0, 0.0

    def time(self, k: int) -> tuple[float, float]:
        """(time, iterations) of the group that absorbs k new prompts."""
        if k == 0:
            return self.tau0, 1.0
        if self.chunk_k is not None and k > self.chunk_k:
            n = k / self.chunk_k
            return n * self.tau_full, n
        return self._floor(max(self.mem1, self.dec + k * self.pf_k(k)) * self.s + self.ov), 1.0

    def _floor(self, t: float) -> float:
        """Iteration time ``t`` (host time included) with the host floor per sequence applied."""
        return t if not self.fl else max(t - self.host1, self.fl) + self.host1

    def pf_k(self, k: int) -> float:
        """A prompt's prefill time in an iteration that admits k of them: `_Shape.pf_s` takes the
        prefill MFU at a full step (the chunk), but k prompts below the chunk make a step of only
        k·P + b tokens, whose GEMMs run at MFU_pre(k·P + b) (``prefill_mfu_half_tokens``)."""
        sh, spec = self.sh, self.sh.spec
        if spec.prefill_mfu_half_tokens <= 0:
            return self.pf
        full = max(sh.prefill_tokens, spec.chunked_prefill_tokens or 0)
        step = k * sh.prefill_tokens + self.b
        return self.pf + sh.pf_raw_s * spec.moe_scale(full) * (spec.mfu_scale(step) - spec.mfu_scale(full))

    def moments(self, mu: float, shift: int = 0) -> tuple[float, float, float, float]:
        """(E[time], E[time²], E[n], E[time²/n]) over k = shift + Poisson(mu)."""
        J = max(0, self.k_lin - shift)
        head = _pois_head(mu, J)
        e1 = e2 = en = etn = 0.0
        p_h = j1_h = j2_h = 0.0
        for j, p in enumerate(head):
            t, n = self.time(shift + j)
            e1 += p * t
            e2 += p * t * t
            en += p * n
            etn += p * t * t / n
            p_h += p
            j1_h += p * j
            j2_h += p * j * j
        # Tail k ≥ k_lin: time = A + C·k, n = na + nc·k (Poisson totals minus the head).
        pt = max(0.0, 1 - p_h)
        j1 = max(0.0, mu - j1_h)
        j2 = max(0.0, mu + mu * mu - j2_h)
        if pt > 1e-15:
            a = self.A + self.C * shift
            c = self.C
            e1 += a * pt + c * j1
            sq = a * a * pt + 2 * a * c * j1 + c * c * j2
            e2 += sq
            en += (self.na + self.nc * shift) * pt + self.nc * j1
            if self.na:  # one iteration per group
                etn += sq
            else:  # k·P/chunk equal iterations of tau_full each
                etn += self.tau_full ** 2 * (self.nc * shift * pt + self.nc * j1)
        return e1, e2, en, etn


def _gf_p0(lam: float, tau0: float, a: float, c: float) -> float:
    """P(k = 0) of the chain k' ~ Poisson(λ·τ(k)), τ(0) = τ0, τ(k ≥ 1) = a + c·k (λc < 1).

    Its generating function φ(z) = E[z^k] satisfies φ(z) = E[e^{−λ(1−z)τ}]
    = p0·e^{−sτ0} + e^{−sa}(φ(w) − p0), s = λ(1 − z), w = e^{−sc}; unrolled along z_{n+1} = w(z_n)
    from z_0 = 0 (which converges to 1 geometrically, ratio λc) it gives p0 = A_∞ / (1 − Σ A_n
    (e^{−s_n τ0} − e^{−s_n a})) with A_n = Π_{j<n} e^{−s_j a}.
    """
    z, log_a, acc = 0.0, 0.0, 0.0
    for _ in range(10_000):
        s = lam * (1 - z)
        acc += math.exp(log_a) * (math.exp(-s * tau0) - math.exp(-s * a))
        log_a -= s * a
        if s < 1e-13:
            break
        z = math.exp(-s * c)
    return min(1.0, max(0.0, math.exp(log_a) / (1 - acc)))


def _root(f, x_pos: float, f_pos: float, x_neg: float, f_neg: float, tol: float, pos_le: bool = True
          ) -> tuple[float, float, float, float]:
    """Shrink a bracket [x_pos, x_neg] of a sign change of ``f`` to width ``tol``.

    ``f_pos`` ≥ 0 at ``x_pos`` and ``f_neg`` < 0 at ``x_neg`` (either end may be the larger
    x); +inf values are allowed (a state with no stationary solution) and are bisected past.
    With ``pos_le`` False the sides are "f ≤ 0" (returned first) and "f > 0" instead.
    Anderson–Björck regula falsi: superlinear (order ≈ 1.7) on the smooth functions here,
    bisection when an end is infinite or an interpolation would not shrink the bracket, and
    it keeps the bracket — so the ends lie on the sides the bisections it replaced converged
    to (tests/test_llm_twin_fast.py compares the two). Returns (x_pos, f_pos, x_neg, f_neg).
    """
    first_side = (lambda v: v >= 0) if pos_le else (lambda v: v <= 0)
    last = 0  # which end the previous step moved: +1 the first, −1 the second
    for _ in range(400):
        width = abs(x_neg - x_pos)
        if width <= tol:
            break
        x = 0.5 * (x_pos + x_neg)
        if math.isfinite(f_pos) and math.isfinite(f_neg) and f_pos != f_neg:
            xs = x_neg - f_neg * (x_neg - x_pos) / (f_neg - f_pos)
            lo, hi = (x_pos, x_neg) if x_pos < x_neg else (x_neg, x_pos)
            # At least tol/2 inside: when the estimate sits on an end, the step past it by
            # tol/2 closes the bracket instead of creeping up on it.
            x = min(hi - 0.5 * tol, max(lo + 0.5 * tol, xs))
        fx = f(x)
        if first_side(fx):
            if last == 1 and math.isfinite(fx) and math.isfinite(f_pos) and f_pos:
                m = 1 - fx / f_pos  # the other end stays a second time: scale it (A–B)
                f_neg *= m if m > 0 else 0.5
            x_pos, f_pos, last = x, fx, 1
        else:
            if last == -1 and math.isfinite(fx) and math.isfinite(f_neg) and f_neg:
                m = 1 - fx / f_neg
                f_pos *= m if m > 0 else 0.5
            x_neg, f_neg, last = x, fx, -1
    return x_pos, f_pos, x_neg, f_neg


def _iter_stats(sh: _Shape, b: float, lam: float) -> _Iter | None:
    """Iteration figures at decode batch ``b`` and ``lam`` prompts/s; None when the prefill work
    alone exceeds the GPU time (no stationary state)."""
    pt = _Parts(sh, b)
    if lam <= 0:
        t1, _ = pt.time(1)
        return _Iter(b, 0.0, pt.tau0, pt.tau0, pt.tau0 ** 2, 0.0, t1, 0.0, 0.0)
    if lam * pt.C >= 1:
        return None
    if pt.chunk_k is None and pt.k_lin <= 1:
        # Every prefill iteration is compute-bound: the exact chain (module comment).
        a, c = pt.A, pt.C
        p0 = _gf_p0(lam, pt.tau0, a, c)
        T = (p0 * pt.tau0 + (1 - p0) * a) / (1 - lam * c)
        m2 = (p0 * pt.tau0 ** 2 + (1 - p0) * a * a + 2 * a * c * lam * T + c * c * lam * T) / (1 - (c * lam) ** 2)
        tau, tau_m2, p_pf, phi = T, max(m2, T * T), 1 - p0, lam * c
    else:
        # k ~ Poisson(λ·E[group time]): solve T = E[time | μ = λT], a root of g(T) = E[…] − T
        # (positive at τ0, negative beyond the root), bracketed by doubling.
        lo, hi = pt.tau0, pt.tau0
        g_lo = pt.moments(lam * lo)[0] - lo
        for _ in range(200):
            hi *= 2
            g_hi = pt.moments(lam * hi)[0] - hi
            if g_hi < 0:
                break
            lo, g_lo = hi, g_hi
        else:
            return None
        if g_lo <= 0:  # g(τ0) ≤ 0: the root is at τ0 (where the bisection converged)
            T = lo
        else:
            pos, _, neg, _ = _root(lambda t: pt.moments(lam * t)[0] - t, lo, g_lo, hi, g_hi, 1e-12 * hi)
            T = 0.5 * (pos + neg)
        e1, _, en, etn = pt.moments(lam * T)
        tau, tau_m2 = e1 / en, max(etn / en, (e1 / en) ** 2)
        p_pf = 1 - math.exp(-lam * T)
        d = max(1e-9, 1e-4 * lam * T)
        phi = lam * (pt.moments(lam * T + d)[0] - e1) / d
    # Prompt lengths vary: each prompt in an iteration adds its prefill-time variance (the
    # chain above uses mean prompts; compute-bound iterations add the spread linearly).
    size_var = sh.pf_var_s2 * pt.s ** 2
    tau_m2 += lam * tau * size_var
    # The prompt's own prefill iteration also carries the prompts that arrived in the same
    # (length-biased) iteration as it did.
    mu_own = lam * tau_m2 / tau
    o1, o2, _, _ = pt.moments(mu_own, shift=1)
    own_var = max(0.0, o2 - o1 * o1) + mu_own * size_var
    return _Iter(b, lam, pt.tau0, tau, tau_m2, p_pf, o1, own_var, min(max(phi, 0.0), 0.99))


def _batch_at(sh: _Shape, lam: float) -> tuple[_Iter, float] | None:
    """(iteration figures, slots in use N) at ``lam`` requests/s per replica, from the fixed point
    b = λ·(E[O] − 1)·E[τ(b)]; None when the slots or the GPU cannot keep up."""
    r = _batch(sh, lam)
    return (r[0], r[1]) if r is not None and r[2] else None


def _batch(sh: _Shape, lam: float) -> tuple[_Iter, float, bool] | None:
    """`_batch_at` for the capacity search: (figures, N, True), or — when even S sequences
    cannot absorb the decode work — (figures at S, λ(O−1)E[τ(S)] + λ·own, False), a slot count
    beyond S that is continuous with N where the two meet; None when the GPU cannot keep up."""
    decode_tokens = lam * max(0.0, sh.output - 1) / sh.rate  # decode iterations per second needed
    cap = float(sh.seqs)
    it = _iter_stats(sh, cap, lam)
    if it is None:
        return None
    if decode_tokens * it.tau_s > cap:
        return it, decode_tokens * it.tau_s + lam * it.own_s, False
    # b ↦ λ(O−1)E[τ(b)] is increasing and stays below S here: the fixed point is the root of
    # h(b) = λ(O−1)E[τ(b)] − b (positive at 0, negative at S; +inf where no stationary state).
    seen: dict[float, _Iter] = {cap: it}

    def h(b: float) -> float:
        x = _iter_stats(sh, b, lam)
        if x is None:
            return math.inf
        seen[b] = x
        return decode_tokens * x.tau_s - b

    h_cap = decode_tokens * it.tau_s - cap
    if h_cap >= 0:  # equality: the bisection's upper end never moved from S
        b = cap
    elif decode_tokens <= 0:  # no decode work (λ = 0 or one-token outputs): b → 0
        b = 0.0
    else:
        _, _, b, _ = _root(h, 0.0, h(0.0), cap, h_cap, 1e-12 * cap)
    it = seen.get(b) or _iter_stats(sh, b, lam)
    if it is None:
        return None
    return it, b + lam * it.own_s, True


def _shape(comp: LLMServer, workload, overrides: dict | None = None) -> _Shape:
    # Multi-LoRA (sim.llm.lora): its step overhead and resident adapters' memory, as overrides.
    spec = ServingSpec.from_component(comp, **{**lora_overrides(comp), **(overrides or {})})
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
    specu = Speculation.from_component(comp, spec)
    cap = specu.kv_capacity_tokens(spec) if specu is not None else spec.kv_capacity_tokens
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
    # The admission limit the KV policy implies (sim.llm.kv.hold_tokens: reserve_max holds P + max
    # output per sequence, paged the length-biased P + O/2 in blocks), and the prefix cache's hit
    # ratio from the KV left beside the batch, unless the flat override is set.
    kvc = KvConfig.from_component(comp)
    hold, hold_why = hold_tokens(kvc, spec, workload)
    read1 = spec.kv_tokens_of(tm.in_batch(0.5), 0)
    seqs = max(1, min(spec.max_batch, int(cap // hold)))
    if getattr(comp, "adapters", 0) > 0:  # only requests of resident adapters share a batch
        seqs = lora_batch_cap(comp, seqs)
    hit = spec.prefix_cache_hit_ratio
    kv_notes = [hold_why]
    if not hit:
        hit, _, lines = twin_prefix_hit(kvc, spec, workload, routing=getattr(comp, "routing", ""),
                                        replicas=comp.replicas, room_tokens=cap - seqs * hold)
        kv_notes += lines
    prefill_tokens = max(1.0, prompt * (1 - hit))
    cached = prompt - prefill_tokens
    pf_raw = spec.prefill_flops_s(prefill_tokens, cached)
    # MFU of the step: with chunked prefill the steps are packed to the chunk; otherwise a
    # prompt's tokens (plus the decoders riding along, ignored here) make the GEMMs.
    step_tokens = max(prefill_tokens, spec.chunked_prefill_tokens or 0)
    scale = spec.mfu_scale(step_tokens) * spec.moe_scale(step_tokens)
    comm_pf = spec.comm_s(prefill_tokens + 1, 2) - spec.comm_s(1, 1)  # its tokens' share of the collectives
    pf = pf_raw * scale + max(0.0, comm_pf)
    if getattr(comp, "adapters", 0) > 0:  # a LoRA miss copies its adapter in before the prefill
        pf += lora_miss_probability(comp) * lora_swap_s(comp) / spec._slowdown
        kv_notes += lora_lines(comp)
    per_token = 2 * spec.model.params_active_b * 1e9 * (1 - hit) / (spec._peak_flops * spec.prefill_mfu) * scale
    grid = []
    for c in workload.request_classes():
        o = c.output_tokens
        if o.var() <= 0:
            grid.append((c.share, o.expected()))
        else:  # 32 equal-probability points of the output-length distribution
            grid.extend((c.share / 32, o.quantile((i + 0.5) / 32)) for i in range(32))
    if specu is not None:
        kv_notes += specu.lines(spec, read1, seqs)
    return _Shape(spec, tm, prompt, output, prefill_tokens, cached, pf, pf_raw, per_token ** 2 * tm.prompt_var,
                  hold, read1, seqs, tuple(grid), tuple(kv_notes), hit, specu)


@dataclass(frozen=True)
class _Capacity:
    sh: _Shape
    max_rps: float  # λ*: where the slots in use reach S
    sat: _Iter  # iteration figures at λ*
    hold_s: float  # h* = S / λ*: mean slot time at saturation

    @property
    def spec(self) -> ServingSpec:
        return self.sh.spec


def _capacity_of(sh: _Shape) -> _Capacity:
    spec = sh.spec
    hi = 1 / (sh.pf_s * spec._slowdown)  # prefill compute alone caps the rate
    # … and so does the prefill share of a full batch's iterations (no stationary state beyond).
    hi = min(hi, 1 / _Parts(sh, float(sh.seqs)).C)
    seen: dict[float, tuple] = {}

    def excess(lam: float) -> float:  # slots in use N(λ) − S; grows with λ (+inf: unstable)
        r = _batch(sh, lam)
        if r is None:
            return math.inf
        if r[2]:
            seen[lam] = r[:2]
        return r[1] - sh.seqs

    lam, _, _, _ = _root(excess, 0.0, -float(sh.seqs), hi, math.inf, 1e-12 * hi, pos_le=False)
    r = seen.get(lam) if lam > 0 else None
    sat = r[0] if r is not None else _iter_stats(sh, float(sh.seqs), 0.0)
    return _Capacity(sh, lam, sat, sh.seqs / lam)


_CACHE: dict = {}


def _capacity(comp: LLMServer, workload, overrides: dict | None = None) -> _Capacity:
    """λ* and its figures, memoised on the component, workload and overrides (pure function)."""
    # Prefix-affinity routing spreads prefixes over the replicas, so the hit ratio depends on them.
    skip = {"id", "label", "notes", "timeout_ms"} | ({"replicas"} if getattr(comp, "routing", "") != "prefix_affinity" else set())
    key = (comp.model_dump_json(exclude=skip),
           workload.model_dump_json(), repr(sorted((overrides or {}).items())))
    hit = _CACHE.get(key)
    if hit is None:
        sh = _shape(comp, workload, overrides)
        hit = _capacity_of(sh)
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = hit
    if hit.sh.spec.component_id != comp.id:  # same numbers, another id: keep messages right
        sh = replace(hit.sh, spec=replace(hit.sh.spec, component_id=comp.id))
        hit = replace(hit, sh=sh)
    return hit


def llm_capacity(comp: LLMServer, workload, overrides: dict | None = None) -> tuple[float, float]:
    """(max requests/s, max output tokens/s) of ONE replica at the workload's mean lengths
    (a disaggregated server: of the whole server, see `sim.llm.disagg`)."""
    if is_disaggregated(comp):
        return disagg.llm_capacity_pd(comp, workload, overrides, _shape)
    cap = _capacity(comp, workload, overrides)
    return cap.max_rps, cap.max_rps * cap.sh.output


def llm_service_moments(comp: LLMServer, workload, overrides: dict | None = None,
                        arrival_rps: float | None = None) -> tuple[float, float, int]:
    """(mean service s, service SCV, servers): an M/G/c view of the whole `llm_server`.

    Servers are the sequence slots, ``replicas × max concurrent sequences`` S; each is held for
    h* = S / λ* — a prompt's prefill iteration plus (output − 1) iterations at the saturated mean
    iteration length, which includes the newcomers' prefill work — so ``servers / mean`` is
    exactly ``replicas × LLMEstimate.max_requests_per_s_per_replica`` and λ·mean/servers is the
    share of capacity in use. The moments do not depend on the load (``arrival_rps`` is accepted
    for callers that pass it); the load-dependent TTFT/TPOT are `llm_estimate`'s.
    The SCV is that of the slot time, from the output-length spread.
    """
    if is_disaggregated(comp):
        return disagg.llm_service_moments_pd(comp, workload, overrides, _shape)
    cap = _capacity(comp, workload, overrides)
    tm = cap.sh.tm
    scv = (cap.sat.tau_s ** 2 * tm.output_var) / cap.hold_s ** 2 if cap.hold_s > 0 else 0.0
    return cap.hold_s, scv, comp.replicas * cap.sh.seqs


@dataclass(frozen=True)
class _Load:
    """Per-request figures (seconds) at a given rate; ``saturated`` when λ ≥ λ*."""

    saturated: bool
    it: _Iter
    slots: float  # sequence slots in use per replica
    wait_s: float  # mean wait for a slot (M/G/c on the consistent moments)
    wait_p95_s: float
    ttft_s: float
    ttft_p95_s: float
    tpot_s: float
    tpot_p95_s: float


def _load_point(cap: _Capacity, replicas: int, arrival_rps: float) -> _Load:
    """TTFT and TPOT (mean, p95) of requests at ``arrival_rps`` over ``replicas`` replicas.

    * slot wait: M/G/c on the moments of `llm_service_moments` (c = replicas × S slots held h*
      each, ρ = λ/(replicas·λ*)), Allen–Cunneen mean, exponential tail for the p95 — the same
      wait the twin's queueing view computes. It is ~0 until the load nears λ* (many slots) and
      diverges there. Conservative when S is small: at λ < λ* the slots are held for less than
      h* (N/S < ρ), e.g. 70B FP8 on 2 × H100 with 105 slots at 85 %: TTFT p95 1.0 s vs 0.2 s
      simulated; but with h* the wait also captures the batch's self-amplifying swings near λ*
      (one replica of the library design at 93 %: TTFT mean 212 ms vs 205 ms simulated, where
      the slot time at load would give 106 ms);
    * TTFT = slot wait + the rest of the iteration running at arrival (E[τ²]/2E[τ], when the
      replica is busy) + the prompt's own prefill iteration (with the prompts admitted with it);
      p95 from a gamma with the summed means and variances (prompt-length spread included);
    * TPOT = mean iteration length at batch b + 1 (the sequence and the b others); its p95 is
      the 95th percentile over requests of the mean of O − 1 correlated iteration lengths
      (AR(1) with the chain's lag-1 correlation), mixed over the output-length distribution.
    """
    from sim.twin import queueing as qt  # plain maths; local import keeps this module light

    sh = cap.sh
    lam = arrival_rps / replicas if replicas else math.inf
    r = _batch_at(sh, lam) if 0 < lam < cap.max_rps else None
    saturated = lam >= cap.max_rps or (lam > 0 and r is None)
    if lam <= 0:
        it, slots = _iter_stats(sh, 0.0, 0.0), 0.0
    elif r is None:
        it, slots = cap.sat, float(sh.seqs)
    else:
        it, slots = r
    seen = _iter_stats(sh, it.b + 1, it.lam) or it
    # Slot wait (zero when saturated: the figures are then those of a request holding a slot).
    w1 = w2 = wp = 0.0
    c = replicas * sh.seqs
    if not saturated and lam > 0:
        scv = (cap.sat.tau_s ** 2 * sh.tm.output_var) / cap.hold_s ** 2
        a = arrival_rps * cap.hold_s
        pw = qt.erlang_c(c, a) if a < c else 1.0
        w1 = qt.allen_cunneen_wait(arrival_rps, cap.hold_s, scv, c)
        w2 = 2 * w1 * w1 / pw if pw > 0 else 0.0
        wp = qt.wait_quantile_approx(0.95, w1, pw)
    busy = 1 - math.exp(-slots) if not saturated else 1.0
    # Residual life of the running iteration: E[R] = E[τ²]/2E[τ], E[R²] = E[τ³]/3E[τ], with
    # E[τ³] of a gamma of the iteration's mean and variance.
    m1, m2 = it.tau_s, it.tau_m2
    v = max(0.0, m2 - m1 * m1)
    m3 = m1 * (m1 * m1 + v) * (1 + 2 * v / (m1 * m1)) if m1 > 0 else 0.0
    r1 = busy * it.residual_s
    r2 = busy * m3 / (3 * m1) if m1 > 0 else 0.0
    spec = sh.spec
    own_var = it.own_var + sh.pf_var_s2 * spec._slowdown ** 2
    ttft = w1 + r1 + it.own_s
    var = max(0.0, w2 - w1 * w1) + max(0.0, r2 - r1 * r1) + own_var
    ttft_p95 = qt.gamma_quantile(0.95, ttft, var) if var > 0 else ttft
    tpot = seen.tau_s / sh.rate
    tpot_p95 = _tpot_quantile(sh, seen, 0.95) / sh.rate
    return _Load(saturated, it, slots, w1, wp, ttft, ttft_p95, tpot, tpot_p95)


def _tpot_quantile(sh: _Shape, it: _Iter, q: float) -> float:
    """q-quantile over requests of the mean of their O − 1 iteration lengths (normal per O)."""
    var1 = max(0.0, it.tau_m2 - it.tau_s ** 2)
    phi = it.phi
    pts = []
    for w, o in sh.out_grid:
        n = round(o) - 1
        if n < 1:
            continue  # one token: no TPOT (the simulator skips them too)
        # Variance of the mean of n AR(1) terms with lag-1 correlation φ.
        f = (1 + phi) / (1 - phi) - 2 * phi * (1 - phi ** n) / (n * (1 - phi) ** 2)
        pts.append((w, math.sqrt(max(0.0, var1 * f / n))))
    if not pts or var1 <= 0:
        return it.tau_s
    tot = sum(w for w, _ in pts)
    m = it.tau_s
    step = sum(w for w, sd in pts if sd <= 0) / tot  # requests whose mean is exactly m
    terms = [(w / tot, 1 / (sd * math.sqrt(2))) for w, sd in pts if sd > 0]

    def cdf_pdf(x: float) -> tuple[float, float]:
        c, d = (step if x >= m else 0.0), 0.0
        for w, k in terms:
            u = (x - m) * k
            c += w * 0.5 * (1 + math.erf(u))
            d += w * k * math.exp(-u * u)
        return c, d / math.sqrt(math.pi)

    lo, hi = m, m + 10 * max(sd for _, sd in pts)
    # The root of cdf − q on [mean, mean + 10 sd] (the mixture's median is the mean, q > 1/2):
    # Newton from the normal approximation, kept inside the bracket (bisection otherwise).
    if cdf_pdf(hi)[0] < q or cdf_pdf(lo)[0] > q:  # the quantile at an end: where a bisection ends
        return hi if cdf_pdf(hi)[0] < q else lo
    sd_all = math.sqrt(sum(w * (1 / (2 * k * k)) for w, k in terms))
    x = min(hi, max(lo, m + NormalDist().inv_cdf(q) * sd_all))
    for _ in range(100):
        c, d = cdf_pdf(x)
        if c < q:
            lo = x
        else:
            hi = x
        nxt = x - (c - q) / d if d > 0 else 0.5 * (lo + hi)
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - x) <= 1e-13 * abs(x) or hi - lo <= 1e-13 * abs(hi):
            return nxt
        x = nxt
    return x


def llm_estimate(comp: LLMServer, workload, arrival_rps: float, overrides: dict | None = None):
    """The analytic twin of one `llm_server` at ``arrival_rps`` (requests/s reaching it).

    ``ttft_ms_estimate`` / ``tpot_ms_estimate`` are MEANS at this load; ``ttft_ms_p95_estimate``
    / ``tpot_ms_p95_estimate`` the 95th percentiles (see `_load_point`). TTFT includes the wait
    for a sequence slot. When the load reaches the max request rate the queue grows without
    bound: the figures are then those of a request once it holds a slot.
    ``overrides`` replace `ServingSpec` fields (efficiency factors) for what-if studies."""
    from sim.results import LLMEstimate  # sim.results is plain pydantic; keep import local

    if is_disaggregated(comp):
        return disagg.llm_estimate_pd(comp, workload, arrival_rps, overrides, _shape, TARGET_LOAD)
    cap = _capacity(comp, workload, overrides)
    sh, spec, sat = cap.sh, cap.spec, cap.sat
    gb = 1e9
    max_rps = cap.max_rps
    max_tok_s = max_rps * sh.output
    needed = max(1, math.ceil(arrival_rps / (TARGET_LOAD * max_rps) - 1e-9)) if arrival_rps > 0 else 1
    per_replica = arrival_rps / comp.replicas
    ld = _load_point(cap, comp.replicas, arrival_rps)
    S = sh.seqs
    kv_s = S * sh.kv_read
    step_s = spec.decode_step_s(S, kv_s)
    bound = spec.decode_bound(S, kv_s)
    prefill_alone = spec.iteration_s(0, 0, sh.prefill_tokens, sh.pf_raw_s)
    cap_tok = sh.specu.kv_capacity_tokens(spec) if sh.specu is not None else spec.kv_capacity_tokens
    per_seq = spec.kv_tokens_of(sh.prompt, sh.output)
    pf_ms = sh.pf_s * spec._slowdown * 1e3
    m = spec.model
    kv_elem = KV_BYTES_PER_ELEM[spec.kv_precision]
    if m.is_mla:
        kv_line = (f"KV per token: {m.layers} layers × ({m.kv_lora_rank} latent + {m.qk_rope_head_dim} RoPE) "
                   f"× {kv_elem:g} B ({spec.kv_precision}, multi-head latent attention)")
    else:
        kv_line = (f"KV per token: 2 × {m.layers} layers × {m.kv_heads} KV heads × {m.head_dim} × "
                   f"{kv_elem:g} B ({spec.kv_precision})")
    if spec.kv_replication > 1:
        kv_line += f" × {spec.kv_replication:g} (replicated on the {spec.tp} tensor-parallel ranks)"
    kv_line += f" = {spec.kv_bytes_per_token:,.0f} B"
    if m.sliding_window:
        kv_line += (f"; {m.layers - m.global_layers} of {m.layers} layers keep only a {m.sliding_window:,}-token "
                    f"window")
    basis = (f"{spec.gpu_memory_utilization:g} × ({spec.gpus} × {spec.gpu.hbm_gb:g} GB − {spec.weights_bytes / gb:.2f} GB "
             f"weights − {spec.gpus} × {spec.reserve_bytes_per_gpu / gb:g} GB reserve)"
             if spec.kv_memory_basis == "free" else
             f"{spec.gpus} × {spec.gpu.hbm_gb:g} GB × {spec.gpu_memory_utilization:g} − "
             f"{spec.weights_bytes / gb:.2f} GB weights − {spec.gpus} × {spec.reserve_bytes_per_gpu / gb:g} GB reserve")
    par = f"{spec.gpus} × {spec.gpu.name}"
    if spec.gpus > 1:
        par += f" (tensor parallel {spec.tp}" + (f" × {spec.pp} pipeline stages" if spec.pp > 1 else "") + \
               (f", experts over {spec.ep}" if spec.ep > 1 else "") + ")"
    g_S = spec.graph_batch(S)  # rows a decode-only step computes (CUDA-graph padding, if any)
    comm = spec.comm_s(g_S, S)
    ser_S = spec.serial_kv_s(kv_s, S)  # attention's KV reads outside the GEMMs' max
    mem_S = spec.memory_s(S, kv_s, S) - ser_S
    comp_S = spec.decode_flops_s(g_S) * spec.compute_scale(S) * spec.moe_scale(g_S)
    sig = spec.attention_serial_share
    ex = [
        f"weights: {m.params_total_b:g} B params × {spec.bytes_per_param:g} B "
        f"({spec.precision} weights, {spec.compute_precision} math) = {spec.weights_bytes / gb:.2f} GB, "
        f"{spec.weights_bytes_per_gpu / gb:.2f} GB on each of {par}",
        kv_line,
        f"KV capacity: ({basis}) / {spec.kv_bytes_per_token:,.0f} B = {cap_tok:,} tokens",
        f"concurrent sequences S: min(max_batch {spec.max_batch}, {cap_tok:,} / {sh.kv_hold:.0f} tokens "
        f"reserved per sequence in the batch) = {S}"
        + (f" (mean request {sh.prompt:.0f} + {sh.output:.0f} tokens; long outputs stay longer, so "
           f"the batch holds {sh.kv_hold:.0f} on average)" if sh.kv_hold > per_seq + 0.5 else ""),
        f"decode step at batch {S}: max(memory {mem_S * 1e3:.2f} ms = "
        + (f"{spec.pp} × " if spec.pp > 1 else "")
        + f"({spec.weights_read_bytes(S / spec.microbatches(S)) / gb:.2f} GB weights + "
        + (f"{1 - sig:g} × " if ser_S else "")
        + f"{kv_s * spec.kv_bytes_per_token / gb / spec.microbatches(S):.2f} GB KV"
        + (f" per micro-batch" if spec.pp > 1 else "") + f") / "
        f"({spec.gpus} × {spec.gpu.hbm_bandwidth_tbps:g} TB/s × {spec.decode_bw_efficiency:g}), "
        f"compute {comp_S * 1e3:.2f} ms = 2 × {m.params_active_b:g} B × {g_S:g}"
        + (f" ({S} sequences padded to the {g_S:g}-row CUDA graph)" if g_S != S else "")
        + f" / ({spec.gpus} × "
        f"{spec.peak_flops_per_gpu / 1e12:g} TFLOPS × {spec.decode_mfu_at(g_S):.3g}"
        + (f" = {spec.decode_mfu:g} + ({spec.prefill_mfu:g} − {spec.decode_mfu:g}) × {g_S:g}/({g_S:g} + "
           f"{spec.decode_mfu_half_tokens:g})" if spec.decode_mfu_half_tokens else "") + "))"
        + (f" × MoE expert kernels {spec.moe_scale(S):.2f}" if spec.moe_scale(S) != 1 else "")
        + (f" + attention KV reads {ser_S * 1e3:.2f} ms ({sig:g} of them run between the GEMMs, "
           f"not under them)" if ser_S else "")
        + (f" + communication {comm * 1e3:.2f} ms" if comm else "")
        + f" + host {spec.host_s(S) * 1e3:.2f} ms = {step_s * 1e3:.2f} ms ({bound}-bound)",
    ]
    if spec.tp > 1:
        ar = spec.allreduce_s(S / spec.microbatches(S))
        n_ar = 2 * m.layers - (m.n_moe_layers if spec.ep > 1 else 0)
        ex.append(
            f"tensor parallelism: {n_ar} all-reduces per step ({'one after attention and one after the MLP' if spec.ep <= 1 else 'after attention'} "
            f"in each of {m.layers} layers), each {spec.allreduce_latency_s * 1e6:g} µs + 2 × ({spec.tp} − 1)/{spec.tp} × "
            f"{S / spec.microbatches(S):.0f} tokens × {m.hidden} × 2 B / ({spec.link_bytes_per_s / 1e9:g} GB/s "
            f"{spec.gpu.intra_node_link} × {spec.allreduce_bus_efficiency:g}) = {ar * 1e6:.1f} µs → "
            f"{n_ar * ar * 1e3:.2f} ms at batch {S}, {spec.comm_s(1, 1) * 1e3:.2f} ms at batch 1 "
            f"({spec.comm_s(1, 1) / max(1e-12, spec.decode_step_s(1, sh.kv_read)):.0%} of a batch-1 step): "
            f"the latency term is paid in every layer whatever the batch, so doubling the tensor-parallel "
            f"degree does not halve the step")
    if m.is_moe:
        t_e = S * m.experts_per_token / m.experts
        eff = spec.moe_expert_bw_efficiency
        ex.append(
            f"mixture of experts: {m.experts_per_token} of {m.experts} experts per token → {t_e:.1f} tokens per "
            f"expert at batch {S}; the routed experts' grouped GEMMs compute at (1 + {spec.moe_expert_base_penalty:g} "
            f"+ min({spec.moe_expert_max_penalty:g}, {spec.moe_expert_half_tokens:g} / {t_e:.1f})) × their dense time "
            + (f"; routing (top-k, permute, combine) costs {spec.moe_routing_flops_per_elem:g} FLOP-equivalents "
               f"per hidden element of each routed copy" if spec.moe_routing_flops_per_elem > 0 else "")
            + f" (compute × {spec.moe_scale(S):.2f} at this batch)"
            + (f"; their weights stream at {eff:g} of paper bandwidth (dense weights and KV at "
               f"{spec.decode_bw_efficiency:g})" if eff > 0 else ""))
    if spec.ep > 1:
        a2a = spec.alltoall_s(S / spec.microbatches(S))
        ex.append(
            f"expert parallelism: experts spread over {spec.ep} GPUs; each of {m.n_moe_layers} MoE layers "
            f"dispatches and combines {m.experts_per_token} × {S / spec.microbatches(S):.0f} token vectors "
            f"({(spec.ep - 1) / spec.ep:.0%} leave the GPU) = {a2a * 1e6:.1f} µs"
            + (f" (of which 2 × {spec.moe_alltoall_latency_s * 1e6:.1f} µs all-to-all latency beyond the "
               f"all-reduce start-up)" if spec.moe_alltoall_latency_s else "")
            + f" → {m.n_moe_layers * a2a * 1e3:.2f} ms per step")
    if spec.pp > 1:
        ex.append(
            f"pipeline: {spec.pp} stages of {m.layers / spec.pp:.1f} layers; a step splits the batch into "
            f"{spec.microbatches(S)} micro-batches, each re-reading its stage's weights; hand-over "
            f"{spec.p2p_s(S / spec.microbatches(S)) * 1e6:.1f} µs per stage boundary; at batch 1 the "
            f"bubble is {spec.bubble(1):.0%} (one sequence keeps one stage busy at a time)")
    ex += [
        f"prefill of {sh.prefill_tokens:.0f} tokens"
        + (f" ({sh.prefix_hit:.0%} prefix-cached)" if sh.prefix_hit else "")
        + f": 2 × {m.params_active_b:g} B × tokens + attention / ({spec.gpus} × "
        f"{spec.peak_flops_per_gpu / 1e12:g} TFLOPS × {spec.prefill_mfu:g}"
        + (f" × T/(T + {spec.prefill_mfu_half_tokens:g})" if spec.prefill_mfu_half_tokens else "")
        + f") + its all-reduces = {pf_ms:.2f} ms of GPU time "
        f"({prefill_alone * 1e3:.2f} ms as an iteration on an idle replica)",
        f"max request rate λ*: prefill shares the iterations with decode (an iteration admitting k "
        f"prompts lasts max(memory, decode + k × {pf_ms:.1f} ms) + overhead), so the mean iteration grows "
        f"like 1 / (1 − λ × {pf_ms:.1f} ms); the {S} slots fill at λ* = {max_rps:.3f} req/s, where the "
        f"mean iteration is {sat.tau_s * 1e3:.2f} ms (decode batch {sat.b:.0f}, {sat.p_prefill:.0%} of "
        f"iterations prefill, prefill uses {max_rps * pf_ms / 1e3:.0%} of GPU time) → "
        f"{max_tok_s:,.0f} output tok/s per replica",
        f"M/G/c view: {comp.replicas} × {S} slots, each held h* = S / λ* = {cap.hold_s * 1e3:,.0f} ms "
        f"(prefill iteration + {sh.output - 1:.0f} × {sat.tau_s * 1e3:.2f} ms) → ρ = λ / (replicas × λ*)",
        f"replicas for {arrival_rps:.3f} req/s at ≤ {TARGET_LOAD:.0%} load: ⌈{arrival_rps:.3f} / "
        f"({TARGET_LOAD:g} × {max_rps:.3f})⌉ = {needed} → {needed} × {spec.gpus} = "
        f"{needed * spec.gpus} GPUs (configured: {comp.replicas} × {spec.gpus} = {comp.gpus})",
    ]
    ex.extend(sh.kv_notes)
    it = ld.it
    if not ld.saturated:
        ex.append(
            f"at {per_replica:.3f} req/s per configured replica ({per_replica / max_rps:.0%} of λ*): "
            f"decode batch b = λ × (O − 1) × mean iteration ≈ {it.b:.0f}, mean iteration "
            f"{it.tau_s * 1e3:.2f} ms ({it.p_prefill:.0%} carry prefill; a pure decode step is "
            f"{it.step_s * 1e3:.2f} ms)")
        ex.append(
            f"TTFT mean ≈ {ld.ttft_s * 1e3:.1f} ms = slot wait {ld.wait_s * 1e3:.1f} ms (M/G/{comp.replicas * S}, "
            f"Allen–Cunneen) + rest of the running iteration {ld.ttft_s * 1e3 - ld.wait_s * 1e3 - it.own_s * 1e3:.1f} ms "
            f"+ own prefill iteration {it.own_s * 1e3:.1f} ms; TTFT p95 ≈ {ld.ttft_p95_s * 1e3:.0f} ms (gamma fit)")
        ex.append(
            f"TPOT mean ≈ {ld.tpot_s * 1e3:.2f} ms (mean iteration at batch b + 1); TPOT p95 ≈ "
            f"{ld.tpot_p95_s * 1e3:.2f} ms (spread of the mean of O − 1 correlated iterations over the "
            f"output lengths)")
    else:
        ex.append(
            f"at {per_replica:.3f} req/s per configured replica the server is saturated "
            f"(λ* = {max_rps:.3f} req/s): the queue grows without bound; once a request holds a slot, "
            f"TTFT ≈ {ld.ttft_s * 1e3:.1f} ms (p95 {ld.ttft_p95_s * 1e3:.0f} ms) and TPOT ≈ "
            f"{ld.tpot_s * 1e3:.2f} ms (p95 {ld.tpot_p95_s * 1e3:.2f} ms)")
    return LLMEstimate(
        weights_gb=spec.weights_bytes / gb, kv_bytes_per_token=spec.kv_bytes_per_token,
        kv_capacity_tokens=float(cap_tok), max_concurrent_seqs=S,
        decode_step_ms=step_s * 1e3, prefill_ms=prefill_alone * 1e3,
        max_output_tokens_per_s_per_replica=max_tok_s, max_requests_per_s_per_replica=max_rps,
        replicas_needed=needed, gpus_needed=needed * spec.gpus,
        ttft_ms_estimate=ld.ttft_s * 1e3, tpot_ms_estimate=ld.tpot_s * 1e3,
        ttft_ms_p95_estimate=ld.ttft_p95_s * 1e3, tpot_ms_p95_estimate=ld.tpot_p95_s * 1e3,
        bound=bound, explanation=ex,
        decode_batch_at_load=None if ld.saturated else ld.it.b, prefix_cache_hit_ratio=sh.prefix_hit,
        speculative_tokens_per_step=sh.specu.tokens_per_step if sh.specu is not None else None,
        speculative_breakeven_batch=(sh.specu.breakeven_batch(spec, sh.kv_read, spec.max_batch)
                                     if sh.specu is not None else None),
    )
