"""Statistics for the simulator, as small pure functions and one streaming histogram.

* `LogHistogram`: a streaming, mergeable quantile sketch with 0.1 % relative bins (memory is
  bounded by the number of distinct bins, ~30k at most, whatever the sample size).
* `t_quantile`, `mean_ci`: Student-t confidence intervals from independent replications.
* `mser5`: the MSER-5 warm-up truncation point of an output series.
* `thin`: keep at most n values of a stream, evenly spaced.
* `littles_law`: L versus λW.

Usage::

    >>> h = LogHistogram()
    >>> for x in (1.0, 2.0, 3.0, 4.0): h.add(x)
    >>> round(h.quantile(0.5), 2), h.mean()
    (2.0, 2.5)
    >>> lo, hi = mean_ci([1.0, 1.1, 0.9, 1.05, 0.95])
    >>> round(lo, 3), round(hi, 3)
    (0.902, 1.098)
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from functools import partial, reduce
from itertools import repeat
from operator import add as _add
from operator import mul as _mul
from statistics import NormalDist

__all__ = [
    "LogHistogram",
    "RawSample",
    "log_quantile",
    "QUANTILES",
    "t_quantile",
    "mean_ci",
    "half_width",
    "mser5",
    "thin",
    "littles_law",
    "summary",
    "aggregate_records",
]

QUANTILES = (0.5, 0.9, 0.95, 0.99)
"""The percentiles every latency summary reports (with the mean)."""

# Bins are 0.1 % wide in relative terms: quantile error ≤ 0.05 %, far below the 2 % precision
# the engine targets. OFFSET keeps log(x)·K + OFFSET positive for x ≥ 1e-300 so int() floors.
_REL = 0.001
_K = 1.0 / math.log1p(_REL)
_OFFSET = 1_000_000
_OFFSET_ADD = partial(_add, _OFFSET)  # OFFSET + y (= y + OFFSET)
_ZERO = 0.0
_log = math.log
_exp = math.exp


class LogHistogram:
    """Streaming quantiles with bounded relative error; values ≤ 0 are counted exactly."""

    __slots__ = ("bins", "zeros", "n", "total", "max")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.zeros = 0
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        if x <= 0.0:
            self.zeros += 1
            return
        self.total += x
        if x > self.max:
            self.max = x
        k = int(_log(x) * _K + _OFFSET)
        b = self.bins
        b[k] = b.get(k, 0) + 1

    def merge(self, other: "LogHistogram") -> None:
        for k, v in other.bins.items():
            self.bins[k] = self.bins.get(k, 0) + v
        self.zeros += other.zeros
        self.n += other.n
        self.total += other.total
        self.max = max(self.max, other.max)

    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    def quantiles(self, qs: tuple[float, ...] = QUANTILES) -> list[float]:
        """Several quantiles in one pass (NaN when empty); linear within a bin in log space."""
        n = self.n
        if n == 0:
            return [float("nan")] * len(qs)
        out: list[float] = []
        keys = sorted(self.bins)
        i = 0
        cum = self.zeros
        for q in qs:
            target = q * n
            if target <= self.zeros:
                out.append(0.0)
                continue
            while i < len(keys) and cum + self.bins[keys[i]] < target:
                cum += self.bins[keys[i]]
                i += 1
            if i >= len(keys):
                out.append(self.max)
                continue
            frac = (target - cum) / self.bins[keys[i]]
            out.append(min(self.max, _exp((keys[i] - _OFFSET + frac) / _K)))
        return out

    def quantile(self, q: float) -> float:
        return self.quantiles((q,))[0]


class RawSample(list):
    """One batch's values kept raw: `add` is ``list.append`` (the cheapest thing per request),
    and `n`, `mean`, `quantile(s)` answer as a `LogHistogram` of the same values would (its
    quantiles exactly: one by selection, `log_quantile`; several by binning once,
    `histogram`). For bounded batches; a whole day streams into histograms instead."""

    __slots__ = ("_hist",)  # the last `histogram()`, reused while no value was added since
    add = list.append

    @property
    def n(self) -> int:
        return len(self)

    def mean(self) -> float:
        return sum(x for x in self if x > 0.0) / len(self) if self else float("nan")

    def quantiles(self, qs: tuple[float, ...] = QUANTILES) -> list[float]:
        # Several, in ascending order (a summary, a CDF's 256): bin once, as the histogram
        # would, and walk it (the walk only moves forward); one, or out of order: by selection.
        if len(qs) > 1 and list(qs) == sorted(qs):
            return self.histogram().quantiles(qs)
        pos = [x for x in self if x > 0.0]
        return [log_quantile(pos, len(self) - len(pos), q) for q in qs]

    def histogram(self) -> LogHistogram:
        """The `LogHistogram` these values would have built (same bins, count, total and max).
        Values are only ever appended, so one built at the same length is still right: it is
        kept and shared (read it; merge it into another histogram, never into it)."""
        h = getattr(self, "_hist", None)
        if h is not None and h.n == len(self):
            return h
        self._hist = h = LogHistogram()
        pos = list(filter(_ZERO.__lt__, self))
        # The keys as `add` computes them, int(log(x)·K + OFFSET), in C: float products and
        # sums commute bit for bit, so K·log(x) and OFFSET + that are the same numbers.
        h.bins = dict(Counter(map(int, map(_OFFSET_ADD, map(_K.__mul__, map(_log, pos))))))
        h.n, h.zeros = len(self), len(self) - len(pos)
        # In order, as `add` sums (sum() compensates from Python 3.12 on; reduce does not).
        h.total, h.max = reduce(_add, pos, 0.0), max(pos, default=0.0)
        return h

    def quantile(self, q: float) -> float:
        return self.quantiles((q,))[0]


def log_quantile(values: list[float], zeros: int, q: float) -> float:
    """``LogHistogram.quantile(q)`` of positive `values` plus `zeros` zeros, without binning.

    The same number, bit for bit: the target bin is the key of the rank-r value, found by
    selection (the top share of the values, `_largest`), and only the values near the top
    are binned to count that bin and those above it. Keys are non-decreasing in the value, so
    everything below the selected values lies in lower bins.
    """
    npos = len(values)
    n = npos + zeros
    if n == 0:
        return float("nan")
    target = q * n
    if target <= zeros:
        return 0.0
    # r: the fewest positive values with zeros + r >= target (the histogram walk's stopping rank).
    r = max(1, math.ceil(target - zeros))
    while r > 1 and zeros + (r - 1) >= target:
        r -= 1
    while zeros + r < target:
        r += 1
    if r > npos:
        return max(values) if values else 0.0
    m = npos - r + 1  # values at or above the rank-r one
    extra = m // 8 + 16
    while True:
        top = _largest(values, m + extra)
        k = _key(top[m - 1])
        if len(top) == npos or _key(top[-1]) < k:
            break
        extra *= 4  # the target bin reaches below what we took: take more
    # Keys along the descending `top` do not increase, so bin k is one run [c_hi, c_hi + c_k)
    # around index m − 1: two binary searches on the negated key instead of keying every value.
    c_hi = bisect_left(top, -k, 0, m - 1, key=_neg_key)  # those before are above bin k
    c_k = bisect_right(top, -k, m - 1, len(top), key=_neg_key) - c_hi
    cum = zeros + (npos - c_k - c_hi)
    frac = (target - cum) / c_k
    return min(top[0], _exp((k - _OFFSET + frac) / _K))


def _key(x: float) -> int:
    """The histogram's bin key of one positive value (as `_keys` computes it)."""
    return int(_log(x) * _K + _OFFSET)


