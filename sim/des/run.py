"""One simulation run: the event loop, arrivals, departures, and consecutive measured batches.

`Run` simulates a design from an empty system on a `sim.des.stations.SimEnv`. Arrival ids
[0, n_warm) are warm-up; then batch b holds ids [n_warm + b·n, n_warm + (b+1)·n). At each batch
boundary the stations' statistics are snapshotted into the batch's `sim.des.summary.Batch` and
reset, and `advance()` returns so the engine can apply its stopping rule; `finish()` stops
measuring and lets the measured requests drain while arrivals continue (bounded). A whole
day is one batch holding the day's arrivals, streamed into histograms.

Usage::

    from sim.des.run import Run

    run = Run(design, seed=1, n_warm=2_000, n_meas=10_000, whole_day=False,
              deadline=time.perf_counter() + 60, cancel=None)
    while run.advance() == "boundary" and len(run.segs) < 12:
        run.refresh()                    # batch counts up to date
    run.finish()                         # drain the measured requests
    batches = [s for s in run.segs if s.closed]

The hot path (`_arrival`, `end`) is written out by hand: it runs once per request.
"""

from __future__ import annotations

import math
import time
from heapq import heappop, heappush
from itertools import repeat

from . import limits as _limits
from .request import Request, SimContext
from .routing import build_nodes
from .fifo import FifoStation
from .stations import BrokerStation, SimEnv, later
from .stats import LogHistogram, RawSample
from .summary import Batch
from .station_base import expo_draw
from .delay_chain import DelayChain
from .workload import DAY_S, OpenLoop, class_sampler, think_sampler
from sim.ops.traffic import make_source

__all__ = ["Run", "MAX_IN_SYSTEM", "CHECK_EVERY"]

_log = math.log

MAX_IN_SYSTEM = _limits.MAX_IN_SYSTEM  # requests in flight before a run is cut (unless the twin expects more)
CHECK_EVERY = 2048  # arrivals between backlog checks (power of two)
# The wall clock, the cancel event and the work done are checked by *events*, not arrivals:
# one request of a loop-heavy design can be thousands of events. A chunk is at most this many
# events, halved while a chunk takes longer than TICK_S (heavy events such as a large LLM
# batch iteration), so a cancel is answered within a few TICK_S whatever the design.
CHECK_EVENTS = 4096
TICK_S = 0.05
FLUSH_EVERY = 8 * CHECK_EVERY  # arrivals between checks of the stations' pending waits (power of two)



def _account_tokens(seg, req: Request) -> None:
    """TTFT and TPOT of a request that streamed an answer (its last LLM call)."""
    seg.ttft.add(req.first_token_at - req.t0)
    n = req.answer_output_tokens
    seg.answer_tokens += n
    if n > 1:
        seg.tpot.add((req.last_token_at - req.first_token_at) / (n - 1))


