"""Evaluation as statistics: how many cases detect a regression, how far to trust the judge, what a run costs.

Two models (candidate and current) are scored on the **same** cases, so the comparison is
paired:

* **binary outcomes** (pass/fail per case): McNemar's test. Only discordant cases (one model
  passes, the other fails; a fraction ψ of all cases) carry information. Cases needed to detect
  a drop of δ (as a fraction: 1 point = 0.01) at two-sided level α and power 1 − β
  (Connor 1987, *Biometrics* 43:207; the normal approximation of McNemar's test)::

      n = (z₁₋α/₂·√ψ + z₁₋β·√(ψ − δ²))² / δ²

  For comparison, two independent samples need n = (z₁₋α/₂·√(2p̄q̄) + z₁₋β·√(p₁q₁ + p₂q₂))² / δ²
  per arm (Fleiss, *Statistical Methods for Rates and Proportions*, §4.2, no continuity
  correction) — :func:`unpaired_binary_n`.
* **score outcomes** (a 1–5 or 0–100 score per case): paired z-test on the per-case
  differences with standard deviation σ_d: ``n = ((z₁₋α/₂ + z₁₋β)·σ_d / δ)²``.

**A judge is a noisy rater.** With agreement a with human labels and symmetric errors
(e = 1 − a, independent per output), an observed difference is the true one shrunk by
(1 − 2e), and discordance grows: ψ_obs = ψ·((1 − e)² + e²) + (1 − ψ)·2e(1 − e) — the
classical non-differential misclassification bias toward the null. For scores, a judge–human
correlation ρ attenuates a standardised effect by ρ (regression dilution), so n grows by 1/ρ².
:func:`eval_estimate` reports the cases a perfect judge needs, the cases this judge needs and
the smallest regression the design's case count can detect with this judge.

**Cost and time per run**: cases × the judge's price per call (``sim.providers.pricing.api_call_price``:
caching, batch API) and cases / the call rate its limits allow (``sim.providers.ratelimit``).

Usage::

    >>> from sim.quality.evalstats import paired_binary_n, paired_score_n
    >>> paired_binary_n(0.01, discordant=0.10, power=0.8)   # 1-point drop, ψ = 10 %
    7847
    >>> paired_score_n(0.1, sd_diff=1.0, power=0.8)
    785

Bad input (a power or α outside (0, 1), a drop larger than the discordance allows, an
agreement at or below chance) raises :class:`EvalStatsError` (a ``ValueError``) saying what would work.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from sim.results import EvalEstimate

__all__ = [
    "EvalStatsError",
    "paired_binary_n",
    "unpaired_binary_n",
    "paired_score_n",
    "paired_binary_detectable",
    "judge_observed",
    "eval_estimate",
]

_N = NormalDist()


class EvalStatsError(ValueError):
    """A sample-size question with no answer as asked; the message says what would work."""


def _z(power: float, alpha: float, where: str = "") -> tuple[float, float]:
    at = f"{where}: " if where else ""
    if not (0 < power < 1):
        raise EvalStatsError(f"{at}power {power!r} is not a probability in (0, 1); 0.8 is the usual choice, 0.9 for a release gate")
    if not (0 < alpha < 1):
        raise EvalStatsError(f"{at}alpha {alpha!r} is not a probability in (0, 1); 0.05 (two-sided) is the usual choice")
    return _N.inv_cdf(1 - alpha / 2), _N.inv_cdf(power)


def paired_binary_n(delta: float, discordant: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Cases to detect a pass-rate change of ``delta`` (a fraction) with discordance ψ (McNemar)."""
    za, zb = _z(power, alpha)
    d = abs(delta)
    if d <= 0:
        raise EvalStatsError("delta is 0: a regression to detect must be larger than zero (1 point = 0.01)")
    if not (0 < discordant <= 1):
        raise EvalStatsError(f"discordant ratio {discordant!r} must be in (0, 1]: the share of cases where the two models disagree")
    if d >= discordant:
        raise EvalStatsError(f"a change of {d:g} cannot happen with discordance ψ = {discordant:g} (paired pass rates differ by "
                             f"at most the share of cases the models disagree on); raise eval_discordant_ratio above {d:g}")
    n = (za * math.sqrt(discordant) + zb * math.sqrt(discordant - d * d)) ** 2 / (d * d)
    return math.ceil(n - 1e-9)