def _neg_key(x: float) -> int:
    return -int(_log(x) * _K + _OFFSET)


def _keys(xs: list[float]) -> list[int]:
    """``[int(_log(x) * _K + _OFFSET) for x in xs]`` (the histogram's bin keys), in C loops."""
    return list(map(int, map(_add, map(_mul, map(_log, xs), repeat(_K)), repeat(_OFFSET))))


def _largest(values: list[float], count: int) -> list[float]:
    """At least the `count` largest of `values`, sorted descending: every value ≥ some
    threshold (picked from a sorted 1-in-32 sample with a 1.5× margin; all of them if short)."""
    if count >= len(values) // 4:
        return sorted(values, reverse=True)
    sample = sorted(values[::32], reverse=True)
    # 1.5× margin (+16 sample values): ≥ 4 standard deviations of the sample's rank noise for
    # any count ≥ ~1,000; a short take falls back to the full sort (slower, same answer).
    t = sample[min(len(sample) - 1, count // 32 + count // 64 + 16)]
    top = sorted(filter(t.__le__, values), reverse=True)  # C loops: t <= x
    return top if len(top) >= count else sorted(values, reverse=True)


# --- confidence intervals --------------------------------------------------------------

_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
# Student-t 97.5 % points (two-sided 95 %), from any statistics table (e.g. NIST/SEMATECH
# e-Handbook, Table 1.3.6.7.2); between tabulated df we use the Cornish–Fisher expansion.


def t_quantile(df: int, p: float = 0.975) -> float:
    """Student-t quantile; exact table values at p=0.975, Cornish–Fisher otherwise (err < 1e-3)."""
    if df < 1:
        return float("inf")
    if p == 0.975 and df in _T975:
        return _T975[df]
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def half_width(values: list[float]) -> float:
    """Half-width of the 95 % t-interval of the mean of `values` (inf with fewer than 2)."""
    n = len(values)
    if n < 2:
        return float("inf")
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return t_quantile(n - 1) * math.sqrt(var / n)


def mean_ci(values: list[float]) -> tuple[float, float]:
    """95 % confidence interval of the mean of independent replication values."""
    if not values:
        return (float("nan"), float("nan"))
    m = sum(values) / len(values)
    hw = half_width(values)
    if math.isinf(hw):
        return (m, m)
    return (m - hw, m + hw)


# --- warm-up ---------------------------------------------------------------------------


def mser5(series: list[float]) -> int:
    """MSER-5 truncation point: observations to delete from the start of `series`.

    Batch the series in fives, then pick the deletion d (in batches, searched over the first
    half) that minimises the standard error of the remaining mean (White, 1997).
    """
    b = [sum(series[i : i + 5]) / 5 for i in range(0, len(series) - len(series) % 5, 5)]
    n = len(b)
    if n < 4:
        return 0
    # Suffix sums make every candidate O(1).
    suf = [0.0] * (n + 1)
    suf2 = [0.0] * (n + 1)
    for i in range(n - 1, -1, -1):
        suf[i] = suf[i + 1] + b[i]
        suf2[i] = suf2[i + 1] + b[i] * b[i]
    best, best_d = float("inf"), 0
    for d in range(n // 2):
        k = n - d
        m = suf[d] / k
        sse = suf2[d] - k * m * m
        score = sse / (k * k)
        if score < best:
            best, best_d = score, d
    return best_d * 5


# --- small helpers ---------------------------------------------------------------------


def thin(values: list[float], n: int) -> list[float]:
    """At most `n` values, evenly spaced through `values` (keeps first and order)."""
    if n <= 0:
        return []
    if len(values) <= n:
        return list(values)
    step = len(values) / n
    return [values[int(i * step)] for i in range(n)]


def littles_law(mean_in_system: float, throughput_rps: float, mean_latency_s: float) -> tuple[float, float]:
    """(λW, relative error of L against λW)."""
    lw = throughput_rps * mean_latency_s
    if lw <= 0:
        return lw, 0.0 if mean_in_system <= 0 else float("inf")
    return lw, abs(mean_in_system - lw) / lw


def summary(hist: LogHistogram, scale: float = 1000.0) -> dict[str, float]:
    """{'mean', 'p50', 'p90', 'p95', 'p99'} of a histogram of seconds, in ms by default."""
    q = hist.quantiles(QUANTILES)
    return {"mean": hist.mean() * scale, "p50": q[0] * scale, "p90": q[1] * scale, "p95": q[2] * scale, "p99": q[3] * scale}


# Counters add up over replications; extremes take the max; everything else is averaged.
_SUM_FIELDS = frozenset({"dropped", "arrivals", "rejected_prompts"})
_MAX_FIELDS = frozenset({"backlog_end", "max_batch_size"})


def aggregate_records(reps: list[dict[str, dict]]) -> dict[str, dict]:
    """Merge per-replication `{id: ComponentStats-as-dict}` into one dict per id.

    Nested records (an LLM server's `llm`) merge by the same rules; None stays None
    unless some replication has a value.
    """
    ids: list[str] = []
    for rep in reps:
        for cid in rep:
            if cid not in ids:
                ids.append(cid)
    return {cid: _merge([rep[cid] for rep in reps if cid in rep]) for cid in ids}


def _merge(recs: list[dict]) -> dict:
    out: dict = {}
    for key in recs[0]:
        vals = [r.get(key) for r in recs]
        present = [v for v in vals if v is not None]
        if not present:
            out[key] = None
        elif isinstance(present[0], dict):
            out[key] = _merge(present)
        elif isinstance(present[0], bool) or isinstance(present[0], str) or isinstance(present[0], list):
            out[key] = present[-1]
        elif key in _SUM_FIELDS:
            out[key] = sum(present)
        elif key in _MAX_FIELDS:
            out[key] = max(present)
        elif isinstance(present[0], int) and all(isinstance(v, int) for v in present):
            out[key] = round(sum(present) / len(present))
        else:
            out[key] = sum(present) / len(present)
    return out