class Run:
    """One simulation of the design from an empty system, measured in consecutive batches.

    Arrival ids [0, n_warm) are warm-up; then batch b holds ids [n_warm + b·n, n_warm + (b+1)·n).
    At each batch boundary the stations' statistics are snapshotted and reset, and the run
    pauses so the engine can apply its stopping rule; `finish()` stops measuring and lets the
    measured requests drain while arrivals continue. Whole day: one batch, the day's arrivals.
    """

    def __init__(self, design, seed: int, n_warm: int, n_meas: int, *, whole_day: bool, deadline: float,
                 cancel, keep_series: int = 0, n_time_batches: int = 20, no_drain: bool = False,
                 max_in_system: int = MAX_IN_SYSTEM, events_per_arrival: float = 0.0, timeline=None,
                 tail_tokens: tuple[int, ...] | None = None):
        self.design = design
        # Budgets checked every chunk of events (see CHECK_EVENTS): the work allowance is
        # `events_per_arrival` per request sent (0: unbounded) plus a start-up slack.
        self.max_in_system = max_in_system
        self.events_per_arrival = events_per_arrival
        self.events = 0
        self.chunk = CHECK_EVENTS
        self.t_tick = time.perf_counter()
        self.env = env = SimEnv()
        self.ctx = SimContext(env=env, rng=None, design=design, workload=design.workload, seed=seed)  # type: ignore[arg-type]
        self.ctx.rng = self.ctx.stream("general")
        if timeline is not None:  # a `sim.ops.timeline.Timeline`: its stations are built from this
            self.ctx.extra["ops"] = timeline
        self.nodes = build_nodes(design, self.ctx)
        self.entry = self.nodes[design.entry]
        self.entry_arrive = self.entry.station.arrive
        self.entry_last = self.entry.is_last
        self.stations = [n.station for n in self.nodes.values()]
        self.brokers = [s for s in self.stations if isinstance(s, BrokerStation)]
        self.flushers = [s.flush_waits for s in self.stations if hasattr(s, "flush_waits")]
        wl = design.workload
        self.n_warm, self.n_meas = n_warm, n_meas
        self.meas_end = 1 << 62  # first id not measured (set by finish())
        self.whole_day = whole_day
        self.no_drain = no_drain
        self.deadline, self.cancel = deadline, cancel
        tokens_rng = self.ctx.stream("tokens")
        self.closed_loop = wl.closed_loop
        if self.closed_loop:
            self.think = think_sampler(wl, self.ctx.stream("think"))
            self.source = None
        elif whole_day:
            self.source = OpenLoop.whole_day(wl, self.ctx.stream("arrivals"))
        else:
            rng = self.ctx.stream("arrivals")
            self.source = make_source(wl, rng, rate=wl.peak_rps) or OpenLoop(wl.peak_rps, rng)  # bursty: sim.ops
        self.segs: list[Batch] = []
        self.series = [math.nan] * keep_series if keep_series else None  # latency by id (MSER-5)
        self.next_id = 0
        self.n_in = 0
        # Control variates (`sim.des.control`), when `tail_tokens` is given: the output and prompt
        # tokens of the open batch's arrivals, summed (and the outputs counted above each of
        # `tail_tokens`) when the next batch opens. Recorded by the token draw itself.
        self.outs: list[int] = []
        self.prompts: list[int] = []
        self.tail_tokens = tail_tokens
        # The draw appends to these itself (`class_sampler`'s `record`).
        self.draw = class_sampler(wl, tokens_rng, (self.outs, self.prompts) if tail_tokens is not None else None)
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
        self.entry_done = self.end_cb if self.entry_last else self.entry.cb  # `done` for the entry station
        self.mark = 0
        self.pause_checks = False  # the engine's stop rule also looks every CHECK_EVERY arrivals
        self.mid = n_meas // 2 if no_drain else -1
        self.heap, self.eid = env._queue, env._eid
        self.arr_cb = self._arrival
        src = self.source
        self.rate = src.rate if (type(src) is OpenLoop and src.rates is None and src.horizon_s is None) else 0.0
        self.rand = src.rng.random if self.rate else None
        # The entry's fixed-latency FIFO stations by recursion, one event per request for the
        # whole chain (`sim.des.delay_chain`); only for Poisson arrivals at a constant rate
        # (no ties between events) and without a timeline (whose faults act on stations).
        self.delay = None
        if self.rate and timeline is None and not whole_day and not wl.closed_loop:
            self.delay = DelayChain.build(self.nodes, design, env)
            if self.delay is not None:
                self.entry_arrive = self.delay.push
        self.gap = expo_draw(src.rng, self.rate) if self.rate else None  # = expovariate(rate), in C
        classes = wl.request_classes()
        c0 = classes[0]
        self.fixed = None
        if len(classes) == 1 and c0.prompt_tokens.dist == "fixed" and c0.output_tokens.dist == "fixed":
            self.fixed = (0, max(1, int(round(c0.prompt_tokens.expected()))), max(1, int(round(c0.output_tokens.expected()))))
        self.batch_s = DAY_S / n_time_batches
        self.n_time_batches = n_time_batches
        self.started = False
        if timeline is not None:
            timeline.attach(self)  # its arrivals, its per-request record, faults and autoscalers

    # -- control (called by the engine) --
    def advance(self) -> str:
        """Run to the next batch boundary ("boundary"), the end ("done") or a cut ("cut")."""
        env = self.env
        self.paused = False
        try:
            if not self.started:
                self.started = True
                self._start()
            _drive(env, self._tick)
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

    def _start(self) -> None:
        env = self.env
        if self.closed_loop:
            for u in range(self.design.workload.concurrent_users):
                self._schedule_user(u)
                if not (u & 0xFFFF):  # a million users take a second to seat: stay cancellable
                    self._tick(0)
        else:
            g = self.gap() if self.rate else self.source.gap(0.0)
            if g is not None:
                self.arr_cb = self._arrival_fast() or self._arrival
                later(env, g, self.arr_cb)
        if self.whole_day:
            self._open_seg(0.0, 0)

    def _tick(self, n: int | None = None) -> None:
        """After a chunk of events: deadline, cancel and work allowance; adapt the chunk."""
        self.events += self.chunk if n is None else n
        t = time.perf_counter()
        took = t - self.t_tick
        self.t_tick = t
        if took > TICK_S and self.chunk > 8:
            self.chunk //= 2
        elif took < TICK_S / 8 and self.chunk < CHECK_EVENTS:
            self.chunk *= 2
        if t > self.deadline:
            self.cut = "max_seconds"
            self._stop()
        if self.cancel is not None and self.cancel.is_set():
            self.cut = "cancel"
            self._stop()
        epa = self.events_per_arrival
        if epa and self.events > 200_000 and self.events > epa * (self.next_id + 1) + 200_000:
            self.cut = "work"
            self._stop()

    def finish(self, drain: bool = True, upto: int | None = None) -> None:
        """Measure no more arrivals; run until the measured batches have drained (bounded).
        ``upto``: only the first `upto` batches count (the others are left out, undrained)."""
        if self.stopped:
            return
        self.meas_end = self.next_id
        self.pause_checks = False  # the drain runs in one go
        # The batch opened at the boundary just passed holds one request: it is left out.
        self.drain_upto = len(self.segs) - 1 if (self.segs and not self.segs[-1].closed) else len(self.segs)
        if upto is not None:
            self.drain_upto = min(self.drain_upto, upto)
        if not drain or self._drained():
            self.stopped = True
            return
        self.draining = True
        # Long-tail guard: never wait forever. At least a warm-up's worth (15 × the requests in
        # flight, `engine._rep_plan`; 10 × with control variates, whose batches are 5 × — hence
        # 3 batches) so that an LLM answer from the far tail of the output lengths still finishes
        # when batches are short.
        self.drain_cap = self.next_id + max(3 * self.n_meas, self.n_warm) + 10
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

    def _arrival(self, _arg) -> None:
        # _new_request, written out: this runs once per request.
        now = self.env._now
        i = self.next_id
        self.next_id = i + 1
        if i == self.mark:
            self._on_mark(i, now)
        fixed = self.fixed
        cls, pt, ot = fixed if fixed is not None else self.draw()
        req = Request(i, cls, now, pt, ot, self.n_warm <= i < self.meas_end)
        req.k = self.end_cb
        n_in = self.n_in
        self.area += n_in * (now - self.t_area)
        self.t_area = now
        self.n_in = n_in + 1
        rate = self.rate
        # Constant rate: the gap drawn exactly as random.expovariate does it.
        g = -_log(1.0 - self.rand()) / rate if rate else self.source.gap(now)
        if g is not None:
            heappush(self.heap, (now + g, 1, next(self.eid), self.arr_cb, None))
        else:
            # The horizon (whole day) is reached: no more arrivals; drain what is in flight.
            self.no_more = True
            self.meas_end = min(self.meas_end, self.next_id)
            if self.segs and not self.segs[-1].closed:
                self._close_seg(now)
            self.draining = True
            self.drain_upto = len(self.segs)
        self.entry_arrive(req, self.entry_done)

    def _arrival_fast(self):
        """`_arrival` for the commonest case, or None: a constant rate (never a last arrival),
        one request class of fixed tokens, an entry station with plain exponential service
        (`FifoStation._arrive_expo_fwd` / `_nolag`, written out here). Chosen at the start
        (a timeline takes the arrivals over after `__init__`)."""
        if not self.rate or self.fixed is None:
            return None
        st = getattr(self.entry_arrive, "__self__", None)
        fn = getattr(self.entry_arrive, "__func__", None)
        if not isinstance(st, FifoStation) or st.env is not self.env:
            return None
        keep = fn is FifoStation._arrive_expo_nolag  # that one keeps its `done` on the request
        if not keep and fn is not FifoStation._arrive_expo_fwd:
            return None
        cls, pt, ot = self.fixed
        heap, eid, rand, rate = self.heap, self.eid, self.rand, self.rate
        # The request is built without its `__init__` call (~100 ns a request here): every
        # field `Request.__init__` sets, set below; if the two ever differ, the plain path.
        probe = Request(0, cls, 0.0, pt, ot)
        if {f for f in Request.__slots__ if hasattr(probe, f)} != _FAST_FIELDS:
            return None

        # The draws are written out too: `-log(1 - u) / rate` is what `expo_draw` computes
        # (and `random.expovariate`), and cheaper as bytecode inside a running frame than the
        # C pipeline's call (~170 vs ~250 ns here).
        def arrival(_arg, self=self, st=st, heap=heap, eid=eid, rand=rand, rate=rate, new=object.__new__, R=Request,
                    push=heappush, log=_log):
            # `_arrival` and the entry's `arrive`, written out: the same draws, entries and order.
            now = self.env._now
            i = self.next_id
            self.next_id = i + 1
            if i == self.mark:
                self._on_mark(i, now)
            req = new(R)
            req.id = i
            req.cls = cls
            req.t0 = now
            req.prompt_tokens = pt
            req.output_tokens = ot
            req.first_token_at = req.last_token_at = req.loops = req.lag_from = req.bound = None
            req.answer_output_tokens = 0
            req.measured = self.n_warm <= i < self.meas_end
            req.dropped = req.stop = False
            req.lag_t = 0.0
            req.user = -1
            req.k = self.end_cb
            n_in = self.n_in
            self.area += n_in * (now - self.t_area)
            self.t_area = now
            self.n_in = n_in + 1
            push(heap, (now + -log(1.0 - rand()) / rate, 1, next(eid), arrival, None))
            if keep:
                req.nx = self.entry_done
            if st.free:
                st.free -= 1
                s = -log(1.0 - st._rand()) / st._rate
                st._busy_area += s
                push(heap, (now + s, 1, next(eid), st._fin, req))
            else:
                req.t_in = now
                st.queue.append(req)

        return arrival

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
                    _account_tokens(seg, req)
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
                    _account_tokens(seg, req)
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
        self.entry_done = self.end_cb if self.entry_last else self.entry.cb

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
        if self.segs and not self.whole_day:
            # The previous batch's arrivals are complete: request `first_id` opens this one.
            prev = self.segs[-1]
            outs = self.outs
            prev.arrivals_ctl = (first_id - prev.first_id, now - prev.t_start, sum(outs), sum(self.prompts),
                                 tuple(sum(map(t.__lt__, outs)) for t in (self.tail_tokens or ())))
        self.outs.clear()  # in place: the token draw holds these lists
        self.prompts.clear()
        seg = Batch(first_id=first_id, t_start=now, area_start=self.area, in_system_start=self.n_in)
        if not self.whole_day:
            seg.end_id = first_id + self.n_meas
            seg.ttft, seg.tpot = RawSample(), RawSample()  # bounded batches: raw, one append each
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
        if self.delay is not None:
            self.delay.apply(now)  # bounds its pending records
        if self.pause_checks:
            self._pause()
        if not (self.next_id & (FLUSH_EVERY - 1)):
            for flush in self.flushers:
                flush(False)  # bounds the stations' pending-wait lists (memory)
        backlog = self.n_in + sum(b.qlen for b in self.brokers)
        if backlog > self.max_in_system:
            self.cut = "backlog"
            self._stop()

    def _stop(self) -> None:
        self.stopped = True
        raise _Stop


