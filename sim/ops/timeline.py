"""A timeline run: one simulation over a fixed horizon with faults, failures, autoscaling and
bursty or replayed traffic, reported as time series an operator would read.

When it runs (`wants_timeline`): a design with ``faults:``, a ``trace`` or ``timeline_s``
(the peak rate for ``timeline_s``, default one hour, or the trace's own span), and any
``--whole-day`` run of a design with operations settings (failures, autoscaling, faults,
bursty arrivals). Otherwise the engine's steady-state batch-means run is used unchanged —
random ``failures`` and ``autoscale`` act only on a timeline (the steady state is the healthy
peak; the twin's N−1 view covers a replica's loss there).

How it is measured: every arrival before the horizon is measured; requests in flight at the
horizon are drained (faults' repairs and the autoscaler keep running, bounded). Per window
(60 s up to a two-hour horizon, 600 s beyond) the run keeps arrivals, successes, failures,
retries, latency p50/p95/p99 and the replicas serving — requests counted in the window they
arrived in. Availability = successful / offered over the run; its 95 % interval is Student-t
over 20 time batches (indicative: a fault makes neighbouring batches alike). Latency
percentiles and their intervals come from the engine's whole-day machinery (one batch, 20
time batches). Cost: replica-hours actually provisioned per component with ops; on a whole
day with autoscaling, the daily cost from those replica-hours next to the fixed fleet that
covers the same peak all day.

Usage::

    from sim.ops.timeline import run_timeline, wants_timeline
    if wants_timeline(design, whole_day=False):
        result = run_timeline(design, seed=1)     # a RunResult with result.ops filled
        result.ops.availability, result.ops.windows[0].replicas
"""

from __future__ import annotations

import math
import time

from sim.des.stats import LogHistogram, half_width
from sim.des.workload import DAY_S, OpenLoop, hourly_rates
from sim.results import OpsResult, OpsWindow, RequestFates

from .control import Controller
from .retry import RetryStats
from .plan import DEFAULT_HORIZON_S, TimelineRefused, plan_horizon, timeline_problems, wants_timeline
from .traffic import TraceSource, make_source

__all__ = ["Timeline", "wants_timeline", "run_timeline", "timeline_problems", "DEFAULT_HORIZON_S", "TimelineRefused"]

N_TIME_BATCHES = 20
DRAIN_LIMIT_S = 3600.0  # after the horizon, at most this long for the requests still in flight


class _Recorder:
    """Per-window counts and latency histograms, keyed by the window a request arrived in."""

    def __init__(self, window_s: float, n: int):
        self.window_s = window_s
        self.n = n
        self.arr = [0] * n
        self.ok = [0] * n
        self.bad = [0] * n
        self.lat = [LogHistogram() for _ in range(n)]
        self.retries = [0] * n
        self.replicas: list[dict] = [dict() for _ in range(n)]
        self.provisioned: list[dict] = [dict() for _ in range(n)]
        self.queued: list[dict] = [dict() for _ in range(n)]
        self.prompt = 0
        self.output = 0
        self.tb_ok = [0] * N_TIME_BATCHES
        self.tb_n = [0] * N_TIME_BATCHES
        self.horizon = window_s * n

    def add(self, req, ok: bool, now: float) -> None:
        w = min(self.n - 1, int(req.t0 / self.window_s))
        self.arr[w] += 1
        self.prompt += req.prompt_tokens
        self.output += req.output_tokens
        b = min(N_TIME_BATCHES - 1, int(req.t0 / self.horizon * N_TIME_BATCHES))
        self.tb_n[b] += 1
        if ok:
            self.ok[w] += 1
            self.tb_ok[b] += 1
            self.lat[w].add(now - req.t0)
        else:
            self.bad[w] += 1


