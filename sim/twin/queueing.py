"""Queueing formulas: exact M/M/c results and the standard approximations, as pure functions.

Units: rates in 1/s, times in seconds (any consistent unit works). ``c`` is the number of
parallel servers, ``lam`` the arrival rate, ``mu`` the service rate of one server, ``a = lam/mu``
the offered load in Erlangs and ``rho = a/c`` the utilisation. Unstable inputs (``rho >= 1``)
give ``math.inf`` waits rather than an exception: the analytic twin reports them as such.

Usage::

    >>> from sim.twin.queueing import erlang_c, mmc_mean_wait, mmc_response_quantile
    >>> round(erlang_c(10, 8.0), 4)                 # P(wait) for M/M/10 at 8 Erlangs
    0.4092
    >>> round(mmc_mean_wait(100, 12, 10) * 1000, 2)  # ms; the issue's M/M/10 at rho 0.8333
    24.38
    >>> round(mmc_response_quantile(0.95, 100, 12, 10) * 1000, 1)
    291.9

References:
  * Gross, Shortle, Thompson & Harris, *Fundamentals of Queueing Theory*, 4th ed. (2008),
    §2.3 (M/M/c), §2.2 (M/M/1), §5.1.1 (Pollaczek–Khinchine).
  * Kleinrock, *Queueing Systems, Vol. 1* (1975), §3.5 (Erlang C), §5.6 (M/G/1).
  * Allen, *Probability, Statistics and Queueing Theory*, 2nd ed. (1990), §6.3 (the
    Allen–Cunneen GI/G/c approximation).
  * Clark, "The greatest of a finite set of random variables", Operations Research 9 (1961).
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = [
    "erlang_b",
    "erlang_c",
    "mmc_mean_wait",
    "mmc_mean_response",
    "mmc_mean_queue_len",
    "mmc_wait_quantile",
    "mmc_response_cdf",
    "mmc_response_quantile",
    "mg1_mean_wait",
    "allen_cunneen_wait",
    "wait_quantile_approx",
    "clark_max",
    "gamma_cdf",
    "gamma_quantile",
    "mixture_cdf",
    "mixture_quantile",
]

_N = NormalDist()


def erlang_b(c: int, a: float) -> float:
    """Erlang B: blocking probability of M/M/c/c at offered load ``a`` Erlangs.

    Recursion B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)) (Gross & Harris §2.6): every term lies
    in (0, 1], so it is stable where the textbook sum aᶜ/c! / Σ aᵏ/k! overflows. For very large
    ``c`` two shortcuts keep it O(√a): B is below 1e-300 once c ≥ a + 40√a + 60 (the Poisson tail
    it is a ratio of), and the recursion may start at k₀ = a − 40√a with B(k₀) ≈ 1 − k₀/a,
    because each step below ``a`` shrinks an error in B by the factor k/a.
    """
    if c < 0:
        raise ValueError(f"servers must be ≥ 0, got {c}")
    if a < 0:
        raise ValueError(f"offered load must be ≥ 0, got {a}")
    if a == 0:
        return 0.0 if c > 0 else 1.0
    c = int(c)
    if c >= a + 40 * math.sqrt(a) + 60:
        return 0.0
    k0 = int(a - 40 * math.sqrt(a)) if a > 1600 else 0
    k0 = max(0, min(k0, c))
    b = 1.0 - k0 / a if k0 else 1.0
    for k in range(k0 + 1, c + 1):
        ab = a * b
        b = ab / (k + ab)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: probability an arrival waits in M/M/c, with offered load ``a = λ/μ``.

    C(c, a) = B / (1 − ρ(1 − B)), B = Erlang B(c, a), ρ = a/c (Gross & Harris eq. 2.36;
    Kleinrock §3.5). Returns 1 when ρ ≥ 1 (every arrival eventually waits).
    """
    if c <= 0:
        raise ValueError(f"servers must be ≥ 1, got {c}")
    rho = a / c
    if rho >= 1:
        return 1.0
    b = erlang_b(c, a)
    return b / (1 - rho * (1 - b))


def _check(lam: float, mu: float, c: int) -> None:
    if lam < 0 or mu <= 0 or c < 1:
        raise ValueError(f"need λ ≥ 0, μ > 0, c ≥ 1; got λ={lam}, μ={mu}, c={c}")


def mmc_mean_wait(lam: float, mu: float, c: int) -> float:
    """Mean time in queue of M/M/c: Wq = C(c, λ/μ) / (cμ − λ) (Gross & Harris eq. 2.37)."""
    _check(lam, mu, c)
    if lam >= c * mu:
        return math.inf
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmc_mean_response(lam: float, mu: float, c: int) -> float:
    """Mean time in system of M/M/c: W = Wq + 1/μ."""
    return mmc_mean_wait(lam, mu, c) + 1.0 / mu


