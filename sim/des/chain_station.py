"""One station of the FIFO recursion (`sim.des.chain`): Kiefer–Wolfowitz service in chunks.

`ChainStation.push(arrivals, keys, T)` serves a chunk of arrivals (sorted) in FIFO order — a
customer starts at max(arrival, earliest free server) and frees it at start + service — keeps
the window's sums as `FifoStation` keeps them (busy area, waits, starts, completions), and
returns the departures before the horizon `T`, sorted; later ones are held for the next chunk.
`route` hands them on as the flow's node would (cache hits and guardrail blocks end there;
branches by p). `stats(now, edge(now))` is the window's `ComponentStats`.

Usage::

    from sim.des.chain_station import ChainStation

    s = ChainStation(fifo_station)            # a plain FifoStation, a cache or a guardrail
    deps, keys = s.push([0.1, 0.2], [0.1, 0.2], 0.3)   # departures before t = 0.3
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
try:  # counts an iterable into a plain dict in C (what Counter.update uses); else the same in Python
    from collections import _count_elements
except ImportError:  # pragma: no cover
    def _count_elements(mapping, iterable):
        get = mapping.get
        for k in iterable:
            mapping[k] = get(k, 0) + 1
from functools import reduce
from heapq import heapify, heappop, heappush, heapreplace
from itertools import chain, compress, islice, repeat
from operator import add, eq, mul, not_, sub

from .fifo import RAW_WAITS_MAX, FifoStation
from .station_base import expo_stream
from .stats import _K as _HK
from .stats import _OFFSET as _HOFF
from .stats import LogHistogram, log_quantile

__all__ = ["ChainStation", "merge", "hist_extend", "WIDE"]

WIDE = 64  # servers above which a station keeps a heap of its busy servers instead (cheaper)
_log = math.log
_INF = float("inf")


class ChainStation:
    """One FIFO station's state on the fast path: server free times and the window's sums."""

    __slots__ = ("st", "c", "free", "draw", "sample", "fixed", "ordered", "hold_d", "hold_k", "p_st", "p_s", "p_a",
                 "p_d", "busy_sum", "wraw", "wsum", "zeros", "hist", "done", "arr", "t0", "edge0", "hits", "inbox",
                 "to", "cum", "us", "blocks", "block_ratio")

    def __init__(self, st: FifoStation):
        from .stations import CacheStation, GuardrailStation

        self.st = st
        self.c = st.servers
        self.inbox: list[tuple[list, list]] = []  # this chunk's arrivals, one sorted list per sender
        self.to = None  # routing (set by ChainRun): next station, or branch targets with `cum`, `us`
        self.cum: list[float] = []
        self.us = None
        # A cache decides hit or miss at service start (its own stream, then the hit or miss
        # latency from the station's): the hits end at departure. A guardrail blocks at departure.
        self.hits: set | None = set() if type(st) is CacheStation else None
        self.blocks = iter(st.route_rng.random, 2.0) if type(st) is GuardrailStation and st.block_ratio else None
        self.block_ratio = getattr(st, "block_ratio", 0.0)
        # Server free times (a heap); for a wide station the departures of those in service.
        self.free = [0.0] * st.servers if 1 < st.servers <= WIDE else ([_INF] if st.servers > WIDE else [0.0])
        # Exponential service: the station's own stream as one lazy C pipeline (the k-th draw
        # is the k-th service start, as in `FifoStation`); else its sampler, call by call.
        self.draw = expo_stream(st.rng, st._rate) if st._rate else None
        self.sample = st.sample
        # Fixed service (a load balancer's 1 ms): `make_sampler`'s constant, no call per customer.
        dist = st.dist
        self.fixed = dist.expected() * 0.001 if getattr(dist, "dist", None) == "fixed" else (0.0 if dist is None else None)
        if self.hits is not None:
            self.draw, self.fixed = None, None
        self.ordered = self.c == 1 or self.fixed is not None
        self.hold_d: list[float] = []  # departures at or after the horizon (not yet forwarded)
        self.hold_k: list[float] = []  # their requests (entry arrival times)
        self.p_st: list[float] = []  # customers whose service starts at or after the horizon
        self.p_s: list[float] = []
        self.p_a: list[float] = []
        self.p_d: list[float] = []
        self.reset(0.0, (0.0, 0.0))

    def reset(self, now: float, edge: tuple[float, float]) -> None:
        self.busy_sum = 0.0
        self.wraw: list[float] = []
        self.wsum = 0.0
        self.zeros = 0
        self.hist = LogHistogram()
        self.done = 0
        self.arr = 0
        self.t0 = now
        self.edge0 = edge

    def push(self, A: list[float], K: list[float], T: float) -> tuple[list[float], list[float]]:
        """Serve arrivals `A` (sorted; requests `K`); return the departures before `T`, sorted."""
        n = len(A)
        if self.draw is not None:
            S = list(islice(self.draw, n))
        elif self.hits is not None:
            st = self.st
            u, ratio, hit, miss = st.route_rng.random, st.hit_ratio, st.hit, st.miss
            flags = [u() < ratio for _ in repeat(None, n)]
            S = [hit() if h else miss() for h in flags]
            self.hits.update(compress(K, flags))
        elif self.fixed is not None:
            S = [self.fixed] * n
        else:
            S = [self.sample() for _ in repeat(None, n)]
        ST: list[float] = []
        D: list[float] = []
        sapp, dapp = ST.append, D.append
        free = self.free
        if self.c == 1:
            d = free[0]
            for a, s in zip(A, S):
                st = d if a < d else a
                d = st + s
                sapp(st)
                dapp(d)
            free[0] = d
        elif self.c <= WIDE:
            rep = heapreplace
            for a, s in zip(A, S):
                f = free[0]
                st = f if a < f else a
                d = st + s
                rep(free, d)
                sapp(st)
                dapp(d)
        elif n and len(free) + n <= self.c:
            # More servers than those in service plus every arrival of the chunk (a load
            # balancer's thousands of slots): nobody can wait, each starts on arrival. Keep the
            # departures that may still be in service when the next chunk arrives.
            ST = A
            D = list(map(add, A, S))
            later = A[-1].__lt__  # later arrivals come after the last one: earlier departures are gone
            keep = list(filter(later, free))  # the inf sentinel stays
            keep.extend(filter(later, D))
            heapify(keep)
            free[:] = keep
        else:
            # Many servers (a load balancer's thousands of slots): a heap of the departures of
            # those in service (with an inf sentinel), not of c free times. Those gone by `a`
            # are dropped; a free server means a start at once, else the earliest departure.
            # The same starts as the free-time heap, with a small heap.
            busy, c, pop, push = free, self.c + 1, heappop, heappush
            for a, s in zip(A, S):
                while busy[0] <= a:
                    pop(busy)
                if len(busy) < c:
                    st = a
                else:
                    st = pop(busy)
                d = st + s
                push(busy, d)
                sapp(st)
                dapp(d)
        self.arr += n
        # Service starts before T belong to this window (starts are non-decreasing: FIFO).
        if self.p_st:
            ST, S, A2, D2 = self.p_st + ST, self.p_s + S, self.p_a + A, self.p_d + D
        else:
            A2, D2 = A, D
        k = bisect_left(ST, T)
        if k:
            self.busy_sum = reduce(add, S[:k] if k < len(S) else S, self.busy_sum)
            ws = list(filter((0.0).__lt__, map(sub, ST[:k], A2[:k])))
            self.zeros += k - len(ws)
            if ws:
                self.wsum = reduce(add, ws, self.wsum)
                self.wraw += ws
                if len(self.wraw) > RAW_WAITS_MAX:
                    self._bin()
        if k < len(ST):
            self.p_st, self.p_s, self.p_a, self.p_d = ST[k:], S[k:], A2[k:], D2[k:]
        elif self.p_st:
            self.p_st, self.p_s, self.p_a, self.p_d = [], [], [], []
        # Departures: with one server or a fixed service time they leave in the order they
        # started (starts never decrease: FIFO); else sort them by time.
        hd, hk = self.hold_d, self.hold_k
        if self.ordered and (not hd or not D or hd[-1] <= D[0]):
            Ds, Ks = (hd + D, hk + K) if hd else (D, K)
        else:
            Dall, Kall = (hd + D, hk + K) if hd else (D, K)
            order = sorted(range(len(Dall)), key=Dall.__getitem__)
            Ds = list(map(Dall.__getitem__, order))
            Ks = list(map(Kall.__getitem__, order))
        r = bisect_left(Ds, T)
        if r == len(Ds):
            self.hold_d, self.hold_k = [], []
        else:
            self.hold_d, self.hold_k = Ds[r:], Ks[r:]
            Ds, Ks = Ds[:r], Ks[:r]
        self.done += len(Ds)
        return Ds, Ks

    def route(self, Ds: list[float], Ks: list[float], stations: list, ends: list) -> None:
        """Hand the departures on as the flow's node does: a cache hit or a guardrail block
        ends the request; else the one edge, or a branch drawn by p (the node's own stream, in
        departure order), or the end of the path."""
        stop = None
        if self.hits is not None:
            stop = list(map(self.hits.__contains__, Ks))
            self.hits.difference_update(compress(Ks, stop))
        elif self.blocks is not None:
            stop = list(map(self.block_ratio.__gt__, islice(self.blocks, len(Ds))))
        if stop is not None and any(stop):
            ends.append((list(compress(Ds, stop)), list(compress(Ks, stop))))
            keep = list(map(not_, stop))
            Ds, Ks = list(compress(Ds, keep)), list(compress(Ks, keep))
        if not Ds:
            return
        to = self.to
        if to is None:
            ends.append((Ds, Ks))
        elif type(to) is int:
            stations[to].inbox.append((Ds, Ks))
        else:
            # `Node.after`: the first cumulative p above u; none (p short of 1): the request ends.
            idx = list(map(bisect_right, repeat(self.cum), islice(self.us, len(Ds))))
            for j, target in enumerate((*to, None)):
                sel = list(map(eq, idx, repeat(j)))
                if any(sel):
                    pair = (list(compress(Ds, sel)), list(compress(Ks, sel)))
                    (ends if target is None else stations[target].inbox).append(pair)

    def _bin(self) -> None:
        xs = self.wraw
        h = self.hist
        h.n += len(xs)
        h.total = reduce(add, xs, h.total)
        h.max = max(h.max, max(xs))
        _count_elements(h.bins, _keys(xs))
        self.wraw = []

    def edge(self, T: float) -> tuple[float, float]:
        """(remaining service of those in service at T, time already waited by those queued)."""
        in_service = sum(self.hold_d) - len(self.hold_d) * T - (sum(self.p_d) - len(self.p_d) * T)
        waited = len(self.p_a) * T - sum(self.p_a)
        return in_service, waited

    def stats(self, now: float, edge: tuple[float, float]):
        """This station's `ComponentStats` of the window [t0, now) (`FifoStation.stats`' figures)."""
        from sim.results import ComponentStats

        span = max(now - self.t0, 1e-12)
        busy_area = self.busy_sum + self.edge0[0] - edge[0]
        q_area = self.wsum - self.edge0[1] + edge[1]
        n = self.hist.n + len(self.wraw) + self.zeros
        if not n:
            wq = 0.0
        elif self.hist.n == 0:
            wq = log_quantile(self.wraw, self.zeros, 0.95)
        else:
            self._bin()
            h = self.hist
            h.zeros += self.zeros
            h.n += self.zeros
            wq = h.quantile(0.95)
            h.zeros -= self.zeros
            h.n -= self.zeros
        return ComponentStats(kind=self.st.comp.kind, utilization=busy_area / (span * self.c),
                              mean_queue_len=q_area / span, wait_ms_p95=wq * 1000.0, throughput_rps=self.done / span,
                              dropped=0, arrivals=self.arr, backlog_end=len(self.p_a))


def merge(parts: list[tuple[list, list]]) -> tuple[list, list]:
    """Several sorted (times, keys) lists as one, sorted by time."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return [], []
    D = list(chain.from_iterable(p[0] for p in parts))
    K = list(chain.from_iterable(p[1] for p in parts))
    order = sorted(range(len(D)), key=D.__getitem__)
    return list(map(D.__getitem__, order)), list(map(K.__getitem__, order))


def _keys(xs):
    """`LogHistogram` bin keys of positive values, as a C pipeline: int(log(x)·K + OFFSET)."""
    return map(int, map(add, map(mul, map(_log, xs), repeat(_HK)), repeat(_HOFF)))


def hist_extend(h: LogHistogram, xs: list[float], keys: list[int] | None = None) -> list[int]:
    """``for x in xs: h.add(x)`` in bulk (the same bins, count, total and max); returns the bin
    keys, which another histogram of the same values can take as `keys`."""
    pos = list(filter((0.0).__lt__, xs))
    h.n += len(xs)
    h.zeros += len(xs) - len(pos)
    if not pos:
        return []
    h.total = reduce(add, pos, h.total)
    m = max(pos)
    if m > h.max:
        h.max = m
    if keys is None:
        keys = list(_keys(pos))
    _count_elements(h.bins, keys)
    return keys