class Timeline:
    """The plan of one timeline run; `sim.des.run.Run` calls `attach` once it is built."""

    def __init__(self, design, *, whole_day: bool):
        self.design = design
        self.whole_day = whole_day
        self.trace, self.scale, self.horizon_s = plan_horizon(design, whole_day)
        self.window_s = 60.0 if self.horizon_s <= 7200 else 600.0
        if self.horizon_s < 20 * 60:
            self.window_s = max(self.horizon_s / 20.0, 1e-3)
        self.touched = {f.component for f in design.faults} | {
            c.id for c in design.components
            if c.failures is not None or getattr(c, "autoscale", None) is not None
        }
        self.run = None
        self.rec = _Recorder(self.window_s, max(1, math.ceil(self.horizon_s / self.window_s - 1e-9)))

    def touches(self, comp) -> bool:
        return comp.id in self.touched

    # --- wiring into the engine's Run --------------------------------------------------------

    def source(self, rng):
        wl = self.design.workload
        if self.trace is not None:
            return TraceSource(self.trace, self.scale, self.horizon_s)
        if self.whole_day:
            rates = hourly_rates(wl)
            return make_source(wl, rng, rate=sum(rates) / 24.0, rates=rates) or OpenLoop.whole_day(wl, rng)
        return (make_source(wl, rng, rate=wl.peak_rps, horizon_s=self.horizon_s)
                or OpenLoop(wl.peak_rps, rng, horizon_s=self.horizon_s))

    def attach(self, run) -> None:
        """Take over the run's arrivals, hook the recorder on every request's end and install
        the controllers. Called at the end of `Run.__init__` (whole-day mode: one batch)."""
        self.run = run
        ctx = run.ctx
        src = self.source(run.source.rng if run.source is not None else ctx.stream("arrivals"))
        run.source = src
        run.rate = 0.0
        run.rand = None
        if isinstance(src, TraceSource):
            run.draw = src.draw
            run.fixed = None
        run.batch_s = self.horizon_s / run.n_time_batches
        inner = run.end_cb
        rec = self.rec

        def end(req, ok, _inner=inner, _rec=rec, _env=run.env):
            _rec.add(req, ok, _env._now)
            _inner(req, ok)

        run.end_cb = end
        run._end_inner = end
        run.entry_done = end if run.entry_last else run.entry.cb
        self.retry = ctx.extra.get("retry_stats") or ctx.extra.setdefault("retry_stats", RetryStats())
        stations = {n.id: n.station for n in run.nodes.values()}
        self.ops_stations = {cid: st for cid, st in stations.items() if cid in self.touched}
        self.ctl = Controller(self.design, ctx, horizon_s=self.horizon_s, stop_s=self.horizon_s + DRAIN_LIMIT_S)
        self.ctl.install(self.ops_stations)
        for w in range(rec.n):
            self.ctl._at(min((w + 1) * self.window_s, self.horizon_s), self._sample, w)
        self._retries_seen = 0
        self._sampled: set[int] = set()

    def _sample(self, ev) -> None:
        w = ev._value
        self._sampled.add(w)
        rec = self.rec
        rec.retries[w] = self.retry.retries - self._retries_seen
        self._retries_seen = self.retry.retries
        for cid, st in self.ops_stations.items():
            if hasattr(st, "serving"):
                rec.replicas[w][cid] = st.serving()
                rec.provisioned[w][cid] = st.provisioned()
            q = getattr(st, "qlen", None)
            if isinstance(q, int):
                rec.queued[w][cid] = q

    # --- the record ----------------------------------------------------------------------

    def result(self) -> OpsResult:
        rec = self.rec

        class _Ev:  # windows the run ended before sampling (drained early): their state now
            def __init__(self, w):
                self._value = w

        for w in range(rec.n):
            if w not in self._sampled:
                self._sample(_Ev(w))
        now = self.run.env.now
        windows = []
        for w in range(rec.n):
            h = rec.lat[w]
            q = h.quantiles((0.5, 0.95, 0.99)) if h.n else (None, None, None)
            windows.append(OpsWindow(
                t_start_s=w * self.window_s, t_end_s=min((w + 1) * self.window_s, self.horizon_s),
                arrivals=rec.arr[w], succeeded=rec.ok[w], failed=rec.bad[w], retries=rec.retries[w],
                latency_ms_p50=None if q[0] is None else q[0] * 1000, latency_ms_p95=None if q[1] is None else q[1] * 1000,
                latency_ms_p99=None if q[2] is None else q[2] * 1000,
                replicas=rec.replicas[w], provisioned=rec.provisioned[w], queued=rec.queued[w],
            ))
        offered = sum(rec.arr)
        ok = sum(rec.ok)
        avail = ok / offered if offered else None
        ci = None
        shares = [o / n for o, n in zip(rec.tb_ok, rec.tb_n) if n]
        if avail is not None and len(shares) > 1:
            hw = half_width(shares)
            ci = (max(0.0, avail - hw), min(1.0, avail + hw))
        rs = self.retry
        fates = RequestFates(offered=offered, succeeded=ok, failed=offered - ok, retried=rs.recovered,
                             fallbacks=rs.fallbacks, attempts=rs.attempts, gave_up=rs.gave_up)
        hours = {cid: st.replica_seconds(now) / 3600.0 for cid, st in self.ops_stations.items()
                 if hasattr(st, "replica_seconds") and hasattr(st, "provisioned")}
        cold = {cid: st.cold_waits for cid, st in self.ops_stations.items() if getattr(st, "cold_waits", 0)}
        trace = None
        if self.trace is not None:
            tr = self.trace
            trace = f"{tr.path} ({tr.layout} layout, {tr.count:,} rows over {tr.span_s:,.1f} s, time × {self.scale:.4g})"
        return OpsResult(horizon_s=self.horizon_s, window_s=self.window_s, availability=avail, availability_ci95=ci,
                         fates=fates, windows=windows, faults=sorted(self.ctl.faults, key=lambda f: f.start_s),
                         cold_starts=self.ctl.cold_starts, replica_hours=hours, waited_for_cold_start=cold,
                         prompt_tokens=rec.prompt, output_tokens=rec.output, trace=trace)