def mmc_mean_queue_len(lam: float, mu: float, c: int) -> float:
    """Mean number waiting (not in service) in M/M/c: Lq = λ·Wq = C·ρ/(1 − ρ) (Little's law)."""
    w = mmc_mean_wait(lam, mu, c)
    return math.inf if math.isinf(w) else lam * w


def mmc_wait_quantile(q: float, lam: float, mu: float, c: int) -> float:
    """q-quantile of the M/M/c wait: P(Wq > t) = C·e^(−(cμ−λ)t) (Gross & Harris §2.3.2).

    Zero when 1 − q ≥ C (a q-fraction of arrivals find a free server), else
    t = ln(C / (1 − q)) / (cμ − λ).
    """
    _check(lam, mu, c)
    if not 0 <= q < 1:
        raise ValueError(f"quantile must be in [0, 1), got {q}")
    if lam >= c * mu:
        return math.inf
    pw = erlang_c(c, lam / mu)
    if 1 - q >= pw:
        return 0.0
    return math.log(pw / (1 - q)) / (c * mu - lam)


def _hypoexp_tail(r1: float, r2: float, t: float) -> float:
    """P(X + Y > t) for independent X ~ Exp(r1), Y ~ Exp(r2); stable for r1 ≈ r2.

    Textbook form (r1·e^(−r2 t) − r2·e^(−r1 t)) / (r1 − r2) loses every digit when r1 ≈ r2.
    With a = min, δ = |r1 − r2| it equals e^(−a t)·(1 + a·(1 − e^(−δt))/δ), whose last factor
    tends to t as δ → 0: the Erlang-2 tail e^(−μt)(1 + μt), the c·μ − λ = μ case.
    """
    a, b = (r1, r2) if r1 <= r2 else (r2, r1)
    d = b - a
    g = -math.expm1(-d * t) / d if d > 0 else t
    return math.exp(-a * t) * (1 + a * g)


def mmc_response_cdf(t: float, lam: float, mu: float, c: int) -> float:
    """P(response ≤ t) for M/M/c FIFO: response = wait + Exp(μ) service.

    The wait is 0 with probability 1 − C and Exp(θ), θ = cμ − λ, with probability C
    (Gross & Harris §2.3.2), independent of the service, so
    P(T > t) = (1 − C)·e^(−μt) + C·P(Exp(θ) + Exp(μ) > t), the second term a hypoexponential
    tail (Erlang-2 when θ = μ).
    """
    _check(lam, mu, c)
    if t <= 0:
        return 0.0
    if lam >= c * mu:
        return 0.0
    pw = erlang_c(c, lam / mu)
    theta = c * mu - lam
    tail = (1 - pw) * math.exp(-mu * t) + pw * _hypoexp_tail(theta, mu, t)
    return 1.0 - tail


def mmc_response_quantile(q: float, lam: float, mu: float, c: int) -> float:
    """q-quantile of the M/M/c response time, by bisection on :func:`mmc_response_cdf`."""
    _check(lam, mu, c)
    if not 0 <= q < 1:
        raise ValueError(f"quantile must be in [0, 1), got {q}")
    if lam >= c * mu:
        return math.inf
    if q == 0:
        return 0.0
    lo, hi = 0.0, mmc_mean_response(lam, mu, c)
    while mmc_response_cdf(hi, lam, mu, c) < q:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mmc_response_cdf(mid, lam, mu, c) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def mg1_mean_wait(lam: float, mean_s: float, scv: float) -> float:
    """Pollaczek–Khinchine mean wait of M/G/1: Wq = ρ·E[S]·(1 + c_s²) / (2(1 − ρ)).

    Equivalently λ·E[S²] / (2(1 − ρ)) with E[S²] = (1 + c_s²)·E[S]² (Kleinrock eq. 5.72;
    Gross & Harris §5.1.1). ``scv`` = c_s² = Var(S)/E[S]²: 0 gives M/D/1, 1 gives M/M/1.
    """
    if lam < 0 or mean_s < 0 or scv < 0:
        raise ValueError(f"need λ, E[S], scv ≥ 0; got {lam}, {mean_s}, {scv}")
    rho = lam * mean_s
    if rho >= 1:
        return math.inf
    return rho * mean_s * (1 + scv) / (2 * (1 - rho))


