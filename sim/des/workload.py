"""Workload generation: when requests arrive and what they carry.

* Open loop: Poisson arrivals at `workload.peak_rps` (`OpenLoop(rate)`), or over a whole day
  with `profile_24h` as piecewise-constant hourly rates (`OpenLoop.whole_day(workload)`);
  the gap across an hour boundary is redrawn at the new rate, which is exact for a
  piecewise-constant Poisson process because it is memoryless.
* Closed loop: `concurrent_users` users that send, wait for the answer, think
  (`think_time`), and send again (`think_sampler`).
* Request classes mixed by share; each request draws its prompt and output tokens from its
  class (`class_sampler`).

Usage::

    >>> import random
    >>> from designs.model import Workload
    >>> w = Workload(arrival_rps=10)
    >>> src = OpenLoop(w.peak_rps, random.Random(1))
    >>> gap = src.gap(0.0)                       # seconds to the next arrival
    >>> draw = class_sampler(w, random.Random(2))
    >>> draw()                                    # (class index, prompt tokens, output tokens)
    (0, 500, 200)
"""

from __future__ import annotations

import random
from bisect import bisect_right
from math import exp as _exp, log as _log, sqrt as _sqrt
from typing import Callable

# `Random.normalvariate` is Kinderman & Monahan's ratio method (CPython's random.py); the
# lognormal token counts inline it (two calls fewer per draw). Checked once against this
# Python's own `lognormvariate`: any difference and the draws call the library instead.
_NV_MAGICCONST = 4 * _exp(-0.5) / _sqrt(2.0)


def _km_inline_ok() -> bool:
    a, b = random.Random(20261202), random.Random(20261202)
    for _ in range(500):
        u = a.lognormvariate(0.3, 1.7)
        while True:
            u1 = b.random()
            u2 = 1.0 - b.random()
            z = _NV_MAGICCONST * (u1 - 0.5) / u2
            if z * z / 4.0 <= -_log(u2):
                break
        if _exp(0.3 + z * 1.7) != u:
            return False
    return a.random() == b.random()


_KM_INLINE_OK = _km_inline_ok()

__all__ = ["OpenLoop", "hourly_rates", "class_sampler", "count_draw", "think_sampler", "SECONDS_PER_HOUR", "DAY_S"]

SECONDS_PER_HOUR = 3600.0
DAY_S = 86_400.0


def hourly_rates(workload) -> list[float]:
    """Arrival rate (requests/s) for each hour of a whole-day run.

    With `profile_24h`: the day's average rate × each multiplier / mean multiplier, so the day
    carries exactly `requests_per_day` in expectation (or `arrival_rps` × 86 400 when given).
    Without a profile the day is flat at the average rate.
    """
    avg = workload.arrival_rps if workload.arrival_rps is not None else workload.average_rps
    prof = workload.profile_24h
    if not prof:
        return [avg] * 24
    m = sum(prof) / 24.0
    return [avg * x / m for x in prof]