def _daily_costs(design, result, ops: OpsResult, peak: dict[str, int]) -> None:
    """Whole day with autoscaling: cost from replica-hours used vs the fixed peak fleet."""
    scaled = [c for c in design.components if getattr(c, "autoscale", None) is not None and c.id in ops.replica_hours]
    if not scaled or ops.horizon_s < DAY_S:
        return
    lines = {ln.id: ln.usd_per_day for ln in result.cost_breakdown}
    base = result.cost_per_day_usd
    auto = fixed = base
    for c in scaled:
        per_replica_day = lines.get(c.id, 0.0) / max(1, c.replicas)
        auto += per_replica_day * ops.replica_hours[c.id] / 24.0 - lines.get(c.id, 0.0)
        fixed += per_replica_day * peak.get(c.id, c.replicas) - lines.get(c.id, 0.0)
    ops.autoscaled_cost_per_day_usd = auto
    ops.fixed_cost_per_day_usd = fixed


def run_timeline(design, *, seed: int = 0, whole_day: bool = False, max_seconds: float = 60.0, cancel=None,
                 keep_sample: int = 2000, est=None):
    """Simulate `design` as one timeline (see the module docstring); a `RunResult` with `ops`."""
    from sim.des.run import Run
    from sim.des.summary import build_result

    t_start = time.perf_counter()
    wl = design.workload
    if wl.closed_loop:
        raise TimelineRefused("workload: a timeline run (faults, traces, autoscaling) needs open-loop traffic, "
                              "not concurrent_users")
    plan = Timeline(design, whole_day=whole_day)
    run = Run(design, seed, 0, 1, whole_day=True, deadline=t_start + max_seconds, cancel=cancel, timeline=plan)
    run.advance()
    run.refresh()
    outs = [s for s in run.segs if s.closed]
    stop = {"cancel": "interrupted", "max_seconds": "max_seconds", "backlog": "max_requests"}.get(run.cut or "", "precision")
    warnings = [f"a timeline of {plan.horizon_s:,.0f} s: its intervals come from 20 time batches and are indicative "
                "(faults and traffic change over time)"]
    if run.cut == "backlog":
        warnings.append("the backlog passed the engine's limit of requests in flight: the design cannot keep up")
    res = build_result(design=design, outs=outs, simulated=run.next_id, seed=seed, t_start=t_start, stopped_by=stop,
                       stable=run.cut != "backlog", est=est, sample=None, warnings=warnings, warmup=0,
                       keep_sample=keep_sample, whole_day=True,
                       ci_method=f"one timeline of {plan.horizon_s:,.0f} s; intervals from 20 time batches (indicative)")
    ops = plan.result()
    res.ops = ops
    res.warnings = [w for w in res.warnings if not w.startswith("whole-day confidence intervals")]
    if not whole_day:
        res.arrival_rps = ops.fates.offered / plan.horizon_s if plan.horizon_s else res.arrival_rps
    _daily_costs(design, res, ops, plan.ctl.peak)
    if ops.availability_ci95 is not None:
        for chk in res.slo:
            if chk.metric == "availability":
                lo, hi = ops.availability_ci95
                chk.detail += f" (95 % CI {lo * 100:.4g}–{hi * 100:.4g} %, {ops.fates.failed:,} of {ops.fates.offered:,} failed)"
    res.wall_s = time.perf_counter() - t_start
    return res
