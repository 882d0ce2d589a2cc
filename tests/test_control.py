"""Control variates in the batch-means estimator: the fit, the exact control means, coverage."""

import math
import random

import pytest

from components.distributions import ExponentialCount, FixedCount, LogNormalCount, UniformCount
from sim.des.control import MIN_DF, ControlPlan, batch_controls, cv_fit, drawn_count_mean


def test_cv_fit_one_control_hand_worked():
    # y = 10 + 2x + e with x = -3..3 and e = (1, -1, 0, 0, 0, 1, -1): by hand,
    # x̄ = 0, Sxx = 28, Σxe = −3 + 2 + 0 + 0 + 0 + 2 − 3 = −2, so Sxy = 56 − 2 → β = 54/28;
    # ȳ = 10, intercept = ȳ − β·x̄ = 10; SSE = Σe² − (Σxe)²/Sxx = 4 − 4/28,
    # s² = SSE / (7 − 2), se = √(s²/7) (x̄ = 0).
    xs = [-3, -2, -1, 0, 1, 2, 3]
    es = [1, -1, 0, 0, 0, 1, -1]
    ys = [10 + 2 * x + e for x, e in zip(xs, es)]
    fit = cv_fit(ys, [[x] for x in xs], ("c",))
    assert fit.used == ("c",) and fit.df == 5
    assert fit.estimate == pytest.approx(10.0)
    se = math.sqrt((4 - 4 / 28) / 5 / 7)
    assert fit.half_width == pytest.approx(2.571 * se, rel=1e-9)  # t(5) 97.5 % = 2.571
    assert fit.plain_estimate == pytest.approx(10.0)
    assert fit.variance_ratio > 10  # the control explains the slope: most of the variance


def test_cv_fit_centres_on_the_known_mean_of_the_control():
    # Controls that happen to average +1 in the sample: the estimate moves by −β·x̄.
    xs = [0.0, 1.0, 2.0, 1.0, 2.0, 0.0, 1.0, 1.0]
    ys = [5 + 3 * x for x in xs]
    fit = cv_fit(ys, [[x] for x in xs], ("c",))
    assert fit.estimate == pytest.approx(5.0)  # the plain mean is 5 + 3·1 = 8
    assert fit.plain_estimate == pytest.approx(8.0)
    assert fit.half_width == pytest.approx(0.0, abs=1e-9)


def test_cv_fit_drops_controls_it_cannot_use():
    ys = [1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0]
    # A constant control (no variance) is dropped; with it the plain mean is returned.
    fit = cv_fit(ys, [[0.5] for _ in ys], ("flat",))
    assert fit.used == () and fit.estimate == pytest.approx(2.0) and fit.half_width == fit.plain_half_width
    # Too few batches for three controls and MIN_DF residual degrees of freedom: fewer controls.
    rng = random.Random(1)
    xs = [[rng.random(), rng.random(), rng.random()] for _ in range(MIN_DF + 3)]
    ys = [rng.random() for _ in xs]
    fit = cv_fit(ys, xs, ("a", "b", "c"))
    assert fit.used == ("a", "b") and fit.df == MIN_DF
    # A smaller min_df (an earlier, more cautious look) keeps all three controls.
    early = cv_fit(ys, xs, ("a", "b", "c"), min_df=2)
    assert early.used == ("a", "b", "c") and early.df == MIN_DF + 3 - 1 - 3


def test_lognormal_drawn_count_mean_is_the_cdf_sum():
    # The written-out lognormal sum in drawn_count_mean is the generic CDF sum, float for float.
    from sim.des.control import _cdf

    d = LogNormalCount(mean=300, p95=800)
    cdf, total = _cdf(d), 1.0
    for k in range(1, int(d.quantile(1 - 1e-12)) + 2):
        total += 1.0 - cdf(k + 0.5)
    assert drawn_count_mean(d) == total


def test_drawn_count_means_are_exact():
    # Uniform(0.2, 3.7) rounded, at least 1: K = 1 on [0.2, 1.5), 2 on [1.5, 2.5), 3 on
    # [2.5, 3.5), 4 on [3.5, 3.7) → E[K] = (1·1.3 + 2·1 + 3·1 + 4·0.2) / 3.5.
    assert drawn_count_mean(UniformCount(low=0.2, high=3.7)) == pytest.approx(7.1 / 3.5, rel=1e-12)
    # Exponential with mean m: P(K > k) = P(X ≥ k + ½) = e^{−(k+½)/m} for k ≥ 1, so
    # E[K] = 1 + e^{−1.5/m} / (1 − e^{−1/m}); for m = 0.7 the clip at 1 matters (E[X] = 0.7).
    m = 0.7
    assert drawn_count_mean(ExponentialCount(mean=m)) == pytest.approx(1 + math.exp(-1.5 / m) / (1 - math.exp(-1 / m)), rel=1e-9)
    assert drawn_count_mean(FixedCount(value=7.4)) == 7.0
    # A lognormal of mean 250: rounding moves the mean by far less than a token.
    assert drawn_count_mean(LogNormalCount(mean=250, p95=600)) == pytest.approx(250, abs=0.05)
    # …and the draws agree with it (a loose Monte Carlo check: 4 standard errors).
    d = LogNormalCount(mean=20, p95=50)
    rng = random.Random(5)
    xs = [d.sample_int(rng) for _ in range(40_000)]
    m = sum(xs) / len(xs)
    se = (sum((x - m) ** 2 for x in xs) / len(xs)) ** 0.5 / len(xs) ** 0.5
    assert abs(m - drawn_count_mean(d)) < 4 * se


