"""Stations: what each component kind does to a request, and the protocol they share.

A station is built once per simulation run as ``STATIONS[comp.kind](comp, ctx)`` and receives
requests through ``arrive(req, done)``; it calls ``done(req, ok)`` exactly once when the request
leaves (``ok=False``: dropped here — timeout, full queue, rejected). No generators, no
``simpy.Resource``: stations schedule callbacks on SimPy's event heap (``later(env, delay, fn,
value)``, or ``simpy.events.Timeout`` with a callback — both work), which runs the engine
several times faster than a process per request and gives identical results.

Writing a station (a subclass of `StationBase`) takes a few lines::

    class Echo(StationBase):
        '''Pure delay of 5 ms.'''
        def arrive(self, req, done):
            self.arrivals += 1
            self.record_wait(req, 0.0)          # no queue here
            self.call_later(0.005, self._leave, (req, done))
        def _leave(self, arg):
            req, done = arg
            self.completions += 1
            done(req, True)

The accounting helpers do the time-weighted areas: call ``self.tick(now)`` *before* you change
``self.busy`` (servers in use) or ``self.qlen`` (requests waiting). The engine measures in
consecutive batches: at each batch boundary it calls ``stats(now)`` (the batch's figures) and
then ``reset_stats(now)``; override ``extra_stats`` to add fields such as
``llm=LLMReplicaStats(...)``, and ``reset_stats`` (calling super) to zero your own counters.

Every kind in `components.catalogue.KINDS` has a factory in `STATIONS`; kinds whose stations
live in sibling modules (`sim.llm.station`, `sim.api_station`) are imported lazily and fall
back to the simple built-ins here while those modules do not exist.
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from heapq import heappush
from typing import Any, Callable

from .request import Done, Request, SimContext
from .stats import _K as _HK
from .stats import _OFFSET as _HOFF
from .stats import LogHistogram

_log = math.log

__all__ = [
    "StationBase",
    "FifoStation",
    "DelayStation",
    "CacheStation",
    "GuardrailStation",
    "BrokerStation",
    "BatchStation",
    "SimpleLLMStation",
    "SimpleApiStation",
    "STATIONS",
    "make_sampler",
    "make_station",
    "later",
]


class _Call:
    """The lightest event SimPy's loop can run: `callbacks`, `_ok`, `_value` and nothing else.

    `simpy.events.Timeout` does argument checks and two method calls per event; on the
    engine's hot path this plain object pushed straight onto `env._queue` (what
    `Environment.schedule` does) makes the whole engine ~1.6x faster with identical results.
    Hot paths share one callbacks list per station: the loop swaps `callbacks` for None and
    iterates the list without changing it, so nothing appends to a shared list.
    """

    __slots__ = ("callbacks", "_value")
    _ok = True  # never fails (SimPy's loop checks this)


def later(env, delay_s: float, fn: Callable[[Any], None], value: Any = None) -> None:
    """Call ``fn(event)`` after `delay_s` simulated seconds; ``event._value`` is `value`.

    Equivalent to ``Timeout(env, delay_s, value).callbacks.append(fn)`` (same priority,
    same tie-breaking by event id), only cheaper.
    """
    ev = _Call()
    ev.callbacks = [fn]
    ev._value = value
    heappush(env._queue, (env._now + delay_s, 1, next(env._eid), ev))


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
        from .results import ComponentStats

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
        return f"<{type(self).__name__} {self.id} busy={self.busy}/{self.servers} q={self.qlen}>"


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
        self.sample = make_sampler(dist, self.rng) if dist is not None else (lambda: 0.0)
        self.queue: deque = deque()
        self.qcap = qcap
        self._plain = type(self).service_time is FifoStation.service_time
        # Exponential service drawn inline, exactly as random.expovariate does it.
        self._rate = None
        if self._plain and getattr(dist, "dist", None) == "exponential" and hasattr(dist, "mean_ms"):
            self._rate = 1.0 / (dist.mean_ms * 0.001)
        self._rand = self.rng.random
        self._fin = self._finish
        self._fin_cbs = [self._fin]
        self._heap = ctx.env._queue
        self._eid = ctx.env._eid
        self._fast = self.timeout_s is None and qcap is None
        self._in0 = self._busy0 = self._cuts = 0
        if self._fast and self._rate:
            self.arrive = self._arrive_expo  # the commonest station, specialised (instance attribute)

    def _arrive_expo(self, req, done):
        """`arrive` for exponential service, no timeout, no queue cap: the benchmark's hot path."""
        if self.busy < self.servers:
            self.busy += 1
            now = self.env._now
            if req.lag_from is not None:
                req.lag_from.record_lag(req, now)
            s = -_log(1.0 - self._rand()) / self._rate
            self._busy_area += s
            ev = _Call()
            ev.callbacks = self._fin_cbs
            ev._value = (req, done)
            heappush(self._heap, (now + s, 1, next(self._eid), ev))
        else:
            self.qlen += 1
            self.queue.append([req, done, self.env._now, True])

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
            ev = _Call()
            ev.callbacks = self._fin_cbs
            ev._value = (req, done)
            heappush(self._heap, (now + s, 1, next(self._eid), ev))
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
        ev = _Call()
        ev.callbacks = self._fin_cbs
        ev._value = (req, done)
        heappush(self._heap, (now + s, 1, next(self._eid), ev))

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

    def _finish(self, ev):
        req, done = ev._value
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
                w = self.waits
                w.n += 1
                w.total += wait
                self._q_area += wait
                if wait > w.max:
                    w.max = wait
                k = int(_log(wait) * _HK + _HOFF)
                b = w.bins
                b[k] = b.get(k, 0) + 1
            if nreq.lag_from is not None:
                nreq.lag_from.record_lag(nreq, now)
            rate = self._rate
            s = -_log(1.0 - self._rand()) / rate if rate else (self.sample() if self._plain else self.service_time(nreq))
            self._busy_area += s
            ev2 = _Call()
            ev2.callbacks = self._fin_cbs
            ev2._value = (nreq, ndone)
            heappush(self._heap, (now + s, 1, next(self._eid), ev2))
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
        mine = (self._fin, self._cut)
        rem = 0.0
        for t, _, _, ev in self.env._queue:
            cbs = ev.callbacks
            if cbs and cbs[0] in mine:
                rem += t - now
        waited = sum(now - item[2] for item in self.queue if item[3])
        return rem, waited

    def tick(self, now: float) -> None:
        """No-op: this station's areas are kept by sums (see `_edges`)."""

    def reset_stats(self, now: float) -> None:
        super().reset_stats(now)
        self._in0 = self.busy + self.qlen  # arrivals are derived: ended + here now − here at reset
        self._busy0 = self.busy  # service starts too: completions + cuts + in service − at reset
        self._cuts = 0
        rem, waited = self._edges(now)
        self._busy_area = rem
        self._q_area = -waited

    def stats(self, now: float):
        self.arrivals = self.completions + self.drops + self.busy + self.qlen - self._in0
        # Only positive waits were recorded; the rest of the service starts waited zero.
        zeros = self.completions + self._cuts + self.busy - self._busy0 - self.waits.n
        rem, waited = self._edges(now)
        self._busy_area -= rem
        self._q_area += waited
        self.waits.zeros += zeros
        self.waits.n += zeros
        try:
            return super().stats(now)
        finally:
            self._busy_area += rem
            self._q_area -= waited
            self.waits.zeros -= zeros
            self.waits.n -= zeros