def allen_cunneen_wait(lam: float, mean_s: float, scv_service: float, c: int, scv_arrival: float = 1.0) -> float:
    """Allen–Cunneen approximation of the GI/G/c mean wait.

    Wq ≈ C(c, λ·E[S]) / (cμ − λ) · (c_a² + c_s²) / 2, μ = 1/E[S] (Allen 1990, §6.3): the
    M/M/c wait scaled by the variability of arrivals and service. Exact for M/M/c
    (c_a² = c_s² = 1) and for M/G/1 (it is then Pollaczek–Khinchine).
    """
    if c < 1 or mean_s <= 0:
        raise ValueError(f"need c ≥ 1 and E[S] > 0; got c={c}, E[S]={mean_s}")
    mu = 1.0 / mean_s
    if lam >= c * mu:
        return math.inf
    return erlang_c(c, lam * mean_s) / (c * mu - lam) * (scv_arrival + scv_service) / 2


def wait_quantile_approx(q: float, mean_wait: float, p_wait: float) -> float:
    """q-quantile of a wait that is 0 w.p. 1 − P(wait) and exponential otherwise.

    The conditional wait of GI/G/c is close to exponential with mean Wq / P(wait) in moderate
    and heavy traffic (Kingman's heavy-traffic law; exact for M/M/c), so
    t_q = (Wq / P(wait))·ln(P(wait) / (1 − q)) when P(wait) > 1 − q, else 0.
    """
    if math.isinf(mean_wait):
        return math.inf
    if p_wait <= 1 - q or mean_wait <= 0:
        return 0.0
    return mean_wait / p_wait * math.log(p_wait / (1 - q))


def clark_max(m1: float, v1: float, m2: float, v2: float) -> tuple[float, float]:
    """(mean, variance) of max(X, Y) for independent normals X ~ N(m1, v1), Y ~ N(m2, v2).

    Clark (1961): with a = √(v1 + v2), α = (m1 − m2)/a,
    E[max] = m1·Φ(α) + m2·Φ(−α) + a·φ(α),
    E[max²] = (m1² + v1)·Φ(α) + (m2² + v2)·Φ(−α) + (m1 + m2)·a·φ(α).
    Applied pairwise it is the usual moment-matching estimate of a fan-out's join time.
    """
    a2 = v1 + v2
    if a2 <= 0:
        m = max(m1, m2)
        return m, 0.0
    a = math.sqrt(a2)
    alpha = (m1 - m2) / a
    cdf, cdf_neg, pdf = _N.cdf(alpha), _N.cdf(-alpha), _N.pdf(alpha)
    mean = m1 * cdf + m2 * cdf_neg + a * pdf
    second = (m1 * m1 + v1) * cdf + (m2 * m2 + v2) * cdf_neg + (m1 + m2) * a * pdf
    return mean, max(0.0, second - mean * mean)


# --- gamma distribution (the end-to-end latency fit) -------------------------------------------


def _gammp(k: float, x: float) -> float:
    """Regularised lower incomplete gamma P(k, x): series for x < k + 1, else continued fraction.

    Numerical Recipes, 3rd ed., §6.2 (gser / gcf with the modified Lentz method).
    """
    if x <= 0:
        return 0.0
    gln = math.lgamma(k)
    if x < k + 1:
        ap, s = k, 1.0 / k
        term = s
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            s += term
            if abs(term) < abs(s) * 1e-15:
                break
        return s * math.exp(-x + k * math.log(x) - gln)
    tiny = 1e-300
    b = x + 1 - k
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - k)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return 1.0 - math.exp(-x + k * math.log(x) - gln) * h


def gamma_cdf(x: float, mean: float, var: float) -> float:
    """CDF of the gamma distribution with this mean and variance (shape m²/v, scale v/m)."""
    if var <= 0:
        return 1.0 if x >= mean else 0.0
    k, theta = mean * mean / var, var / mean
    return _gammp(k, x / theta)


def gamma_quantile(q: float, mean: float, var: float) -> float:
    """q-quantile of the gamma distribution with this mean and variance.

    Shape k = mean²/var, scale θ = var/mean. For k > 1000 the Wilson–Hilferty cube-root normal
    approximation (error < 1e-4 relative there); otherwise Newton on the exact CDF.
    """
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    if math.isnan(mean) or math.isinf(mean):
        return mean
    if var <= 0 or mean <= 0:
        return max(mean, 0.0)
    k, theta = mean * mean / var, var / mean
    if k > 1000:
        z = _N.inv_cdf(q)
        return k * theta * (1 - 1 / (9 * k) + z / (3 * math.sqrt(k))) ** 3
    lo, hi = 0.0, mean
    while _gammp(k, hi / theta) < q:
        lo, hi = hi, hi * 2
    # Newton on P(k, x/θ) = q (its derivative is the gamma density), started from the
    # Wilson–Hilferty guess and kept inside the bracket — bisection when a step would leave it.
    # Same root as a bisection to 1e-12 (tests/test_queueing.py), in ~5 CDF evaluations, not 40.
    z = _N.inv_cdf(q)
    x = k * theta * max(0.0, 1 - 1 / (9 * k) + z / (3 * math.sqrt(k))) ** 3
    if not lo < x < hi:
        x = 0.5 * (lo + hi)
    gln = math.lgamma(k)
    for _ in range(200):
        t = x / theta
        g = _gammp(k, t) - q
        if g < 0:
            lo = x
        else:
            hi = x
        dens = math.exp((k - 1) * math.log(t) - t - gln) / theta if t > 0 else 0.0
        nxt = x - g / dens if dens > 0 else 0.5 * (lo + hi)
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - x) <= 1e-13 * x or hi - lo <= 1e-12 * hi:
            return nxt
        x = nxt
    return x


