"""The entry's fixed-latency FIFO stations, computed by recursion instead of events.

A design's entry is often a chain of FIFO stations with a *fixed* service time (an API gateway's
5 ms, a load balancer's 1 ms, each with thousands of servers) in front of the station that
matters (an LLM server). With fixed service a FIFO station's departures leave in arrival order,
and customer k starts at max(arrival, departure of customer k − c) (the server customer k − c
frees: Kiefer & Wolfowitz 1955, as in `sim.des.chain`). So when a request arrives at the entry,
its departure from every station of the chain is already known: `DelayChain.push` works it out
and puts one event on the heap, at the last departure, that hands the request on; the two
events per station and request (service start and finish through the heap) are gone — ~13 % of
the library serving design's run.

Exactness. Latencies, event times and everything downstream are the same floats as the event
loop's (the same sums: ``start + s``). The stations' statistics are applied lazily, when they are
read (a batch boundary) or every few thousand arrivals, in the order the event loop applies
them: service starts in FIFO order (busy area += s, a positive wait appended), departures
counted. One difference: the busy area's correction for the work in progress at a window's edge
sums the in-service remainders in arrival order where the event loop sums them in heap order,
so a utilisation can differ in its last bits (tests/test_delay_chain.py compares whole runs).
Ties between events at the very same instant are broken by arrival order instead of the heap's
entry order; `Run` takes this path only for Poisson arrivals at a constant rate, where ties have
probability 0.

Usage (`sim.des.run.Run` does this itself)::

    chain = DelayChain.build(nodes, design, env)   # None when the entry is not such a chain
    if chain is not None:
        entry_arrive = chain.push                   # push(req, done): done is ignored
"""

from __future__ import annotations

from bisect import bisect_right
from functools import reduce
from heapq import heappush
from itertools import islice, repeat
from operator import add as _add

from .fifo import FifoStation

__all__ = ["DelayChain"]


class _Line:
    """One fixed-service FIFO station of the chain: its customers' times and their statistics.

    Customers are kept in three parallel lists (arrival here, service start, departure), in
    order, from `h` (the first not departed as of the last `apply`); `i` is the first whose
    start has not been applied. Everyone still here is in ``[h, len)``, so with fewer than c
    of them a server is free, and otherwise ``dep[-c]`` is customer k − c's departure.
    """

    __slots__ = ("st", "s", "c", "arr", "sta", "dep", "queued", "h", "i", "q")

    def __init__(self, st: FifoStation, s: float):
        self.st = st
        self.s = s  # the fixed service time (seconds)
        self.c = st.servers
        self.arr: list[float] = []
        self.sta: list[float] = []
        self.dep: list[float] = []
        self.queued: list[int] = []  # indices of the customers that waited (start > arrival)
        self.h = self.i = self.q = 0  # first not departed / not started / queued not applied

    def apply(self, now: float) -> None:
        """Apply, in FIFO order, the service starts and departures at or before `now`."""
        st, sta = self.st, self.sta
        i = self.i
        j = bisect_right(sta, now, i)  # starts are in order: [i, j) started since
        if j > i:
            queued, q = self.queued, self.q
            if q < len(queued) and queued[q] < j:
                arr, wadd = self.arr, st._wadd
                while q < len(queued) and queued[q] < j:
                    k = queued[q]
                    wadd(sta[k] - arr[k])  # positive waits, in start order, as the loop records them
                    q += 1
                self.q = q
            # `_busy_area += s` once per start, in order (reduce adds one by one, like the loop).
            st._busy_area = reduce(_add, repeat(self.s, j - i), st._busy_area)
            self.i = i = j
        h = bisect_right(self.dep, now, self.h, i)  # departures are in order too
        st.completions += h - self.h
        self.h = h
        # The event loop's counts at `now`: in service (started, not departed) and waiting
        # (arrived here, not started); customers still upstream are not here yet.
        st.busy = i - h
        st.qlen = bisect_right(self.arr, now, i) - i
        st.free = st.servers - (i - h)
        if h > 8192 and h * 2 > len(sta):  # drop the departed (bounded memory)
            del self.arr[:h], sta[:h], self.dep[:h]
            self.queued = [k - h for k in self.queued[self.q:]]
            self.q = 0
            self.i -= h
            self.h = 0

    def edges(self, now: float) -> tuple[float, float]:
        """`FifoStation._edges` for this station: (remaining service of those in service,
        time already waited by those waiting), after `apply(now)`."""
        i = self.i
        rem = 0.0
        for d in islice(self.dep, self.h, i):
            rem += d - now
        waited = 0.0
        for a in islice(self.arr, i, i + self.st.qlen):
            waited += now - a
        return rem, waited


