"""The workbench's numbers: the analytic twin, the discrete-event simulation, cost and verdicts.

The face of the package — everything outside ``sim/`` imports from here, never from a submodule::

    from designs.io import load_design
    from sim import estimate, simulate, compare

    design = load_design("designs/library/llm_serving.yaml")
    est = estimate(design)              # analytic twin, milliseconds
    run = simulate(design, seed=1)      # SimPy, batch-means CIs, same seed → same result
    print(est.bottleneck, run.latency_ms.p95, run.cost_per_day_usd)

The house:

* ``sim/twin/`` — the analytic twin (queueing formulas over the flow).
* ``sim/des/`` — the discrete-event engine (stations, routing, workload, statistics).
* ``sim/llm/`` — token-level LLM serving (roofline, analytic twin, continuous batching replica).
* ``sim/providers/`` — external model APIs (rate limits, their simulated station).
* ``sim/ops/`` — operations over time: failures, faults, retries/fallbacks, autoscaling,
  bursty and replayed traffic, timeline runs, and the twin's N−1 view.
* ``sim/quality/`` — retrieval (index RAM, recall, query time), eval statistics, agent pricing.
* ``sim/search/`` — the sizing search: ``size(design)`` finds the cheapest design meeting every SLO.
* ``results`` (the records), ``cost`` (a rule per kind), ``verdict`` (SLO checks),
  ``check`` (can this hardware run the design?), ``pipeline`` (batch pipelines, training jobs).

Names are resolved lazily, so ``import sim`` stays cheap: SimPy is imported only when a
simulation runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # analytic twin
    "estimate": "sim.twin.analytic",
    "EstimateError": "sim.twin.analytic",
    "visits_per_request": "sim.twin.flow",
    # discrete-event simulation
    "simulate": "sim.des.engine",
    "compare": "sim.des.engine",
    "SimulationRefused": "sim.des.engine",
    "Progress": "sim.des.engine",
    "run_problems": "sim.des.limits",
    "validation_problems": "sim.des.limits",
    # records
    "Estimate": "sim.results",
    "RunResult": "sim.results",
    "Percentiles": "sim.results",
    "PercentileCI": "sim.results",
    "ComponentStats": "sim.results",
    "StationEstimate": "sim.results",
    "LLMEstimate": "sim.results",
    "SLOCheck": "sim.results",
    "CostLine": "sim.results",
    "PipelineResult": "sim.results",
    "PipelineStage": "sim.results",
    # verdicts, cost, checks
    "slo_checks": "sim.verdict",
    "format_estimate": "sim.verdict",
    "daily_cost": "sim.cost",
    "COST_RULES": "sim.cost",
    "DAYS_PER_MONTH": "sim.cost",
    "config_problems": "sim.check",
    "require_runnable": "sim.check",
    "ConfigError": "sim.check",
    # pipelines and training
    "pipeline_result": "sim.pipeline",
    "training_estimate": "sim.pipeline",
    "PipelineError": "sim.pipeline",
    "FULL_FT_BYTES_PER_PARAM": "sim.pipeline",
    # providers and LLM serving
    "api_limits": "sim.providers.ratelimit",
    "ServingSpec": "sim.llm.roofline",
    "ServingConfigError": "sim.llm.roofline",
    "llm_estimate": "sim.llm.twin",
    "tokens_per_step": "sim.llm.kv",  # LLM engine mechanics (issue 12)
    "kv_transfer_s": "sim.llm.disagg",
    "accuracy_scoreboard": "sim.llm.accuracy",  # the published-rows scoreboard (issue 11)
    "format_accuracy": "sim.llm.accuracy",
    # operations over time (sim/ops)
    "n_minus_one": "sim.ops.nminus1",
    "replicas_per_hour": "sim.ops.nminus1",
    "autoscaled_cost": "sim.ops.nminus1",
    "NMinus1": "sim.results",
    "OpsResult": "sim.results",
    "OpsWindow": "sim.results",
    "load_trace": "sim.ops.traffic",
    "TraceError": "sim.ops.traffic",
    "wants_timeline": "sim.ops.plan",
    "format_ops": "sim.ops.report",
    "format_n_minus_1": "sim.ops.report",
    "ops_rows": "sim.ops.report",
    "fault_rows": "sim.ops.report",
    "run_timeline": "sim.ops.timeline",
    "sample_day": "sim.ops.sampled",  # a whole day by sampled windows per hour (issue 13)
    "format_sampled_day": "sim.ops.sampled",
    "needs_sampling": "sim.ops.sampled",
    "SampledDay": "sim.ops.sampled",
    # quality and cost of retrieval, evaluation and agents (issue 15)
    "retrieval_estimate": "sim.quality.retrieval",
    "RetrievalError": "sim.quality.retrieval",
    "RetrievalEstimate": "sim.results",
    "eval_estimate": "sim.quality.evalstats",
    "EvalStatsError": "sim.quality.evalstats",
    "EvalEstimate": "sim.results",
    "paired_binary_n": "sim.quality.evalstats",
    "paired_score_n": "sim.quality.evalstats",
    "api_call_price": "sim.providers.pricing",
    # sizing search (sdw size)
    "size": "sim.search.search",
    "SizeResult": "sim.search.records",
    "SearchError": "sim.search.search",
    "SearchSpace": "designs.space",
    "make_executor": "sim.search.executor",
    "ExecutorError": "sim.search.executor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and editors; never executed
    from sim.check import ConfigError, config_problems, require_runnable
    from sim.cost import COST_RULES, DAYS_PER_MONTH, daily_cost
    from sim.des.engine import Progress, SimulationRefused, compare, simulate
    from sim.des.limits import run_problems, validation_problems
    from sim.llm.roofline import ServingConfigError, ServingSpec
    from sim.llm.twin import llm_estimate
    from sim.llm.kv import tokens_per_step
    from sim.llm.disagg import kv_transfer_s
    from sim.llm.accuracy import accuracy_scoreboard, format_accuracy
    from sim.ops.nminus1 import autoscaled_cost, n_minus_one, replicas_per_hour
    from sim.ops.sampled import SampledDay, format_sampled_day, needs_sampling, sample_day
    from sim.ops.report import fault_rows, format_n_minus_1, format_ops, ops_rows
    from sim.ops.plan import wants_timeline
    from sim.ops.timeline import run_timeline
    from sim.ops.traffic import TraceError, load_trace
    from sim.results import NMinus1, OpsResult, OpsWindow
    from sim.pipeline import FULL_FT_BYTES_PER_PARAM, PipelineError, pipeline_result, training_estimate
    from sim.providers.ratelimit import api_limits
    from sim.results import (
        ComponentStats, CostLine, Estimate, LLMEstimate, PercentileCI, Percentiles,
        PipelineResult, PipelineStage, RunResult, SLOCheck, StationEstimate,
    )
    from sim.twin.analytic import EstimateError, estimate
    from sim.twin.flow import visits_per_request
    from sim.verdict import format_estimate, slo_checks
    from sim.providers.pricing import api_call_price
    from sim.quality.evalstats import EvalStatsError, eval_estimate, paired_binary_n, paired_score_n
    from sim.quality.retrieval import RetrievalError, retrieval_estimate
    from sim.results import EvalEstimate, RetrievalEstimate
    from designs.space import SearchSpace
    from sim.search.executor import ExecutorError, make_executor
    from sim.search.records import SizeResult
    from sim.search.search import SearchError, size
