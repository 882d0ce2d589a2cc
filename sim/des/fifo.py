"""`FifoStation`: `servers` identical servers and one FIFO queue (M/G/c), the engine's hot path.

Most of a simulation's events are FIFO service starts and finishes, so this station is
written for speed: exponential service with no timeout and no queue cap gets its own
arrive/finish pair that pushes ``(t, 1, id, finish, req)`` straight onto the `SimEnv` heap,
keeps its per-visit state on the request (`req.nx`, `req.t_in`), counts free servers, and
records waits raw (their p95 by exact selection, `sim.des.stats.log_quantile`). Areas are kept
as sums with edge corrections, so there is no per-event tick. Everything else (timeouts,
queue caps, request-dependent service times, plain SimPy environments) takes the general path.

Usage::

    from sim.des.fifo import FifoStation

    st = FifoStation(comp, ctx, servers=4, dist=comp.service_time)
    st.arrive(req, done)          # done(req, ok) when it leaves
    st.stats(env.now)             # ComponentStats of the window
"""

from __future__ import annotations

import math
from collections import Counter, deque
from functools import reduce
from heapq import heappush
from itertools import islice
from operator import add as _add
from typing import Any

from .events import SimEnv, later
from .request import Request
from .station_base import StationBase, expo_draw, make_sampler
from .stats import _K as _HK
from .stats import _OFFSET as _HOFF
from .stats import log_quantile

__all__ = ["FifoStation", "RAW_WAITS_MAX"]

_log = math.log


RAW_WAITS_MAX = 1 << 18
"""Pending waits a `FifoStation` keeps raw (~8 MB) before binning them into its histogram."""


class _RawWaits:
    """`StationBase.stats`'s view of a window's raw waits: ``n`` and ``quantile(q)`` exactly as
    the `LogHistogram` of the same values would give them."""

    __slots__ = ("xs", "zeros", "n")

    def __init__(self, xs: list[float], zeros: int):
        self.xs, self.zeros, self.n = xs, zeros, len(xs) + zeros

    def quantile(self, q: float) -> float:
        return log_quantile(self.xs, self.zeros, q)


