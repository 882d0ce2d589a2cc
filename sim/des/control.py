"""Control variates for batch means: fewer simulated requests for the same honest interval.

An LLM request's end-to-end latency is dominated by how much work the traffic brings, and
most of that is known the moment a request is drawn: how many arrived in a batch's window
and how many prompt and output tokens they carry. Each of these has a mean known exactly
from the workload, so each batch yields *controls* with mean zero:

* ``arrival_span``: the time the batch's n arrivals took, relative to its mean n/λ − 1
  (Poisson arrivals at a constant rate: the sum of n exponential gaps, mean n/λ);
* ``output_tokens`` / ``prompt_tokens``: the batch's mean tokens minus the workload's exact
  mean of the *drawn* (rounded, at least 1) counts;
* ``output_tail``: for a percentile p, the share of the batch's requests whose output exceeds
  t_p (the workload's own p-quantile of output tokens) minus its exact probability — a
  quantile control: by Bahadur's representation a sample p-quantile moves with the sample
  CDF at that point, and a request's latency rises with its output length.

The mean uses (arrival_span, output_tokens, prompt_tokens); each percentile p uses
(arrival_span, output_tail at t_p, prompt_tokens). `cv_fit` regresses the per-batch statistic
on its controls across batches and takes the intercept: the classical control-variate estimator with estimated
coefficients (Lavenberg & Welch 1981, "A perspective on the use of control variables to
increase the efficiency of Monte Carlo simulations", Mgmt Sci 27(3); Nelson 1990, "Control
variate remedies", Oper Res 38(6)). Its 95 % interval is the intercept's t-interval with
k − 1 − q degrees of freedom (k batches, q controls), exact when the batch statistics and
controls are jointly normal, which batch means of thousands of requests are to a good
approximation; `tests/test_control.py` checks the coverage against repeated seeds.

On the library's serving design the p95's controls explain ~80 % of its batch-to-batch
variance (≈ 5× less variance at batches of 10·L requests, ≈ 4× at 5·L; 7 seeds × 60 batches).

Usage::

    plan = control_plan(design)                    # None: no LLM on the path, or no controls
    xs = batch_controls(plan, batches, "p95")      # one row of controls per batch (or None)
    fit = cv_fit([b.p95 for b in batches], xs, plan.names("p95"))
    fit.estimate, fit.half_width, fit.variance_ratio
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from itertools import repeat
from operator import add as _add, mul as _mul, sub as _sub, truediv as _truediv

from .stats import half_width, t_quantile

__all__ = ["ControlPlan", "CVFit", "control_plan", "batch_controls", "cv_fit", "drawn_count_mean", "drawn_count_sf",
           "MIN_DF", "TAIL_QS"]

MIN_DF = 4
"""Fewest residual degrees of freedom for a control-variate interval (else fewer controls)."""

_SQRT2 = math.sqrt(2.0)  # statistics.NormalDist's own constant
LLM_KINDS = frozenset({"llm_server", "llm_api"})
TAIL_QS = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
"""The percentiles with a quantile control of their own (the keys of `latency_ms`)."""


@dataclass(frozen=True)
class ControlPlan:
    """Which controls a run records and their exact means (None: that control is not used)."""

    rate_rps: float | None
    """Constant Poisson arrival rate (open loop at the peak), for ``arrival_span``."""
    output_mean: float | None
    """Exact mean of a drawn request's output tokens, for ``output_tokens``."""
    prompt_mean: float | None
    """Exact mean of a drawn request's prompt tokens, for ``prompt_tokens``."""
    tails: tuple[tuple[int, float], ...] = ()
    """Per `TAIL_QS` entry (in order): (t_p, exact P(output > t_p)), for ``output_tail``."""

    @property
    def tail_tokens(self) -> tuple[int, ...]:
        """The thresholds t_p a run counts each batch's outputs above (`sim.des.run.Run`)."""
        return tuple(t for t, _ in self.tails)

    def names(self, key: str = "mean") -> tuple[str, ...]:
        """The controls of statistic `key` ("mean", "p50" … "p99"), in the fit's order."""
        out = []
        if self.rate_rps:
            out.append("arrival_span")
        if self.output_mean is not None:
            out.append("output_tail" if key in TAIL_QS and self.tails else "output_tokens")
        if self.prompt_mean is not None:
            out.append("prompt_tokens")
        return tuple(out)