class DelayChain:
    """The entry's chain of fixed-service FIFO stations (see the module docstring)."""

    def __init__(self, lines: list[_Line], nxt, env):
        self.lines = lines
        self.env = env
        self.heap, self.eid = env._queue, env._eid
        self.nxt = nxt  # the node after the chain
        self._deliver = self._make_deliver()
        for ln in lines:
            st = ln.st
            # The station's readers see the recursion's state at the time they read.
            st.stats = _reading(ln, st.stats)
            st.reset_stats = _reading(ln, st.reset_stats)
            st._edges = ln.edges

    @classmethod
    def build(cls, nodes: dict, design, env) -> "DelayChain | None":
        """The chain from the design's entry, or None (the entry is not a fixed FIFO station,
        or the chain does not lead plainly on to another station)."""
        preds: dict[str, int] = {}
        for e in design.flow:
            preds[e.to] = preds.get(e.to, 0) + 1
        node = nodes[design.entry]
        lines: list[_Line] = []
        seen = set()
        while True:
            st = node.station
            if (type(st) is not FifoStation or not st._fast or st.timeout_s is not None or st.qcap is not None
                    or st.lags is not None or getattr(st.dist, "dist", None) != "fixed" or node.loops
                    or node.is_queue or node.single is None or node.fan or node.cum or node.id in seen
                    or preds.get(node.id, 0) != (0 if not lines else 1)):
                break
            s = st.sample()
            if s != st.sample() or s < 0.0:
                break
            seen.add(node.id)
            lines.append(_Line(st, s))
            node = node.single
        if not lines or node.id in seen or any(n.join is node for n in nodes.values()):
            return None
        return cls(lines, node, env)

    def _make_deliver(self):
        # Bound once the nodes are built (`Run` builds the chain after `build_nodes`, whose
        # closures bind the stations' final `arrive` the same way).
        arrive, cb = self.nxt.station.arrive, self.nxt.cb
        if self.nxt.is_last:
            def deliver(req) -> None:  # what the last station's `after` does: hand it on
                arrive(req, req.k)
        else:
            def deliver(req) -> None:
                arrive(req, cb)
        return deliver

    def push(self, req, _done=None) -> None:
        """`req` arrives at the chain's first station now: schedule its hand-on."""
        t = self.env._now
        for ln in self.lines:
            dep = ln.dep
            if len(dep) - ln.h >= ln.c and dep[-ln.c] > t:
                start = dep[-ln.c]  # customer k − c leaves: its server is the one k gets
                ln.queued.append(len(dep))
            else:
                start = t
            ln.arr.append(t)
            ln.sta.append(start)
            d = start + ln.s
            dep.append(d)
            t = d
        heappush(self.heap, (t, 1, next(self.eid), self._deliver, req))

    def apply(self, now: float) -> None:
        """Bring every station's statistics up to `now` (bounds the pending records)."""
        for ln in self.lines:
            ln.apply(now)


def _reading(line: _Line, fn):
    def read(now: float, *a, **kw):
        line.apply(now)
        return fn(now, *a, **kw)

    return read
