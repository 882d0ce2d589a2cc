"""The station protocol's base class and the samplers stations draw service times from.

`StationBase` gives a station its identity, random stream, timeout and time-weighted
accounting; `make_sampler` turns a `components.distributions` value into a cheap
zero-argument sampler in seconds. See `sim.des.stations` for the protocol and every kind.

Usage::

    from sim.des.station_base import StationBase, make_sampler

    class Echo(StationBase):
        def arrive(self, req, done):
            self.arrivals += 1
            self.record_wait(req, 0.0)
            self.call_later(0.005, lambda arg: done(*arg), (req, True))
"""

from __future__ import annotations

import math
import random
from itertools import repeat
from operator import neg, sub, truediv
from typing import Any, Callable

from .events import later
from .request import Done, Request, SimContext
from .stats import LogHistogram

__all__ = ["StationBase", "make_sampler", "expo_draw", "expo_stream"]


def make_sampler(dist: Any, rng, scale: float = 0.001) -> Callable[[], float]:
    """A zero-argument sampler of `dist` in seconds (`scale` converts from ms).

    Exponential and fixed get closures without pydantic in the loop (the engine's hot path).
    """
    tag = getattr(dist, "dist", None)
    if tag == "exponential" and hasattr(dist, "mean_ms"):
        rate = 1.0 / (dist.mean_ms * scale)
        expo = rng.expovariate
        return lambda: expo(rate)
    if tag == "fixed":
        v = dist.expected() * scale
        return lambda: v
    if tag == "lognormal":
        from components.distributions import _lognormal_params

        mean = dist.expected()
        p95 = getattr(dist, "p95_ms", None) or getattr(dist, "p95")
        mu, s = _lognormal_params(mean, p95)
        mu += math.log(scale)
        lnv = rng.lognormvariate
        return lambda: lnv(mu, s)
    sample = dist.sample
    return lambda: sample(rng) * scale


class StationBase:
    """Base class: identity, random stream, timeout, and time-weighted accounting.

    Attributes a subclass maintains:
        servers: parallel servers (None = unbounded, a pure delay: utilisation reported 0).
        busy: servers in use now.  qlen: requests waiting now (not in service).
        arrivals / completions / drops: counters since the last `reset_stats`.
        waits: `LogHistogram` of queueing delays in seconds (use `record_wait`).
    """

    kind = "station"
    servers: int | None = None

    def __init__(self, comp: Any, ctx: SimContext):
        self.comp = comp
        self.ctx = ctx
        self.env = ctx.env
        self.id: str = comp.id
        self.rng = ctx.stream(comp.id)
        t_ms = getattr(comp, "timeout_ms", None)
        self.timeout_s: float | None = t_ms / 1000.0 if t_ms else None
        self.busy = 0
        self.qlen = 0
        self._t = ctx.env.now
        self._busy_area = 0.0
        self._q_area = 0.0
        self._t_reset = ctx.env.now
        self.arrivals = 0
        self.completions = 0
        self.drops = 0
        self.waits = LogHistogram()
        self.lags: LogHistogram | None = None

    # --- protocol -------------------------------------------------------------------
    def arrive(self, req: Request, done: Done) -> None:
        raise NotImplementedError

    # --- helpers --------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Accumulate the busy-server and queue-length areas up to `now`."""
        dt = now - self._t
        if dt > 0.0:
            self._busy_area += self.busy * dt
            self._q_area += self.qlen * dt
            self._t = now

    def record_wait(self, req: Request, wait_s: float) -> None:
        """Call when `req` starts service here; also credits an async queue's lag."""
        self.waits.add(wait_s)
        if req.lag_from is not None:
            req.lag_from.record_lag(req, self.env._now)

    def call_later(self, delay_s: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``fn(arg)`` after `delay_s` simulated seconds."""
        later(self.env, delay_s, lambda e: fn(e._value), arg)

    def drop(self, req: Request, done: Done) -> None:
        """Count a drop here and tell the caller."""
        self.drops += 1
        req.dropped = True
        done(req, False)

    def reset_stats(self, now: float) -> None:
        """Start a measured window (a batch) at `now`: zero every counter and area."""
        self.tick(now)
        self._busy_area = 0.0
        self._q_area = 0.0
        self._t_reset = now
        self.arrivals = self.completions = self.drops = 0
        self.waits = LogHistogram()
        if self.lags is not None:
            self.lags = LogHistogram()

    def extra_stats(self, now: float) -> dict:
        """Additional `ComponentStats` fields (e.g. ``{"llm": LLMReplicaStats(...)}``)."""
        return {}

    def stats(self, now: float):
        """This station's `ComponentStats` over the measured window ending at `now`."""
        from sim.results import ComponentStats

        self.tick(now)
        span = max(now - self._t_reset, 1e-12)
        util = self._busy_area / (span * self.servers) if self.servers else 0.0
        wq = self.waits.quantile(0.95) if self.waits.n else 0.0
        fields = dict(
            kind=self.comp.kind,
            utilization=util,
            mean_queue_len=self._q_area / span,
            wait_ms_p95=wq * 1000.0,
            throughput_rps=self.completions / span,
            dropped=self.drops,
            arrivals=self.arrivals,
            backlog_end=self.qlen,
        )
        if self.lags is not None:
            fields["lag_ms_p95"] = (self.lags.quantile(0.95) if self.lags.n else 0.0) * 1000.0
        fields.update(self.extra_stats(now))
        return ComponentStats(**fields)

    def __repr__(self) -> str:
        if hasattr(self, "_sync_qlen"):
            self._sync_qlen()
        return f"<{type(self).__name__} {self.id} busy={self.busy}/{self.servers} q={self.qlen}>"


def expo_draw(rng: random.Random, rate: float) -> Callable[[], float]:
    """``rng.expovariate(rate)`` as a zero-argument callable that runs entirely in C.

    The same numbers in the same order (``-log(1 - u) / rate``, exactly as `random.expovariate`
    computes it, one ``rng.random()`` per call, nothing drawn ahead), without a Python frame.
    Where the engine's hot paths draw inside a running Python frame they write the expression
    out instead (``-_log(1.0 - rand()) / rate``: ~170 ns against ~250 ns for this call on
    Python 3.11 here); the numbers are the same either way.
    """
    return expo_stream(rng, rate).__next__


def expo_stream(rng: random.Random, rate: float):
    """``rng.expovariate(rate)``, ``rng.expovariate(rate)``, … as an endless C iterator (lazy:
    ``islice(expo_stream(rng, r), n)`` draws exactly n, the same numbers as n calls)."""
    us = iter(rng.random, 2.0)  # random() is in [0, 1): the sentinel never stops it
    return map(truediv, map(neg, map(math.log, map(sub, repeat(1.0), us))), repeat(rate))
