"""Traffic that is not Poisson: bursty arrival processes and CSV trace replay.

Bursty arrivals (``workload.arrivals``), all at the workload's mean rate λ:

* ``gamma`` gaps with coefficient of variation c: shape k = 1/c², scale 1/(λk);
* ``lognormal`` gaps with CV c: σ² = ln(1 + c²), μ = −ln λ − σ²/2;
* ``mmpp``: a two-state Markov-modulated Poisson process — bursts at ``burst_factor`` × λ for
  a share ``high_share`` of the time (mean burst ``mean_burst_s``, exponential), the rest at
  λ(1 − f·h)/(1 − h) so the mean stays λ.

Over a whole day the hourly profile is applied by running the process in operational time:
the gaps above are drawn at rate 1 and mapped through the cumulative rate Λ(t) (piecewise
linear over the hours), so each hour keeps its mean and the process keeps its burstiness.

Trace replay (``workload.trace``): a CSV with a header row, one request a row, rows in any
order (they are sorted by time). Accepted layouts, recognised by their header:

* this tool's: ``timestamp_s,prompt_tokens,output_tokens[,class]`` (seconds from any origin;
  ``class`` names one of the workload's request classes);
* the Azure LLM inference traces (github.com/Azure/AzurePublicDataset, 2023 and 2024):
  ``TIMESTAMP,ContextTokens,GeneratedTokens`` with ISO date-times;
* BurstGPT (github.com/HPMLL/BurstGPT): ``Timestamp,Model,Request tokens,Response tokens,
  Total tokens,Log Type`` (seconds).

Times start at the first row (t = 0). ``target_rps`` rescales time so the trace's mean rate
(rows / span) is that rate; else ``time_scale`` multiplies the timestamps. A bad row raises
`TraceError` naming the file, the line and the column. Usage::

    tr = load_trace("designs/library/traces/synthetic_chat.csv")
    tr.count, tr.prompt_tokens, tr.span_s
    src = TraceSource(tr, scale=1.0)       # gap(now) / draw() for the engine
"""

from __future__ import annotations

import bisect
import csv
import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from components.errors import Refusal

__all__ = ["TraceError", "Trace", "load_trace", "resolve_trace_path", "TraceSource", "BurstySource",
           "make_source", "MAX_TRACE_ROWS", "write_synthetic_trace"]

MAX_TRACE_ROWS = 5_000_000  # a typo guard: BurstGPT's full two months is 5.3 M rows


class TraceError(Refusal):
    """A trace file that cannot be replayed; the message says file, line and column."""


@dataclass
class Trace:
    """A loaded trace: arrival times (s, from 0, sorted), tokens and class indices."""

    path: str
    layout: str
    times: list[float] = field(default_factory=list)
    prompt: list[int] = field(default_factory=list)
    output: list[int] = field(default_factory=list)
    cls: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.times)

    @property
    def span_s(self) -> float:
        return self.times[-1] - self.times[0] if self.times else 0.0

    @property
    def prompt_tokens(self) -> int:
        return sum(self.prompt)

    @property
    def output_tokens(self) -> int:
        return sum(self.output)

    def mean_rps(self) -> float:
        """Rows per second over the span (n − 1 gaps over the span)."""
        return (self.count - 1) / self.span_s if self.span_s > 0 else 0.0

    def scale_for(self, target_rps: float | None, time_scale: float = 1.0) -> float:
        """The factor applied to timestamps for `target_rps` (or `time_scale` without one)."""
        if target_rps is None:
            return time_scale
        r = self.mean_rps()
        if r <= 0:
            raise TraceError(f"{self.path}: cannot scale to {target_rps:g} requests/s: the trace spans no time")
        return r / target_rps


_LAYOUTS = {
    "sdw": ("timestamp_s", "prompt_tokens", "output_tokens"),
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    "burstgpt": ("Timestamp", "Request tokens", "Response tokens"),
}