class DelayStation(StationBase):
    """A pure delay (unbounded servers): object storage, an external tool, monitoring."""

    kind = "delay"

    def __init__(self, comp, ctx, dist: Any = None):
        super().__init__(comp, ctx)
        self.sample = make_sampler(dist, self.rng) if dist is not None else (lambda: 0.0)

    def delay(self, req: Request) -> float:
        return self.sample()

    def arrive(self, req, done):
        now = self.env._now
        self.arrivals += 1
        self.tick(now)
        self.busy += 1
        self.record_wait(req, 0.0)
        d = self.delay(req)
        if self.timeout_s is not None and d > self.timeout_s:
            later(self.env, self.timeout_s, self._cut, (req, done))
            return
        later(self.env, d, self._finish, (req, done))

    def _finish(self, ev):
        req, done = ev._value
        self.tick(self.env._now)
        self.busy -= 1
        self.completions += 1
        done(req, True)

    def _cut(self, ev):
        req, done = ev._value
        self.tick(self.env._now)
        self.busy -= 1
        self.drop(req, done)

    def stats(self, now):
        st = super().stats(now)
        # Unbounded servers: "queue length" is zero; report requests in flight as utilisation 0.
        return st


class CacheStation(FifoStation):
    """A cache: a hit (probability `hit_ratio`) ends the request after `hit_latency`."""

    kind = "cache"

    def __init__(self, comp, ctx):
        super().__init__(comp, ctx, comp.servers)
        self.route_rng = ctx.stream("hit:" + comp.id)
        self.hit_ratio = comp.hit_ratio
        self.hit = make_sampler(comp.hit_latency, self.rng)
        self.miss = make_sampler(comp.miss_latency, self.rng)
        self.hits = 0

    def service_time(self, req):
        if self.route_rng.random() < self.hit_ratio:
            req.stop = True
            self.hits += 1
            return self.hit()
        return self.miss()

    def reset_stats(self, now):
        super().reset_stats(now)
        self.hits = 0


