"""Speculative decoding on an `llm_server` replica: tokens per step, draft cost, where it pays.

A step drafts k tokens per sequence (a small draft model run k times, or EAGLE/MTP heads),
then the target verifies them in one forward pass over k + 1 tokens per sequence. With each
drafted token accepted independently with probability α, a sequence gains

    E = (1 − α^(k+1)) / (1 − α)        tokens per target step          (Leviathan et al. 2023)

The target pass reads its weights and KV once, as a plain decode step does, but computes k + 1
tokens per sequence: at small batch (memory-bound) verification is almost free and the step
yields E tokens; at large batch (compute-bound) it costs ~(k + 1)× and speculation loses.
`breakeven_batch` is the batch above which the time per token exceeds plain decoding.

Draft cost per step: ``draft_model`` — k decode steps of the draft's own roofline (a second
`ServingSpec` on the same GPUs; its weights and KV take memory from the target's KV cache);
``eagle`` / ``mtp`` — k passes of a head of one decoder layer plus the LM head
(`head_fraction` of the target's step; its one-layer KV and weights also take memory).
Assumption: the k draft passes run inside the engine step without host overhead of their own
(CUDA graphs), so the per-iteration overhead is paid once.

Usage::

    >>> from components.catalogue import LLMServer
    >>> from sim.llm.roofline import ServingSpec
    >>> comp = LLMServer(id="llm", model="llama-3.1-70b", gpus_per_replica=4,
    ...                  speculative={"method": "eagle", "draft_tokens": 4, "acceptance_rate": 0.8})
    >>> sp = Speculation.from_component(comp, ServingSpec.from_component(comp))
    >>> round(sp.tokens_per_step, 4)
    3.3616
"""

from __future__ import annotations

from dataclasses import dataclass

from .kv import tokens_per_step
from .roofline import ServingConfigError, ServingSpec

__all__ = ["Speculation", "DEFAULT_ACCEPTANCE", "DEFAULT_DRAFT_TOKENS"]

# Default acceptance rate α per method, with sources:
# - draft_model 0.6: Leviathan, Kalman, Matias, "Fast Inference from Transformers via
#   Speculative Decoding" (ICML 2023), Table 3: α from 0.5 to 0.8 across draft/target pairs and
#   tasks (e.g. T5-small drafting for T5-XXL: 0.75 on En-De, 0.62 on CNN/DM); 0.6 is the lower
#   middle, for a general small draft — assumption within the published range.
# - eagle 0.75: Li et al., "EAGLE: Speculative Sampling Requires Rethinking Feature
#   Uncertainty" (ICML 2024): per-token acceptance rates of about 0.7–0.8 on MT-bench for
#   LLaMA2-Chat / Vicuna; 0.75 is the middle of that range.
# - mtp 0.85: DeepSeek-V3 Technical Report (arXiv 2412.19437, §5.4.3): "the acceptance rate of
#   the second token prediction ranges between 85% and 90%" with one MTP module, "1.8 times TPS".
DEFAULT_ACCEPTANCE = {"draft_model": 0.6, "eagle": 0.75, "mtp": 0.85}
# Draft length: DeepSeek-V3 predicts 1 extra token (one MTP module); EAGLE's and vLLM's
# examples use 4–5 speculative tokens for a draft (vLLM docs, "Speculative Decoding":
# num_speculative_tokens 5 for a draft model) — 4 taken for both.
DEFAULT_DRAFT_TOKENS = {"draft_model": 4, "eagle": 4, "mtp": 1}


