"""Simulation commands: `sdw run`, `sdw estimate`, `sdw compare`.

Usage::

    sdw run designs/library/llm_serving.yaml                  # simulate to 2 % precision
    sdw run my.yaml --seed 7 --precision 0.01 --max-seconds 30 --json > result.json
    sdw run my.yaml --whole-day --max-requests 20000000       # 24 h with profile_24h
    sdw run designs/library/llm_serving.yaml --whole-day      # over budget: one window per hour, stitched
    sdw estimate designs/library/rag_qa.yaml                  # the analytic twin, instantly
    sdw compare a.yaml b.yaml --json                          # same seeds, deltas vs the first

With `--json` stdout is exactly one JSON object (`RunResult.to_json()`, or for compare
``{"designs": [...], "deltas": [...]}``, or for a sampled whole day ``{"sampled_day": {...}}``
— `sim.ops.sampled.SampledDay`); the progress bar goes to stderr, and only to a
terminal. Ctrl-C stops a run and prints what was measured so far, marked partial.
Exit codes: 0 ok, 1 invalid design or a refused workload, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager


from .common import err as _err
from .common import load_or_report as _load
from .common import positive_number, whole_number

__all__ = ["register", "cmd_run", "cmd_estimate", "cmd_compare", "format_run", "format_compare", "compare_deltas"]


def _precision(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.02, got '{text}'") from None
    if not (0 < v < 1):
        raise argparse.ArgumentTypeError(f"precision is a relative half-width between 0 and 1 (0.02 = 2 %), got {v}")
    return v


def _positive_int(text: str) -> int:
    return whole_number(text, minimum=1)


def _positive_float(text: str) -> float:
    return positive_number(text, "a number of seconds")


# --- progress and Ctrl-C ---------------------------------------------------------------------


class _Progress:
    """A one-line `\\r` bar on stderr, shown only on a terminal and only after `delay_s`
    (a second by default: short commands print nothing)."""

    def __init__(self, label: str, delay_s: float = 1.0):
        self.label = label
        self.delay_s = delay_s
        self.t0 = time.perf_counter()
        self.shown = False
        self.on = sys.stderr.isatty()

    def __call__(self, fraction: float, message: str) -> None:
        if not self.on or time.perf_counter() - self.t0 < self.delay_s:
            return
        width = 30
        n = int(max(0.0, min(1.0, fraction)) * width)
        line = f"\r{self.label} [{'#' * n}{' ' * (width - n)}] {fraction:4.0%} {message}"
        sys.stderr.write(line[:120].ljust(120))
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 120 + "\r")
            sys.stderr.flush()


@contextmanager
def _interruptible():
    """The first Ctrl-C sets the event the engine polls (it returns a partial result); a second
    one interrupts for real."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        _err("\ninterrupt: stopping, printing what was measured so far (Ctrl-C again to abort)")

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, old)


# --- formatting ------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _pct_row(name: str, p, ci) -> str:
    cells = [_ms(getattr(p, k)) for k in ("mean", "p50", "p90", "p95", "p99")]
    band = f"{_ms(ci.p95[0])}–{_ms(ci.p95[1])}" if ci is not None and ci.p95 is not None else ""
    return f"  {name:<11}" + "".join(f"{c:>10}" for c in cells) + f"   {band}"


