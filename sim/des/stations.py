"""Stations: what each component kind does to a request, and the protocol they share.

A station is built once per simulation run as ``STATIONS[comp.kind](comp, ctx)`` and receives
requests through ``arrive(req, done)``; it calls ``done(req, ok)`` exactly once when the request
leaves (``ok=False``: dropped here — timeout, full queue, rejected). No generators, no
``simpy.Resource``: stations schedule callbacks on SimPy's event heap (``later(env, delay, fn,
value)``, or ``simpy.events.Timeout`` with a callback — both work), which runs the engine
several times faster than a process per request and gives identical results. The engine's
environment is a `SimEnv` (heap entries ``(t, priority, id, fn, arg)``, one call per event);
`later` and SimPy's own events work on it and on a plain ``simpy.Environment`` alike.

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

Modules: `sim.des.events` (`SimEnv`, `later`), `sim.des.station_base` (`StationBase`,
`make_sampler`), `sim.des.fifo` (`FifoStation`, the hot path); re-exported here.

Every kind in `components.catalogue.KINDS` has a factory in `STATIONS`; kinds whose stations
live in sibling modules (`sim.llm.station`, `sim.providers.api_station`) are imported lazily and fall
back to the simple built-ins here while those modules do not exist.
"""

from __future__ import annotations

import importlib
from collections import deque
from typing import Any, Callable

from .events import SimEnv, later
from .fifo import FifoStation
from .request import Request, SimContext
from .station_base import StationBase, make_sampler
from .stats import LogHistogram

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
    "SimEnv",
]


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

    def _finish(self, arg):
        req = arg[0]
        if self.block_ratio and self.route_rng.random() < self.block_ratio:
            req.stop = True
            self.blocked += 1
        super()._finish(arg)


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
    """Stand-in for `llm_api`/`judge` until `sim.providers.api_station` exists: TTFT + tokens / speed."""

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


def _vector_db(comp, ctx):
    # An indexed vector_db's query time comes from the retrieval model (its stated query_time
    # when it has no index_type or the design sets one): the same distribution as the twin's.
    from sim.quality.retrieval import query_time_of

    return FifoStation(comp, ctx, comp.servers, query_time_of(comp, getattr(ctx, "design", None)))


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
    "llm_api": _optional("sim.providers.api_station", "ApiStation", SimpleApiStation),
    "embedder": _embedder,
    "vector_db": _vector_db,
    "keyword_search": _pool("query_time"),
    "reranker": _reranker,
    "guardrail": GuardrailStation,
    "tool": _tool,
    "judge": _optional("sim.providers.api_station", "ApiStation", SimpleApiStation),
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
