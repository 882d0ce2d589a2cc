"""Agent loops as priced by providers: context that grows every step, and what prompt caching saves.

An agent's model call inside a loop (a back edge with ``p`` and ``max_repeats``) runs N times
per task, P(N > k) = qᵏ for k ≤ m (the flow's loop model, ``sim.twin.flow``); q is solved from
the component's visits with and without the back edge. With ``context_growth_tokens_per_step``
= g each repeat re-sends everything so far plus the previous step's output and tool results:
call j (0-based) has ``P0 + j·g`` prompt tokens, so a task sends ``N·P0 + g·N(N−1)/2``.

Prompt caching (providers bill a reused prefix at a cached-input price):

* the static shared prefix (system prompt, tool schemas) is cached when it is at least
  ``prompt_cache_min_tokens`` (1,024 at OpenAI and Anthropic), in 128-token increments
  (OpenAI), and the cache is warm with probability ``1 − exp(−λ·TTL)`` — a Poisson stream of
  λ calls/s keeps an entry alive when the next call comes within the TTL (5 min at Anthropic,
  "5–10 minutes of inactivity" at OpenAI);
* in a growing loop, call j ≥ 1 starts with call j−1's whole prompt, sent seconds earlier:
  those ``P0 + (j−1)·g`` tokens are cached.

Usage::

    >>> from sim.quality.agents import loop_calls, call_tokens
    >>> # loop_calls(design, "planner") -> LoopCalls(mean_calls=2.0, ...)
    >>> # call_tokens(design, comp, calls_per_day=540_000) -> per-call fresh / cached / output tokens
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoopCalls", "CallTokens", "loop_calls", "call_tokens", "PROMPT_CACHE_INCREMENT"]

PROMPT_CACHE_INCREMENT = 128
"""Cache hits come in increments of 128 tokens (OpenAI Prompt Caching 201 cookbook)."""


@dataclass
class LoopCalls:
    """How many times one task calls a component, from the flow's loop model."""

    mean_calls: float
    """E[N] given the component is reached."""
    pairs: float
    """E[N(N−1)/2] = Σₖ k·P(N > k): what linear context growth multiplies."""
    pairs_before: float
    """E[(N−1)(N−2)/2]: the growth already sent by the previous call (cached in a loop)."""
    max_repeats: int = 0
    q: float = 0.0
    """Probability of another pass (r·p of the loop)."""
    edge: str = ""


@dataclass
class CallTokens:
    """Mean tokens of one call, split by how they are billed."""

    prompt: float
    fresh: float
    """Input tokens billed at the full input price."""
    cached: float
    """Input tokens billed at the cached-input price."""
    output: float
    hit_ratio: float
    """Probability the shared prefix is warm."""
    loop: LoopCalls | None = None
    lines: list[str] = field(default_factory=list)


def _solve_q(ratio: float, m: int) -> float:
    """q with Σₖ₌₀..ₘ qᵏ = ratio (bisection; ratio ∈ [1, m + 1])."""
    if ratio <= 1 + 1e-12:
        return 0.0
    if ratio >= m + 1 - 1e-12:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if sum(mid**k for k in range(m + 1)) < ratio:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def loop_calls(design: Any, cid: str) -> LoopCalls | None:
    """The loop a component sits in and its call-count moments; None when it is in no loop."""
    from designs.model import Design
    from sim.twin.flow import visits_per_request

    for i, e in enumerate(design.flow):
        if not e.is_loop:
            continue
        in_cycle = (cid == e.to or cid in design._distances(e.to)) and (
            e.from_ == cid or e.from_ in design._distances(cid))
        if not in_cycle:
            continue
        with_loop = visits_per_request(design).get(cid, 0.0)
        data = design.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["flow"] = [f for j, f in enumerate(data["flow"]) if j != i]
        without = visits_per_request(Design.model_validate(data)).get(cid, 0.0)
        if without <= 0:
            continue
        m = e.max_repeats or 1
        q = _solve_q(with_loop / without, m)
        tail = [q**k for k in range(m + 1)]  # P(N > k), k = 0..m
        mean = sum(tail)
        pairs = sum(k * tail[k] for k in range(1, m + 1))
        # E[(N−1)(N−2)/2] = Σₖ (k−1)·P(N > k) for k ≥ 2.
        before = sum((k - 1) * tail[k] for k in range(2, m + 1))
        return LoopCalls(mean_calls=mean, pairs=pairs, pairs_before=before, max_repeats=m, q=q,
                         edge=f"{e.from_} → {e.to} (p {e.p:g}, max_repeats {m})")
    return None


def _cacheable(tokens: float, minimum: int) -> float:
    if tokens < minimum:
        return 0.0
    return math.floor(tokens / PROMPT_CACHE_INCREMENT) * PROMPT_CACHE_INCREMENT


def call_tokens(design: Any, comp: Any, prompt_tokens: float, output_tokens: float,
                calls_per_day: float) -> CallTokens:
    """Mean fresh, cached and output tokens per call of an ``llm_api``/``judge``."""
    g = getattr(comp, "context_growth_tokens_per_step", 0.0) or 0.0
    loop = loop_calls(design, comp.id) if design is not None and g > 0 else None
    lines = []
    prompt = prompt_tokens
    if loop is not None and loop.mean_calls > 0:
        extra = g * loop.pairs / loop.mean_calls
        prompt = prompt_tokens + extra
        lines.append(f"context growth: {g:,.0f} tokens per step over the loop {loop.edge}: E[N] = {loop.mean_calls:.3g} calls, "
                     f"E[N(N−1)/2] = {loop.pairs:.3g} → +{extra:,.0f} tokens per call on average")
    shared = min(getattr(comp, "shared_prefix_tokens", 0) or 0, prompt_tokens)
    lam = calls_per_day / 86_400
    ttl = getattr(comp, "prompt_cache_ttl_s", 300.0)
    hit = 1 - math.exp(-lam * ttl) if shared > 0 and lam > 0 else 0.0
    first_cached = hit * _cacheable(shared, getattr(comp, "prompt_cache_min_tokens", 1024))
    if shared > 0:
        lines.append(f"shared prefix {shared:,.0f} tokens → {_cacheable(shared, comp.prompt_cache_min_tokens):,.0f} cacheable "
                     f"(≥ {comp.prompt_cache_min_tokens:,}, 128-token steps), warm with p = 1 − exp(−{lam:,.3g}/s × {ttl:g} s) = {hit:.3f}")
    cached = first_cached
    if loop is not None and loop.mean_calls > 0:
        # Calls j ≥ 1 start with the previous call's whole prompt (seconds old): cached.
        repeats = loop.mean_calls - 1
        prev = repeats * prompt_tokens + g * loop.pairs_before
        cached = (first_cached + prev) / loop.mean_calls
        lines.append(f"in the loop each repeat re-sends the previous call's prompt ({prompt_tokens:,.0f} + (j−1)·{g:,.0f} tokens), "
                     f"cached: {cached:,.0f} of {prompt:,.0f} prompt tokens per call on average")
    cached = min(cached, prompt)
    return CallTokens(prompt=prompt, fresh=prompt - cached, cached=cached, output=output_tokens, hit_ratio=hit,
                      loop=loop, lines=lines)