def control_plan(design) -> ControlPlan | None:
    """The controls for a batch-means run of `design`; None unless an LLM is on the path.

    Token controls need token counts that vary (a fixed count has no variance to explain) and
    drawn from the classes (not a trace); the arrival control needs open-loop Poisson traffic
    at one constant rate.
    """
    try:
        kinds = {design.component(c).kind for c in design.reachable()}
    except Exception:  # a design the engine would refuse anyway
        return None
    if not kinds & LLM_KINDS:
        return None
    wl = design.workload
    if getattr(wl, "trace", None) is not None:
        return None  # replayed requests carry the trace's tokens, not draws from the classes
    classes = wl.request_classes()
    out = _mixture_mean(classes, "output_tokens")
    prompt = _mixture_mean(classes, "prompt_tokens")
    arrivals = getattr(wl, "arrivals", None)  # bursty processes (sim.ops.traffic) are not Poisson
    poisson = arrivals is None or arrivals.process == "poisson"
    rate = None if wl.closed_loop or not poisson else float(wl.peak_rps)
    tails: tuple = ()
    if out is not None:
        tails = tuple(_tail_point(classes, q) for q in TAIL_QS.values())
        if any(t is None for t in tails):
            tails = ()
    plan = ControlPlan(rate_rps=rate or None, output_mean=out, prompt_mean=prompt, tails=tails)
    return plan if plan.names() else None


def _tail_point(classes, q: float) -> tuple[int, float] | None:
    """(t, P(output > t)) with t the smallest drawn count whose CDF reaches q; None when some
    class's distribution has no known CDF (then no quantile controls at all)."""
    total = sum(c.share for c in classes)

    def sf(t: int) -> float | None:
        acc = 0.0
        for c in classes:
            p = drawn_count_sf(c.output_tokens, t)
            if p is None:
                return None
            acc += c.share * p
        return acc / total

    lo, hi = 1, 2
    while (v := sf(hi)) is not None and v > 1 - q:
        lo, hi = hi, hi * 2
        if hi > 1 << 40:
            return None
    if v is None:
        return None
    while hi - lo > 1:  # smallest t with P(K > t) ≤ 1 − q
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if sf(mid) > 1 - q else (lo, mid)
    t = lo if sf(lo) <= 1 - q else hi
    return t, sf(t)


def drawn_count_sf(dist, t: int) -> float | None:
    """P(max(1, round(X)) > t) for an integer t ≥ 1: P(X ≥ t + ½) (None: no known CDF)."""
    if dist.dist == "fixed":
        return 1.0 if _fixed(dist) > t else 0.0
    cdf = _cdf(dist)
    return None if cdf is None else 1.0 - cdf(t + 0.5)


def _mixture_mean(classes, attr: str) -> float | None:
    dists = [getattr(c, attr) for c in classes]
    if all(d.dist == "fixed" for d in dists) and len({_fixed(d) for d in dists}) <= 1:
        return None  # every request carries the same count: nothing to control for
    total = sum(c.share for c in classes)
    return sum(c.share * drawn_count_mean(getattr(c, attr)) for c in classes) / total


def _fixed(d) -> int:
    return max(1, int(round(d.expected())))


