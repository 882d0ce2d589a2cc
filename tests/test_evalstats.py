"""Eval statistics against the textbook formulas (worked by hand here) and a seeded power check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from components.catalogue import Judge
from designs.io import load_design
from sim.quality.evalstats import (
    EvalStatsError,
    eval_estimate,
    judge_observed,
    paired_binary_detectable,
    paired_binary_n,
    paired_score_n,
    unpaired_binary_n,
)

Z_975, Z_80 = 1.959964, 0.841621  # standard normal quantiles (any table)


def test_one_point_regression_at_80_percent_power_two_independent_samples():
    # Fleiss §4.2, p1 = 0.80 vs p2 = 0.79, α = 0.05 two-sided, power 0.8:
    # n = (1.96·√(2·0.795·0.205) + 0.8416·√(0.8·0.2 + 0.79·0.21))² / 0.01² = 25,582 per arm.
    hand = (Z_975 * math.sqrt(2 * 0.795 * 0.205) + Z_80 * math.sqrt(0.16 + 0.79 * 0.21)) ** 2 / 0.01**2
    assert hand == pytest.approx(25_582, abs=2)
    assert unpaired_binary_n(0.80, 0.79, power=0.8) == math.ceil(hand)


def test_one_point_regression_paired_mcnemar():
    # Connor (1987): ψ = 0.10 discordant, δ = 0.01: n = (1.96·√0.1 + 0.8416·√(0.1 − 0.0001))² / 0.0001 = 7,847.
    hand = (Z_975 * math.sqrt(0.1) + Z_80 * math.sqrt(0.1 - 0.0001)) ** 2 / 1e-4
    assert paired_binary_n(0.01, discordant=0.10, power=0.8) == math.ceil(hand) == 7847
    # Pairing helps because only discordant cases count: ~3× fewer than two independent samples.
    assert 25_582 / 7847 > 3


def test_mcnemar_sample_size_has_the_stated_power_by_simulation():
    # Seeded check: at n = 7,847, ψ = 0.10, δ = 0.01, McNemar's z-test rejects in ~80 % of runs.
    rng = np.random.default_rng(15)
    n, psi, d = 7847, 0.10, 0.01
    p10 = (psi + d) / 2  # current passes, candidate fails
    runs = 4000
    disc = rng.binomial(n, psi, size=runs)
    n10 = rng.binomial(disc, p10 / psi)
    z = (2 * n10 - disc) / np.sqrt(disc)
    power = float(np.mean(np.abs(z) > Z_975))
    assert power == pytest.approx(0.80, abs=0.025)


def test_score_outcome_and_detectable_effect_are_inverse():
    # ((1.96 + 0.8416) × 1.0 / 0.1)² = 784.9 → 785 cases for a 0.1-point mean score drop.
    assert paired_score_n(0.1, sd_diff=1.0) == 785
    d = paired_binary_detectable(7847, 0.10)
    assert d == pytest.approx(0.01, rel=1e-3)


def test_a_weaker_judge_shrinks_the_effect_and_needs_more_cases():
    # Agreement 0.9 (e = 0.1): δ_obs = 0.8·δ; ψ_obs = 0.1·(0.81 + 0.01) + 0.9·2·0.1·0.9 = 0.244.
    d_obs, psi_obs = judge_observed(0.01, 0.10, 0.9)
    assert d_obs == pytest.approx(0.008) and psi_obs == pytest.approx(0.244)
    assert paired_binary_n(d_obs, psi_obs) > 3 * paired_binary_n(0.01, 0.10)
    with pytest.raises(EvalStatsError, match="above 0.5"):
        judge_observed(0.01, 0.1, 0.5)


def test_power_outside_zero_one_is_a_located_error_that_says_what_works():
    with pytest.raises(ValidationError, match=r"eval_power 1.2 is not a probability in \(0, 1\); 0.8 is the usual"):
        Judge(id="j", eval_power=1.2)
    with pytest.raises(EvalStatsError, match=r"power 0 is not a probability"):
        paired_binary_n(0.01, 0.1, power=0)


def test_a_drop_larger_than_the_discordance_says_what_would_work():
    with pytest.raises(EvalStatsError, match="raise eval_discordant_ratio above 0.2"):
        paired_binary_n(0.2, discordant=0.1)


def test_eval_estimate_of_the_library_eval_design():
    design = load_design("designs/library/eval_at_scale.yaml")
    judge = design.component("judge")
    e = eval_estimate(judge, design)
    assert e.cases == 200_000
    # Cost per run: 200k × (2,000 × $2.50 + 150 × $10) / 1M = $1,300; time at the TPM ceiling.
    assert e.run_cost_usd == pytest.approx(1300, rel=0.01)
    assert e.run_hours == pytest.approx(200_000 / (2_000_000 / 2150 / 60) / 3600, rel=0.02)