@dataclass(frozen=True)
class Speculation:
    """The speculative-decoding figures of one replica."""

    method: str
    k: int
    alpha: float
    draft: ServingSpec | None  # draft_model: the draft's own roofline
    head_fraction: float  # eagle/mtp: the head's share of the target's weights (one layer + LM head)
    extra_weights_bytes: float  # memory the draft takes besides the target's weights
    extra_kv_bytes_per_token: float  # KV the draft keeps per token

    @classmethod
    def from_component(cls, comp, target: ServingSpec) -> "Speculation | None":
        sd = getattr(comp, "speculative", None)
        if sd is None:
            return None
        k = sd.draft_tokens if sd.draft_tokens is not None else DEFAULT_DRAFT_TOKENS[sd.method]
        alpha = sd.acceptance_rate if sd.acceptance_rate is not None else DEFAULT_ACCEPTANCE[sd.method]
        m = target.model
        if sd.method == "draft_model":
            from components.catalogue import LLMServer

            dcomp = LLMServer(id=f"{comp.id}-draft"[:64], model=sd.draft_model, gpu=comp.gpu,
                              gpus_per_replica=comp.gpus_per_replica, precision=comp.precision,
                              kv_cache_precision=comp.kv_cache_precision, max_batch=comp.max_batch)
            try:
                draft = ServingSpec.from_component(dcomp)
            except ServingConfigError as e:
                raise ServingConfigError(f"{comp.id}: speculative.draft_model: {e}") from None
            return cls(sd.method, k, alpha, draft, 0.0, draft.weights_bytes, draft.kv_bytes_per_token)
        head = _head_fraction(m)
        return cls(sd.method, k, alpha, None, head, head * target.weights_bytes,
                   target.kv_bytes_per_token / m.layers)

    @property
    def tokens_per_step(self) -> float:
        return tokens_per_step(self.alpha, self.k)

    def kv_capacity_tokens(self, target: ServingSpec) -> int:
        """Target KV tokens that fit once the draft's weights and per-token KV are placed."""
        free = target.kv_capacity_bytes - self.extra_weights_bytes
        return max(0, int(free // (target.kv_bytes_per_token + self.extra_kv_bytes_per_token)))

    def draft_s(self, target: ServingSpec, batch: float, kv_tokens: float) -> float:
        """Time of the k draft passes for ``batch`` sequences holding ``kv_tokens`` KV tokens."""
        if batch <= 0:
            return 0.0
        if self.draft is not None:
            d = self.draft
            return self.k * (d.iteration_s(batch, kv_tokens) - d.iteration_overhead_s)
        step = target.iteration_s(batch, kv_tokens) - target.iteration_overhead_s
        return self.k * self.head_fraction * step

    def step_s(self, target: ServingSpec, batch: float, kv_tokens: float, prefill_tokens: float = 0.0,
               prefill_flops_s: float | None = None) -> float:
        """One speculative iteration: verify k + 1 tokens per sequence (+ prefill) + the drafts."""
        if batch <= 0:
            return target.iteration_s(0, 0, prefill_tokens, prefill_flops_s)
        return (target.iteration_s(batch * (self.k + 1), kv_tokens, prefill_tokens, prefill_flops_s)
                + self.draft_s(target, batch, kv_tokens))

    def time_per_token(self, target: ServingSpec, batch: float, kv_per_seq: float) -> tuple[float, float]:
        """(speculative, plain) decode time per output token at ``batch`` (no prefill)."""
        kv = batch * kv_per_seq
        return (self.step_s(target, batch, kv) / self.tokens_per_step, target.iteration_s(batch, kv))

    def breakeven_batch(self, target: ServingSpec, kv_per_seq: float, max_batch: int) -> int | None:
        """Smallest batch at which speculation is no faster per token than plain decoding."""
        for b in range(1, max_batch + 1):
            s, p = self.time_per_token(target, b, kv_per_seq)
            if s >= p:
                return b
        return None

    def lines(self, target: ServingSpec, kv_per_seq: float, batch: float) -> list[str]:
        """Explanation lines for `sdw estimate`."""
        E = self.tokens_per_step
        s1, p1 = self.time_per_token(target, 1, kv_per_seq)
        b = max(1, round(batch))
        sb, pb = self.time_per_token(target, b, kv_per_seq)
        be = self.breakeven_batch(target, kv_per_seq, target.max_batch)
        cost = (f"{self.k} draft steps of {self.draft.model.name}" if self.draft is not None else
                f"{self.k} passes of a {self.method.upper()} head ({self.head_fraction:.1%} of the target's weights)")
        return [
            f"speculative decoding ({self.method}, k = {self.k}, α = {self.alpha:g}): (1 − α^{self.k + 1}) / (1 − α) "
            f"= {E:.2f} tokens per step; a step verifies {self.k + 1} tokens per sequence in one target pass + {cost}",
            f"speculative time per token: batch 1 {s1 * 1e3:.2f} ms vs {p1 * 1e3:.2f} ms plain ({p1 / s1:.2f}×); "
            f"batch {b} {sb * 1e3:.2f} ms vs {pb * 1e3:.2f} ms ({pb / sb:.2f}×); "
            + (f"it stops paying at batch {be} (the verify pass turns compute-bound)" if be else
               f"it pays up to max_batch {target.max_batch}"),
        ]


def _head_fraction(m) -> float:
    """One decoder layer + the LM head, as a share of all parameters (EAGLE's and MTP's head)."""
    total = m.params_total_b * 1e9
    embed = m.vocab * m.hidden
    body = max(0.0, total - embed * (1 if m.tied_embeddings else 2))
    return min(1.0, (body / m.layers + embed) / total)