def resolve_trace_path(path: str) -> Path:
    """A relative path is tried from the working directory, then from the repository root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    root = Path(__file__).resolve().parents[2]
    return root / p if (root / p).exists() else p


def _iso_seconds(text: str) -> float:
    # Azure writes 7 fractional digits ("2023-11-16 18:15:46.6805900"); datetime takes 6.
    base, _, frac = text.strip().partition(".")
    t = datetime.fromisoformat(base).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def load_trace(path: str, class_names: list[str] | None = None) -> Trace:
    """Read a trace CSV (see the module docstring); raises `TraceError` with file:line: column."""
    p = resolve_trace_path(path)
    name = str(path)
    try:
        fh = p.open(newline="", encoding="utf-8-sig")
    except OSError as e:
        raise TraceError(f"{name}: cannot read the trace ({e.strerror or e})") from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise TraceError(f"{name}:1: the trace is empty; expected a header row "
                             "'timestamp_s,prompt_tokens,output_tokens[,class]'") from None
        except csv.Error as e:
            raise TraceError(f"{name}:1: {e}") from None
        cols = [h.strip() for h in header]
        layout = next((k for k, need in _LAYOUTS.items() if all(n in cols for n in need)), None)
        if layout is None:
            raise TraceError(f"{name}:1: unknown header {cols}; expected 'timestamp_s,prompt_tokens,output_tokens[,class]', "
                             "the Azure layout 'TIMESTAMP,ContextTokens,GeneratedTokens' or BurstGPT's "
                             "'Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type'")
        idx = [cols.index(n) for n in _LAYOUTS[layout]]
        ci = cols.index("class") if layout == "sdw" and "class" in cols else None
        names = {n: i for i, n in enumerate(class_names or [])}
        tr = Trace(path=name, layout=layout)
        rows = []
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(rows) >= MAX_TRACE_ROWS:
                    raise TraceError(f"{name}:{line}: more than {MAX_TRACE_ROWS:,} rows; cut the trace to the window you need")
                vals = []
                for j, col in zip(idx, _LAYOUTS[layout]):
                    if j >= len(row) or not row[j].strip():
                        raise TraceError(f"{name}:{line}: column {j + 1} ('{col}') is missing")
                    text = row[j].strip()
                    try:
                        v = _iso_seconds(text) if layout == "azure" and col == "TIMESTAMP" else float(text)
                    except ValueError:
                        want = "an ISO date-time" if layout == "azure" and col == "TIMESTAMP" else "a number"
                        raise TraceError(f"{name}:{line}: column {j + 1} ('{col}'): expected {want}, found '{text[:40]}'") from None
                    if not math.isfinite(v) or (v < 0 and col != "TIMESTAMP"):
                        raise TraceError(f"{name}:{line}: column {j + 1} ('{col}'): expected a finite number ≥ 0, found '{text[:40]}'")
                    if col not in ("timestamp_s", "TIMESTAMP", "Timestamp") and v != int(v):
                        raise TraceError(f"{name}:{line}: column {j + 1} ('{col}'): expected a whole number of tokens, found '{text[:40]}'")
                    vals.append(v)
                k = 0
                if ci is not None and ci < len(row) and row[ci].strip():
                    cname = row[ci].strip()
                    if cname not in names:
                        raise TraceError(f"{name}:{line}: column {ci + 1} ('class'): '{cname[:40]}' is not a request class of the "
                                         f"workload; expected one of {list(names) or ['(none defined)']}")
                    k = names[cname]
                rows.append((vals[0], int(vals[1]), int(vals[2]), k))
        except csv.Error as e:
            raise TraceError(f"{name}:{reader.line_num}: {e}") from None
    if not rows:
        raise TraceError(f"{name}: the trace has a header but no rows")
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0]
    tr.times = [r[0] - t0 for r in rows]
    tr.prompt = [r[1] for r in rows]
    tr.output = [r[2] for r in rows]
    tr.cls = [r[3] for r in rows]
    return tr


class TraceSource:
    """Arrivals at the trace's (scaled) times; `draw()` gives the arriving row's tokens.

    The engine calls ``gap(now)`` for the time to the next arrival, then, when that arrival
    happens, ``draw()`` for its (class, prompt, output): rows come out in order, one each.
    """

    rates = None
    horizon_s = None

    def __init__(self, trace: Trace, scale: float = 1.0, horizon_s: float | None = None):
        self.trace = trace
        self.scale = scale
        self.rate = trace.mean_rps() / scale if scale else 0.0
        self.rng = random.Random(0)  # unused: a trace is deterministic
        self.limit = horizon_s
        self._next = 0
        self._cur = -1

    def gap(self, now: float) -> float | None:
        i = self._next
        tr = self.trace
        if i >= tr.count:
            return None
        t = tr.times[i] * self.scale
        if self.limit is not None and t >= self.limit:
            return None
        self._next = i + 1
        return max(0.0, t - now)

    def draw(self) -> tuple[int, int, int]:
        self._cur += 1
        tr = self.trace
        i = min(self._cur, tr.count - 1)
        return tr.cls[i], max(1, tr.prompt[i]), max(1, tr.output[i])

    def expected_requests(self) -> float:
        return float(self.trace.count)


class BurstySource:
    """Gamma / lognormal renewal or 2-state MMPP arrivals at mean rate(s), in operational time.

    `rates` (per hour, a whole day) or one `rate`; `horizon_s` ends the arrivals.
    """

    def __init__(self, spec, rng: random.Random, rate: float, rates: list[float] | None = None,
                 horizon_s: float | None = None):
        self.spec = spec
        self.rng = rng
        self.rate = rate
        self.hourly = rates
        self.rates = None  # not the engine's piecewise Poisson: this source draws its own gaps
        self.horizon_s = None
        self.limit = horizon_s
        self.op = 0.0  # operational time (expected arrivals so far)
        p = spec.process
        if p == "gamma":
            k = 1.0 / (spec.cv * spec.cv)
            self._unit = lambda: rng.gammavariate(k, 1.0 / k)
        elif p == "lognormal":
            s2 = math.log(1.0 + spec.cv * spec.cv)
            mu, s = -s2 / 2.0, math.sqrt(s2)
            self._unit = lambda: rng.lognormvariate(mu, s)
        elif p == "mmpp":
            self._unit = self._mmpp_gap
            f, h = spec.burst_factor, spec.high_share
            self._r = (f, (1.0 - f * h) / (1.0 - h))  # rates in units of the mean
            mean = sum(rates) / len(rates) if rates else rate
            # Mean sojourns in operational units (seconds × the mean rate).
            self._stay = (spec.mean_burst_s * mean, spec.mean_burst_s * mean * (1.0 - h) / h)
            self._state = 0 if rng.random() < h else 1
            self._left = rng.expovariate(1.0 / self._stay[self._state])
        else:
            self._unit = lambda: rng.expovariate(1.0)
        if rates:
            self._cum = [0.0]
            for r in rates:
                self._cum.append(self._cum[-1] + r * 3600.0)

    def _mmpp_gap(self) -> float:
        """A gap in operational time (1 unit = one expected arrival at the mean rate); the
        state sojourns are exponential in the same units, so the process is exact there."""
        rng = self.rng
        g_op = 0.0
        while True:
            r = self._r[self._state]
            g = rng.expovariate(r) if r > 0 else math.inf
            if g < self._left:
                self._left -= g
                return g_op + g
            g_op += self._left
            self._state = 1 - self._state
            self._left = rng.expovariate(1.0 / self._stay[self._state])

    def _to_time(self, op: float) -> float | None:
        if not self.hourly:
            return op / self.rate if self.rate > 0 else None
        cum = self._cum
        if op >= cum[-1]:
            return None
        h = bisect.bisect_right(cum, op) - 1
        while h < 24 and self.hourly[h] <= 0:
            h += 1
        if h >= 24:
            return None
        return h * 3600.0 + (op - cum[h]) / self.hourly[h]

    def gap(self, now: float) -> float | None:
        self.op += self._unit()
        t = self._to_time(self.op)
        if t is None or (self.limit is not None and t >= self.limit):
            return None
        return max(0.0, t - now)

    def expected_requests(self) -> float:
        if self.hourly:
            return sum(self.hourly) * 3600.0
        return self.rate * (self.limit or 0.0)


def make_source(workload, rng: random.Random, *, rate: float, rates: list[float] | None = None,
                horizon_s: float | None = None):
    """A `BurstySource` for a non-Poisson `workload.arrivals`, else None (the engine's own)."""
    spec = getattr(workload, "arrivals", None)
    if spec is None or spec.process == "poisson":
        return None
    return BurstySource(spec, rng, rate, rates, horizon_s)


def write_synthetic_trace(path: str | Path, *, rows: int = 1200, rate_rps: float = 2.0, seed: int = 13) -> None:
    """Write the shipped synthetic trace (designs/library/traces/synthetic_chat.csv).

    Arrivals: a 2-state MMPP at `rate_rps` (bursts 3× the mean for 10 % of the time, 60 s
    long); classes `chat` (80 %: prompt lognormal mean 800 / p95 2000, output mean 250 / p95
    600) and `short_answer` (20 %: 300 / 800 and 20 / 50) — the llm_serving design's mix
    (assumptions stated there). Made by ``write_synthetic_trace(path)`` with the defaults.
    """
    from components.distributions import LogNormalCount
    from designs.model import Arrivals

    rng = random.Random(seed)
    src = BurstySource(Arrivals(process="mmpp"), rng, rate_rps)
    dists = {"chat": (LogNormalCount(mean=800, p95=2000), LogNormalCount(mean=250, p95=600)),
             "short_answer": (LogNormalCount(mean=300, p95=800), LogNormalCount(mean=20, p95=50))}
    t = 0.0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp_s", "prompt_tokens", "output_tokens", "class"])
        for _ in range(rows):
            t += src.gap(t)
            cls = "chat" if rng.random() < 0.8 else "short_answer"
            p, o = dists[cls]
            w.writerow([f"{t:.3f}", p.sample_int(rng), o.sample_int(rng), cls])
