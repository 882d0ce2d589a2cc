"""The feed-forward fast path: FIFO stations simulated by recursion, not events.

For a design whose flow is feed-forward through plain FIFO stations, caches and guardrails
(edges with p = 1 or branches by p, merges; no back edges, fan-out, queues, timeouts, queue
caps, retries or request-dependent service) fed by Poisson arrivals (a constant rate, or a whole
day's hourly profile), the event loop is not needed: a multi-server FIFO station's departures
follow from its arrivals in order (Kiefer & Wolfowitz 1955: keep the c servers' free times in a
heap; a customer starts at max(arrival, earliest free time) and that server is next free at
start + service). `ChainRun` pushes arrivals through the stations in topological order, in
chunks, a few Python operations per customer and station, and hands on only the departures
earlier than the chunk's horizon (the next arrival at the entry): a departure after it could
still be overtaken by one from a customer not yet arrived, so it waits for the next chunk.
Every event before the horizon is then exactly known, so batch boundaries, the stations'
statistics and the drain are read off at the same instants as the event loop reads them.

It is the same sample path as `sim.des.run.Run` given the same random numbers, and it draws
them identically: the entry's gaps from the "arrivals" stream; each station's k-th service time
(its k-th service start = its k-th arrival, FIFO) from that station's stream; a cache's hit at
service start, a guardrail's block and a branch's choice at departure, in departure order, from
their own streams. Latencies are the same floats; stations' areas are the same integrals summed
in another order (equal to ~1e-12); tests/test_chain.py runs both paths and compares. What is
not replayed: the backlog cut is checked every `CHUNK` arrivals (the event loop: every 2,048),
and no per-event work budget is needed (the work per request is bounded: no loops). This is an
algorithmic shortcut, not a faster event loop: the engine takes it by itself when
`chain_stations` accepts the design and says so in the result (`engine_path:
"fifo_recursion"`); everything else runs on `Run`.

Usage::

    from sim.des.chain import ChainRun, chain_stations

    if chain_stations(design, whole_day=False) is not None:
        run = ChainRun(design, seed=1, n_warm=2_000, n_meas=10_000, whole_day=False,
                       deadline=time.perf_counter() + 60, cancel=None)
        run.advance()      # same protocol as sim.des.run.Run: advance / refresh / finish / segs
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left, bisect_right
from functools import reduce
from itertools import accumulate, chain, islice, repeat, takewhile
from operator import add, neg, sub, truediv

from .chain_station import ChainStation, hist_extend, merge
from .events import SimEnv
from .fifo import FifoStation
from .request import SimContext
from .run import MAX_IN_SYSTEM, Run
from .station_base import expo_stream
from .stats import LogHistogram, RawSample
from .summary import Batch
from .workload import DAY_S, SECONDS_PER_HOUR, OpenLoop, hourly_rates

__all__ = ["ChainRun", "chain_stations", "PATH"]

PATH = "fifo_recursion"
"""`RunResult.engine_path` of a run that took this path (the event loop's is "events")."""

CHUNK = 4096  # entry arrivals between checks of the deadline, the cancel event and the backlog
_log = math.log
_INF = float("inf")


def _source_ok(design, whole_day: bool) -> bool:
    wl = design.workload
    if wl.closed_loop:
        return False
    if whole_day:
        return True  # `Run` uses OpenLoop.whole_day whatever `arrivals` says
    spec = getattr(wl, "arrivals", None)  # `sim.ops.traffic.make_source`'s test: Poisson or not
    return spec is None or spec.process == "poisson"


def chain_stations(design, whole_day: bool, nodes=None) -> list | None:
    """The design's stations in flow order (topological) when it qualifies for `ChainRun`, else None.

    Qualifies: open-loop Poisson traffic; a feed-forward flow whose every component is reached
    from the entry, each node with plain edges (one with p = 1, or branches by p) and no back
    edges, fan-out or queues; each station a plain `FifoStation` (no subclass, no ops wrapper),
    a cache or a guardrail, with no timeout and no queue cap; no retry or fallback on any edge.
    `nodes` are `sim.des.routing.build_nodes`' (built here on a throwaway context when not given).
    """
    plan = _plan(design, whole_day, nodes)
    return None if plan is None else [n.station for n in plan]


def _plan(design, whole_day: bool, nodes=None) -> list | None:
    """The qualifying design's `Node`s in topological order (the entry first), else None."""
    from sim.ops.retry import needs_call

    from .stations import CacheStation, GuardrailStation

    if not _source_ok(design, whole_day) or needs_call(design) or design.workload.batch is not None:
        return None
    if any(e.is_loop or getattr(e, "parallel", False) for e in design.flow):
        return None
    if nodes is None:
        from .routing import build_nodes

        env = SimEnv()
        ctx = SimContext(env=env, rng=None, design=design, workload=design.workload, seed=0)  # type: ignore[arg-type]
        nodes = build_nodes(design, ctx)
    kinds = (FifoStation, CacheStation, GuardrailStation)
    for node in nodes.values():
        st = node.station
        if type(st) not in kinds or st.timeout_s is not None or st.qcap is not None or not st._direct:
            return None
        if type(st) is FifoStation and not st._plain:
            return None
        if node.loops or node.is_queue or node.fan or node.join is not None:
            return None
    succ = {id(n): ([n.single] if n.single is not None else list(n.targets)) for n in nodes.values()}
    entry = nodes.get(design.entry)
    if entry is None:
        return None
    # Kahn's order over what the entry reaches; every component must be reached.
    reach, todo = {id(entry): entry}, [entry]
    while todo:
        for m in succ[id(todo.pop())]:
            if id(m) not in reach:
                reach[id(m)] = m
                todo.append(m)
    if len(reach) != len(nodes):
        return None  # components off the flow (they would report their own idle stats)
    indeg = {k: 0 for k in reach}
    for k in reach:
        for m in succ[k]:
            indeg[id(m)] += 1
    order, ready = [], [entry] if indeg[id(entry)] == 0 else []
    while ready:
        n = ready.pop()
        order.append(n)
        for m in succ[id(n)]:
            indeg[id(m)] -= 1
            if indeg[id(m)] == 0:
                ready.append(m)
    return order if len(order) == len(nodes) else None


def _day_times(rng, rates: list[float]):
    """Arrival times of a whole day, exactly as `OpenLoop.gap` + the event loop produce them
    (an iterator; one list per hour is made at a time).

    The event loop schedules an arrival at ``now + (t + g − now)`` (t: the clock, restarted
    at an hour boundary); within an hour after its first arrival, when now ≥ 3,600 s > g, that
    is ``now + g`` exactly (Sterbenz), so those run as one C pipeline; hour 0 and each hour's
    first arrival use the formula itself. One discarded draw per boundary crossed, as there.
    """
    return chain.from_iterable(_day_hours(rng, rates))


def _day_hours(rng, rates: list[float]):
    us = iter(rng.random, 2.0)
    now = 0.0
    for h, r in enumerate(rates):
        if r <= 0.0:
            continue  # no draw: the clock moves to the next hour
        end = (h + 1) * SECONDS_PER_HOUR
        # −log(1 − u) / r: rng.expovariate(r)'s floats, lazily (nothing drawn ahead).
        gaps = map(truediv, map(neg, map(_log, map(sub, repeat(1.0), us))), repeat(r))
        x = h * SECONDS_PER_HOUR + next(gaps)
        if not x < end:
            continue  # the hour's first gap crosses it: drawn and discarded
        now = now + (x - now)
        if h == 0:
            hour = [now]
            for g in gaps:
                x = now + g
                if not x < end:
                    break
                now = now + (x - now)
                hour.append(now)
        else:
            hour = list(takewhile(end.__gt__, accumulate(gaps, initial=now)))
            now = hour[-1]
        yield hour


class ChainRun:
    """`sim.des.run.Run`'s protocol (advance, refresh, finish, segs, …) on the fast path."""

    path = PATH
    refresh = Run.refresh
    _drained = Run._drained

    def __init__(self, design, seed: int, n_warm: int, n_meas: int, *, whole_day: bool, deadline: float, cancel,
                 keep_series: int = 0, n_time_batches: int = 20, max_in_system: int = MAX_IN_SYSTEM, **_ignored):
        from .routing import build_nodes

        self.design = design
        env = SimEnv()
        self.ctx = ctx = SimContext(env=env, rng=None, design=design, workload=design.workload, seed=seed)  # type: ignore[arg-type]
        ctx.rng = ctx.stream("general")
        plan = _plan(design, whole_day, build_nodes(design, ctx))
        if plan is None:
            raise ValueError("design does not qualify for the FIFO-recursion path (see chain_stations)")
        self.chain = [ChainStation(n.station) for n in plan]
        at = {id(n): j for j, n in enumerate(plan)}
        for n, s in zip(plan, self.chain):
            if n.is_last:
                continue
            if n.single is not None:
                s.to = at[id(n.single)]
            elif n.cum:
                s.to, s.cum, s.us = tuple(at[id(m)] for m in n.targets), n.cum, iter(n.rng.random, 2.0)
        wl = design.workload
        rng = ctx.stream("arrivals")
        if whole_day:
            self.times = _day_times(rng, OpenLoop.whole_day(wl, rng).rates or hourly_rates(wl))
        else:
            self.times = accumulate(expo_stream(rng, wl.peak_rps))  # 0 + g1, then t + g: the loop's floats
        self.peek = next(self.times, None)  # the next entry arrival (the horizon of a chunk)
        self.whole_day = whole_day
        self.n_warm, self.n_meas = n_warm, (1 << 62) if whole_day else n_meas
        self.deadline, self.cancel = deadline, cancel
        self.max_in_system = max_in_system
        self.events = 0
        self.segs: list[Batch] = []
        self.seg_t: list[float] = []  # each batch's first arrival time (requests are keyed by t0)
        self.t_meas_end = _INF  # arrival time of the last measured request (set by finish())
        self.series = [math.nan] * keep_series if keep_series else None
        self.t2id: dict[float, int] | None = {} if keep_series else None
        self.next_id = 0  # arrivals as the engine counts them (the boundary request included)
        self.arrived = 0  # arrivals pushed into the first station
        self.fin = 0  # requests finished
        self.fin_soj = 0.0
        self.fin_t0 = 0.0
        self.arr_t0 = 0.0
        self.meas_end = 1 << 62
        self.cut: str | None = None
        self.stopped = False
        self.draining = False
        self.drain_upto = 0
        self.drain_cap = 1 << 62
        self.drain_capped = False
        self.batch_s = DAY_S / n_time_batches
        self.n_time_batches = n_time_batches
        self.now = 0.0
        self.marked = -1  # the last arrival id whose mark was handled
        if whole_day:
            self._open_seg(0.0, 0)

    # -- the engine's protocol --
    def advance(self) -> str:
        """Run to the next batch boundary ("boundary"), the end ("done") or a cut ("cut")."""
        try:
            reason = self._advance()
        except KeyboardInterrupt:
            self.cut, self.stopped = "cancel", True
            reason = "cut"
        if reason != "boundary":
            self.stopped = True
            self._close_seg(self.now)
        return reason

    def _advance(self) -> str:
        while True:
            if self.peek is None:  # a whole day: every arrival went in and the drain is over
                return "done"
            i = self.arrived
            if i != self.marked:
                self.marked = i
                reason = self._mark(i, self.peek)
                if reason is not None:
                    return reason
            # Push arrivals up to the next id where something happens (a boundary, the drain cap).
            stop = (i // CHUNK + 1) * CHUNK
            if self.draining:
                stop = min(stop, self.drain_cap)
            elif not self.whole_day and i < self.meas_end:
                nxt = self.n_warm if i < self.n_warm else self.n_warm + ((i - self.n_warm) // self.n_meas + 1) * self.n_meas
                stop = min(stop, nxt)
            if self._chunk(stop - i):
                return "done"
            if not self.arrived % CHUNK and self._checks():
                return "cut"

    def _mark(self, i: int, now: float) -> str | None:
        """Arrival `i` at `now`, before it goes in: what `Run._on_mark` does there."""
        if self.draining and i >= self.drain_cap:
            self.drain_capped = True  # the slowest measured requests are left unfinished
            self.next_id, self.now = i + 1, now
            return "done"
        if not self.whole_day and i >= self.n_warm and (i - self.n_warm) % self.n_meas == 0 and i < self.meas_end:
            self.now = now
            if self.segs:
                self._close_seg(now)
            self._open_seg(now, i)
            if len(self.segs) > 1:
                # The loop pauses once request i is in; it goes into the first station with
                # the next chunk (its service there starts in the new window either way).
                self.next_id = i + 1
                return "boundary"
        return None

    def _chunk(self, m: int) -> bool:
        """Push the next `m` entry arrivals through the chain, up to the arrival after them.
        True when the drain ended inside the chunk."""
        A = [self.peek]
        A.extend(islice(self.times, m - 1))
        self.peek = next(self.times, None)
        if self.peek is not None:
            return self._flow(A, self.peek)
        # The day's last arrival: `Run` closes the day's batch at it, just before it goes in.
        last = A.pop()
        if A:
            self._flow(A, last)
        self.now = last
        self.meas_end = min(self.meas_end, self.arrived + 1)
        self.t_meas_end = last
        self.next_id = self.arrived + 1
        if self.segs and not self.segs[-1].closed:
            self._close_seg(last, entering=1)
        self.draining = True
        self.drain_upto = len(self.segs)
        return self._flow([last], _INF)

    def _flow(self, A: list[float], T: float) -> bool:
        """Arrivals `A` (ids from `self.arrived`) in; every event before `T` is then known."""
        first = self.arrived
        self.arrived = first + len(A)
        self.next_id = self.arrived
        self.arr_t0 = reduce(add, A, self.arr_t0)
        series = self.series
        if series is not None and first < len(series):
            self.t2id.update(zip(A, range(first, len(series))))
        stations = self.chain
        stations[0].inbox.append((A, A))  # a request is keyed by its entry arrival time
        ends: list = []
        for s in stations:  # in topological order: each one's arrivals before T are all known
            Ds, Ks = merge(s.inbox)
            s.inbox = []
            Ds, Ks = s.push(Ds, Ks, T)
            s.route(Ds, Ks, stations, ends)
        Ds, Ks = merge(ends)
        self.now = T if T != _INF else (Ds[-1] if Ds else self.now)
        return self._record(Ds, Ks, A, first) if Ds else False

    def _record(self, Ds: list[float], Ks: list[float], A: list[float], first: int) -> bool:
        """Account the requests that finished: departures `Ds` (sorted) of requests `Ks` (their
        entry arrival times, which key them). True when that ended the drain."""
        lats = list(map(sub, Ds, Ks))
        self.fin += len(lats)
        self.fin_soj = reduce(add, lats, self.fin_soj)
        self.fin_t0 = reduce(add, Ks, self.fin_t0)
        if self.series is not None:
            pop, series = self.t2id.pop, self.series
            for lat, t in zip(lats, Ks):
                i = pop(t, None)
                if i is not None:
                    series[i] = lat
        if not self.segs:
            return False
        if self.whole_day:
            seg = self.segs[0]
            keys = hist_extend(seg.lat, lats)
            bs, last = self.batch_s, self.n_time_batches - 1
            lo = min(last, int(min(Ks) / bs))
            if lo == min(last, int(max(Ks) / bs)):
                hist_extend(seg.batches[lo], lats, keys)
            else:
                for lat, t in zip(lats, Ks):
                    seg.batches[min(last, int(t / bs))].add(lat)
        else:
            cur, tend = self.seg_t[-1], self.t_meas_end
            if min(Ks) >= cur and max(Ks) <= tend:  # all of the open batch (the usual chunk)
                self.segs[-1].values.extend(lats)
            else:
                segs, seg_t = self.segs, self.seg_t
                for lat, t in zip(lats, Ks):
                    if t <= tend:
                        b = bisect_right(seg_t, t) - 1
                        if b >= 0:
                            segs[b].values.append(lat)
        if self.draining and self._drained():
            # `Run` stops at the end of the last measured request: the arrivals before it were sent.
            lo = self.seg_t[0]
            hi = self.seg_t[self.drain_upto] if self.drain_upto < len(self.seg_t) else _INF
            tend = self.t_meas_end
            t_star = max([d for d, t in zip(Ds, Ks) if lo <= t < hi and t <= tend], default=Ds[-1])
            self.now = t_star
            self.next_id = first + bisect_left(A, t_star)
            self.stopped = True
            return True
        return False

    def _checks(self) -> bool:
        """Backlog, deadline and cancel, every `CHUNK` arrivals (True: cut). Every sum is added
        one value at a time in the order the event loop adds them, so the figures do not
        depend on where chunks end; the backlog is checked at fixed arrival counts."""
        t = time.perf_counter()
        if self.arrived - self.fin > self.max_in_system:
            self.cut = "backlog"
        elif t > self.deadline:
            self.cut = "max_seconds"
        elif self.cancel is not None and self.cancel.is_set():
            self.cut = "cancel"
        else:
            return False
        self.stopped = True
        return True

    def finish(self, drain: bool = True) -> None:
        """Measure no more arrivals; run until the measured batches have drained (bounded)."""
        if self.stopped:
            return
        self.meas_end = self.next_id
        self.t_meas_end = self.now  # the boundary request's arrival time (the last measured)
        self.drain_upto = len(self.segs) - 1 if (self.segs and not self.segs[-1].closed) else len(self.segs)
        if not drain or self._drained():
            self.stopped = True
            return
        self.draining = True
        self.drain_cap = self.next_id + max(2 * self.n_meas, self.n_warm) + 10
        self.advance()
        self.stopped = True

    def stop_series(self) -> None:
        """MSER-5 is done: drop the series."""
        self.series = None
        self.t2id = None

    # -- batches --
    def _area(self, now: float) -> float:
        # ∫ requests in system dt from 0 to now: finished sojourns + the in-flight ages.
        return self.fin_soj + (self.arrived - self.fin) * now - (self.arr_t0 - self.fin_t0)

    def _open_seg(self, now: float, first_id: int) -> None:
        edges = [s.edge(now) for s in self.chain]
        for s, e in zip(self.chain, edges):
            s.reset(now, e)
        area = self._area(now)
        if self.segs and not self.whole_day:
            prev = self.segs[-1]
            prev.arrivals_ctl = (first_id - prev.first_id, now - prev.t_start, 0, 0, ())
        seg = Batch(first_id=first_id, t_start=now, area_start=area, in_system_start=self.arrived - self.fin)
        if not self.whole_day:
            seg.end_id = first_id + self.n_meas
            seg.ttft, seg.tpot = RawSample(), RawSample()
        else:
            seg.batches = [LogHistogram() for _ in range(self.n_time_batches)]
            seg.values = None
        self.segs.append(seg)
        self.seg_t.append(now)

    def _close_seg(self, now: float, entering: int = 0) -> None:
        if not self.segs or self.segs[-1].closed:
            return
        seg = self.segs[-1]
        seg.closed = True
        self.refresh()
        seg.window_s = max(now - seg.t_start, 1e-12)
        seg.mean_in_system = (self._area(now) - seg.area_start) / seg.window_s
        seg.components = {s.st.id: s.stats(now, s.edge(now)) for s in self.chain}
        seg.in_system_end = self.arrived + entering - self.fin
        seg.t_end = now