class GuardrailStation(FifoStation):
    """A guardrail: a blocked request (probability `block_ratio`) ends here, answered."""

    kind = "guardrail"

    def __init__(self, comp, ctx):
        super().__init__(comp, ctx, comp.servers, comp.service_time)
        self.route_rng = ctx.stream("block:" + comp.id)
        self.block_ratio = comp.block_ratio
        self.blocked = 0

    def _finish(self, ev):
        req = ev._value[0]
        if self.block_ratio and self.route_rng.random() < self.block_ratio:
            req.stop = True
            self.blocked += 1
        super()._finish(ev)


class BrokerStation(StationBase):
    """A `queue` (message broker): the caller is acknowledged after `enqueue_latency`.

    The engine then hands the message to the consumers downstream asynchronously. Here we
    count the backlog (enqueued, not yet started by a consumer) as this component's queue
    length and the enqueue → consumer-start time as its lag; `max_depth` drops enqueues.
    """

    kind = "queue"

    def __init__(self, comp, ctx):
        super().__init__(comp, ctx)
        self.sample = make_sampler(comp.enqueue_latency, self.rng)
        self.max_depth = comp.max_depth
        self.lags = LogHistogram()
        self.pending = 0  # enqueue requests in flight (the broker is elastic)

    def arrive(self, req, done):
        self.arrivals += 1
        self.record_wait(req, 0.0)
        later(self.env, self.sample(), self._acked, (req, done))

    def _acked(self, ev):
        req, done = ev._value
        if self.max_depth is not None and self.qlen >= self.max_depth:
            self.drop(req, done)
            return
        self.completions += 1
        done(req, True)

    def enqueued(self, msg: Request) -> None:
        """The engine calls this with the async copy it sends downstream."""
        self.tick(self.env._now)
        self.qlen += 1
        msg.lag_from = self
        msg.lag_t = self.env._now

    def record_lag(self, msg: Request, now: float) -> None:
        self.tick(now)
        self.qlen -= 1
        msg.lag_from = None
        self.lags.add(now - msg.lag_t)