# The fields `_arrival_fast` sets on a request (those `Request.__init__` sets, plus `k`).
_FAST_FIELDS = {"id", "cls", "t0", "prompt_tokens", "output_tokens", "first_token_at", "last_token_at",
                "answer_output_tokens", "measured", "dropped", "stop", "loops", "lag_from", "lag_t", "user", "k",
                "bound"}


class _Stop(Exception):
    """Raised from a callback to end (or pause) the event loop."""


def _raise_stop(ev) -> None:
    raise _Stop


def _drive(env, tick) -> None:
    """`SimEnv.step()` in a loop, inlined: pop the earliest entry, call ``fn(arg)``; `tick()`
    after every chunk of ``run.chunk`` events (the budget checks).

    SimPy events arrive here as ``(_fire, event)`` and are processed exactly as SimPy does.
    Ends when the schedule is empty or a callback raises `_Stop`. The chunk loop costs
    nothing per event over a plain ``while q`` (the empty heap ends it with IndexError).
    """
    q = env._queue
    pop = heappop
    run = tick.__self__
    try:
        while True:
            for _ in repeat(None, run.chunk):
                env._now, _, _, fn, arg = pop(q)
                fn(arg)
            tick()
    except IndexError as e:
        if q or e.__traceback__.tb_next is not None:  # not our pop on an empty heap: a bug
            raise