def unpaired_binary_n(p1: float, p2: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Cases per arm for two independent samples with pass rates p1, p2 (Fleiss)."""
    za, zb = _z(power, alpha)
    if p1 == p2:
        raise EvalStatsError("p1 equals p2: there is no difference to detect")
    pbar = (p1 + p2) / 2
    n = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (p1 - p2) ** 2
    return math.ceil(n - 1e-9)


def paired_score_n(delta: float, sd_diff: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Cases to detect a mean score change ``delta`` with per-case difference SD ``sd_diff``."""
    za, zb = _z(power, alpha)
    if delta == 0 or sd_diff <= 0:
        raise EvalStatsError("delta must be non-zero and sd_diff positive (score units)")
    return math.ceil(((za + zb) * sd_diff / abs(delta)) ** 2 - 1e-9)


def paired_binary_detectable(n: int, discordant: float, power: float = 0.8, alpha: float = 0.05) -> float:
    """Smallest change (fraction) n paired cases detect at this power (bisection on the n formula)."""
    za, zb = _z(power, alpha)
    lo, hi = 1e-9, math.sqrt(discordant) * (1 - 1e-12)
    for _ in range(100):
        mid = (lo + hi) / 2
        need = (za * math.sqrt(discordant) + zb * math.sqrt(discordant - mid * mid)) ** 2 / (mid * mid)
        if need > n:
            lo = mid
        else:
            hi = mid
    return hi


def judge_observed(delta: float, discordant: float, agreement: float) -> tuple[float, float]:
    """(observed δ, observed ψ) through a judge agreeing with humans on a fraction ``agreement``."""
    if not (0.5 < agreement <= 1):
        raise EvalStatsError(f"judge agreement {agreement!r} must be above 0.5 (chance for a binary label) and at most 1; "
                             "a judge at chance detects nothing — validate it on human labels (≥ 0.8 is a usual bar)")
    e = 1 - agreement
    return delta * (1 - 2 * e), discordant * ((1 - e) ** 2 + e * e) + (1 - discordant) * 2 * e * (1 - e)


def _cases(judge: Any, design: Any) -> tuple[int, str]:
    if judge.eval_cases is not None:
        return judge.eval_cases, "eval_cases on the judge"
    batch = getattr(design.workload, "batch", None) if design is not None else None
    if batch is not None:
        return int(batch.items_per_run), "items per run (workload.batch)"
    return int(design.workload.requests_per_day) if design is not None else 0, "requests per day (one day of judged outputs)"


def eval_estimate(judge: Any, design: Any = None) -> EvalEstimate:
    """Sample size, judge validity, cost and time of one eval run scored by ``judge``.

    Raises :class:`EvalStatsError` naming the judge when its plan has no answer (power outside
    (0, 1), a regression larger than the discordance allows, an agreement at or below chance).
    """
    where = f"judge '{judge.id}'"
    power, alpha = judge.eval_power, judge.eval_alpha
    _z(power, alpha, where)
    cases, cases_from = _cases(judge, design)
    points = judge.eval_regression_points
    agree = judge.judge_human_agreement
    lines: list[str] = []
    need = need_judge = None
    detectable = None
    za, zb = _N.inv_cdf(1 - alpha / 2), _N.inv_cdf(power)
    try:
        if judge.eval_outcome == "binary":
            psi = judge.eval_discordant_ratio
            if points is not None:
                d = points / 100
                need = paired_binary_n(d, psi, power, alpha)
                lines.append(f"McNemar: n = (z {za:.3f}·√{psi:g} + z {zb:.3f}·√({psi:g} − {d:g}²))² / {d:g}² = {need:,} cases "
                             f"to detect a {points:g}-point drop (α {alpha:g}, power {power:g})")
                if agree is not None:
                    d_obs, psi_obs = judge_observed(d, psi, agree)
                    need_judge = paired_binary_n(d_obs, min(1.0, psi_obs), power, alpha)
                    lines.append(f"judge agreement {agree:g}: the drop looks like {d_obs * 100:.3g} points and discordance "
                                 f"{psi_obs:.3g} → {need_judge:,} cases ({need_judge / need:.2f}×)")
            a = agree if agree is not None else 1.0
            e = 1 - a
            psi_obs = psi * ((1 - e) ** 2 + e * e) + (1 - psi) * 2 * e * (1 - e) if a < 1 else psi
            if cases > 0:
                detectable = 100 * paired_binary_detectable(cases, min(1.0, psi_obs), power, alpha) / (1 - 2 * e)
                lines.append(f"{cases:,} cases ({cases_from}) detect a drop of {detectable:.3g} points"
                             f"{' through this judge' if agree is not None else ' with a perfect judge'}")
        else:
            sd = judge.eval_score_sd
            rho = agree if agree is not None else 1.0
            if not (0 < rho <= 1):
                raise EvalStatsError(f"{where}: judge_human_agreement {rho!r} is a correlation for score outcomes; it must be in (0, 1]")
            if points is not None:
                need = paired_score_n(points, sd, power, alpha)
                lines.append(f"paired z: n = ((z {za:.3f} + z {zb:.3f}) × σ_d {sd:g} / δ {points:g})² = {need:,} cases")
                if agree is not None:
                    need_judge = math.ceil(need / (rho * rho) - 1e-9)
                    lines.append(f"judge–human correlation {rho:g} attenuates the effect by {rho:g}: {need_judge:,} cases (× 1/ρ²)")
            if cases > 0:
                detectable = (za + zb) * sd / math.sqrt(cases) / rho
                lines.append(f"{cases:,} cases ({cases_from}) detect a change of {detectable:.3g} score units")
    except EvalStatsError as e:
        raise EvalStatsError(f"{where}: {e}") from None

    # Cost and time of one run through this judge (its limits, its prices).
    from sim.providers.pricing import api_call_price
    from sim.providers.ratelimit import api_limits, mean_tokens_per_call

    run_cost = run_hours = None
    if design is not None and cases > 0:
        lim = api_limits(judge, design.workload, arrival_rps=0.0)
        prompt, output = mean_tokens_per_call(judge, design.workload)
        rate = lim["max_throughput_rps"]
        if judge.batch_api:
            run_hours = judge.batch_turnaround_h
        elif rate:
            run_hours = (cases / rate + lim["mean_service_s"]) / 3600
        per_call, text, _ = api_call_price(judge, design, prompt, output, cases / max((run_hours or 1) * 3600, 1) * 86_400)
        run_cost = cases * per_call
        lines.append(f"one run: {cases:,} calls × {text} = ${run_cost:,.0f}"
                     + (f"; {run_hours:.3g} h at {rate:,.3g} calls/s ({lim['binding']} limit)" if rate and not judge.batch_api else
                        f"; batch API: within {judge.batch_turnaround_h:g} h" if judge.batch_api else "; no limit: calls in parallel"))
    enough = None
    target = need_judge if need_judge is not None else need
    if target is not None:
        enough = cases >= target
    return EvalEstimate(
        judge=judge.id, outcome=judge.eval_outcome, cases=cases, cases_from=cases_from, regression_points=points,
        power=power, alpha=alpha, human_agreement=agree, cases_needed=need, cases_needed_with_judge=need_judge,
        enough_cases=enough, detectable_points=detectable, run_cost_usd=run_cost, run_hours=run_hours,
        explanation=lines,
        sources={"binary": "McNemar sample size, Connor (1987) Biometrics 43:207–211",
                 "score": "paired z-test on per-case differences (normal approximation)",
                 "judge": "non-differential misclassification: observed δ = (1 − 2e)·δ; regression dilution for scores",
                 "cost": "sim.providers.pricing.api_call_price and sim.providers.ratelimit.api_limits"},
    )
