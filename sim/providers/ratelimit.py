"""Provider rate limits: a deterministic token bucket and the analytic figures of a limit.

An external LLM API (``llm_api``) or judge (``judge``) allows ``rpm_limit`` requests and
``tpm_limit`` tokens (prompt + output) per minute. Each limit is a token bucket refilled at
limit/60 per second. The bucket holds a full minute's worth (``DEFAULT_BURST_S = 60``): the
limits are stated per minute and a provider accepts any single request under its per-minute
token limit (OpenAI rate-limit guide). Providers may also quantise a limit to shorter periods
("60,000 requests/minute may be enforced as 1,000 requests/second", same guide); pass a smaller
``burst_s`` to model that. The steady-state rate is the same either way; only bursts differ.

Usage::

    >>> from sim.providers.ratelimit import TokenBucket
    >>> b = TokenBucket(rate_per_s=10, burst=2)     # 600 requests/minute, burst of 2
    >>> b.reserve(0.0, 1), b.reserve(0.0, 1), b.reserve(0.0, 1)   # third one waits 0.1 s
    (0.0, 0.0, 0.1)
    >>> b.try_take(0.1, 1)                          # the bucket is empty again at 0.1 s
    False

    >>> from sim.providers.ratelimit import api_limits
    >>> # api_limits(design.component("llm"), design.workload, arrival_rps=12.0)
    >>> # -> {'max_sustainable_rps': 10.0, 'binding': 'rpm', 'utilization': 1.2, ...}

Pure Python and deterministic: no clock, no randomness; the caller passes ``now`` in seconds.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

__all__ = [
    "TokenBucket",
    "DEFAULT_BURST_S",
    "reserve_all",
    "can_take_all",
    "buckets_for",
    "mean_tokens_per_call",
    "mean_service_s",
    "api_limits",
]

DEFAULT_BURST_S = 60.0
"""Seconds of refill a bucket holds: a full minute, the period the provider states limits in."""

_EPS = 1e-9  # float slack so a bucket refilled to exactly `amount` counts as enough


class TokenBucket:
    """A token bucket: ``rate_per_s`` tokens added per second, at most ``burst`` held.

    Starts full. Two ways to take tokens:

    * ``reserve(now, amount)`` (wait mode): returns the earliest time ≥ ``now`` at which the
      bucket holds ``amount`` and takes them at that time. Reservations are FIFO: a later
      caller never starts before an earlier one, so calls must come in arrival order.
    * ``try_take(now, amount)`` (retry mode): takes ``amount`` if available now, else nothing.

    An ``amount`` above ``burst`` can never be held at once: ``try_take`` always refuses it,
    ``reserve`` lets it through after ``(amount − level)/rate`` and leaves the bucket empty
    (a debt model; callers that mimic providers refuse such requests before asking).
    """

    __slots__ = ("rate_per_s", "burst", "level", "last")

    def __init__(self, rate_per_s: float, burst: float):
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ValueError(f"token bucket rate must be a positive number, got {rate_per_s!r}")
        if not (burst > 0 and math.isfinite(burst)):
            raise ValueError(f"token bucket burst must be a positive number, got {burst!r}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self.level = float(burst)
        self.last = 0.0

    def __repr__(self) -> str:
        return f"TokenBucket(rate_per_s={self.rate_per_s:g}, burst={self.burst:g}, level={self.level:g}@{self.last:g})"

    def _advance(self, now: float) -> float:
        """Refill up to ``now`` (never backwards) and return the effective time."""
        t = max(now, self.last)
        self.level = min(self.burst, self.level + (t - self.last) * self.rate_per_s)
        self.last = t
        return t

    def available(self, now: float) -> float:
        """Tokens held at ``now`` (refills as a side effect; takes nothing)."""
        self._advance(now)
        return self.level

    def earliest(self, now: float, amount: float) -> float:
        """Earliest time ≥ ``now`` (and ≥ the last reservation) with ``amount`` tokens; takes nothing."""
        t = self._advance(now)
        short = amount - self.level
        return t if short <= _EPS else t + short / self.rate_per_s

    def take_at(self, t: float, amount: float) -> None:
        """Take ``amount`` at time ``t`` (≥ ``earliest(…, amount)``); the level never goes below 0."""
        self._advance(t)
        self.level = max(0.0, self.level - amount)

    def reserve(self, now: float, amount: float) -> float:
        """Wait mode: the start time for ``amount`` tokens asked at ``now``; takes them then."""
        start = self.earliest(now, amount)
        self.take_at(start, amount)
        return start

    def can_take(self, now: float, amount: float) -> bool:
        """Whether ``amount`` tokens are held at ``now`` (takes nothing)."""
        self._advance(now)
        return amount <= self.level + _EPS

    def try_take(self, now: float, amount: float) -> bool:
        """Retry mode: take ``amount`` now if held and return True; otherwise take nothing."""
        if not self.can_take(now, amount):
            return False
        self.level = max(0.0, self.level - amount)
        return True


def reserve_all(pairs: Iterable[tuple[TokenBucket, float]], now: float) -> float:
    """Wait mode over several buckets at once (requests and tokens): the common start time.

    Every bucket is debited at the same start, the latest of their earliest times, so the
    request is counted against each limit when it is actually sent.
    """
    pairs = list(pairs)
    start = max([now] + [b.earliest(now, a) for b, a in pairs])
    for b, a in pairs:
        b.take_at(start, a)
    return start


def can_take_all(pairs: Iterable[tuple[TokenBucket, float]], now: float, take: bool = True) -> bool:
    """Retry mode over several buckets: take from all of them only if all of them allow it."""
    pairs = list(pairs)
    if not all(b.can_take(now, a) for b, a in pairs):
        return False
    if take:
        for b, a in pairs:
            b.take_at(now, a)
    return True


def buckets_for(comp: Any, burst_s: float = DEFAULT_BURST_S) -> tuple[TokenBucket | None, TokenBucket | None]:
    """The (requests, tokens) buckets of an ``llm_api`` or ``judge``; None where no limit is set."""
    rpm = getattr(comp, "rpm_limit", None)
    tpm = getattr(comp, "tpm_limit", None)
    req = TokenBucket(rpm / 60.0, max(1.0, rpm / 60.0 * burst_s)) if rpm else None
    tok = TokenBucket(tpm / 60.0, max(1.0, tpm / 60.0 * burst_s)) if tpm else None
    return req, tok


def mean_tokens_per_call(comp: Any, workload: Any | None = None) -> tuple[float, float]:
    """(mean prompt tokens, mean output tokens) of one call.

    A ``judge`` has its own token distributions; an ``llm_api`` carries the request's tokens,
    so its means are the workload's request classes weighted by share.
    """
    if getattr(comp, "kind", None) == "judge":
        return comp.prompt_tokens.expected(), comp.output_tokens.expected()
    if workload is None:
        raise ValueError(f"{getattr(comp, 'kind', '?')} '{getattr(comp, 'id', '?')}': token means need the workload")
    classes = workload.request_classes()
    prompt = sum(c.share * c.prompt_tokens.expected() for c in classes)
    output = sum(c.share * c.output_tokens.expected() for c in classes)
    return prompt, output


def mean_service_s(comp: Any, output_tokens: float) -> float:
    """Mean time of one call in seconds: mean TTFT + (output tokens − 1) / mean output speed.

    The speed is quoted *after* the first token (catalogue docstring), hence the − 1; this is
    what ``sim.providers.api_station.ApiStation`` samples. E[n/v] is approximated by E[n]/E[v] (exact
    when the speed is fixed, the default).
    """
    tps = comp.output_tokens_per_s.expected()
    return comp.ttft.expected() / 1000.0 + (max(0.0, output_tokens - 1) / tps if tps > 0 else 0.0)


def api_limits(comp: Any, workload: Any | None = None, arrival_rps: float | None = None) -> dict[str, Any]:
    """Analytic figures of an ``llm_api``/``judge`` limit at ``arrival_rps`` (default: peak rate).

    Returns a dict:

    * ``rps_limit`` = rpm/60, ``tokens_per_s_limit`` = tpm/60 (None when not set);
    * ``mean_prompt_tokens``, ``mean_output_tokens``, ``mean_tokens_per_request`` (prompt + output,
      what the token limit counts);
    * ``max_sustainable_rps`` = min(rpm/60, tpm/60 / mean tokens) — None when unlimited —
      and ``binding`` (``'rpm'``, ``'tpm'`` or None);
    * ``mean_service_s`` (TTFT + output/speed), ``concurrency_cap_rps`` = max_concurrency /
      mean service (None when unbounded) and ``max_throughput_rps`` = the smaller of the two caps;
    * ``arrival_rps``, ``utilization`` = arrival / max_sustainable_rps (0 when unlimited),
      ``stable`` (utilisation < 1 of every cap), and ``explanation`` lines with the arithmetic.
    """
    kind = getattr(comp, "kind", "?")
    if kind not in ("llm_api", "judge"):
        raise ValueError(f"api_limits is for llm_api and judge components, not {kind} '{getattr(comp, 'id', '?')}'")
    prompt, output = mean_tokens_per_call(comp, workload)
    tokens = prompt + output
    if arrival_rps is None:
        arrival_rps = workload.peak_rps if workload is not None else 0.0
    rps_limit = comp.rpm_limit / 60.0 if comp.rpm_limit else None
    tps_limit = comp.tpm_limit / 60.0 if comp.tpm_limit else None
    caps: dict[str, float] = {}
    lines = [f"{comp.id}: {tokens:,.0f} tokens per call ({prompt:,.0f} prompt + {output:,.0f} output)"]
    if rps_limit is not None:
        caps["rpm"] = rps_limit
        lines.append(f"rpm {comp.rpm_limit:,} / 60 = {rps_limit:,.3g} requests/s")
    if tps_limit is not None:
        caps["tpm"] = tps_limit / tokens
        lines.append(f"tpm {comp.tpm_limit:,} / 60 / {tokens:,.0f} tokens = {caps['tpm']:,.3g} requests/s")
    binding = min(caps, key=caps.get) if caps else None
    sustainable = caps[binding] if binding else None
    service_s = mean_service_s(comp, output)
    conc = getattr(comp, "max_concurrency", None)
    conc_rps = conc / service_s if conc and service_s > 0 else None
    if conc_rps is not None:
        lines.append(f"max_concurrency {conc} / {service_s:.3g} s per call = {conc_rps:,.3g} requests/s")
    bounds = [x for x in (sustainable, conc_rps) if x is not None]
    max_tp = min(bounds) if bounds else None
    util = arrival_rps / sustainable if sustainable else 0.0
    stable = all(arrival_rps < b for b in bounds)
    if sustainable:
        lines.append(
            f"limit utilisation at {arrival_rps:,.3g} requests/s: {util:.0%} (binding: {binding})"
        )
    else:
        lines.append("no provider rate limit set")
    return {
        "id": comp.id,
        "kind": kind,
        "rps_limit": rps_limit,
        "tokens_per_s_limit": tps_limit,
        "mean_prompt_tokens": prompt,
        "mean_output_tokens": output,
        "mean_tokens_per_request": tokens,
        "max_sustainable_rps": sustainable,
        "binding": binding,
        "mean_service_s": service_s,
        "concurrency_cap_rps": conc_rps,
        "max_throughput_rps": max_tp,
        "arrival_rps": arrival_rps,
        "utilization": util,
        "stable": stable,
        "explanation": lines,
    }