def drawn_count_mean(dist, max_terms: int = 200_000) -> float:
    """E[max(1, round(X))]: the exact mean of the counts the workload draws (`sample_int`).

    E[K] = 1 + Σ_{k≥1} P(X ≥ k + ½), summed until the tail is negligible; beyond `max_terms`
    (means of hundreds of thousands of tokens) the continuous mean is used, whose rounding
    bias is then below 1e-5 relative. Kinds without a known CDF fall back to the mean.
    """
    if dist.dist == "fixed":
        return float(_fixed(dist))
    cdf = _cdf(dist)
    if cdf is None:
        return float(dist.expected())
    hi = dist.quantile(1 - 1e-12) if dist.dist != "empirical" else max(dist.values)
    if not math.isfinite(hi) or hi > max_terms:
        return float(dist.expected())
    total = 1.0
    if dist.dist == "lognormal":
        # `_cdf`'s lognormal written out (NormalDist.cdf is 0.5·(1 + erf(z/√2))): the same
        # floats in the same order, without two calls per term — the sum runs to the
        # 1 − 1e-12 quantile (~50,000 terms for the library's prompts), ~0.1 s of every run.
        from components.distributions import _lognormal_params

        mu, s = _lognormal_params(dist.mean, dist.p95)
        # 1 − ½(1 + erf(((log(k + ½) − μ)/σ)/√2)) for k = 1, 2, …, each step a C map (the same
        # operations on the same floats; + and × commute bit for bit) and the terms added in
        # order by reduce (sum() compensates from Python 3.12 on): ~5× faster than the loop.
        ks = map(_add, repeat(0.5), range(1, int(hi) + 2))
        z = map(_truediv, map(_truediv, map(_sub, map(math.log, ks), repeat(mu)), repeat(s)), repeat(_SQRT2))
        terms = map(_sub, repeat(1.0), map(_mul, repeat(0.5), map(_add, repeat(1.0), map(math.erf, z))))
        return reduce(_add, terms, total)
    for k in range(1, int(hi) + 2):
        total += 1.0 - cdf(k + 0.5)
    return total


def _cdf(dist):
    """P(X < x) for the count kinds of `components.distributions` (None when unknown)."""
    kind = dist.dist
    if kind == "lognormal":
        from statistics import NormalDist

        from components.distributions import _lognormal_params

        mu, s = _lognormal_params(dist.mean, dist.p95)
        nd = NormalDist()
        return lambda x: nd.cdf((math.log(x) - mu) / s) if x > 0 else 0.0
    if kind == "exponential":
        m = dist.mean
        return lambda x: 1.0 - math.exp(-x / m) if x > 0 else 0.0
    if kind == "uniform":
        lo, hi = dist.low, dist.high
        if hi <= lo:
            return lambda x: 1.0 if x > lo else 0.0
        return lambda x: min(1.0, max(0.0, (x - lo) / (hi - lo)))
    if kind == "empirical":
        vals = sorted(dist.values)
        n = len(vals)
        from bisect import bisect_left

        return lambda x: bisect_left(vals, x) / n
    return None


def batch_controls(plan: ControlPlan | None, batches, key: str = "mean") -> list[list[float]] | None:
    """One row of mean-zero controls per batch for statistic `key`, in `plan.names(key)`
    order; None when any batch lacks its arrival totals (e.g. a run cut short before its
    successor batch opened)."""
    if plan is None or not batches:
        return None
    tail = list(TAIL_QS).index(key) if key in TAIL_QS and plan.tails else None
    rows = []
    for b in batches:
        tot = getattr(b, "arrivals_ctl", None)
        if tot is None:
            return None
        n, span, sum_out, sum_prompt, above = tot
        if n <= 0 or (tail is not None and len(above) != len(plan.tails)):
            return None
        row = []
        if plan.rate_rps:
            row.append(span * plan.rate_rps / n - 1.0)
        if tail is not None:
            row.append(above[tail] / n - plan.tails[tail][1])
        elif plan.output_mean is not None:
            row.append(sum_out / n - plan.output_mean)
        if plan.prompt_mean is not None:
            row.append(sum_prompt / n - plan.prompt_mean)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class CVFit:
    """A control-variate estimate of a mean over batches, next to the plain batch mean."""

    estimate: float
    half_width: float  # 95 %, t with `df` degrees of freedom (inf when it cannot be formed)
    df: int
    used: tuple[str, ...]  # the controls in the fit (empty: the plain batch mean)
    r2: float  # share of the batch-to-batch variance the controls explain
    plain_estimate: float
    plain_half_width: float

    @property
    def variance_ratio(self) -> float | None:
        """(plain half-width / control-variate half-width)²: how many times fewer batches the
        controls need for the same interval (t quantiles included)."""
        if not self.used or not (self.half_width > 0) or math.isinf(self.plain_half_width):
            return None
        return (self.plain_half_width / self.half_width) ** 2