class _B:
    def __init__(self, ctl):
        self.arrivals_ctl = ctl


def test_batch_controls_are_centred_on_their_known_means():
    tails = ((10, 0.5), (20, 0.1), (30, 0.05), (40, 0.01))  # (t_p, P(output > t_p)) for p50 … p99
    plan = ControlPlan(rate_rps=10.0, output_mean=100.0, prompt_mean=50.0, tails=tails)
    batch = _B((1000, 110.0, 99_000, 51_000, (480, 110, 40, 10)))
    # 1000 arrivals in 110 s at 10/s: +10 %; 99 output and 51 prompt tokens on average.
    assert batch_controls(plan, [batch]) == [pytest.approx([0.1, -1.0, 1.0])]
    assert plan.names("mean") == ("arrival_span", "output_tokens", "prompt_tokens")
    # The p95's quantile control: 4.0 % of outputs above t_95 where 5 % are expected.
    assert batch_controls(plan, [batch], "p95") == [pytest.approx([0.1, -0.01, 1.0])]
    assert plan.names("p95") == ("arrival_span", "output_tail", "prompt_tokens")
    assert batch_controls(plan, [_B(None)]) is None  # a batch cut short: no controls at all


def test_tail_thresholds_are_the_drawn_quantiles():
    from designs.model import RequestClass
    from sim.des.control import _tail_point

    # Exponential(mean 100) rounded: P(K > t) = e^{−(t + ½)/100}; the smallest t with
    # P ≤ 5 % is ⌈100·ln 20 − ½⌉ = ⌈299.07⌉ = 300.
    cls = [RequestClass(name="c", output_tokens=ExponentialCount(mean=100))]
    t, p = _tail_point(cls, 0.95)
    assert t == 300 and p == pytest.approx(math.exp(-300.5 / 100), rel=1e-12)
    # A mix: 80 % of that and 20 % fixed at 5 tokens → P(K > t) = 0.8·e^{−(t+½)/100} ≤ 5 %
    # needs t ≥ 100·ln 16 − ½ = 276.8 → 277.
    mix = [RequestClass(name="a", share=0.8, output_tokens=ExponentialCount(mean=100)),
           RequestClass(name="b", share=0.2, output_tokens=FixedCount(value=5))]
    t, p = _tail_point(mix, 0.95)
    assert t == 277 and p == pytest.approx(0.8 * math.exp(-277.5 / 100), rel=1e-12)


def _mm1_batches(seed: int, lam: float, mu: float, kappa: float, n_warm: int, n: int, k: int):
    """k consecutive batches of n latencies after a warm-up, with their controls. A request's
    latency is its M/M/1 queueing wait (Lindley's recursion) plus κ × its service time S: the
    part fixed when it is drawn (as an LLM answer's length is), which dominates for κ ≫ 1.
    Controls: the batch's arrival span relative to n/λ, and its mean S minus 1/μ."""
    rng = random.Random(seed)
    expo = rng.expovariate
    w = 0.0
    s = expo(mu)
    for _ in range(n_warm):
        a = expo(lam)
        w = max(0.0, w + s - a)
        s = expo(mu)
    out = []
    for _ in range(k):
        ys, span, tot_s = [], 0.0, 0.0
        for _ in range(n):
            ys.append(w + kappa * s)
            tot_s += s
            a = expo(lam)
            span += a
            w = max(0.0, w + s - a)
            s = expo(mu)
        ys.sort()
        pos = 0.95 * (n - 1)
        i = int(pos)
        p95 = ys[i] + (ys[i + 1] - ys[i]) * (pos - i)
        out.append((p95, sum(ys) / n, [span * lam / n - 1.0, tot_s / n - 1.0 / mu]))
    return out


