"""The records a sizing search returns: `SizeResult` (what `sdw size --json` prints) and its parts.

Keys are stable (extended, never renamed) and listed in the README's `sdw size` section::

    >>> from sim.search.records import SizeResult
    >>> sorted(SizeResult.model_fields)[:4]
    ['baseline', 'candidates_evaluated', 'candidates_pruned', 'candidates_total']
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from components.docstrings import install as _fast_docstrings

_fast_docstrings()  # the models' field descriptions from one parse of this module (start-up speed)

__all__ = ["Choice", "SimCheck", "Overturned", "RejectedFamily", "Baseline", "SizeResult"]


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def to_json(self) -> dict[str, Any]:
        return _finite(self.model_dump(mode="json"))


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


class SimCheck(_Rec):
    """One SLO judged by simulation: the upper end of the 95 % interval against the target."""

    metric: str
    target: float
    value: float | None
    """The simulated estimate (p95 in ms, availability as a fraction, cost in USD/day)."""
    upper: float | None
    """Upper end of its 95 % CI (the value itself where there is no interval); the pass test."""
    met: bool


class Choice(_Rec):
    """One sized candidate: its settings, replica counts, cost and SLO figures."""

    candidate: str
    """Human label, e.g. 'llm: H100-SXM-80GB FP8/kv fp8 TP1 batch 256'."""
    family: str
    """Model precision and GPUs of each llm_server, e.g. 'FP8 on 1×H100-SXM-80GB'."""
    settings: dict[str, dict[str, Any]]
    """Component id → the searched fields and their values (replicas excluded)."""
    replicas: dict[str, int]
    """Component id → count (replicas; GPUs of a training job; workers of a batch stage)."""
    cost_per_day_usd: float
    cost_per_1k_requests_usd: float | None = None
    twin: dict[str, float | None] = Field(default_factory=dict)
    """SLO metric → the analytic twin's value at these counts."""
    binding_metric: str | None = None
    """The SLO with the least margin (the frontier's y axis)."""
    binding_value: float | None = None
    binding_target: float | None = None
    rank: int = 0
    """1 = cheapest by the twin among the candidates that meet every SLO."""
    pareto: bool = False
    """On the cost-vs-binding-metric frontier of the candidates evaluated."""
    verified: bool | None = None
    """True/False once simulated (after adjusting replicas), None when not simulated."""
    sim_replicas: dict[str, int] | None = None
    """Counts after the simulation's adjustment (None when not simulated)."""
    sim_cost_per_day_usd: float | None = None
    sim: list[SimCheck] = Field(default_factory=list)
    """The simulation's verdict at `sim_replicas`."""
    sim_runs: int = 0
    """Simulations this candidate took (its adjustment steps)."""
    n_minus_1_sim: list[SimCheck] | None = None
    """The winner with one replica of the adjusted component down, simulated (--n-minus-1)."""


class Overturned(_Rec):
    """A candidate the simulation disagreed with: its count, cost or verdict changed."""

    candidate: str
    component: str
    twin_replicas: int
    sim_replicas: int | None
    twin_cost_per_day_usd: float
    sim_cost_per_day_usd: float | None
    delta_usd_per_day: float | None
    detail: str


class RejectedFamily(_Rec):
    """A family or candidate out of the running, with the reason in numbers."""

    family: str
    reason: str


class Baseline(_Rec):
    """The design as given: the twin's verdict and cost, to compare the winner with."""

    replicas: dict[str, int]
    cost_per_day_usd: float
    meets: bool
    """Whether the twin says it meets every SLO it judges."""


class SizeResult(_Rec):
    """The outcome of `sim.size(design, …)`; `to_json()` is `sdw size --json`."""

    design: str
    status: Literal["ok", "nothing_fits", "slo_unreachable", "over_budget"]
    message: str
    """One sentence: the answer, or why there is none (closest candidate and its miss)."""
    objective: Literal["cost_per_day", "cost_per_1k"]
    headroom: float
    n_minus_1: bool
    seed: int
    winner: Choice | None
    winner_design: dict[str, Any] | None = None
    """The winning design as design-file data (the input with the chosen settings)."""
    frontier: list[Choice] = Field(default_factory=list)
    """Candidates that meet every SLO by the twin, cheapest first (the verified ones carry `sim`)."""
    closest: Choice | None = None
    """When nothing passes: the candidate closest to passing."""
    rejected: list[RejectedFamily] = Field(default_factory=list)
    overturned: list[Overturned] = Field(default_factory=list)
    baseline: Baseline | None = None
    candidates_total: int = 0
    candidates_evaluated: int = 0
    candidates_pruned: int = 0
    """Skipped because a throughput bound already costs more than the K-th cheapest passing one."""
    twin_evaluations: int = 0
    simulations: int = 0
    stopped_by: Literal["done", "max_seconds", "interrupted"] = "done"
    partial: bool = False
    """True when stopped early (Ctrl-C, cancel, --max-seconds): the best found so far."""
    wall_s: float = 0.0
    warnings: list[str] = Field(default_factory=list)