def cv_fit(ys: list[float], xs: list[list[float]] | None, names: tuple[str, ...] = (),
           min_df: int = MIN_DF) -> CVFit:
    """Intercept of the least-squares fit ys ≈ b0 + xs·β, with its 95 % t half-width.

    Controls are dropped (last first) while the residual degrees of freedom k − 1 − q would be
    below `min_df` (`MIN_DF` for a result; a stopping rule may look earlier with fewer, its
    wider t quantile making it cautious) or the fit is singular (a control that did not vary);
    with none left the plain batch mean and its t-interval are returned.
    """
    k = len(ys)
    plain = sum(ys) / k if k else float("nan")
    plain_hw = half_width(ys)
    q = len(xs[0]) if xs else 0
    q = min(q, max(0, k - 1 - min_df))
    while q > 0:
        fit = _ols_intercept(ys, [row[:q] for row in xs])  # type: ignore[index]
        if fit is not None:
            b0, se, r2 = fit
            df = k - 1 - q
            return CVFit(b0, t_quantile(df) * se, df, tuple(names[:q]), r2, plain, plain_hw)
        q -= 1
    return CVFit(plain, plain_hw, k - 1, (), 0.0, plain, plain_hw)


def _ols_intercept(ys: list[float], xs: list[list[float]]) -> tuple[float, float, float] | None:
    """(intercept, its standard error, R²) of OLS with an intercept; None when singular.

    Centred form: β = S⁻¹·sxy with S the centred cross-products of the controls; the
    intercept is ȳ − x̄·β and Var = s²·(1/k + x̄ᵀS⁻¹x̄).
    """
    k, q = len(ys), len(xs[0])
    ybar = sum(ys) / k
    xbar = [sum(r[j] for r in xs) / k for j in range(q)]
    # Standardised columns: the pivot test below compares like with like (a relative arrival
    # span of ~1e-2 next to token means of ~1e1); the intercept does not depend on the scale.
    sd = [math.sqrt(sum((r[j] - xbar[j]) ** 2 for r in xs) / k) for j in range(q)]
    if any(not (s > 1e-12 * (1.0 + abs(m))) for s, m in zip(sd, xbar)):
        return None  # a control that did not vary
    dx = [[(r[j] - xbar[j]) / sd[j] for j in range(q)] for r in xs]
    xbar = [m / s for m, s in zip(xbar, sd)]
    dy = [y - ybar for y in ys]
    S = [[sum(d[a] * d[b] for d in dx) for b in range(q)] for a in range(q)]
    sxy = [sum(d[a] * e for d, e in zip(dx, dy)) for a in range(q)]
    inv = _inverse(S)
    if inv is None:
        return None
    beta = [sum(inv[a][b] * sxy[b] for b in range(q)) for a in range(q)]
    b0 = ybar - sum(xbar[a] * beta[a] for a in range(q))
    sst = sum(e * e for e in dy)
    sse = sum((e - sum(d[a] * beta[a] for a in range(q))) ** 2 for d, e in zip(dx, dy))
    s2 = sse / (k - 1 - q)
    quad = sum(xbar[a] * inv[a][b] * xbar[b] for a in range(q) for b in range(q))
    se = math.sqrt(max(0.0, s2 * (1.0 / k + quad)))
    r2 = 1.0 - sse / sst if sst > 0 else 0.0
    return b0, se, r2


def _inverse(S: list[list[float]]) -> list[list[float]] | None:
    """Gauss–Jordan inverse with partial pivoting; None when (numerically) singular."""
    n = len(S)
    scale = max((abs(S[i][i]) for i in range(n)), default=0.0)
    if scale <= 0:
        return None
    M = [list(row) + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(S)]
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(M[r][c]))
        if abs(M[piv][c]) <= 1e-10 * scale:
            return None
        M[c], M[piv] = M[piv], M[c]
        f = M[c][c]
        M[c] = [v / f for v in M[c]]
        for r in range(n):
            if r != c and M[r][c] != 0.0:
                g = M[r][c]
                M[r] = [a - g * b for a, b in zip(M[r], M[c])]
    return [row[n:] for row in M]