def _tail(y: float, lam: float, mu: float, kappa: float) -> float:
    """P(W + κS > y) for the M/M/1 wait W (0 w.p. 1 − ρ, else exponential with rate μ − λ)
    and an independent S ~ exponential(μ) (FIFO: a request's wait does not depend on its own
    service): with a = μ/κ, b = μ − λ, P(E_b + E_a > y) = (a·e^{−by} − b·e^{−ay}) / (a − b)."""
    rho, a, b = lam / mu, mu / kappa, mu - lam
    return (1 - rho) * math.exp(-a * y) + rho * (a * math.exp(-b * y) - b * math.exp(-a * y)) / (a - b)


def test_control_variate_intervals_cover_the_exact_answer():
    # ρ = 0.5, κ = 5: the exact mean is ρ/(μ − λ) + κ/μ = 6 and the exact p95 solves
    # P(latency > y) = 0.05 (bisection on `_tail`: 16.41). 150 seeds × 10 batches of 1,000:
    # the 95 % intervals must cover about 95 % of the time (binomial sd 1.8 %) and be
    # narrower than plain batch means of the same batches (median variance ratio; measured
    # 1.3 for the p95 and 4.4 for the mean).
    lam, mu, kappa = 0.5, 1.0, 5.0
    lo, hi = 0.0, 100.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _tail(mid, lam, mu, kappa) > 0.05 else (lo, mid)
    truth = {"p95": lo, "mean": lam / mu / (mu - lam) + kappa / mu}
    assert truth["mean"] == 6.0 and truth["p95"] == pytest.approx(16.408, abs=1e-3)
    hits = {"p95": 0, "mean": 0}
    ratio = {"p95": [], "mean": []}
    reps = 150
    for seed in range(reps):
        rows = _mm1_batches(seed, lam, mu, kappa, 200, 1000, 10)
        xs = [x for *_, x in rows]
        for j, key in enumerate(("p95", "mean")):
            fit = cv_fit([r[j] for r in rows], xs, ("arrival_span", "service"))
            hits[key] += abs(fit.estimate - truth[key]) <= fit.half_width
            ratio[key].append(fit.variance_ratio)
    for key in hits:
        assert 0.89 <= hits[key] / reps <= 0.99, (key, hits[key] / reps)
    assert sorted(ratio["p95"])[reps // 2] > 1.15
    assert sorted(ratio["mean"])[reps // 2] > 3


def _llm_design(rps: float = 30.0):
    from designs.model import Design

    return Design.model_validate({
        "name": "small_llm", "workload": {"arrival_rps": rps, "classes": [{
            "name": "chat", "prompt_tokens": {"dist": "lognormal", "mean": 400, "p95": 1000},
            "output_tokens": {"dist": "lognormal", "mean": 60, "p95": 150}}]},
        "components": [{"id": "llm", "kind": "llm_server", "model": "llama-3.1-8b", "replicas": 1, "max_batch": 64}],
        "entry": "llm", "flow": []})


def test_simulate_reports_the_variance_reduction_and_is_reproducible():
    from sim.des.engine import simulate

    d = _llm_design()
    runs = [simulate(d, seed=s, max_requests=24_000, max_seconds=600) for s in (3, 4)]
    for r in runs:
        vr = r.variance_reduction
        assert vr is not None and vr.controls == ["arrival_span", "output_tail", "prompt_tokens"]
        assert "control variates" in r.ci_method
        # A request's latency is its wait, its prefill and its own output × TPOT: the
        # controls explain a good part of the batch-to-batch variation of the p95.
        assert vr.r_squared_p95 > 0.4
        assert vr.requests_needed <= vr.requests_needed_without
        # (relative half-widths: each against its own estimate of the p95, which differ a little)
        assert r.precision_achieved == pytest.approx(vr.precision_without / vr.variance_ratio_p95 ** 0.5, rel=0.05)
        lo, hi = r.latency_ms_ci95.p95
        assert lo < r.latency_ms.p95 < hi
    assert sum(r.variance_reduction.variance_ratio_p95 for r in runs) / len(runs) > 1.2
    again = simulate(d, seed=3, max_requests=24_000, max_seconds=600)
    ja, jb = runs[0].to_json(), again.to_json()
    ja.pop("wall_s"), jb.pop("wall_s")
    assert ja == jb  # same seed, same result


def test_no_controls_without_an_llm_on_the_path():
    from designs.model import Design
    from sim.des.control import control_plan

    d = Design.model_validate({"name": "svc", "workload": {"arrival_rps": 10},
                               "components": [{"id": "s", "kind": "service"}], "entry": "s", "flow": []})
    assert control_plan(d) is None
    assert control_plan(_llm_design()).names() == ("arrival_span", "output_tokens", "prompt_tokens")


def test_bursty_arrivals_get_no_arrival_control():
    from designs.model import Arrivals
    from sim.des.control import control_plan

    d = _llm_design()
    bursty = d.model_copy(update={"workload": d.workload.model_copy(update={"arrivals": Arrivals(process="mmpp")})})
    assert control_plan(bursty).names() == ("output_tokens", "prompt_tokens")