class FifoStation(StationBase):
    """`servers` identical servers and one FIFO queue (M/G/c); `timeout_ms` caps time here.

    A request whose time here (wait + service) would exceed `timeout_ms` is dropped at
    arrival + timeout and frees its server then (the client gave up; the server aborts).
    `qcap` (optional) drops arrivals that find that many already waiting. Subclasses that
    override `service_time(req)` get it called; otherwise `self.sample()` is used directly.

    The hot path (no timeout, exponential or fixed service) is written out inline: this
    class carries most of the engine's events, and each Python call saved is ~2 % speed.
    """

    kind = "fifo"

    def __init__(self, comp, ctx, servers: int, dist: Any = None, qcap: int | None = None):
        super().__init__(comp, ctx)
        self.servers = servers
        self.dist = dist  # the service-time distribution (None: zero service)
        self.sample = make_sampler(dist, self.rng) if dist is not None else (lambda: 0.0)
        self.queue: deque = deque()
        self.qcap = qcap
        self._plain = type(self).service_time is FifoStation.service_time
        # Exponential service drawn inline, exactly as random.expovariate does it.
        self._rate = None
        if self._plain and getattr(dist, "dist", None) == "exponential" and hasattr(dist, "mean_ms"):
            self._rate = 1.0 / (dist.mean_ms * 0.001)
        self._rand = self.rng.random
        # The expo paths draw a service time as `-_log(1.0 - self._rand()) / self._rate`, written
        # out: random.expovariate's expression, cheaper as bytecode in the running frame than a
        # call of the C pipeline `_svc` (~170 vs ~250 ns here); `_svc` gives the same numbers.
        self._svc = expo_draw(self.rng, self._rate) if self._rate else None
        self._fin = self._finish
        self._fin_ev = lambda ev: self._finish(ev._value)  # `later`'s protocol, plain environments
        self._heap = ctx.env._queue
        self._eid = ctx.env._eid
        # Finishes go straight onto a SimEnv's heap as (…, self._fin, (req, done)); on a plain
        # simpy.Environment (tests, other tools) through `later`.
        self._direct = isinstance(ctx.env, SimEnv)
        self._fast = self.timeout_s is None and qcap is None and self._direct
        self._in0 = self._busy0 = self._cuts = 0
        # Positive waits of fast-path service starts, in order, not yet in `waits`/`_q_area`:
        # one list append per wait on the hot path; the histogram work is done in bulk.
        self._wpend: list[float] = []
        self._wadd = self._wpend.append
        self._wsum = 0  # how many of them `_q_area` already holds
        # The commonest station (exponential service, no timeout, no queue cap) gets its own
        # arrive/finish pair (instance attributes): no mode checks, and `qlen` is not kept
        # per request but read off the queue when needed (`_sync_qlen`).
        self._expo = self._fast and bool(self._rate) and type(self)._finish is FifoStation._finish
        self.free = servers
        if self._expo:
            self.arrive = self._arrive_expo
            self._fin = self._finish_expo

    # The expo pair keeps a station's own state on the request while it is here: `req.nx` is
    # the `done` to call and `req.t_in` the time it joined the queue (no tuple per event).
    # It counts free servers (`free`); `busy` and `qlen` are derived when read (`_sync_qlen`).
    def _arrive_expo(self, req, done):
        """`arrive` for exponential service, no timeout, no queue cap: the benchmark's hot path."""
        req.nx = done
        if self.free:
            self.free -= 1
            now = self.env._now
            if req.lag_from is not None:
                req.lag_from.record_lag(req, now)
            s = -_log(1.0 - self._rand()) / self._rate
            self._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), self._fin, req))
        else:
            req.t_in = self.env._now
            self.queue.append(req)

    def _finish_expo(self, req):
        """`_finish` of the `_arrive_expo` station: the next in line starts at once."""
        self.completions += 1
        q = self.queue
        if q:
            nreq = q.popleft()
            now = self.env._now
            wait = now - nreq.t_in
            if wait > 0.0:
                self._wadd(wait)  # binned later, in bulk (`flush_waits`)
            if nreq.lag_from is not None:
                nreq.lag_from.record_lag(nreq, now)
            s = -_log(1.0 - self._rand()) / self._rate
            self._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), self._fin, nreq))
        else:
            self.free += 1
        req.nx(req, True)

    def no_lag(self) -> None:
        """The engine's promise that no request reaching this station carries an async queue's
        lag (`req.lag_from`: only a broker's direct consumers see one): skip that check.
        Call before the run starts (events already on the heap name the finish in use)."""
        if self._expo:
            self.arrive = self._arrive_expo_nolag
            self._fin = self._finish_expo_nolag

    def _arrive_expo_nolag(self, req, done):
        """`_arrive_expo` without the lag check (see `no_lag`)."""
        req.nx = done
        if self.free:
            self.free -= 1
            s = -_log(1.0 - self._rand()) / self._rate
            self._busy_area += s
            heappush(self._heap, (self.env._now + s, 1, next(self._eid), self._fin, req))
        else:
            req.t_in = self.env._now
            self.queue.append(req)

    def _finish_expo_nolag(self, req):
        """`_finish_expo` without the lag check (see `no_lag`)."""
        self.completions += 1
        q = self.queue
        if q:
            nreq = q.popleft()
            now = self.env._now
            wait = now - nreq.t_in
            if wait > 0.0:
                self._wadd(wait)
            s = -_log(1.0 - self._rand()) / self._rate
            self._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), self._fin, nreq))
        else:
            self.free += 1
        req.nx(req, True)

    def forward_to(self, arrive, done=None) -> bool:
        """The engine's promise that every request's `done` here just hands it on to
        ``arrive(req, done)`` (a plain edge to the next station; ``done=None``: the request's
        own continuation `req.k`, when that station ends the path): finish calls that
        directly, one call per hop fewer. Only for the no-lag exponential pair (see `no_lag`);
        returns whether it took effect. Call before the run starts (again to rebind)."""
        if not (self._expo and self.arrive in (self._arrive_expo_nolag, self._arrive_expo_fwd)):
            return False
        self._fwd, self._fwd_done = arrive, done
        self.arrive = self._arrive_expo_fwd
        self._fin = self._finish_expo_fwd
        # The next station is a plain exponential one too: its `arrive` is written out in
        # this finish (one Python call per hop fewer; the same draws and heap entries).
        nxt = getattr(arrive, "__self__", None)
        if isinstance(nxt, FifoStation) and nxt.env is self.env:
            fn = getattr(arrive, "__func__", None)
            if fn is FifoStation._arrive_expo_fwd:
                self._nst = nxt
                self._fin = self._finish_expo_ff
            elif fn is FifoStation._arrive_expo_nolag:
                self._nst = nxt
                self._fin = self._finish_expo_fn
        return True

    def _arrive_expo_fwd(self, req, done):
        """`_arrive_expo_nolag` when `done` is known (see `forward_to`): nothing kept on `req`."""
        if self.free:
            self.free -= 1
            s = -_log(1.0 - self._rand()) / self._rate
            self._busy_area += s
            heappush(self._heap, (self.env._now + s, 1, next(self._eid), self._fin, req))
        else:
            req.t_in = self.env._now
            self.queue.append(req)

    def _finish_expo_fwd(self, req):
        """`_finish_expo_nolag` handing `req` straight to the next station (see `forward_to`)."""
        self.completions += 1
        q = self.queue
        if q:
            nreq = q.popleft()
            now = self.env._now
            wait = now - nreq.t_in
            if wait > 0.0:
                self._wadd(wait)
            s = -_log(1.0 - self._rand()) / self._rate
            self._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), self._fin, nreq))
        else:
            self.free += 1
        self._fwd(req, self._fwd_done or req.k)

    def _finish_expo_ff(self, req):
        """`_finish_expo_fwd` with the next station's `_arrive_expo_fwd` written out."""
        self.completions += 1
        q = self.queue
        now = self.env._now
        if q:
            nreq = q.popleft()
            wait = now - nreq.t_in
            if wait > 0.0:
                self._wadd(wait)
            s = -_log(1.0 - self._rand()) / self._rate
            self._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), self._fin, nreq))
        else:
            self.free += 1
        nst = self._nst
        if nst.free:
            nst.free -= 1
            s = -_log(1.0 - nst._rand()) / nst._rate
            nst._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), nst._fin, req))
        else:
            req.t_in = now
            nst.queue.append(req)

    def _finish_expo_fn(self, req):
        """`_finish_expo_fwd` with the next station's `_arrive_expo_nolag` written out."""
        self.completions += 1
        q = self.queue
        now = self.env._now
        if q:
            nreq = q.popleft()
            wait = now - nreq.t_in
            if wait > 0.0:
                self._wadd(wait)
            s = -_log(1.0 - self._rand()) / self._rate
            self._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), self._fin, nreq))
        else:
            self.free += 1
        done = self._fwd_done
        req.nx = req.k if done is None else done
        nst = self._nst
        if nst.free:
            nst.free -= 1
            s = -_log(1.0 - nst._rand()) / nst._rate
            nst._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), nst._fin, req))
        else:
            req.t_in = now
            nst.queue.append(req)

    def _sync_qlen(self) -> None:
        if self._expo:
            self.busy = self.servers - self.free
            self.qlen = len(self.queue)

    def service_time(self, req: Request) -> float:
        """Seconds of service for `req` (subclasses may depend on the request)."""
        return self.sample()

    def arrive(self, req, done):
        now = self.env._now  # simpy 4 keeps the clock in _now; the property costs a call per event
        if self.busy < self.servers:
            self.busy += 1
            if not self._fast:
                self._start(req, done, now, 0.0)
                return
            # A zero wait: not counted here, derived in stats() from the number of starts.
            if req.lag_from is not None:
                req.lag_from.record_lag(req, now)
            rate = self._rate
            s = -_log(1.0 - self._rand()) / rate if rate else (self.sample() if self._plain else self.service_time(req))
            self._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), self._fin, (req, done)))
        elif self.qcap is not None and self.qlen >= self.qcap:
            self.drop(req, done)
        else:
            self.qlen += 1
            item = [req, done, now, True]
            self.queue.append(item)
            if self.timeout_s is not None:
                later(self.env, self.timeout_s, self._abandon, item)

    def _start(self, req, done, now, wait):
        """Begin service of `req` at `now` after `wait` seconds in the queue."""
        if wait > 0.0:
            self.waits.add(wait)
            self._q_area += wait
        if req.lag_from is not None:
            req.lag_from.record_lag(req, now)
        rate = self._rate
        s = -_log(1.0 - self._rand()) / rate if rate else (self.sample() if self._plain else self.service_time(req))
        to = self.timeout_s
        if to is not None and wait + s > to:
            cut = max(0.0, to - wait)
            self._busy_area += cut
            later(self.env, cut, self._cut, (req, done))
            return
        self._busy_area += s
        if self._direct:
            heappush(self._heap, (now + s, 1, next(self._eid), self._fin, (req, done)))
        else:
            later(self.env, s, self._fin_ev, (req, done))

    def _next(self, now):
        """A server became free at `now`: start the next live waiting request, or idle."""
        q = self.queue
        while q:
            item = q.popleft()
            if item[3]:
                item[3] = False
                self.qlen -= 1
                self._start(item[0], item[1], now, now - item[2])
                return
        self.busy -= 1

    def _finish(self, arg):
        req, done = arg
        self.completions += 1
        q = self.queue
        if not q:
            self.busy -= 1
        elif self._fast:
            # Next in line starts now (inlined _start; no timeouts on this station).
            now = self.env._now
            nreq, ndone, t_in, _ = q.popleft()
            self.qlen -= 1
            wait = now - t_in
            if wait > 0.0:
                self._wadd(wait)  # binned later, in bulk (`flush_waits`)
            if nreq.lag_from is not None:
                nreq.lag_from.record_lag(nreq, now)
            rate = self._rate
            s = -_log(1.0 - self._rand()) / rate if rate else (self.sample() if self._plain else self.service_time(nreq))
            self._busy_area += s
            heappush(self._heap, (now + s, 1, next(self._eid), self._fin, (nreq, ndone)))
        else:
            self._next(self.env._now)
        done(req, True)

    def _cut(self, ev):
        # Service would have outlived the timeout: drop at the deadline, free the server.
        req, done = ev._value
        self._cuts += 1
        self._next(self.env._now)
        self.drop(req, done)

    def _abandon(self, ev):
        item = ev._value
        if not item[3]:
            return  # already started
        item[3] = False
        self._q_area += self.env._now - item[2]
        self.qlen -= 1
        self.drop(item[0], item[1])

    # Accounting without a per-event tick: the busy area is the sum of service times started
    # and the queue area the sum of waits, corrected at the window's edges for the work in
    # progress (found on the event heap) and the requests still waiting. Exact, and free on
    # the hot path.
    def _edges(self, now: float) -> tuple[float, float]:
        """(remaining service of requests in service, time already waited by those queued)."""
        mine = (self._fin, self._cut, self._fin_ev)  # _fin: whichever finish variant is in use
        rem = 0.0
        for entry in self.env._queue:
            if len(entry) == 5:  # SimEnv: (t, priority, id, fn, arg)
                fn = entry[3]
            else:  # plain Environment: (t, priority, id, event)
                cbs = entry[3].callbacks
                fn = cbs[0] if cbs else None
            if fn in mine:
                rem += entry[0] - now
        if self._expo:  # the queue holds the requests themselves (see `_arrive_expo`)
            waited = sum(now - r.t_in for r in self.queue)
        else:
            waited = sum(now - item[2] for item in self.queue if item[3])
        return rem, waited

    def tick(self, now: float) -> None:
        """No-op: this station's areas are kept by sums (see `_edges`)."""

    def _add_area(self) -> None:
        """Add the pending waits not yet counted to `_q_area`, one by one, in order."""
        xs = self._wpend
        if self._wsum < len(xs):
            self._q_area = reduce(_add, islice(xs, self._wsum, None), self._q_area)
            self._wsum = len(xs)

    def flush_waits(self, force: bool = True) -> None:
        """Bin the pending waits into `waits` (and `_q_area`): the same sums in the same order
        as adding them one by one. The engine calls ``flush_waits(False)`` every few thousand
        arrivals, which bins only past `RAW_WAITS_MAX` pending waits (memory bound); a batch's
        waits usually stay raw and `stats` takes their p95 by selection (`stats.log_quantile`,
        the histogram's exact answer at a fraction of the cost of binning every wait)."""
        xs = self._wpend
        if not xs or (not force and len(xs) < RAW_WAITS_MAX):
            return
        self._add_area()
        w = self.waits
        w.total = reduce(_add, xs, w.total)
        w.n += len(xs)
        m = max(xs)
        if m > w.max:
            w.max = m
        bins = w.bins
        for k, c in Counter([int(_log(x) * _HK + _HOFF) for x in xs]).items():
            bins[k] = bins.get(k, 0) + c
        xs.clear()
        self._wsum = 0

    def reset_stats(self, now: float) -> None:
        self._wpend.clear()  # the window these waits belong to is over (stats() has read them)
        self._wsum = 0
        self._sync_qlen()
        super().reset_stats(now)
        self._in0 = self.busy + self.qlen  # arrivals are derived: ended + here now − here at reset
        self._busy0 = self.busy  # service starts too: completions + cuts + in service − at reset
        self._cuts = 0
        rem, waited = self._edges(now)
        self._busy_area = rem
        self._q_area = -waited

    def stats(self, now: float):
        xs = self._wpend
        raw = self.waits.n == 0 and bool(xs)  # nothing binned in this window: select exactly
        if raw:
            self._add_area()
        else:
            self.flush_waits()
        self._sync_qlen()
        self.arrivals = self.completions + self.drops + self.busy + self.qlen - self._in0
        # Only positive waits were recorded; the rest of the service starts waited zero.
        positive = len(xs) if raw else self.waits.n
        zeros = self.completions + self._cuts + self.busy - self._busy0 - positive
        rem, waited = self._edges(now)
        self._busy_area -= rem
        self._q_area += waited
        hist = self.waits
        if raw:
            self.waits = _RawWaits(xs, zeros)
        else:
            hist.zeros += zeros
            hist.n += zeros
        try:
            return super().stats(now)
        finally:
            self._busy_area += rem
            self._q_area -= waited
            if raw:
                self.waits = hist
            else:
                hist.zeros -= zeros
                hist.n -= zeros
