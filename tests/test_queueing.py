"""Queueing formulas against published values and against each other's special cases."""

from __future__ import annotations

import math

import pytest

from sim.twin import queueing as qt


def _erlang_b_plain(c: int, a: float) -> float:
    """The textbook recursion without shortcuts, as the reference."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


# --- Erlang B / C -------------------------------------------------------------------------------


def test_erlang_c_published_value_c10_a8():
    # Erlang C tables (e.g. Gross & Harris; any call-centre table): c = 10 agents, 8 Erlangs -> 0.409.
    assert qt.erlang_c(10, 8.0) == pytest.approx(0.4092, abs=5e-5)


def test_erlang_c_small_cases_by_hand():
    # M/M/1: P(wait) = rho.  M/M/2: C = 2ρ²/(1 + ρ) -> 1/3 at ρ = 0.5.
    assert qt.erlang_c(1, 0.7) == pytest.approx(0.7, rel=1e-12)
    assert qt.erlang_c(2, 1.0) == pytest.approx(1 / 3, rel=1e-12)
    # Erlang B published: B(5, 3) = 0.1101 (Erlang B table).
    assert qt.erlang_b(5, 3.0) == pytest.approx(0.1101, abs=5e-5)


@pytest.mark.parametrize("c,a", [(5000, 4900.0), (10_000, 9990.0), (10_000, 9500.0), (3000, 2950.0)])
def test_erlang_b_large_c_matches_plain_recursion(c, a):
    assert qt.erlang_b(c, a) == pytest.approx(_erlang_b_plain(c, a), rel=1e-9)


def test_erlang_c_large_c_is_stable_and_sensible():
    pw = qt.erlang_c(10_000, 9_900.0)
    assert 0 < pw < 1 and math.isfinite(pw)
    assert qt.erlang_c(10_000, 100.0) == 0.0  # far below capacity nobody waits
    assert qt.erlang_c(10, 10.0) == 1.0 and qt.erlang_c(10, 12.0) == 1.0


# --- M/M/c ---------------------------------------------------------------------------------------


def test_mm1_wait_is_rho_over_mu_minus_lambda():
    lam, mu = 7.0, 10.0
    rho = lam / mu
    assert qt.mmc_mean_wait(lam, mu, 1) == pytest.approx(rho / (mu - lam), rel=1e-12)
    assert qt.mmc_mean_response(lam, mu, 1) == pytest.approx(1 / (mu - lam), rel=1e-12)
    assert qt.mmc_mean_queue_len(lam, mu, 1) == pytest.approx(rho * rho / (1 - rho), rel=1e-12)


def test_mmc_queue_len_is_littles_law():
    lam, mu, c = 100.0, 12.0, 10
    assert qt.mmc_mean_queue_len(lam, mu, c) == pytest.approx(lam * qt.mmc_mean_wait(lam, mu, c), rel=1e-12)
    pw = qt.erlang_c(c, lam / mu)
    rho = lam / (c * mu)
    assert qt.mmc_mean_queue_len(lam, mu, c) == pytest.approx(pw * rho / (1 - rho), rel=1e-12)


def test_unstable_gives_infinity():
    assert math.isinf(qt.mmc_mean_wait(12, 1, 10))
    assert math.isinf(qt.mmc_response_quantile(0.95, 12, 1, 10))
    assert math.isinf(qt.mg1_mean_wait(2, 0.5, 1))
    assert math.isinf(qt.allen_cunneen_wait(11, 1.0, 0.5, 10))


def test_wait_quantile_inverts_the_wait_tail():
    lam, mu, c = 100.0, 12.0, 10
    t = qt.mmc_wait_quantile(0.95, lam, mu, c)
    pw = qt.erlang_c(c, lam / mu)
    assert pw * math.exp(-(c * mu - lam) * t) == pytest.approx(0.05, rel=1e-9)
    # Fewer than 5 % wait at light load: the 95th percentile wait is zero.
    assert qt.mmc_wait_quantile(0.95, 10.0, 12.0, 10) == 0.0


@pytest.mark.parametrize("lam,mu,c", [(100.0, 12.0, 10), (9.0, 10.0, 1), (665.0, 10.0, 70), (50.0, 12.0, 10)])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_response_cdf_at_its_quantile_gives_q(lam, mu, c, q):
    t = qt.mmc_response_quantile(q, lam, mu, c)
    assert qt.mmc_response_cdf(t, lam, mu, c) == pytest.approx(q, abs=1e-9)


def test_mm1_response_quantile_is_exponential():
    lam, mu = 8.0, 10.0
    for q in (0.5, 0.95, 0.99):
        assert qt.mmc_response_quantile(q, lam, mu, 1) == pytest.approx(-math.log(1 - q) / (mu - lam), rel=1e-9)


def test_response_cdf_special_case_theta_equals_mu():
    # c·μ − λ = μ: wait (when it happens) and service are both Exp(μ) -> Erlang-2 tail.
    c, mu = 2, 10.0
    lam = (c - 1) * mu
    pw = qt.erlang_c(c, lam / mu)
    for t in (0.01, 0.1, 0.5):
        by_hand = 1 - ((1 - pw) * math.exp(-mu * t) + pw * math.exp(-mu * t) * (1 + mu * t))
        assert qt.mmc_response_cdf(t, lam, mu, c) == pytest.approx(by_hand, rel=1e-12)
        # Continuous across the special case: a hair away on either side agrees.
        for eps in (1e-7, -1e-7):
            near = qt.mmc_response_cdf(t, lam * (1 + eps), mu, c)
            assert near == pytest.approx(by_hand, rel=1e-5)


def test_response_mean_from_cdf_matches_formula():
    lam, mu, c = 100.0, 12.0, 10
    # ∫ (1 − F) dt by the trapezoid rule on a fine grid.
    h, total, t = 1e-4, 0.0, 0.0
    prev = 1 - qt.mmc_response_cdf(0.0, lam, mu, c)
    while t < 3.0:
        t += h
        cur = 1 - qt.mmc_response_cdf(t, lam, mu, c)
        total += 0.5 * (prev + cur) * h
        prev = cur
    assert total == pytest.approx(qt.mmc_mean_response(lam, mu, c), rel=1e-4)


# --- M/G/1 and Allen–Cunneen -----------------------------------------------------------------------


def test_pollaczek_khinchine_scv0_is_md1():
    lam, s = 8.0, 0.1
    rho = lam * s
    assert qt.mg1_mean_wait(lam, s, 0.0) == pytest.approx(rho * s / (2 * (1 - rho)), rel=1e-12)
    # SCV 1 is M/M/1.
    assert qt.mg1_mean_wait(lam, s, 1.0) == pytest.approx(qt.mmc_mean_wait(lam, 1 / s, 1), rel=1e-12)


@pytest.mark.parametrize("c", [1, 2, 10, 70])
def test_allen_cunneen_reduces_to_erlang_c_for_scv1(c):
    mu = 10.0
    lam = 0.85 * c * mu
    assert qt.allen_cunneen_wait(lam, 1 / mu, 1.0, c) == pytest.approx(qt.mmc_mean_wait(lam, mu, c), rel=1e-12)


def test_allen_cunneen_c1_is_pollaczek_khinchine():
    for scv in (0.0, 0.3, 2.5):
        assert qt.allen_cunneen_wait(5.0, 0.15, scv, 1) == pytest.approx(qt.mg1_mean_wait(5.0, 0.15, scv), rel=1e-12)


def test_allen_cunneen_scales_with_variability():
    w_det = qt.allen_cunneen_wait(90.0, 0.1, 0.0, 10)
    w_exp = qt.allen_cunneen_wait(90.0, 0.1, 1.0, 10)
    assert w_det == pytest.approx(w_exp / 2, rel=1e-12)


# --- helpers: approximate wait quantile, Clark's max, gamma ------------------------------------------


def test_wait_quantile_approx_is_exact_for_mmc():
    lam, mu, c = 100.0, 12.0, 10
    w = qt.mmc_mean_wait(lam, mu, c)
    pw = qt.erlang_c(c, lam / mu)
    assert qt.wait_quantile_approx(0.95, w, pw) == pytest.approx(qt.mmc_wait_quantile(0.95, lam, mu, c), rel=1e-12)


def test_clark_max_of_two_standard_normals():
    m, v = qt.clark_max(0.0, 1.0, 0.0, 1.0)
    assert m == pytest.approx(1 / math.sqrt(math.pi), rel=1e-12)
    assert v == pytest.approx(1 - 1 / math.pi, rel=1e-12)
    # Deterministic branches: the larger one.
    assert qt.clark_max(10.0, 0.0, 50.0, 0.0) == (50.0, 0.0)


def test_gamma_quantile_special_cases():
    # Shape 1 is exponential; shape 2 is Erlang-2 whose CDF we know in closed form.
    assert qt.gamma_quantile(0.95, 2.0, 4.0) == pytest.approx(-2.0 * math.log(0.05), rel=1e-9)
    x = qt.gamma_quantile(0.9, 2.0, 2.0)  # shape 2, scale 1
    assert 1 - math.exp(-x) * (1 + x) == pytest.approx(0.9, abs=1e-9)
    # Huge shape (Wilson–Hilferty branch) is close to the normal quantile.
    assert qt.gamma_quantile(0.95, 100.0, 1.0) == pytest.approx(100 + 1.6449, abs=0.02)
    assert qt.gamma_cdf(qt.gamma_quantile(0.99, 3.0, 1.5), 3.0, 1.5) == pytest.approx(0.99, abs=1e-9)


def _gamma_quantile_bisection(q: float, mean: float, var: float) -> float:
    """The bisection `gamma_quantile` used until 2026-12-02 (the reference for its Newton)."""
    k, theta = mean * mean / var, var / mean
    lo, hi = 0.0, mean
    while qt._gammp(k, hi / theta) < q:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if qt._gammp(k, mid / theta) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("shape", [0.05, 0.3, 1.0, 2.5, 10.0, 80.0, 999.0])
def test_gamma_quantile_newton_gives_the_bisections_root(shape):
    # Shapes from a heavy-tailed SCV 20 to just below the Wilson–Hilferty switch; q from the
    # median to p99.9. The bisection's own tolerance is 1e-12 relative.
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        mean = 0.37
        var = mean * mean / shape
        assert qt.gamma_quantile(q, mean, var) == pytest.approx(_gamma_quantile_bisection(q, mean, var), rel=1e-11)