class BatchStation(StationBase):
    """Replicas that each take up to `max_batch` waiting requests per pass (embedder, reranker).

    Pass time = overhead + work in the batch / rate per replica, so a busy replica's
    throughput approaches the rate while a lone request pays its own work plus the overhead.
    """

    kind = "batch"

    def __init__(self, comp, ctx, work: Callable[[Request], float], rate_per_s: float, overhead_s: float):
        super().__init__(comp, ctx)
        self.servers = comp.replicas
        self.max_batch = comp.max_batch
        self.work = work
        self.rate = rate_per_s
        self.overhead_s = overhead_s
        self.queue: deque = deque()

    def arrive(self, req, done):
        now = self.env._now
        self.arrivals += 1
        self.tick(now)
        self.queue.append((req, done, now))
        self.qlen += 1
        if self.busy < self.servers:
            self._launch(now)

    def _launch(self, now):
        q = self.queue
        batch = []
        work = 0.0
        while q and len(batch) < self.max_batch:
            req, done, t = q.popleft()
            self.record_wait(req, now - t)
            work += self.work(req)
            batch.append((req, done))
        self.qlen -= len(batch)
        self.busy += 1
        later(self.env, self.overhead_s + work / self.rate, self._finish, batch)

    def _finish(self, ev):
        now = self.env._now
        self.tick(now)
        self.busy -= 1
        if self.queue:
            self._launch(now)
        for req, done in ev._value:
            self.completions += 1
            done(req, True)


class SimpleLLMStation(FifoStation):
    """Stand-in `llm_server` until `sim.llm.station` exists: `replicas × max_batch` servers.

    Service = prefill (2·params·prompt / FLOPs·MFU) + output tokens × per-token time, the
    per-token time being one decode step at full batch (weights + KV bytes / bandwidth).
    Efficiency factors come from components/data/efficiency.csv (sources there).
    """

    kind = "llm_server"

    def __init__(self, comp, ctx):
        super().__init__(comp, ctx, comp.replicas * comp.max_batch)
        self.prefill_s_per_token, self.tpot_s = _simple_llm_times(comp, ctx)

    def service_time(self, req):
        prefill = req.prompt_tokens * self.prefill_s_per_token
        now = self.env._now
        req.first_token_at = now + prefill + self.tpot_s
        req.last_token_at = now + prefill + req.output_tokens * self.tpot_s
        req.answer_output_tokens = req.output_tokens
        return prefill + req.output_tokens * self.tpot_s


def _simple_llm_times(comp, ctx) -> tuple[float, float]:
    """(prefill seconds per prompt token, seconds per output token at full batch)."""
    try:
        from components.hardware import BYTES_PER_PARAM, factor, get_gpu, get_model

        gpu, model = get_gpu(comp.gpu), get_model(comp.model)
        n = comp.gpus_per_replica
        prec = comp.precision if comp.precision in ("fp8", "int8", "int4") else "bf16"
        flops = gpu.peak_tflops("fp8" if prec != "bf16" and gpu.has_fp8() else "bf16") * 1e12 * n
        prefill = 2 * model.params_active_b * 1e9 / (flops * factor("prefill_mfu"))
        w = model.weight_bytes(BYTES_PER_PARAM[prec])
        classes = ctx.workload.request_classes()
        ctx_tokens = sum(c.share * (c.prompt_tokens.expected() + c.output_tokens.expected() / 2) for c in classes)
        kv = model.kv_bytes_per_token(1 if comp.kv_cache_precision == "fp8" else 2) * ctx_tokens * comp.max_batch
        bw = gpu.hbm_bandwidth_tbps * 1e12 * n * factor("decode_bw_efficiency")
        step = (w + kv) / bw + factor("iteration_overhead_ms") / 1000.0
        return prefill, step
    except Exception:  # data module missing or incomplete: a conservative generic 8B on one H100
        return 2 * 8e9 / (989e12 * 0.45), 0.02