def format_run(r) -> str:
    """The plain-text report of a `RunResult` (what `sdw run` prints without --json)."""
    lines: list[str] = []
    if r.pipeline is not None:
        p = r.pipeline
        lines.append(f"Pipeline {r.design}: {p.summary}")
        lines.append(f"  duration {p.duration_h:.2f} h of a {p.window_h:g} h window; {p.gpu_hours:,.1f} GPU-hours; "
                     f"${p.cost_per_run_usd:,.2f} per run")
        lines.append(f"  critical path: {' → '.join(p.critical_path)}")
        lines.append("")
        lines.append(f"  {'stage':<16} {'kind':<14} {'start h':>8} {'hours':>7} {'items in':>12} {'items out':>12} {'GPU-h':>7} {'$/run':>9}")
        for st in p.stages:
            lines.append(f"  {st.id:<16} {st.kind:<14} {st.start_h:8.2f} {st.duration_h:7.2f} {st.items_in:12,.0f} "
                         f"{st.items_out:12,.0f} {st.gpu_hours:7.1f} {st.cost_usd:9.2f}")
            if st.detail:
                lines.append(f"  {'':<16} {st.detail}")
        lines.append("")
    else:
        prec = f", p95 ±{r.precision_achieved:.1%}" if r.precision_achieved is not None else ""
        head = (f"Simulated {r.design} at {r.arrival_rps:,.4g} requests/s: {r.simulated_requests:,} requests, "
                f"stopped by {r.stopped_by}{prec}, {r.wall_s:.1f} s (seed {r.seed})")
        lines.append(head)
        if r.ci_method:
            lines.append(f"Intervals: {r.ci_method}")
        if r.engine_path == "fifo_recursion":
            lines.append("Engine: FIFO recursion (feed-forward FIFO stations, no event loop; the event loop's sample path)")
        if r.partial:
            lines.append("PARTIAL: interrupted; the figures below are what was measured so far")
        lines.append(f"Stable: {'yes' if r.stable else 'NO — the backlog grows; see warnings'}")
        lines.append(f"Completed {r.completed_requests:,}, dropped {r.dropped_requests:,} (measured requests)")
        lines.append("")
        lines.append("  latency ms " + "".join(f"{k:>10}" for k in ("mean", "p50", "p90", "p95", "p99")) + "   95 % CI of p95")
        lines.append(_pct_row("end to end", r.latency_ms, r.latency_ms_ci95))
        if r.ttft_ms is not None:
            lines.append(_pct_row("TTFT", r.ttft_ms, r.ttft_ms_ci95))
        if r.tpot_ms is not None:
            lines.append(_pct_row("TPOT", r.tpot_ms, r.tpot_ms_ci95))
        if r.output_tokens_per_s:
            lines.append(f"  output tokens/s: {r.output_tokens_per_s:,.0f}")
        lines.append("")
        head = ("component", "kind", "util", "queue", "wait p95 ms", "rps", "dropped", "backlog")
        rows = [head]
        for cid, c in r.components.items():
            extra = f" (lag p95 {_ms(c.lag_ms_p95)} ms)" if c.lag_ms_p95 is not None else ""
            rows.append((cid + extra, c.kind, f"{c.utilization:.3f}", f"{c.mean_queue_len:,.2f}", _ms(c.wait_ms_p95),
                         f"{c.throughput_rps:,.4g}", f"{c.dropped:,}", f"{c.backlog_end:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        for n, row in enumerate(rows):
            lines.append("  " + "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
            if n == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        if r.bottleneck:
            lines.append(f"Bottleneck: {r.bottleneck} (utilisation {r.components[r.bottleneck].utilization:.3f})")
        if r.littles_law is not None:
            ll = r.littles_law
            lines.append(f"Little's law: L = {ll.mean_in_system:,.4g} in system vs λW = {ll.throughput_x_latency:,.4g} "
                         f"({ll.rel_error:.2%}) {'ok' if ll.ok else 'OFF'}")
    per_k = f" (${r.cost_per_1k_requests_usd:.4g} per 1k requests)" if r.cost_per_1k_requests_usd else ""
    lines.append(f"Cost: ${r.cost_per_day_usd:,.2f}/day{per_k}")
    for c in r.cost_breakdown:
        if c.usd_per_day:
            lines.append(f"  {c.id}: {c.rule}")
    if r.slo:
        lines.append("SLOs:")
        for c in r.slo:
            tag = "PASS" if c.met else ("FAIL" if c.met is False else "n/a ")
            lines.append(f"  {tag} {c.metric}: {c.detail}")
    if r.ops is not None:  # a timeline run (faults, failures, autoscaling, traces)
        from sim import format_ops

        lines.append(format_ops(r.ops))
    if r.warnings:
        lines.append("Warnings:")
        lines.extend(f"  - {w}" for w in r.warnings)
    return "\n".join(lines)


# (label, getter, unit) of the rows `sdw compare` shows.
_METRICS = (
    ("latency_ms.mean", lambda r: r.latency_ms.mean, "ms"),
    ("latency_ms.p95", lambda r: r.latency_ms.p95, "ms"),
    ("latency_ms.p99", lambda r: r.latency_ms.p99, "ms"),
    ("ttft_ms.p95", lambda r: r.ttft_ms.p95 if r.ttft_ms else None, "ms"),
    ("tpot_ms.p95", lambda r: r.tpot_ms.p95 if r.tpot_ms else None, "ms"),
    ("dropped_requests", lambda r: float(r.dropped_requests), ""),
    ("cost_per_day_usd", lambda r: r.cost_per_day_usd, "$"),
    ("max_utilization", lambda r: max((c.utilization for c in r.components.values()), default=None), ""),
)


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def compare_deltas(results: list) -> list[dict]:
    """One dict per result: metric → {value, delta, rel} against the first result."""
    base = results[0]
    out = []
    for r in results:
        row = {}
        for name, get, _ in _METRICS:
            v, b = _num(get(r)), _num(get(base))
            delta = v - b if v is not None and b is not None else None
            rel = delta / b if delta is not None and b else None
            row[name] = {"value": v, "delta": delta, "rel": rel}
        row["stable"] = r.stable
        row["bottleneck"] = r.bottleneck
        out.append(row)
    return out


def format_compare(files: list[str], results: list) -> str:
    deltas = compare_deltas(results)
    names = [f"{f} ({r.design})" for f, r in zip(files, results)]
    lines = [f"Compared on seed {results[0].seed}, same random numbers for every design (deltas vs the first):", ""]
    for i, n in enumerate(names):
        lines.append(f"  [{i}] {n}")
    lines.append("")
    head = ["metric"] + [f"[{i}]" for i in range(len(results))]
    rows = [head]
    for name, _, unit in _METRICS:
        row = [name]
        for i, d in enumerate(deltas):
            cell = d[name]
            if cell["value"] is None:
                row.append("—")
                continue
            v = cell["value"]
            text = f"${v:,.0f}" if unit == "$" else (_ms(v) if unit == "ms" else f"{v:,.4g}")
            if i > 0 and cell["delta"] is not None:
                text += f" ({cell['rel']:+.1%})" if cell["rel"] is not None else f" ({cell['delta']:+,.4g})"
            row.append(text)
        rows.append(row)
    rows.append(["stable"] + ["yes" if d["stable"] else "NO" for d in deltas])
    rows.append(["bottleneck"] + [d["bottleneck"] or "—" for d in deltas])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for n, row in enumerate(rows):
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    for f, r in zip(files, results):
        for w in r.warnings:
            lines.append(f"warning ({f}): {w}")
    return "\n".join(lines)


# --- commands ------------------------------------------------------------------------------


def _finite(obj):
    """JSON has no NaN or Infinity: such floats become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _dumps(obj) -> str:
    return json.dumps(_finite(obj), allow_nan=False)


def _sim_kwargs(args) -> dict:
    kw = dict(seed=args.seed, precision=args.precision, max_requests=args.max_requests, max_seconds=args.max_seconds)
    if getattr(args, "whole_day", False):
        kw["whole_day"] = True
    if getattr(args, "replications", None):
        kw["replications"] = args.replications
    return kw


def cmd_run(args: argparse.Namespace) -> int:
    from sim import simulate

    design = _load(args.file)
    if design is None:
        return 1
    if getattr(args, "whole_day", False):
        from sim import needs_sampling

        window = getattr(args, "sample_window", None)
        if window is not None or needs_sampling(design, args.max_requests):
            return _run_sampled_day(design, args, window)
    result = _with_progress(f"sdw run {design.name}", f"sdw run: {args.file}", simulate, design, args)
    if result is None:
        return 1
    if args.json:
        print(_dumps(result.to_json()))
    else:
        print(format_run(result))
    return 0


def _run_sampled_day(design, args: argparse.Namespace, window) -> int:
    """`sdw run --whole-day` of a day over the request budget (or with --sample-window): one
    sampled window per hour, stitched (`sim.ops.sampled`); the method is printed with it."""
    from sim import SimulationRefused, format_sampled_day, sample_day

    kw = {} if window is None else {"window_s": window}
    if window is None:
        _err(f"sdw run: {args.file}: a whole day is more than --max-requests {args.max_requests:,} requests: "
             "sampling one window per hour of profile_24h instead (--sample-window S sets its length; "
             "raise --max-requests for the full day)")
    try:
        with _interruptible() as cancel:
            day = sample_day(design, seed=args.seed, max_seconds=max(args.max_seconds, 600.0), cancel=cancel, **kw)
    except (ValueError, SimulationRefused) as e:
        _err(f"sdw run: {args.file}: refused: {e}")
        return 1
    print(_dumps({"sampled_day": day.to_json()}) if args.json else format_sampled_day(day))
    return 0


def _with_progress(label: str, who: str, fn, what, args: argparse.Namespace):
    """fn(what, …) with a progress bar on stderr and Ctrl-C as a cancel; None after printing
    the engine's refusal (a workload or hardware no run could answer)."""
    from sim import SimulationRefused

    bar = _Progress(label)
    try:
        with _interruptible() as cancel:
            out = fn(what, progress=bar, cancel=cancel, **_sim_kwargs(args))
    except SimulationRefused as e:
        bar.close()  # clear the bar's line before the message
        _err(f"{who}: refused: {e}")
        return None
    bar.close()
    return out


def cmd_estimate(args: argparse.Namespace) -> int:
    design = _load(args.file)
    if design is None:
        return 1
    from sim import estimate

    try:
        est = estimate(design)
    except ValueError as e:  # EstimateError and friends: a located, worded refusal
        _err(f"sdw estimate: {args.file}: {e}")
        return 1
    from sim import format_n_minus_1, n_minus_one, replicas_per_hour

    n1 = n_minus_one(design, est)  # N−1: one replica down per component (sim/ops)
    hourly = replicas_per_hour(design, est)
    if args.json:
        out = est.to_json()
        out["n_minus_1"] = {cid: n.to_json() for cid, n in n1.items()}
        out["replicas_per_hour"] = hourly
        print(_dumps(out))
    else:
        from sim import format_estimate

        print(format_estimate(est))
        if n1:
            print(format_n_minus_1(n1))
        for cid, hours in hourly.items():
            print(f"Autoscaled replicas per hour, {cid}: {' '.join(str(h) for h in hours)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sim import compare

    if len(args.files) < 2:
        _err("sdw compare: give at least two design files")
        return 2
    designs = [_load(f) for f in args.files]
    if any(d is None for d in designs):
        return 1
    results = _with_progress("sdw compare", "sdw compare", compare, designs, args)
    if results is None:
        return 1
    if args.json:
        print(_dumps({"designs": [r.to_json() for r in results], "files": list(args.files),
                      "deltas": compare_deltas(results)}))
    else:
        print(format_compare(args.files, results))
    return 0


def _add_sim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same result (default 0)")
    p.add_argument("--precision", type=_precision, default=0.02,
                   help="stop when the p95's 95%% CI half-width is within this fraction of it (default 0.02)")
    p.add_argument("--max-requests", type=_positive_int, default=2_000_000, help="request budget (default 2,000,000)")
    p.add_argument("--max-seconds", type=_positive_float, default=60.0, help="wall-clock budget in seconds (default 60)")
    p.add_argument("--replications", type=_positive_int, default=None,
                   help="measure exactly this many batches (batch means) instead of the stopping rule")
    p.add_argument("--whole-day", action="store_true", help="simulate 24 h with workload.profile_24h instead of the peak")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="simulate a design: latency percentiles with CIs, utilisation, cost, SLOs",
                              description="Simulate a design with SimPy until the p95 is known to --precision.")
    p.add_argument("file", help="design YAML file")
    p.add_argument("--sample-window", type=_positive_float, default=None, metavar="S",
                   help="with --whole-day: simulate S seconds per hour of the profile and stitch them (automatic, "
                        "120 s, when an operations design's day is over --max-requests; wall budget "
                        "max(--max-seconds, 600))")
    _add_sim_options(p)
    p.set_defaults(handler=cmd_run)

    p = subparsers.add_parser("estimate", help="the analytic twin: utilisation, waits, latency, cost, bottleneck",
                              description="Queueing-theory estimate of a design at its peak rate, instantly.")
    p.add_argument("file", help="design YAML file")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=cmd_estimate)

    p = subparsers.add_parser("compare", help="simulate several designs on the same seeds and show deltas",
                              description="Simulate designs with common random numbers; deltas are against the first.")
    p.add_argument("files", nargs="+", help="two or more design YAML files")
    _add_sim_options(p)
    p.set_defaults(handler=cmd_compare)