# --- mixtures of gammas (the end-to-end latency of a flow with loops and branches) --------------


def _gamma_cdf_pdf(x: float, mean: float, var: float) -> tuple[float, float]:
    """(CDF, density) at x of the gamma with this mean and variance; a point mass when var = 0.
    Shape > 1000: the Wilson–Hilferty normal form, as `gamma_quantile` (the series is slow there)."""
    if var <= 0 or mean <= 0:
        return (1.0 if x >= max(mean, 0.0) else 0.0), 0.0
    if x <= 0:
        return 0.0, 0.0
    k, theta = mean * mean / var, var / mean
    if k > 1000:
        s = 1 / (9 * k)
        r = (x / (k * theta)) ** (1 / 3)
        z = (r - 1 + s) / math.sqrt(s)
        return _N.cdf(z), _N.pdf(z) * r / (3 * x * math.sqrt(s))
    t = x / theta
    return _gammp(k, t), math.exp((k - 1) * math.log(t) - t - math.lgamma(k)) / theta


def mixture_cdf(x: float, parts: list[tuple[float, float, float]]) -> float:
    """P(T ≤ x) for a mixture of gammas: parts (weight, mean, variance), weights summing to 1."""
    return sum(w * _gamma_cdf_pdf(x, m, v)[0] for w, m, v in parts)


def mixture_quantile(q: float, parts: list[tuple[float, float, float]]) -> float:
    """q-quantile of a mixture of gammas, parts (weight, mean, variance) with weights summing to 1:
    the root of Σ wᵢ·Gᵢ(t) = q (Gᵢ the gamma with part i's mean and variance; a point mass when
    its variance is 0, so a mixture of fixed times gives the discrete quantile: the smallest t
    with P(T ≤ t) ≥ q). One part: exactly `gamma_quantile`.

    Newton on the mixture's CDF from the one-gamma guess (the pooled mean and variance), inside
    a bracket that bisection keeps when a step would leave it (or at a point mass, density 0)::

        >>> round(mixture_quantile(0.95, [(0.5, 1.0, 1.0), (0.5, 1.0, 1.0)]), 6) == round(gamma_quantile(0.95, 1.0, 1.0), 6)
        True
    """
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    parts = [pt for pt in parts if pt[0] > 1e-12]
    if not parts:
        return 0.0
    if len(parts) == 1:
        return gamma_quantile(q, parts[0][1], parts[0][2])
    total = sum(w for w, _, _ in parts)
    mean = sum(w * m for w, m, _ in parts) / total
    if math.isnan(mean) or math.isinf(mean):
        return mean
    second = sum(w * (v + m * m) for w, m, v in parts) / total
    parts = [(w / total, m, v) for w, m, v in parts]

    def f(x: float) -> tuple[float, float]:
        c = d = 0.0
        for w, m, v in parts:
            gc, gd = _gamma_cdf_pdf(x, m, v)
            c += w * gc
            d += w * gd
        return c - q, d

    x = gamma_quantile(q, mean, max(0.0, second - mean * mean))
    if x <= 0:
        x = max(m for _, m, _ in parts) or 1.0
    g, dens = f(x)
    lo = hi = x
    if g < 0:  # bracket [lo, hi] with F(lo) < q ≤ F(hi)
        while g < 0:
            lo, hi = hi, hi * 1.5
            g, dens = f(hi)
        x = hi
    else:
        while True:
            lo = lo / 1.5
            gl, dl = f(lo)
            if gl < 0:
                break
            if lo < 1e-300:
                return 0.0
            hi = lo
            x, g, dens = lo, gl, dl
    for _ in range(200):
        nxt = x - g / dens if dens > 0 else 0.5 * (lo + hi)
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - x) <= 1e-12 * x or hi - lo <= 1e-12 * hi:
            return hi if dens <= 0 else nxt  # a point mass: the smallest t with F(t) ≥ q
        x = nxt
        g, dens = f(x)
        if g < 0:
            lo = x
        else:
            hi = x
    return x
