"""What one provider call costs: list prices, prompt caching, cache writes and the batch API.

Used by the daily cost (``sim.cost``), pipeline stages (``sim.pipeline``) and eval runs
(``sim.quality.evalstats``); the token split (fresh, cached, context growth in agent loops)
comes from ``sim.quality.agents``.

Usage::

    >>> from sim.providers.pricing import api_call_price
    >>> # usd, arithmetic, tokens = api_call_price(comp, design, 3000, 150, calls_per_day=540_000)
"""

from __future__ import annotations

from typing import Any

__all__ = ["api_call_price", "PRICING_SOURCES"]

PRICING_SOURCES = (
    "cached input: OpenAI GPT-4o $1.25 vs $2.50 per 1M (half), Anthropic reads 0.1× and writes 1.25× "
    "(provider prompt-caching docs); ≥ 1,024-token prefixes in 128-token steps (OpenAI Prompt Caching 201); "
    "batch API 50 % off, 24 h turnaround (OpenAI and Anthropic batch docs)")


def api_call_price(comp: Any, design: Any, prompt_tokens: float, output_tokens: float,
                   calls_per_day: float) -> tuple[float, str, Any]:
    """(USD per call, the arithmetic, CallTokens) of one ``llm_api``/``judge`` call.

    Fresh input at the input price, cached input (warm shared prefix; in a growing agent loop
    the previous step's prompt) at the cached price, cache writes at ``cache_write_multiplier``,
    output at the output price, everything × (1 − batch_discount) with ``batch_api``.
    """
    from sim.quality.agents import call_tokens

    t = call_tokens(design, comp, prompt_tokens, output_tokens, calls_per_day)
    p_in, p_out = comp.usd_per_1m_input_tokens, comp.usd_per_1m_output_tokens
    p_cached = comp.usd_per_1m_cached_input_tokens
    if p_cached is None:
        p_cached = 0.5 * p_in
    writes = 0.0
    if comp.cache_write_multiplier > 1 and (t.cached > 0 or comp.shared_prefix_tokens > 0):
        # Tokens that become cache entries pay the write premium: a cold shared prefix, and in a
        # loop every call's new tokens but the last call's.
        from sim.quality.agents import _cacheable

        writes = (1 - t.hit_ratio) * _cacheable(min(comp.shared_prefix_tokens, prompt_tokens), comp.prompt_cache_min_tokens)
        if t.loop is not None and t.loop.mean_calls > 0:
            writes += t.fresh * (1 - 1 / t.loop.mean_calls)
        writes = min(writes, t.fresh)
    factor = (1 - comp.batch_discount) if comp.batch_api else 1.0
    usd = factor * ((t.fresh - writes) * p_in + writes * p_in * comp.cache_write_multiplier
                    + t.cached * p_cached + t.output * p_out) / 1e6
    if t.cached == 0 and writes == 0 and factor == 1.0:
        text = f"({t.fresh:,.0f} in × ${p_in:g} + {t.output:,.0f} out × ${p_out:g}) / 1M tokens"
    else:
        parts = [f"{t.fresh - writes:,.0f} in × ${p_in:g}"]
        if writes:
            parts.append(f"{writes:,.0f} cache-write × ${p_in * comp.cache_write_multiplier:g}")
        if t.cached:
            parts.append(f"{t.cached:,.0f} cached × ${p_cached:g}")
        parts.append(f"{t.output:,.0f} out × ${p_out:g}")
        text = f"({' + '.join(parts)}) / 1M tokens"
        if factor != 1.0:
            text = f"{factor:g} (batch API) × {text}"
    if t.lines:
        text += " [" + "; ".join(t.lines) + "]"
    return usd, text, t
