"""The capacity engine: simulate a `Design` on SimPy and summarise it with confidence.

Usage::

    from designs.io import load_design
    from sim.engine import simulate, compare

    result = simulate(load_design("designs/library/llm_serving.yaml"), seed=1, precision=0.02)
    result.latency_ms.p95, result.latency_ms_ci95.p95, result.stopped_by
    a, b = compare([design_a, design_b], seed=1)   # same random numbers for both

How a run goes:

1. `sim.analytic.estimate(design)` first. If a station is saturated (ρ ≥ 1) the engine runs
   one bounded window (≤ 50,000 arrivals), reports the growing backlog and `stable=False`.
2. Otherwise one run from an empty system: a warm-up (at least 20 relaxation times of the
   busiest station and 15 × the requests in flight; MSER-5 may extend it), then consecutive
   batches of n requests (100 relaxation times, 10 × in flight, ≥ 5,000). Batch means:
   each batch gives its own mean and percentiles; intervals are Student-t over the batches.
   (Independent replications would pay the warm-up again for every interval point; for an
   LLM server holding thousands of requests that is most of the work.)
3. At every batch boundary: stop when at least 10 batches are complete and the p95's 95 %
   half-width is ≤ `precision` × p95, or when `max_requests` / `max_seconds` would be
   exceeded, or on `cancel` / Ctrl-C (`partial=True`). `stopped_by` says which. Measured
   requests then drain while arrivals continue. `replications=k` runs exactly k batches.
4. Whole day (`whole_day=True`): 24 h of the hourly profile from midnight, every request
   measured; intervals from 20 time batches (indicative: traffic varies by hour).

Randomness: streams named by (seed, purpose): arrivals, tokens, and per component one for
service times and one for routing, so variants that share components see the same numbers
(common random numbers); `compare` also gives every variant the same batch plan.

Statistics stream: per-batch log histograms (0.1 % bins), per-station sums; memory does not
grow with the number of requests. Little's law (time-average in system vs λW) is checked
on the pooled batches and reported.

Routing implements `designs.model`'s flow semantics: branches by `p`, cache hits and guardrail
blocks end the request, parallel edges fan out and join at `design.join_of`, back edges loop
with `p` up to `max_repeats`, a `queue` ends the caller's latency at enqueue and the message
continues asynchronously; a drop anywhere drops the request (timeouts, full queues).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from heapq import heappop, heappush

import simpy

from .request import Request, SimContext
from .stations import BrokerStation, _Call, later, make_station
from .stats import LogHistogram, half_width, mean_ci, mser5, summary
from .workload import DAY_S, OpenLoop, class_sampler, think_sampler

__all__ = ["simulate", "compare", "SimulationRefused", "LLM_KINDS"]

_log = math.log

LLM_KINDS = frozenset({"llm_server", "llm_api"})
MIN_REPLICATIONS = 10  # t-intervals from fewer replications under-cover (Law & Kelton: n0 ≥ 10)
MAX_IN_SYSTEM = 200_000  # requests in flight at once before a replication is cut (unstable)
MAX_PEAK_RPS = 1e6
CHECK_EVERY = 2048  # arrivals between wall-clock / cancel / backlog checks (power of two)


class SimulationRefused(ValueError):
    """The design or budget cannot be simulated sensibly; the message says why and what to do."""


# --- the flow, compiled once per run ------------------------------------------------------


class _Node:
    """One component in the flow: its station and what happens after it."""

    __slots__ = ("id", "station", "cb", "single", "cum", "targets", "fan", "join", "loops", "rng", "is_queue", "rep",
                 "is_last")

    def __init__(self, cid: str, station, rep: "_Run"):
        self.id = cid
        self.station = station
        self.rep = rep
        self.single = None  # exactly one plain edge with p = 1
        self.cum: list[float] = []  # cumulative branch probabilities
        self.targets: list[_Node] = []
        self.fan: list[_Node] = []
        self.join: _Node | None = None
        self.loops: list[tuple[int, float, int, _Node]] = []
        self.rng = None
        self.is_queue = isinstance(station, BrokerStation)
        self.is_last = False  # no edges out: the path ends here
        self.cb = self.after  # bind once: stations call node.cb(req, ok)

    def after(self, req: Request, ok: bool) -> None:
        if not ok:
            req.k(req, False)
            return
        if req.stop:  # cache hit, guardrail block: answered here
            req.stop = False
            req.k(req, True)
            return
        if self.loops:
            counts = req.loops
            if counts is None:
                counts = req.loops = {}
            for idx, p, cap, target in self.loops:
                n = counts.get(idx, 0)
                if n < cap and self.rng.random() < p:
                    counts[idx] = n + 1
                    _goto(target, req)
                    return
        if self.is_queue:
            self.rep.hand_off(self, req)
            req.k(req, True)  # the caller's latency ends at enqueue
            return
        nxt = self.single
        if nxt is not None:
            if nxt is req.bound:
                req.k(req, True)
            else:
                nxt.station.arrive(req, nxt.cb)
            return
        if self.fan:
            self.fan_out(req)
            return
        if self.cum:
            u = self.rng.random()
            for c, target in zip(self.cum, self.targets):
                if u < c:
                    _goto(target, req)
                    return
        req.k(req, True)  # no branch taken: the request is finished

    def after_last(self, req: Request, ok: bool) -> None:
        """`after` for a node with no outgoing edges: the request (or branch) ends here."""
        req.stop = False
        req.k(req, ok)

    def fan_out(self, req: Request) -> None:
        join = self.join
        state = [len(self.fan), True]

        def branch_done(child: Request, ok: bool) -> None:
            state[0] -= 1
            if not ok:
                state[1] = False
            # The streamed answer is the LLM call that finished last on any branch.
            if child.last_token_at is not None and (req.last_token_at is None or child.last_token_at >= req.last_token_at):
                req.first_token_at = child.first_token_at
                req.last_token_at = child.last_token_at
                req.answer_output_tokens = child.answer_output_tokens
            if state[0] == 0:
                if not state[1]:
                    req.dropped = True
                    req.k(req, False)
                elif join is None:
                    req.k(req, True)
                else:
                    _goto(join, req)

        for target in self.fan:
            child = Request(req.id, req.cls, req.t0, req.prompt_tokens, req.output_tokens, req.measured)
            child.first_token_at, child.last_token_at = req.first_token_at, req.last_token_at
            child.answer_output_tokens = req.answer_output_tokens
            child.loops = req.loops
            child.user = req.user
            child.k = branch_done
            child.bound = join if join is not None else req.bound
            _goto(target, child)


def _goto(node: _Node, req: Request) -> None:
    if node is req.bound:
        req.k(req, True)
    else:
        node.station.arrive(req, node.cb)


def _single_cb(nxt: _Node):
    """`after` for the common node (one plain edge with p = 1, no loops) as a closure: the
    successor and its `arrive` are locals, the cheapest hop on the hot path."""
    arrive = nxt.station.arrive
    if nxt.is_last:
        # The successor ends the path: hand it the request's own continuation (one hop fewer).
        def after_to_last(req: Request, ok: bool) -> None:
            if ok and not req.stop and req.bound is not nxt:
                arrive(req, req.k)
                return
            req.stop = False
            req.k(req, ok)

        return after_to_last

    def after(req: Request, ok: bool) -> None:
        if ok and not req.stop and req.bound is not nxt:
            arrive(req, nxt.cb)
            return
        req.stop = False
        req.k(req, ok)

    return after


def _build_nodes(design, rep: "_Run") -> dict[str, _Node]:
    nodes = {c.id: _Node(c.id, make_station(c, rep.ctx), rep) for c in design.components}
    for idx, e in enumerate(design.flow):
        src = nodes[e.from_]
        if e.is_loop:
            src.loops.append((idx, e.p, e.max_repeats, nodes[e.to]))
    for cid, node in nodes.items():
        outs = design.out_edges(cid)
        if node.loops or (outs and not (len(outs) == 1 and outs[0].p >= 1.0)):
            node.rng = rep.ctx.stream("route:" + cid)
        if not outs:
            continue
        if design.is_fanout(cid):
            node.fan = [nodes[e.to] for e in outs]
            j = design.join_of(cid)
            node.join = nodes[j] if j is not None else None
        elif len(outs) == 1 and outs[0].p >= 1.0:
            node.single = nodes[outs[0].to]
        else:
            acc = 0.0
            for e in outs:
                acc += e.p
                node.cum.append(acc)
                node.targets.append(nodes[e.to])
    for node in nodes.values():
        if not node.loops and not node.is_queue and node.single is None and not node.fan and not node.cum:
            node.cb = node.after_last
            node.is_last = True
    for node in nodes.values():
        if not node.loops and not node.is_queue and node.single is not None:
            node.cb = _single_cb(node.single)
    return nodes


# --- one run: warm-up, then consecutive batches -------------------------------------------------


@dataclass
class _Seg:
    """One batch of measured requests (consecutive arrivals) and what they measured."""

    first_id: int
    end_id: int = 1 << 62  # first arrival id after this batch
    lat: LogHistogram = field(default_factory=LogHistogram)
    ttft: LogHistogram = field(default_factory=LogHistogram)
    tpot: LogHistogram = field(default_factory=LogHistogram)
    measured: int = 0
    completed: int = 0
    dropped: int = 0
    outstanding: int = 0
    t_start: float = 0.0
    window_s: float = 0.0
    area_start: float = 0.0
    mean_in_system: float = 0.0
    dropped_sojourn_s: float = 0.0
    answer_tokens: int = 0
    components: dict = field(default_factory=dict)
    closed: bool = False
    in_system_start: int = 0
    in_system_mid: int = 0
    t_mid: float = 0.0
    in_system_end: int = 0
    t_end: float = 0.0
    batches: list | None = None  # whole day: per-time-batch histograms
    values: list | None = field(default_factory=list)  # latencies (s) until the batch is summarised
    stats: dict | None = None  # the summary (seconds): n, total, mean, p50 … p99, cdf points

    def ok_count(self) -> int:
        if self.values is not None:
            return len(self.values)
        return self.stats["n"] if self.stats is not None else self.lat.n

    def finalize(self) -> dict:
        """Summarise the batch's latencies once (exact order statistics) and free the list.

        A plain list append per request is the cheapest thing the hot path can do; sorting a
        batch once in C costs less than binning every value. Whole-day runs (one batch of
        millions) use the streaming histogram `lat` instead.
        """
        if self.stats is None or self.values is not None:
            if self.values is not None:
                self.stats = _order_stats(self.values)
                self.values = None
            else:
                h = self.lat
                q = h.quantiles(_CDF_QS)
                self.stats = {"n": h.n, "total": h.total, "mean": h.mean() if h.n else 0.0,
                              **dict(zip(("p50", "p90", "p95", "p99"), h.quantiles((0.5, 0.9, 0.95, 0.99)))),
                              "cdf": q if h.n else []}
        return self.stats


_CDF_POINTS = 256
_CDF_QS = tuple((i + 0.5) / _CDF_POINTS for i in range(_CDF_POINTS))


def _order_stats(values: list[float]) -> dict:
    """n, total, mean, p50/p90/p95/p99 (linear between order statistics) and CDF points."""
    n = len(values)
    if n == 0:
        return {"n": 0, "total": 0.0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "cdf": []}
    xs = sorted(values)
    total = math.fsum(xs)

    def q(p: float) -> float:
        pos = p * (n - 1)
        i = int(pos)
        if i + 1 >= n:
            return xs[-1]
        return xs[i] + (xs[i + 1] - xs[i]) * (pos - i)

    return {"n": n, "total": total, "mean": total / n, "p50": q(0.5), "p90": q(0.9), "p95": q(0.95), "p99": q(0.99),
            "cdf": [q(p) for p in _CDF_QS]}


class _Run:
    """One simulation of the design from an empty system, measured in consecutive batches.

    Arrival ids [0, n_warm) are warm-up; then batch b holds ids [n_warm + b·n, n_warm + (b+1)·n).
    At each batch boundary the stations' statistics are snapshotted and reset, and the run
    pauses so the engine can apply its stopping rule; `finish()` stops measuring and lets the
    measured requests drain while arrivals continue. Whole day: one batch, the day's arrivals.
    """

    def __init__(self, design, seed: int, n_warm: int, n_meas: int, *, whole_day: bool, deadline: float,
                 cancel, keep_series: int = 0, n_time_batches: int = 20, no_drain: bool = False):
        self.design = design
        self.env = env = simpy.Environment()
        self.ctx = SimContext(env=env, rng=None, design=design, workload=design.workload, seed=seed)  # type: ignore[arg-type]
        self.ctx.rng = self.ctx.stream("general")
        self.nodes = _build_nodes(design, self)
        self.entry = self.nodes[design.entry]
        self.entry_arrive = self.entry.station.arrive
        self.entry_last = self.entry.is_last
        self.stations = [n.station for n in self.nodes.values()]
        self.brokers = [s for s in self.stations if isinstance(s, BrokerStation)]
        wl = design.workload
        self.n_warm, self.n_meas = n_warm, n_meas
        self.meas_end = 1 << 62  # first id not measured (set by finish())
        self.whole_day = whole_day
        self.no_drain = no_drain
        self.deadline, self.cancel = deadline, cancel
        self.draw = class_sampler(wl, self.ctx.stream("tokens"))
        self.closed_loop = wl.closed_loop
        if self.closed_loop:
            self.think = think_sampler(wl, self.ctx.stream("think"))
            self.source = None
        elif whole_day:
            self.source = OpenLoop.whole_day(wl, self.ctx.stream("arrivals"))
        else:
            self.source = OpenLoop(wl.peak_rps, self.ctx.stream("arrivals"))
        self.segs: list[_Seg] = []
        self.series = [math.nan] * keep_series if keep_series else None  # latency by id (MSER-5)
        self.next_id = 0
        self.n_in = 0
        self.area = 0.0
        self.t_area = 0.0
        self.cut: str | None = None
        self.stopped = False
        self.paused = False
        self.draining = False
        self.drain_upto = 0
        self.drain_cap = 1 << 62
        self.no_more = False
        self.drain_capped = False
        if whole_day:
            self.n_meas = 1 << 62  # one batch: the whole day
        self._end_inner = self._end_day if whole_day else (self._end_series if keep_series else self.end)
        self.end_cb = self._end_user if wl.closed_loop else self._end_inner
        self.mark = 0
        self.mid = n_meas // 2 if no_drain else -1
        self.heap, self.eid = env._queue, env._eid
        self.arr_cb = self._arrival
        self.arr_cbs = [self._arrival]
        src = self.source
        self.rate = src.rate if (src is not None and src.rates is None and src.horizon_s is None) else 0.0
        self.rand = src.rng.random if self.rate else None
        classes = wl.request_classes()
        c0 = classes[0]
        self.fixed = None
        if len(classes) == 1 and c0.prompt_tokens.dist == "fixed" and c0.output_tokens.dist == "fixed":
            self.fixed = (0, max(1, int(round(c0.prompt_tokens.expected()))), max(1, int(round(c0.output_tokens.expected()))))
        self.batch_s = DAY_S / n_time_batches
        self.n_time_batches = n_time_batches
        self.started = False

    # -- control (called by the engine) --
    def advance(self) -> str:
        """Run to the next batch boundary ("boundary"), the end ("done") or a cut ("cut")."""
        env = self.env
        if not self.started:
            self.started = True
            if self.closed_loop:
                for u in range(self.design.workload.concurrent_users):
                    self._schedule_user(u)
            else:
                g = -_log(1.0 - self.rand()) / self.rate if self.rate else self.source.gap(0.0)
                if g is not None:
                    later(env, g, self._arrival)
            if self.whole_day:
                self._open_seg(0.0, 0)
        self.paused = False
        try:
            _drive(env)
        except _Stop:
            pass
        except KeyboardInterrupt:
            self.cut = "cancel"
            self.stopped = True
        if self.cut is not None:
            self._close_seg(env.now)
            return "cut"
        if self.paused:
            return "boundary"
        self.stopped = True
        self._close_seg(env.now)
        return "done"

    def finish(self, drain: bool = True) -> None:
        """Measure no more arrivals; run until the measured batches have drained (bounded)."""
        if self.stopped:
            return
        self.meas_end = self.next_id
        # The batch opened at the boundary just passed holds one request: it is left out.
        self.drain_upto = len(self.segs) - 1 if (self.segs and not self.segs[-1].closed) else len(self.segs)
        if not drain or self._drained():
            self.stopped = True
            return
        self.draining = True
        self.drain_cap = self.next_id + 2 * self.n_meas + 10  # long-tail guard: never wait forever
        self.advance()
        self.stopped = True

    # -- arrivals --
    def _next_mark(self, i: int) -> int:
        """The next arrival index at which something other than routine happens."""
        marks = [(i // CHECK_EVERY + 1) * CHECK_EVERY]
        if i < self.n_warm:
            marks.append(self.n_warm)
        elif self.n_meas and not self.whole_day:
            marks.append(self.n_warm + ((i - self.n_warm) // self.n_meas + 1) * self.n_meas)
        if self.mid > i:
            marks.append(self.mid)
        if self.drain_cap > i:
            marks.append(self.drain_cap)
        return min(marks)

    def _on_mark(self, i: int, now: float) -> None:
        if i == self.mid and self.segs:
            self.segs[-1].in_system_mid = self.n_in
            self.segs[-1].t_mid = now
        if i >= self.drain_cap:
            self.drain_capped = True  # the slowest measured requests are left unfinished
            self._stop()
        if i >= self.n_warm and not self.whole_day and (i - self.n_warm) % self.n_meas == 0 and i < self.meas_end:
            if self.segs:
                self._close_seg(now)
                if self.no_drain:
                    self.next_id = i  # request i is never created
                    self._stop()
            self._open_seg(now, i)
            if len(self.segs) > 1:
                self._pause()
        if not (i % CHECK_EVERY):
            self._check(now)
        self.mark = self._next_mark(i)

    def _new_request(self, now: float) -> Request:
        i = self.next_id
        self.next_id = i + 1
        if i == self.mark:
            self._on_mark(i, now)
        if self.fixed is not None:
            cls, pt, ot = self.fixed
        else:
            cls, pt, ot = self.draw()
        req = Request(i, cls, now, pt, ot, self.n_warm <= i < self.meas_end)
        req.k = self.end_cb
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        self.n_in += 1
        return req

    def _arrival(self, ev) -> None:
        # _new_request, written out: this runs once per request.
        now = self.env._now
        i = self.next_id
        self.next_id = i + 1
        if i == self.mark:
            self._on_mark(i, now)
        if self.fixed is not None:
            cls, pt, ot = self.fixed
        else:
            cls, pt, ot = self.draw()
        req = Request(i, cls, now, pt, ot, self.n_warm <= i < self.meas_end)
        req.k = self.end_cb
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        self.n_in += 1
        rate = self.rate
        # Constant rate: the gap drawn inline, exactly as random.expovariate does it.
        g = -_log(1.0 - self.rand()) / rate if rate else self.source.gap(now)
        if g is not None:
            ev = _Call()
            ev.callbacks = self.arr_cbs
            ev._value = None
            heappush(self.heap, (now + g, 1, next(self.eid), ev))
        else:
            # The horizon (whole day) is reached: no more arrivals; drain what is in flight.
            self.no_more = True
            self.meas_end = min(self.meas_end, self.next_id)
            if self.segs and not self.segs[-1].closed:
                self._close_seg(now)
            self.draining = True
            self.drain_upto = len(self.segs)
        self.entry_arrive(req, self.end_cb if self.entry_last else self.entry.cb)

    def _schedule_user(self, u: int) -> None:
        later(self.env, self.think(), self._user_sends, u)

    def _user_sends(self, ev) -> None:
        if self.stopped:
            return
        req = self._new_request(self.env._now)
        req.user = ev._value
        self.entry.station.arrive(req, self.entry.cb)

    # -- departures --
    def end(self, req: Request, ok: bool) -> None:
        """A request (its caller's part) is over: account it. The hot path: lean on purpose."""
        now = self.env._now
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        self.n_in -= 1
        if req.measured:
            seg = self.segs[(req.id - self.n_warm) // self.n_meas]
            soj = now - req.t0
            if ok:
                seg.values.append(soj)
                if req.first_token_at is not None:
                    seg.ttft.add(req.first_token_at - req.t0)
                    n = req.answer_output_tokens
                    seg.answer_tokens += n
                    if n > 1:
                        seg.tpot.add((req.last_token_at - req.first_token_at) / (n - 1))
            else:
                seg.dropped += 1
                seg.dropped_sojourn_s += soj
            if self.draining and self._drained():
                self._stop()

    def _end_series(self, req: Request, ok: bool) -> None:
        # While MSER-5 needs it: each latency by arrival id, warm-up included.
        series = self.series
        if series is not None and ok and req.id < len(series):
            series[req.id] = self.env._now - req.t0
        self.end(req, ok)

    def _end_day(self, req: Request, ok: bool) -> None:
        # A day is millions of requests in one batch: stream into histograms instead of a list.
        now = self.env._now
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        self.n_in -= 1
        if req.measured:
            seg = self.segs[0]
            soj = now - req.t0
            if ok:
                seg.lat.add(soj)
                seg.batches[min(self.n_time_batches - 1, int(req.t0 / self.batch_s))].add(soj)
                if req.first_token_at is not None:
                    seg.ttft.add(req.first_token_at - req.t0)
                    n = req.answer_output_tokens
                    seg.answer_tokens += n
                    if n > 1:
                        seg.tpot.add((req.last_token_at - req.first_token_at) / (n - 1))
            else:
                seg.dropped += 1
                seg.dropped_sojourn_s += soj
            if self.draining and self._drained():
                self._stop()

    def _end_user(self, req: Request, ok: bool) -> None:
        self._end_inner(req, ok)
        if req.user >= 0 and not self.stopped:
            self._schedule_user(req.user)

    def stop_series(self) -> None:
        """MSER-5 is done: drop the series and the per-request hook that fills it."""
        self.series = None
        self._end_inner = self.end
        if not self.closed_loop:
            self.end_cb = self.end

    def hand_off(self, node: _Node, req: Request) -> None:
        """A `queue` acknowledged `req`: its consumers get an async copy of the message."""
        msg = req.clone()
        msg.k = _async_done
        node.station.enqueued(msg)
        if node.single is not None:
            node.single.station.arrive(msg, node.single.cb)
        elif node.fan:
            node.fan_out(msg)
        elif node.cum:
            u = node.rng.random()
            for c, target in zip(node.cum, node.targets):
                if u < c:
                    target.station.arrive(msg, target.cb)
                    return
            node.station.record_lag(msg, self.env._now)  # nobody consumes it
        else:
            node.station.record_lag(msg, self.env._now)

    # -- batches and control --
    def refresh(self) -> None:
        """Bring each batch's `measured` / `outstanding` counts up to date (derived, not counted
        per request: arrivals in [first_id, end_id) minus those that ended)."""
        top = min(self.next_id, self.meas_end)
        for s in self.segs:
            s.measured = max(0, min(top, s.end_id) - s.first_id)
            s.completed = s.ok_count()
            s.outstanding = s.measured - s.completed - s.dropped

    def _drained(self) -> bool:
        top = min(self.next_id, self.meas_end)
        for s in self.segs[: self.drain_upto]:
            if min(top, s.end_id) - s.first_id - s.ok_count() - s.dropped > 0:
                return False
        return True

    def _open_seg(self, now: float, first_id: int) -> None:
        for s in self.stations:
            s.reset_stats(now)
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        seg = _Seg(first_id=first_id, t_start=now, area_start=self.area, in_system_start=self.n_in)
        if not self.whole_day:
            seg.end_id = first_id + self.n_meas
        if self.whole_day:
            seg.batches = [LogHistogram() for _ in range(self.n_time_batches)]
            seg.values = None
        self.segs.append(seg)

    def _close_seg(self, now: float) -> None:
        if not self.segs or self.segs[-1].closed:
            return
        seg = self.segs[-1]
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        seg.closed = True
        self.refresh()
        seg.window_s = max(now - seg.t_start, 1e-12)
        seg.mean_in_system = (self.area - seg.area_start) / seg.window_s
        seg.components = {s.id: s.stats(now) for s in self.stations}
        seg.in_system_end = self.n_in
        seg.t_end = now

    def _pause(self) -> None:
        # Ask the loop to return once this callback is done (an event at the same instant).
        self.paused = True
        later(self.env, 0.0, _raise_stop)

    def _check(self, now: float) -> None:
        backlog = self.n_in + sum(b.qlen for b in self.brokers)
        if backlog > MAX_IN_SYSTEM:
            self.cut = "backlog"
            self._stop()
        elif time.perf_counter() > self.deadline:
            self.cut = "max_seconds"
            self._stop()
        elif self.cancel is not None and self.cancel.is_set():
            self.cut = "cancel"
            self._stop()

    def _stop(self) -> None:
        self.stopped = True
        raise _Stop


class _Stop(Exception):
    """Raised from a callback to end (or pause) the event loop."""


def _raise_stop(ev) -> None:
    raise _Stop


def _drive(env) -> None:
    """SimPy's `Environment.run()` loop, inlined (one Python call per event fewer).

    Semantics are `step()`'s: pop the earliest event, run its callbacks, crash on an
    undefused failed event. Ends when the schedule is empty or a callback raises `_Stop`.
    """
    q = env._queue
    pop = heappop
    while q:
        env._now, _, _, ev = pop(q)
        cbs, ev.callbacks = ev.callbacks, None
        for cb in cbs:
            cb(ev)
        if not ev._ok and not hasattr(ev, "_defused"):
            exc = type(ev._value)(*ev._value.args)
            exc.__cause__ = ev._value
            raise exc


def _async_done(req: Request, ok: bool) -> None:
    """End of an asynchronous message's path: nothing waits for it."""


# --- planning ---------------------------------------------------------------------------------


def _analytic(design):
    """The analytic twin's estimate, or None while `sim.analytic` is not there (or fails)."""
    try:
        from .analytic import estimate
    except ImportError:
        return None
    try:
        return estimate(design)
    except Exception:  # the twin must never stop a simulation; the engine has its own guards
        return None


def _rep_plan(est, workload) -> tuple[int, int]:
    """(requests per batch, warm-up requests) for a batch-means run.

    Two clocks matter. Queueing: an M/M/c queue relaxes in about 1/(μ(√c − √(cρ))²), i.e.
    τ = ρ/(1 − √ρ)² arrivals; batches of 100·τ are nearly independent and a warm-up of 20·τ
    leaves a start-up bias of e⁻²⁰. Sojourn: a system holding L = λW requests (an LLM server
    holds thousands) takes many W to settle (the batch mix of a continuous-batching server
    drifts for ~10 W), so the warm-up is at least 15·L arrivals and a batch at least 10·L,
    which also keeps the edge terms of Little's law small (they shrink like L / window).
    """
    rho = 0.8
    in_system = 0.0
    if est is not None:
        rhos = [s.utilization for s in est.stations.values() if s.servers and s.utilization < 1]
        if rhos:
            rho = max(rhos)
        if est.latency_ms_mean and math.isfinite(est.latency_ms_mean):
            in_system = est.arrival_rps * est.latency_ms_mean / 1000.0
    if workload.closed_loop:
        in_system = max(in_system, float(workload.concurrent_users))
    rho = min(max(rho, 0.0), 0.995)
    relax = rho / (1 - math.sqrt(rho)) ** 2 if rho > 0 else 1.0
    n_meas = int(min(200_000, max(5_000, 100 * relax, 10 * in_system)))
    n_warm = int(max(n_meas // 5, 20 * relax, 15 * in_system, 200))
    return n_meas, n_warm


def refuse(design, *, whole_day: bool, max_requests: int) -> None:
    """Raise `SimulationRefused` for workloads no run could answer sensibly."""
    wl = design.workload
    if wl.closed_loop:
        if whole_day:
            raise SimulationRefused("workload: a whole-day run needs open-loop traffic (requests_per_day and "
                                    "profile_24h), not concurrent_users")
        return
    if wl.peak_rps > MAX_PEAK_RPS:
        raise SimulationRefused(
            f"workload: peak rate {wl.peak_rps:,.0f} requests/s is above {MAX_PEAK_RPS:,.0f}/s; "
            "check requests_per_day / peak_to_average (or simulate one shard of the fleet)"
        )
    if whole_day:
        n = OpenLoop.whole_day(wl, _null_rng()).expected_requests()
        if n > max_requests:
            raise SimulationRefused(
                f"workload: a whole day is {n:,.0f} requests, above max_requests={max_requests:,}; "
                "raise --max-requests or simulate the peak hour instead"
            )


def _null_rng():
    import random

    return random.Random(0)


# --- public API -------------------------------------------------------------------------------


def simulate(design, *, seed: int = 0, precision: float = 0.02, max_requests: int = 2_000_000,
             max_seconds: float = 60.0, replications: int | None = None,
             progress: Callable[[float, str], None] | None = None, cancel=None,
             keep_sample: int = 2000, whole_day: bool = False):
    """Simulate `design` and return a `sim.results.RunResult` (see the module docstring).

    `replications` fixes the number of replications (no stopping rule); `cancel` is a
    `threading.Event`; `progress(fraction, message)` is called between replications.
    Raises `SimulationRefused` for absurd workloads or budgets, before any work.
    """
    return _simulate(design, seed=seed, precision=precision, max_requests=max_requests, max_seconds=max_seconds,
                     replications=replications, progress=progress, cancel=cancel, keep_sample=keep_sample,
                     whole_day=whole_day)[0]


def compare(designs: list, *, seed: int = 0, **kw) -> list:
    """Simulate each design on the same seeds (common random numbers); the first sets the plan.

    The variants reuse the first design's replication size and count, so replication r of
    every variant sees the same arrivals, tokens and (shared components') service times.
    """
    out = []
    plan: dict = {}
    for i, d in enumerate(designs):
        res, n_meas = _simulate(d, seed=seed, **kw, **plan)
        out.append(res)
        if i == 0 and res.stable and res.replications and res.stopped_by != "pipeline" and "replications" not in kw:
            plan = {"replications": res.replications, "rep_n": n_meas}
    return out


def _simulate(design, *, seed=0, precision=0.02, max_requests=2_000_000, max_seconds=60.0, replications=None,
              progress=None, cancel=None, keep_sample=2000, whole_day=False, rep_n=None):
    t_start = time.perf_counter()
    if not (0 < precision < 1):
        raise SimulationRefused(f"precision must be between 0 and 1 (a relative half-width); got {precision}")
    if max_requests < 1 or max_seconds <= 0:
        raise SimulationRefused("max_requests and max_seconds must be positive")
    if replications is not None and replications < 1:
        raise SimulationRefused("replications must be at least 1")
    wl = design.workload
    kw = dict(design=design, seed=seed, t_start=t_start, keep_sample=keep_sample)
    if wl.batch is not None:
        pipe = _pipeline(design)
        if pipe is not None:
            return _build_result(outs=[], simulated=0, stopped_by="pipeline", stable=True, est=None, sample=None,
                                 warnings=[], warmup=0, pipeline=pipe, ci_method="", **kw), 0
    refuse(design, whole_day=whole_day, max_requests=max_requests)
    est = _analytic(design)
    deadline = t_start + max_seconds
    sample = None
    warnings: list[str] = []
    common = dict(deadline=deadline, cancel=cancel)

    if est is not None and not est.stable:
        # Saturated: one bounded window shows the backlog grow; never a hang.
        n = int(min(max_requests, 50_000))
        run = _Run(design, seed, 0, n, whole_day=False, no_drain=True, **common)
        run.advance()
        run.refresh()
        warnings.extend(est.unstable)
        stop = {"cancel": "interrupted", "max_seconds": "max_seconds"}.get(run.cut or "", "max_requests")
        return _build_result(outs=run.segs[:1], simulated=run.next_id, stopped_by=stop, stable=False, est=est,
                             sample=sample, warnings=warnings, warmup=0,
                             ci_method="one bounded window (unstable: no confidence interval)", **kw), n

    if whole_day:
        run = _Run(design, seed, 0, 1, whole_day=True, **common)
        run.advance()
        run.refresh()
        outs = [s for s in run.segs if s.closed]
        stop = {"cancel": "interrupted", "max_seconds": "max_seconds", "backlog": "max_requests"}.get(run.cut or "")
        if stop is None:
            stop = "precision"
            _, _, rel = _percentiles(outs, "lat", True)
            if rel is None or rel > precision:
                stop = "max_requests"
        return _build_result(outs=outs, simulated=run.next_id, stopped_by=stop, stable=run.cut != "backlog", est=est,
                             sample=sample, warnings=warnings, warmup=0, whole_day=True,
                             ci_method="one day; intervals from 20 time batches of 72 minutes", **kw), 0

    n_meas, n_warm = _rep_plan(est, wl)
    if rep_n:
        n_meas = rep_n
    # A budget too small for MIN_REPLICATIONS full batches shortens them instead.
    cap = max_requests // (MIN_REPLICATIONS + 1)
    if n_meas > cap:
        n_meas = max(100, cap)
        n_warm = min(n_warm, max(100, max_requests // 5))
    mser_pending = replications is None
    keep = min(n_warm + 2 * n_meas, 400_000) if mser_pending else 0
    run = _Run(design, seed, n_warm, n_meas, whole_day=False, keep_series=keep, **common)
    first = 0  # batches before this index count as warm-up (MSER-5 may move it)
    stopped_by = None
    unstable = False
    while True:
        reason = run.advance()
        run.refresh()
        if reason == "cut":
            if run.cut == "backlog":
                unstable = True
                warnings.append(f"more than {MAX_IN_SYSTEM:,} requests in flight: the backlog keeps growing, "
                                "the design cannot keep up")
            stopped_by = {"cancel": "interrupted", "max_seconds": "max_seconds"}.get(run.cut or "", "max_requests")
            break
        if reason == "done":  # nothing left to simulate (e.g. a closed loop with no users)
            stopped_by = "max_requests"
            break
        closed = run.segs[first:-1]
        complete = []
        for s in closed:
            if s.outstanding:
                break
            complete.append(s)
        if mser_pending and len(run.segs) - 1 >= 2 and run.segs[1].outstanding == 0 and run.series is not None:
            # MSER-5 over warm-up + two batches: if the transient outlasts the planned warm-up,
            # treat the batches it reaches as warm-up too.
            mser_pending = False
            d = mser5([x for x in run.series if not math.isnan(x)])
            run.stop_series()
            if d > n_warm:
                k = math.ceil((d - n_warm) / n_meas)
                first = k
                warnings.append(f"warm-up extended by MSER-5 from {n_warm:,} to {n_warm + k * n_meas:,} requests")
                continue
        p95s = [_q95(s) for s in complete]
        m = sum(p95s) / len(p95s) if p95s else 0.0
        hw = half_width(p95s) if len(p95s) > 1 else math.inf
        met = m > 0 and not math.isinf(hw) and hw <= precision * m
        wall = time.perf_counter() - t_start
        if progress is not None:
            need = (hw / (precision * m)) ** 2 * len(p95s) if m and not math.isinf(hw) else 2.0 * MIN_REPLICATIONS
            frac = max(run.next_id / max_requests, wall / max_seconds, len(p95s) / max(need, MIN_REPLICATIONS, 1.0))
            ci = f" ± {hw * 1000:.3g}" if not math.isinf(hw) else ""
            progress(min(frac, 0.99), f"batch {len(closed)}: p95 {m * 1000:.4g} ms{ci}")
        if replications is not None:
            if len(closed) >= replications:
                stopped_by = "precision" if met else "max_requests"
                break
        elif len(complete) >= MIN_REPLICATIONS and met:
            stopped_by = "precision"
            break
        if run.next_id + n_meas > max_requests:
            stopped_by = "max_requests"
            break
        per_batch = wall / max(1, len(run.segs) - first)
        if len(closed) >= 2 and wall + 1.5 * per_batch > max_seconds:
            stopped_by = "max_seconds"
            break
    if run.cut is None:
        run.finish()
        if run.cut == "cancel":
            stopped_by = "interrupted"
    run.refresh()
    end = run.drain_upto if run.drain_upto else len(run.segs)
    outs = [s for s in run.segs[first:end] if s.closed]
    if run.cut is not None and len(outs) > 1:
        outs = [s for s in outs if not s.outstanding] or outs
    if run.drain_capped:
        warnings.append("stopped waiting for the slowest measured requests after 2 batches of further arrivals")
    if progress is not None:
        progress(1.0, "done")
    method = f"batch means: {len(outs)} batches of {n_meas:,} requests after {n_warm + first * n_meas:,} warm-up"
    res = _build_result(outs=outs, simulated=run.next_id, stopped_by=stopped_by or "max_requests", stable=not unstable,
                        est=est, sample=sample, warnings=warnings, warmup=n_warm + first * n_meas, ci_method=method, **kw)
    return res, n_meas


def _q95(o: _Seg) -> float:
    st = o.finalize()
    return st["p95"] if st["n"] else float("nan")


def _pipeline(design):
    try:
        from .pipeline import pipeline_result
    except ImportError:
        return None
    return pipeline_result(design)


# --- the result record ---------------------------------------------------------------------


def _build_result(*, design, outs: list[_Seg], simulated: int, seed, t_start, stopped_by, stable, est, sample,
                  warnings, warmup, keep_sample, ci_method: str, whole_day=False, pipeline=None):
    from .results import PercentileCI, Percentiles, RunResult

    wl = design.workload
    partial = stopped_by == "interrupted"
    warnings = list(warnings)
    for o in outs:
        o.finalize()
    done = [o for o in outs if o.stats["n"]]
    lat, lat_ci, hw_rel = _percentiles(done, "lat", whole_day)
    if not done and pipeline is None:
        warnings.append("no measured request completed: latency figures are zero placeholders")
    kinds_on_path = {design.component(c).kind for c in design.reachable()}
    ttft = tpot = ttft_ci = tpot_ci = None
    tokens_per_s = None
    if kinds_on_path & LLM_KINDS and any(o.ttft.n for o in done):
        ttft, ttft_ci, _ = _percentiles([o for o in done if o.ttft.n], "ttft", whole_day)
        if any(o.tpot.n for o in done):
            tpot, tpot_ci, _ = _percentiles([o for o in done if o.tpot.n], "tpot", whole_day)
        tokens_per_s = _avg([o.answer_tokens / o.window_s for o in done if o.window_s > 0])
    components = _components(design, outs)
    measured = sum(o.measured for o in outs)
    completed = sum(o.completed for o in outs)
    dropped = sum(o.dropped for o in outs)
    unfinished = sum(o.outstanding for o in outs)
    if unfinished and stable:
        warnings.append(f"{unfinished} measured requests had not finished when the run stopped")
    little = _littles_law(outs, cut_short=partial or not stable or stopped_by == "max_seconds")
    if little is not None and not little.ok and stable and not partial:
        warnings.append(f"Little's law off by {little.rel_error:.1%}: the run may be too short for this load")
    if not stable:
        o = outs[0] if outs else None
        if o is not None and o.t_end > o.t_mid:
            growth = (o.in_system_end - o.in_system_mid) / (o.t_end - o.t_mid)
            warnings.append(f"backlog grew from {o.in_system_mid} to {o.in_system_end} requests in flight over "
                            f"{o.t_end - o.t_mid:.1f} s of peak traffic (+{growth:,.1f}/s); latencies are from the "
                            "requests that finished and understate what users would see")
    if whole_day and len(done) == 1:
        warnings.append("whole-day confidence intervals come from 20 time batches of one day; traffic varies by "
                        "hour, so they are indicative only")
    bottleneck = None
    if components:
        bottleneck = max(components, key=lambda c: (components[c].utilization, components[c].wait_ms_p95))
        if components[bottleneck].utilization <= 0 and components[bottleneck].wait_ms_p95 <= 0:
            bottleneck = None
    arrival = wl.peak_rps
    if wl.closed_loop:
        arrival = _avg([o.measured / o.window_s for o in outs if o.window_s > 0]) or 0.0
    elif whole_day:
        arrival = sum(OpenLoop.whole_day(wl, _null_rng()).rates) / 24.0
    values = dict(
        design=design.name,
        arrival_rps=arrival,
        simulated_requests=simulated,
        completed_requests=completed,
        dropped_requests=dropped,
        stable=stable,
        stopped_by=stopped_by,
        latency_ms=Percentiles(**lat),
        latency_ms_ci95=PercentileCI(**lat_ci),
        components=components,
        slo=[],
        cost_per_day_usd=0.0,
        seed=seed,
        wall_s=0.0,
        partial=partial,
        replications=len(done),
        ci_method=ci_method,
        warmup_requests=warmup,
        precision_achieved=hw_rel,
        ttft_ms=Percentiles(**ttft) if ttft else None,
        tpot_ms=Percentiles(**tpot) if tpot else None,
        ttft_ms_ci95=PercentileCI(**ttft_ci) if ttft_ci else None,
        tpot_ms_ci95=PercentileCI(**tpot_ci) if tpot_ci else None,
        output_tokens_per_s=tokens_per_s,
        bottleneck=bottleneck,
        littles_law=little,
        pipeline=pipeline,
        latency_sample_ms=_cdf_sample(done, keep_sample),
        warnings=warnings,
    )
    result = RunResult(**values)
    _add_cost_and_slo(design, result, est, measured, whole_day)
    result.wall_s = time.perf_counter() - t_start
    return result


def _cdf_sample(outs: list[_Seg], n: int) -> list[float]:
    """`n` evenly spaced quantiles (ms) of all measured latencies, for CDF plots.

    Each batch keeps 256 quantile points; pooled, each point weighs its batch's size / 256.
    Nothing per request, and the memory does not grow with the run.
    """
    pts: list[tuple[float, float]] = []
    for o in outs:
        st = o.finalize()
        if st["n"] and st["cdf"]:
            w = st["n"] / len(st["cdf"])
            pts.extend((x, w) for x in st["cdf"])
    if n <= 0 or not pts:
        return []
    pts.sort()
    total = sum(w for _, w in pts)
    k = min(n, int(total))
    out: list[float] = []
    acc, i = 0.0, 0
    for j in range(k):
        target = (j + 0.5) / k * total
        while i < len(pts) - 1 and acc + pts[i][1] < target:
            acc += pts[i][1]
            i += 1
        out.append(pts[i][0] * 1000.0)
    return out


def _avg(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


_KEYS = ("mean", "p50", "p90", "p95", "p99")


def _percentiles(outs: list[_Seg], attr: str, whole_day: bool):
    """(point estimates, 95 % CIs, relative half-width of p95), all in ms.

    Point = mean over batches of each batch's statistic (the CI is centred on it).
    One whole day: pooled day statistics, intervals from 20 time batches.
    """
    if not outs:  # nothing completed (a pipeline, or every request dropped): zeros, not NaN
        return {k: 0.0 for k in _KEYS}, {k: (0.0, 0.0) for k in _KEYS}, None
    if whole_day and len(outs) == 1 and attr == "lat" and outs[0].batches:
        point = summary(outs[0].lat)
        per = [summary(b) for b in outs[0].batches if b.n >= 20]
        ci = {}
        for k in _KEYS:
            vals = [p[k] for p in per]
            hw = half_width(vals) if len(vals) > 1 else 0.0
            ci[k] = (point[k] - hw, point[k] + hw)
        rel = (ci["p95"][1] - point["p95"]) / point["p95"] if point["p95"] else None
        return point, ci, rel
    if attr == "lat":
        per = [{k: o.finalize()[k] * 1000.0 for k in _KEYS} for o in outs]
    else:
        per = [summary(getattr(o, attr)) for o in outs]
    point = {k: sum(p[k] for p in per) / len(per) for k in _KEYS}
    ci = {k: mean_ci([p[k] for p in per]) for k in _KEYS}
    hw = half_width([p["p95"] for p in per]) if len(per) > 1 else None
    rel = hw / point["p95"] if hw is not None and point["p95"] > 0 and not math.isinf(hw) else None
    return point, ci, rel


def _components(design, outs: list[_Seg]) -> dict:
    from .results import ComponentStats
    from .stats import aggregate_records

    good = [o for o in outs if o.components]
    if not good:
        return {}
    merged = aggregate_records([{cid: st.to_json() for cid, st in o.components.items()} for o in good])
    return {cid: ComponentStats(**rec) for cid, rec in merged.items()}


def _littles_law(outs: list[_Seg], cut_short: bool):
    """L (time-average requests in system) against λW, pooled over the measured batches.

    Pooled sums telescope across consecutive batches, so only the two ends of the measured
    span contribute edge terms; they cancel in expectation once the warm-up is long enough.
    """
    from .results import LittlesLaw
    from .stats import littles_law

    rows = [o for o in outs if o.window_s > 0 and (o.finalize()["n"] + o.dropped)]
    if not rows:
        return None
    span = sum(o.window_s for o in rows)
    L = sum(o.mean_in_system * o.window_s for o in rows) / span
    lam = sum(o.measured for o in rows) / span
    W = sum(o.stats["total"] + o.dropped_sojourn_s for o in rows) / sum(o.stats["n"] + o.dropped for o in rows)
    lw, err = littles_law(L, lam, W)
    return LittlesLaw(mean_in_system=L, throughput_x_latency=lw, rel_error=err, ok=err <= (0.05 if cut_short else 0.01))


def _add_cost_and_slo(design, result, est, measured: int, whole_day: bool) -> None:
    """Daily cost from `sim.cost` and the SLO verdict from `sim.verdict` (simple fallbacks)."""
    rates = {cid: st.throughput_rps for cid, st in result.components.items()}
    try:
        from .cost import daily_cost
    except ImportError:
        daily_cost = None
    if daily_cost is not None:
        try:
            kwargs = {"pipeline": result.pipeline}
            if rates and result.arrival_rps > 0:
                kwargs.update(arrival_rps_by_component=rates, arrival_rps=result.arrival_rps)
            usd, lines = daily_cost(design, **kwargs)
            result.cost_per_day_usd = float(usd)
            result.cost_breakdown = list(lines)
        except Exception as e:  # cost is a report line; never lose a simulation to it
            result.warnings.append(f"cost not computed: {e}")
    elif est is not None:
        result.cost_per_day_usd = est.cost_per_day_usd
        result.cost_breakdown = list(est.cost_breakdown)
    wl = design.workload
    per_day = wl.requests_per_day if not wl.closed_loop else result.arrival_rps * 86_400
    if per_day > 0 and result.cost_per_day_usd and wl.batch is None:
        result.cost_per_1k_requests_usd = result.cost_per_day_usd / per_day * 1000.0
    n = result.completed_requests + result.dropped_requests
    availability = result.completed_requests / n if n else None
    try:
        from .verdict import slo_checks
    except ImportError:
        slo_checks = None
    if slo_checks is not None:
        checks = slo_checks(
            design,
            latency=result.latency_ms if n else None,
            latency_ci=result.latency_ms_ci95 if n else None,
            ttft=result.ttft_ms, tpot=result.tpot_ms, ttft_ci=result.ttft_ms_ci95, tpot_ci=result.tpot_ms_ci95,
            availability=availability, cost_per_day_usd=result.cost_per_day_usd, pipeline=result.pipeline,
        )
    else:
        checks = _basic_slo(design, result, availability)
    if not result.stable:
        # The measured percentiles only cover requests that got through a growing queue.
        for c in checks:
            if c.metric in ("latency_p95_ms", "latency_p99_ms", "ttft_p95_ms", "tpot_p95_ms"):
                c.met = False
                c.detail = f"unstable: the queue grows without bound (measured {c.value if c.value is None else round(c.value, 1)} ms covers only requests that finished)"
    result.slo = checks


def _basic_slo(design, result, availability) -> list:
    """The SLO lines without `sim.verdict` (kept minimal; the verdict module is the real one)."""
    from .results import SLOCheck

    slo = design.slo
    out = []

    def check(metric, target, value, higher_is_better=False):
        met = None if value is None or math.isnan(value) else (value >= target if higher_is_better else value <= target)
        out.append(SLOCheck(metric=metric, target=target, value=value, met=met, detail=f"{value} vs {target}"))

    pick = {"latency_p95_ms": (result.latency_ms, "p95"), "latency_p99_ms": (result.latency_ms, "p99"),
            "ttft_p95_ms": (result.ttft_ms, "p95"), "tpot_p95_ms": (result.tpot_ms, "p95")}
    for metric, (pct, key) in pick.items():
        target = getattr(slo, metric)
        if target is not None:
            check(metric, target, getattr(pct, key) if pct is not None else None)
    if slo.availability is not None:
        check("availability", slo.availability, availability, higher_is_better=True)
    if slo.daily_budget_usd is not None:
        check("cost_per_day_usd", slo.daily_budget_usd, result.cost_per_day_usd)
    return out