class SimpleApiStation(DelayStation):
    """Stand-in for `llm_api`/`judge` until `sim.api_station` exists: TTFT + tokens / speed."""

    kind = "api"

    def __init__(self, comp, ctx):
        super().__init__(comp, ctx, comp.ttft)
        self.tps_rng = ctx.stream("tps:" + comp.id)
        self.judge = comp.kind == "judge"

    def delay(self, req):
        ttft = self.sample()
        out = self.comp.output_tokens.sample_int(self.tps_rng) if self.judge else req.output_tokens
        tps = max(1e-6, self.comp.output_tokens_per_s.sample(self.tps_rng))
        total = ttft + max(0, out - 1) / tps
        if not self.judge:
            now = self.env._now
            req.first_token_at = now + ttft
            req.last_token_at = now + total
            req.answer_output_tokens = out
        return total


# --- registry -----------------------------------------------------------------------------


def _pool(attr: str):
    def make(comp, ctx):
        return FifoStation(comp, ctx, comp.servers, getattr(comp, attr))

    return make


def _delay(attr: str):
    def make(comp, ctx):
        return DelayStation(comp, ctx, getattr(comp, attr))

    return make


def _optional(module: str, cls: str, fallback):
    """Use `module.cls` when that module exists; the simple built-in otherwise."""

    def make(comp, ctx):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name not in (module, module.rsplit(".", 1)[0]):
                raise
            return fallback(comp, ctx)
        return getattr(mod, cls)(comp, ctx)

    return make


def _tool(comp, ctx):
    if comp.max_concurrency:
        return FifoStation(comp, ctx, comp.max_concurrency, comp.latency)
    return DelayStation(comp, ctx, comp.latency)


def _embedder(comp, ctx):
    tokens = comp.tokens_per_request
    if tokens is None:
        work = lambda req: req.prompt_tokens  # noqa: E731
    else:
        rng = ctx.stream("work:" + comp.id)
        work = lambda req: tokens.sample_int(rng)  # noqa: E731
    return BatchStation(comp, ctx, work, comp.tokens_per_s_per_replica, comp.overhead_ms / 1000.0)


def _reranker(comp, ctx):
    rng = ctx.stream("work:" + comp.id)
    pairs = comp.pairs_per_request
    return BatchStation(comp, ctx, lambda req: pairs.sample_int(rng), comp.pairs_per_s_per_replica, comp.overhead_ms / 1000.0)


def _batch_stage(comp, ctx):
    from components.distributions import Fixed

    dist = comp.service_time or Fixed(value_ms=1000.0 / comp.items_per_s_per_worker)
    return FifoStation(comp, ctx, comp.workers, dist)


def _passthrough(comp, ctx):
    # A training job has no per-request latency; on a request path it passes requests on.
    return DelayStation(comp, ctx)


STATIONS: dict[str, Callable[[Any, SimContext], StationBase]] = {
    "service": _pool("service_time"),
    "load_balancer": _pool("latency"),
    "api_gateway": _pool("latency"),
    "cache": CacheStation,
    "queue": BrokerStation,
    "database": _pool("query_time"),
    "object_storage": _delay("latency"),
    "llm_server": _optional("sim.llm.station", "LLMServerStation", SimpleLLMStation),
    "llm_api": _optional("sim.api_station", "ApiStation", SimpleApiStation),
    "embedder": _embedder,
    "vector_db": _pool("query_time"),
    "keyword_search": _pool("query_time"),
    "reranker": _reranker,
    "guardrail": GuardrailStation,
    "tool": _tool,
    "judge": _optional("sim.api_station", "ApiStation", SimpleApiStation),
    "batch_stage": _batch_stage,
    "training_job": _passthrough,
    "monitoring": _delay("latency"),
}
"""Component kind → station factory ``(comp, ctx) -> StationBase``."""


def make_station(comp: Any, ctx: SimContext) -> StationBase:
    """The station for `comp` in this replication."""
    try:
        factory = STATIONS[comp.kind]
    except KeyError:
        raise ValueError(f"component '{comp.id}': no simulation station for kind '{comp.kind}'") from None
    return factory(comp, ctx)
