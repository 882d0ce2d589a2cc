"""The capacity engine: simulate a `Design` on SimPy and summarise it with confidence.

Usage::

    from designs.io import load_design
    from sim.engine import simulate, compare

    result = simulate(load_design("designs/library/llm_serving.yaml"), seed=1, precision=0.02)
    result.latency_ms.p95, result.latency_ms_ci95.p95, result.stopped_by
    a, b = compare([design_a, design_b], seed=1)   # same random numbers for both

How a run goes:

1. `sim.analytic.estimate(design)` first. If a station is saturated (ρ ≥ 1) the engine runs
   one bounded window, reports the growing backlog and `stable=False`, and stops.
2. Otherwise independent replications, each starting empty: the first ~10 % of requests are
   warm-up and deleted (MSER-5 on the first replication may lengthen it), the next `n` are
   measured, arrivals continue while the measured ones drain.
3. After each replication, the 95 % t-interval of the replication p95s; stop when its half-width
   is ≤ `precision` × p95, or when `max_requests` / `max_seconds` would be exceeded, or on
   `cancel` / Ctrl-C (then `partial=True`). `stopped_by` says which.

Randomness: replication r uses streams named by (seed, r, purpose): arrivals, tokens, and one
per component for service times and one per component for routing, so variants that share
components see the same numbers (common random numbers).

Routing implements `designs.model`'s flow semantics: branches by `p`, cache hits and guardrail
blocks end the request, parallel edges fan out and join at `design.join_of`, back edges loop
with `p` up to `max_repeats`, a `queue` ends the caller's latency at enqueue and the message
continues asynchronously; a drop anywhere drops the request (timeouts, full queues).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from heapq import heappop, heappush

import simpy

from .request import Request, SimContext
from .stations import BrokerStation, _Call, later, make_station
from .stats import LogHistogram, half_width, mean_ci, mser5, summary, thin
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


# --- the flow, compiled per replication ---------------------------------------------------


class _Node:
    """One component in the flow: its station and what happens after it."""

    __slots__ = ("id", "station", "cb", "single", "cum", "targets", "fan", "join", "loops", "rng", "is_queue", "rep")

    def __init__(self, cid: str, station, rep: "_Replication"):
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

    def after_single(self, req: Request, ok: bool) -> None:
        """`after` for the common node: one plain edge with p = 1, no loops (hot path)."""
        if ok and not req.stop:
            nxt = self.single
            if nxt is not req.bound:
                nxt.station.arrive(req, nxt.cb)
                return
        req.stop = False
        req.k(req, ok)

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


def _build_nodes(design, rep: "_Replication") -> dict[str, _Node]:
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
        if not node.loops and not node.is_queue:
            if node.single is not None:
                node.cb = node.after_single
            elif not node.fan and not node.cum:
                node.cb = node.after_last
    return nodes


# --- one replication ------------------------------------------------------------------------


@dataclass
class _RepOut:
    lat: LogHistogram
    ttft: LogHistogram
    tpot: LogHistogram
    generated: int = 0
    measured: int = 0
    completed: int = 0
    dropped: int = 0
    unfinished: int = 0
    window_s: float = 0.0
    mean_in_system: float = 0.0
    sojourn_sum_s: float = 0.0
    sojourn_n: int = 0
    answer_tokens: int = 0
    components: dict = field(default_factory=dict)
    cut: str | None = None  # None, "cancel", "max_seconds", "backlog"
    in_system_end: int = 0  # at the end of the measured window
    in_system_mid: int = 0  # halfway through it (backlog growth of an unstable run)
    t_mid: float = 0.0
    t_end: float = 0.0
    series: list | None = None  # latencies by arrival order (first replication, for MSER-5)
    batches: list | None = None  # whole day: per-time-batch histograms


class _Replication:
    """One independent run of the design from an empty system."""

    def __init__(self, design, seed: int, index: int, n_warm: int, n_meas: int, *, whole_day: bool,
                 deadline: float, cancel, sample: list, keep_series: int = 0, n_batches: int = 20):
        self.design = design
        self.env = env = simpy.Environment()
        self.ctx = SimContext(env=env, rng=None, design=design, workload=design.workload, seed=seed, replication=index)  # type: ignore[arg-type]
        self.ctx.rng = self.ctx.stream("general")
        self.nodes = _build_nodes(design, self)
        self.entry = self.nodes[design.entry]
        self.stations = [n.station for n in self.nodes.values()]
        self.brokers = [s for s in self.stations if isinstance(s, BrokerStation)]
        wl = design.workload
        self.n_warm, self.n_meas = n_warm, n_meas
        self.n_end = n_warm + n_meas
        self.whole_day = whole_day
        self.deadline, self.cancel = deadline, cancel
        self.draw = class_sampler(wl, self.ctx.stream("tokens"))
        self.closed = wl.closed_loop
        if self.closed:
            self.think = think_sampler(wl, self.ctx.stream("think"))
            self.source = None
        elif whole_day:
            self.source = OpenLoop.whole_day(wl, self.ctx.stream("arrivals"))
        else:
            self.source = OpenLoop(wl.peak_rps, self.ctx.stream("arrivals"))
        self.out = _RepOut(LogHistogram(), LogHistogram(), LogHistogram())
        self.sample = sample  # shared across replications: the evenly thinned latency sample
        self.next_id = 0
        self.n_in = 0
        self.area = 0.0
        self.t_area = 0.0
        self.area_w = 0.0
        self.t_w = 0.0
        self.outstanding = 0
        self.windowed = False
        self.stopped = False
        self.end_cb = self.end
        self.no_more = False
        self.no_drain = False
        # Arrivals continue while the measured requests drain, up to twice the window.
        self.drain_cap = 2 * self.n_end + 10
        self.half = n_warm + n_meas // 2
        self.mark = 0
        self.heap, self.eid = env._queue, env._eid
        self.arr_cb = self._arrival
        src = self.source
        self.rate = src.rate if (src is not None and src.rates is None and src.horizon_s is None) else 0.0
        self.rand = src.rng.random if self.rate else None
        classes = wl.request_classes()
        c0 = classes[0]
        self.fixed = None
        if len(classes) == 1 and c0.prompt_tokens.dist == "fixed" and c0.output_tokens.dist == "fixed":
            self.fixed = (0, max(1, int(round(c0.prompt_tokens.expected()))), max(1, int(round(c0.output_tokens.expected()))))
        if keep_series:
            self.out.series = [math.nan] * min(keep_series, self.n_end)
        if whole_day:
            self.batch_s = DAY_S / n_batches
            self.out.batches = [LogHistogram() for _ in range(n_batches)]

    # -- arrivals --
    def run(self) -> _RepOut:
        env = self.env
        if self.closed:
            for u in range(self.design.workload.concurrent_users):
                self._schedule_user(u)
        else:
            g = self.source.gap(0.0)
            if g is not None:
                later(env, g, self._arrival)
        if self.n_warm == 0:
            self._open_window(0.0)
        try:
            _drive(env)
        except _Stop:
            pass
        except KeyboardInterrupt:
            self.out.cut = "cancel"
        now = env.now
        if not self.windowed or self.out.window_s == 0.0:
            self._close_window(now)
        self.out.unfinished = self.outstanding
        self.out.generated = self.next_id
        return self.out

    def _next_mark(self, i: int) -> int:
        """The next arrival index at which something other than routine happens."""
        marks = [m for m in (self.half, self.n_warm, self.n_end) if m > i]
        marks.append((i // CHECK_EVERY + 1) * CHECK_EVERY)
        return min(marks)

    def _on_mark(self, i: int, now: float) -> None:
        if i == self.half:
            self.out.in_system_mid = self.n_in
            self.out.t_mid = now
        if i == self.n_warm and i:
            self._open_window(now)
        elif i == self.n_end:
            self._close_window(now)
            if self.no_drain or self.outstanding == 0:
                self._stop()
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
        measured = self.n_warm <= i < self.n_end
        req = Request(i, cls, now, pt, ot, measured)
        req.k = self.end_cb
        if measured:
            self.outstanding += 1
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        self.n_in += 1
        return req

    def _arrival(self, ev) -> None:
        now = self.env._now
        req = self._new_request(now)
        rate = self.rate
        # Constant rate: the gap drawn inline, exactly as random.expovariate does it.
        g = -_log(1.0 - self.rand()) / rate if rate else self.source.gap(now)
        if g is not None and self.next_id < self.drain_cap:
            ev = _Call()
            ev.callbacks = [self.arr_cb]
            ev._ok = True
            ev._value = None
            heappush(self.heap, (now + g, 1, next(self.eid), ev))
        else:
            # The horizon (whole day) or the drain cap is reached: no more arrivals.
            self._close_window(now)
            self.no_more = True
            if self.outstanding == 0:
                self._stop()
        self.entry.station.arrive(req, self.entry.cb)

    def _schedule_user(self, u: int) -> None:
        later(self.env, self.think(), self._user_sends, u)

    def _user_sends(self, ev) -> None:
        if self.stopped:
            return
        if self.next_id >= self.drain_cap:
            self._close_window(self.env._now)
            self.no_more = True
            return
        req = self._new_request(self.env._now)
        req.user = ev._value
        self.entry.station.arrive(req, self.entry.cb)

    # -- departures --
    def end(self, req: Request, ok: bool) -> None:
        now = self.env._now
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        self.n_in -= 1
        series = self.out.series
        if series is not None and ok and req.id < len(series):
            series[req.id] = now - req.t0
        if req.measured:
            out = self.out
            soj = now - req.t0
            out.sojourn_sum_s += soj
            out.sojourn_n += 1
            if ok:
                out.completed += 1
                out.lat.add(soj)
                s = self.sample
                s[1] += 1
                if s[1] >= s[2]:  # keep every stride-th latency; halve when full
                    s[1] = 0
                    s[0].append(soj)
                    if len(s[0]) >= 2 * s[3]:
                        del s[0][1::2]
                        s[2] *= 2
                if out.batches is not None:
                    out.batches[min(len(out.batches) - 1, int(req.t0 / self.batch_s))].add(soj)
                if req.first_token_at is not None:
                    out.ttft.add(req.first_token_at - req.t0)
                    n = req.answer_output_tokens
                    out.answer_tokens += n
                    if n > 1:
                        out.tpot.add((req.last_token_at - req.first_token_at) / (n - 1))
            else:
                out.dropped += 1
            self.outstanding -= 1
            if self.outstanding == 0 and (self.next_id > self.n_end or self.no_more):
                self._stop()
        if req.user >= 0 and not self.stopped:
            self._schedule_user(req.user)

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

    # -- window and control --
    def _open_window(self, now: float) -> None:
        self.windowed = True
        for s in self.stations:
            s.reset_stats(now)
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        self.area_w = self.area
        self.t_w = now

    def _close_window(self, now: float) -> None:
        if self.out.window_s:
            return
        if not self.windowed:
            self._open_window(self.t_w)
        self.area += self.n_in * (now - self.t_area)
        self.t_area = now
        span = max(now - self.t_w, 1e-12)
        out = self.out
        out.window_s = span
        out.mean_in_system = (self.area - self.area_w) / span
        out.measured = max(0, min(self.next_id, self.n_end) - self.n_warm)
        out.components = {s.id: s.stats(now) for s in self.stations}
        out.in_system_end = self.n_in
        out.t_end = now

    def _check(self, now: float) -> None:
        backlog = self.n_in + sum(b.qlen for b in self.brokers)
        if backlog > MAX_IN_SYSTEM:
            self.out.cut = "backlog"
            self._stop()
        elif time.perf_counter() > self.deadline:
            self.out.cut = "max_seconds"
            self._stop()
        elif self.cancel is not None and self.cancel.is_set():
            self.out.cut = "cancel"
            self._stop()

    def _stop(self) -> None:
        self.stopped = True
        raise _Stop


class _Stop(Exception):
    """Raised from a callback to end the replication's event loop."""


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
    """(measured requests, warm-up requests) per replication.

    Two clocks matter. Queueing: an M/M/c queue relaxes in about 1/(μ(√c − √(cρ))²), i.e.
    ρ/(1 − √ρ)² arrivals; 100 of those (after 10 of warm-up) keep a replication's start-up bias well under 1 %.
    Sojourn: a system holding L = λW requests (an LLM server holds thousands) needs a few W
    to fill, so the warm-up is at least 5·L arrivals and the window at least 10·L, which also
    keeps the edge terms of Little's law small (they shrink like L / window).
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
    n_warm = int(max(n_meas // 9, 100, 5 * in_system))
    return n_meas, n_warm


def refuse(design, *, whole_day: bool, max_requests: int) -> None:
    """Raise `SimulationRefused` for workloads no run could answer sensibly."""
    wl = design.workload
    if wl.closed_loop:
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
            return _build_result(outs=[], stopped_by="pipeline", stable=pipe.fits or True, est=None, sample=None,
                                 warnings=[], warmup=0, pipeline=pipe, **kw), 0
    refuse(design, whole_day=whole_day, max_requests=max_requests)
    est = _analytic(design)
    deadline = t_start + max_seconds
    sample = [[], 0, 1, max(1, keep_sample)]  # values, counter, stride, target size
    outs: list[_RepOut] = []
    warnings: list[str] = []

    if est is not None and not est.stable:
        # Saturated: one bounded window shows the backlog grow; never a hang.
        n = int(min(max_requests, 50_000))
        rep = _Replication(design, seed, 0, 0, n, whole_day=False, deadline=deadline, cancel=cancel, sample=sample)
        rep.no_drain = True
        outs.append(rep.run())
        warnings.extend(est.unstable)
        return _build_result(outs=outs, stopped_by=_cut_reason(outs[0]) or "max_requests", stable=False, est=est,
                             sample=sample, warnings=warnings, warmup=0, **kw), n

    if whole_day:
        n_meas = int(OpenLoop.whole_day(wl, _null_rng()).expected_requests() * 1.2) + 1000
        n_warm = 0  # the day starts at midnight with an empty system, as it really does
    else:
        n_meas, n_warm = _rep_plan(est, wl)
        if rep_n:
            n_meas, n_warm = rep_n, max(n_warm, rep_n // 9)
        # A budget too small for MIN_REPLICATIONS full replications shortens them instead.
        cap = max_requests // MIN_REPLICATIONS
        if n_meas + n_warm > cap:
            scale = cap / (n_meas + n_warm)
            n_meas, n_warm = max(100, int(n_meas * scale)), max(10, int(n_warm * scale))
    stopped_by = None
    unstable = False
    total = 0
    r = 0
    mser_done = whole_day or replications is not None
    while True:
        if cancel is not None and cancel.is_set():
            stopped_by = "interrupted"
            break
        keep = min(n_warm + n_meas, 400_000) if not mser_done else 0
        rep = _Replication(design, seed, r, n_warm, n_meas, whole_day=whole_day, deadline=deadline,
                           cancel=cancel, sample=sample, keep_series=keep)
        out = rep.run()
        total += out.generated
        if not mser_done and out.cut is None:
            # MSER-5 on the first replication: if the transient outlasts the 10 % rule,
            # lengthen the warm-up and run this replication again (once).
            mser_done = True
            d = mser5([x for x in out.series if not math.isnan(x)])
            if d > n_warm:
                warnings.append(f"warm-up lengthened by MSER-5 from {n_warm} to {d} requests per replication")
                n_warm = d
                continue
        out.series = None
        if out.cut == "backlog":
            unstable = True
            outs.append(out)
            warnings.append(f"more than {MAX_IN_SYSTEM:,} requests in flight: the backlog keeps growing, the design cannot keep up")
            stopped_by = "max_requests"
            break
        if out.cut in ("cancel", "max_seconds"):
            # A cut replication is kept only when nothing complete exists.
            if not outs and out.completed:
                outs.append(out)
            stopped_by = "interrupted" if out.cut == "cancel" else "max_seconds"
            break
        outs.append(out)
        r += 1
        p95s = [_q95(o) for o in outs]
        m = sum(p95s) / len(p95s)
        hw = half_width(p95s) if len(outs) > 1 else math.inf
        met = not math.isinf(hw) and hw <= precision * m
        if progress is not None:
            wall = time.perf_counter() - t_start
            need = (hw / (precision * m)) ** 2 * r if m and not math.isinf(hw) else 2.0 * MIN_REPLICATIONS
            frac = max(total / max_requests, wall / max_seconds, r / max(need, MIN_REPLICATIONS, 1.0))
            ci = f" ± {hw * 1000:.3g}" if not math.isinf(hw) else ""
            progress(min(frac, 0.99), f"replication {r}: p95 {m * 1000:.4g} ms{ci}")
        if replications is not None:
            if r >= replications:
                stopped_by = "precision" if met else "max_requests"
                break
        elif met and (r >= MIN_REPLICATIONS or whole_day):
            stopped_by = "precision"
            break
        per_rep = total / r
        wall = time.perf_counter() - t_start
        if total + per_rep > max_requests:
            stopped_by = "max_requests"
            break
        if r >= 2 and wall + wall / r > max_seconds:
            stopped_by = "max_seconds"
            break
    if progress is not None:
        progress(1.0, "done")
    res = _build_result(outs=outs, stopped_by=stopped_by or "max_requests", stable=not unstable, est=est,
                        sample=sample, warnings=warnings, warmup=n_warm, whole_day=whole_day, **kw)
    return res, n_meas


def _cut_reason(out: _RepOut) -> str | None:
    return {"cancel": "interrupted", "max_seconds": "max_seconds"}.get(out.cut or "")


def _q95(o: _RepOut) -> float:
    return o.lat.quantile(0.95) if o.lat.n else float("nan")


def _pipeline(design):
    try:
        from .pipeline import pipeline_result
    except ImportError:
        return None
    return pipeline_result(design)


# --- the result record ---------------------------------------------------------------------


def _build_result(*, design, outs: list[_RepOut], seed, t_start, stopped_by, stable, est, sample, warnings,
                  warmup, keep_sample, whole_day=False, pipeline=None):
    from .results import LittlesLaw, PercentileCI, Percentiles, RunResult

    wl = design.workload
    partial = stopped_by == "interrupted"
    warnings = list(warnings)
    done = [o for o in outs if o.lat.n]
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
    unfinished = sum(o.unfinished for o in outs)
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
        warnings.append("whole-day confidence intervals come from 20 time batches of one day (traffic varies by "
                        "hour, so they are indicative); use replications ≥ 2 for independent days")
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
        simulated_requests=sum(o.generated for o in outs),
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
        latency_sample_ms=[x * 1000.0 for x in thin(sample[0], keep_sample)] if sample else [],
        warnings=warnings,
    )
    result = RunResult(**values)
    _add_cost_and_slo(design, result, est, measured, whole_day)
    result.wall_s = time.perf_counter() - t_start
    return result


def _avg(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


_KEYS = ("mean", "p50", "p90", "p95", "p99")


def _percentiles(outs: list[_RepOut], attr: str, whole_day: bool):
    """(point estimates, 95 % CIs, relative half-width of p95), all in ms.

    Point = mean over replications of each replication's statistic (the CI is centred on it).
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
    per = [summary(getattr(o, attr)) for o in outs]
    point = {k: sum(p[k] for p in per) / len(per) for k in _KEYS}
    ci = {k: mean_ci([p[k] for p in per]) for k in _KEYS}
    hw = half_width([p["p95"] for p in per]) if len(per) > 1 else None
    rel = hw / point["p95"] if hw is not None and point["p95"] > 0 and not math.isinf(hw) else None
    return point, ci, rel


def _components(design, outs: list[_RepOut]) -> dict:
    from .results import ComponentStats
    from .stats import aggregate_records

    good = [o for o in outs if o.components]
    if not good:
        return {}
    merged = aggregate_records([{cid: st.to_json() for cid, st in o.components.items()} for o in good])
    return {cid: ComponentStats(**rec) for cid, rec in merged.items()}


def _littles_law(outs: list[_RepOut], cut_short: bool):
    from .results import LittlesLaw
    from .stats import littles_law

    rows = [o for o in outs if o.window_s > 0 and o.sojourn_n]
    if not rows:
        return None
    L = sum(o.mean_in_system for o in rows) / len(rows)
    lam = sum(o.measured / o.window_s for o in rows) / len(rows)
    W = sum(o.sojourn_sum_s / o.sojourn_n for o in rows) / len(rows)
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