class OpenLoop:
    """Poisson arrivals: constant `rate_rps`, or piecewise-constant hourly `rates` for a day."""

    def __init__(self, rate_rps: float, rng: random.Random, rates: list[float] | None = None, horizon_s: float | None = None):
        self.rate = rate_rps
        self.rates = rates
        self.horizon_s = horizon_s
        self.rng = rng
        self._expo = rng.expovariate

    @classmethod
    def whole_day(cls, workload, rng: random.Random) -> "OpenLoop":
        return cls(0.0, rng, hourly_rates(workload), DAY_S)

    def gap(self, now: float) -> float | None:
        """Seconds from `now` to the next arrival; None when the horizon is reached."""
        if self.rates is None:
            g = self._expo(self.rate)
            if self.horizon_s is not None and now + g >= self.horizon_s:
                return None
            return g
        t = now
        rates = self.rates
        while True:
            h = int(t // SECONDS_PER_HOUR)
            if h >= len(rates):
                return None
            end = (h + 1) * SECONDS_PER_HOUR
            r = rates[h]
            if r > 0.0:
                g = self._expo(r)
                if t + g < end:
                    return t + g - now
            t = end  # memoryless: restart the clock at the boundary with the next hour's rate

    def expected_requests(self) -> float:
        if self.rates is None:
            return self.rate * (self.horizon_s or 0.0)
        return sum(self.rates) * SECONDS_PER_HOUR


def class_sampler(workload, rng: random.Random, record=None) -> Callable[[], tuple[int, int, int]]:
    """A draw of (class index, prompt tokens, output tokens) by class share.

    Fixed token counts skip the distribution call (the common case, and the hot path); the
    others are drawn by `count_draw` closures (the same numbers as ``dist.sample_int(rng)``).
    ``record``: ``(outs, prompts)``, two lists each draw appends its output and prompt tokens
    to (the control variates' per-batch sums, `sim.des.run`).
    """
    classes = workload.request_classes()
    cum: list[float] = []
    acc = 0.0
    for c in classes:
        acc += c.share
        cum.append(acc)
    cum[-1] = float("inf")  # shares sum to 1 up to rounding; never fall off the end
    fused = _fused_sampler(classes, cum, rng, record)
    if fused is not None:
        return fused
    draws = []
    for c in classes:
        pt, ot = c.prompt_tokens, c.output_tokens
        fp = max(1, int(round(pt.expected()))) if pt.dist == "fixed" else None
        fo = max(1, int(round(ot.expected()))) if ot.dist == "fixed" else None
        draws.append((fp, fo, count_draw(pt, rng), count_draw(ot, rng)))
    rand = rng.random
    single = len(classes) == 1

    def draw() -> tuple[int, int, int]:
        i = 0 if single else bisect_right(cum, rand())
        fp, fo, sp, so = draws[i]
        return i, (fp if fp is not None else sp()), (fo if fo is not None else so())

    if record is None:
        return draw
    add_out, add_prompt = record[0].append, record[1].append

    def draw_and_record() -> tuple[int, int, int]:
        c, p, o = draw()
        add_out(o)
        add_prompt(p)
        return c, p, o

    return draw_and_record


def _fused_sampler(classes, cum, rng: random.Random, record):
    """`class_sampler`'s draw in one frame when every count is fixed or lognormal (the LLM
    workloads): the class choice, both `count_draw` lognormals and the recording written out,
    ~1 µs a request less than the three calls. The same random numbers in the same order
    (class, prompt, output) and the same values. None when another distribution is used."""
    from components.distributions import LogNormalCount, _lognormal_params

    if not _KM_INLINE_OK:
        return None
    params = []
    for c in classes:
        row = []
        for d in (c.prompt_tokens, c.output_tokens):
            if d.dist == "fixed":
                row += [max(1, int(round(d.expected()))), 0.0, 0.0]
            elif type(d).sample is LogNormalCount.sample:
                mu, sigma = _lognormal_params(d.mean, d.p95)
                row += [None, mu, sigma]
            else:
                return None
        params.append(tuple(row))
    single = len(classes) == 1
    add_out = record[0].append if record is not None else None
    add_prompt = record[1].append if record is not None else None

    def draw(rand=rng.random, log=_log, exp=_exp, nv=_NV_MAGICCONST, cum=cum, params=params) -> tuple[int, int, int]:
        i = 0 if single else bisect_right(cum, rand())
        fp, mp, sp, fo, mo, so = params[i]
        if fp is None:  # `Random.lognormvariate` (Kinderman–Monahan), as `count_draw` does it
            while True:
                u1 = rand()
                u2 = 1.0 - rand()
                z = nv * (u1 - 0.5) / u2
                if z * z / 4.0 <= -log(u2):
                    break
            fp = round(exp(mp + z * sp))  # = max(1, int(round(x))) for x > 0: round gives an int
            if not fp:
                fp = 1
        if fo is None:  # the same loop again, for the output (a shared helper would be a call)
            while True:
                u1 = rand()
                u2 = 1.0 - rand()
                z = nv * (u1 - 0.5) / u2
                if z * z / 4.0 <= -log(u2):
                    break
            fo = round(exp(mo + z * so))
            if not fo:
                fo = 1
        if add_out is not None:
            add_out(fo)
            add_prompt(fp)
        return i, fp, fo

    return draw


def count_draw(dist, rng: random.Random) -> Callable[[], int]:
    """``lambda: dist.sample_int(rng)`` with the distribution's parameters worked out once.

    A lognormal's (μ, σ) come from its mean and p95 through a square root and two logs; a
    request draws two counts, so solving that per draw was ~10 % of an LLM run. Same random
    numbers, same values, in the same order.
    """
    from components.distributions import ExponentialCount, LogNormalCount, _lognormal_params

    own = type(dist).sample
    if own is LogNormalCount.sample:
        mu, sigma = _lognormal_params(dist.mean, dist.p95)
        if not _KM_INLINE_OK:
            lognorm = rng.lognormvariate
            return lambda: max(1, int(round(lognorm(mu, sigma))))
        rand = rng.random

        def lognormal_count() -> int:  # `Random.lognormvariate`, its normal deviate written out
            while True:
                u1 = rand()
                u2 = 1.0 - rand()
                z = _NV_MAGICCONST * (u1 - 0.5) / u2
                if z * z / 4.0 <= -_log(u2):
                    break
            n = round(_exp(mu + z * sigma))  # = max(1, int(round(x))) for x > 0
            return n if n else 1

        return lognormal_count
    if own is ExponentialCount.sample:
        lam = 1.0 / dist.mean
        expo = rng.expovariate
        return lambda: max(1, int(round(expo(lam))))
    sample_int = dist.sample_int
    return lambda: sample_int(rng)


def think_sampler(workload, rng: random.Random) -> Callable[[], float]:
    """Closed loop: a user's think time in seconds (0 when no `think_time` is given)."""
    from .stations import make_sampler

    if workload.think_time is None:
        return lambda: 0.0
    return make_sampler(workload.think_time, rng)
