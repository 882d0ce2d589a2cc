"""Result records: what the analytic twin and the simulator return, flat and JSON-ready.

These classes *are* the public output format: `sdw run --json` prints `RunResult.to_json()`,
`sdw estimate --json` prints `Estimate.to_json()`. Keys named in the issues are stable —
extend, never rename.

Usage::

    >>> from sim.results import Percentiles
    >>> Percentiles(mean=1, p50=1, p90=2, p95=3, p99=4).p95
    3.0
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Percentiles",
    "PercentileCI",
    "ComponentStats",
    "SLOCheck",
    "CostLine",
    "LittlesLaw",
    "PipelineResult",
    "PipelineStage",
    "LLMReplicaStats",
    "RunResult",
    "StationEstimate",
    "LLMEstimate",
    "Estimate",
]


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Percentiles(_Rec):
    """Latency summary in milliseconds (the keys of `latency_ms`, `ttft_ms`, `tpot_ms`)."""

    mean: float
    p50: float
    p90: float
    p95: float
    p99: float


class PercentileCI(_Rec):
    """95 % confidence intervals `[lo, hi]` of each summary statistic, in milliseconds."""

    mean: tuple[float, float]
    p50: tuple[float, float]
    p90: tuple[float, float]
    p95: tuple[float, float]
    p99: tuple[float, float]


class ComponentStats(_Rec):
    """Per-component measurements from a simulation (flat, one per component id)."""

    kind: str
    utilization: float
    """Busy servers / servers, time-averaged (for an LLM server: output tokens/s ÷ the replicas' max, see sim.llm.station)."""
    mean_queue_len: float
    """Requests waiting (not in service), time-averaged."""
    wait_ms_p95: float
    """95th percentile of the time spent waiting before service."""
    throughput_rps: float
    """Requests completed here per simulated second."""
    dropped: int
    """Requests dropped here (timeouts, full queue, rejected prompts, retries exhausted)."""
    arrivals: int = 0
    """Requests that arrived here during the measured window."""
    backlog_end: int = 0
    """Requests still queued at the end (a growing backlog marks an unstable station)."""
    lag_ms_p95: float | None = None
    """For an async `queue`: 95th-percentile time from enqueue to a consumer starting it."""
    llm: "LLMReplicaStats | None" = None
    """Extra measurements of an `llm_server`."""


class LLMReplicaStats(_Rec):
    """Iteration-level measurements of an `llm_server` (averaged over replicas)."""

    mean_batch_size: float
    """Sequences per decode iteration, time-averaged."""
    max_batch_size: int
    kv_cache_occupancy: float
    """KV-cache bytes in use / KV capacity, time-averaged (0–1)."""
    output_tokens_per_s: float
    """Output tokens per second, all replicas together."""
    rejected_prompts: int = 0
    """Requests refused because the prompt cannot fit the KV cache or context."""
    busy_fraction: float | None = None
    """Share of time a replica is iterating (≈ 1 at any moderate load; `utilization` is the share of capacity)."""


ComponentStats.model_rebuild()


class SLOCheck(_Rec):
    """One line of the verdict."""

    metric: str
    """E.g. `latency_p95_ms`, `ttft_p95_ms`, `availability`, `cost_per_day_usd`, `pipeline_hours`."""
    target: float
    value: float | None
    met: bool | None
    """None when the value is unknown (e.g. no LLM path for a TTFT target)."""
    detail: str = ""
    """Why, in words: 'p95 812 ms (CI 798–826) ≤ 1000 ms'."""


class CostLine(_Rec):
    """One component's share of the daily cost, with the rule that produced it."""

    id: str
    kind: str
    usd_per_day: float
    rule: str
    """The arithmetic, e.g. '4 GPUs × $3.99/h × 24 h'."""
    source: str = ""
    """Where the unit price comes from."""


class LittlesLaw(_Rec):
    """L = λW checked on the run: mean requests in system vs throughput × mean latency."""

    mean_in_system: float
    throughput_x_latency: float
    rel_error: float
    ok: bool
    """True when the relative error is within 1 % (5 % for runs cut short)."""


class PipelineStage(_Rec):
    id: str
    kind: str
    start_h: float
    duration_h: float
    items_in: float
    items_out: float
    gpu_hours: float = 0.0
    cost_usd: float = 0.0
    detail: str = ""


class PipelineResult(_Rec):
    """Batch-pipeline designs: one run's critical path, GPU-hours and cost."""

    duration_h: float
    """Critical-path duration of one run, in hours."""
    window_h: float
    fits: bool
    gpu_hours: float
    cost_per_run_usd: float
    stages: list[PipelineStage]
    critical_path: list[str]
    summary: str
    """E.g. 'weekly run finishes in 9.5 h of a 24 h window'."""


class RunResult(_Rec):
    """The outcome of `simulate(design, seed=…)`; `to_json()` is `sdw run --json`."""

    design: str
    arrival_rps: float
    simulated_requests: int
    completed_requests: int
    dropped_requests: int
    stable: bool
    stopped_by: Literal["precision", "max_requests", "max_seconds", "interrupted", "pipeline"]
    latency_ms: Percentiles
    latency_ms_ci95: PercentileCI
    components: dict[str, ComponentStats]
    slo: list[SLOCheck]
    cost_per_day_usd: float
    seed: int
    wall_s: float
    # --- extensions (additive) ---
    partial: bool = False
    """True when the run was interrupted (Ctrl-C, cancel) and these are the figures so far."""
    replications: int = 0
    """Independent replications (or batches, see `ci_method`) behind the confidence intervals."""
    ci_method: str = ""
    """How the intervals were formed, e.g. 'batch means: 12 batches of 14,799 requests after 22,198 warm-up'."""
    warmup_requests: int = 0
    """Requests deleted as warm-up (from the start of the run, before the first measured batch)."""
    precision_achieved: float | None = None
    """Relative half-width of the p95's 95 % CI at the end."""
    ttft_ms: Percentiles | None = None
    tpot_ms: Percentiles | None = None
    ttft_ms_ci95: PercentileCI | None = None
    tpot_ms_ci95: PercentileCI | None = None
    output_tokens_per_s: float | None = None
    bottleneck: str | None = None
    """Component with the highest utilisation (ties: longest wait)."""
    littles_law: LittlesLaw | None = None
    cost_breakdown: list[CostLine] = Field(default_factory=list)
    cost_per_1k_requests_usd: float | None = None
    pipeline: PipelineResult | None = None
    latency_sample_ms: list[float] = Field(default_factory=list)
    """Up to a few thousand end-to-end latencies (for CDF plots): evenly spaced quantiles of all measured ones."""
    ttft_sample_ms: list[float] = Field(default_factory=list)
    """Time-to-first-token quantiles like `latency_sample_ms` (LLM paths; empty otherwise)."""
    tpot_sample_ms: list[float] = Field(default_factory=list)
    """Time-per-output-token quantiles like `latency_sample_ms` (LLM paths; empty otherwise)."""
    warnings: list[str] = Field(default_factory=list)


class StationEstimate(_Rec):
    """The analytic twin's view of one component at the peak rate."""

    kind: str
    arrival_rps: float
    """Arrivals per second here, after branches, hits and fan-outs."""
    visits_per_request: float
    servers: int | None
    """Parallel servers (replicas × concurrency); None for pure delays."""
    service_ms_mean: float
    service_scv: float
    """Squared coefficient of variation of the service time (1 exponential, 0 fixed)."""
    utilization: float
    wait_ms_mean: float | None
    """Mean queueing delay: Erlang C for exponential service, Allen–Cunneen otherwise (inf when unstable; null in JSON)."""
    wait_ms_p95: float | None = None
    response_ms_mean: float | None
    """Mean wait + service (inf when unstable; null in JSON)."""
    max_throughput_rps: float | None
    """Arrival rate at which this component saturates (ρ = 1); None when unbounded."""
    stable: bool
    replicas_needed: int | None = None
    """Replicas for ρ ≤ 0.8 at the peak rate (None for pure delays)."""
    formula: str = ""
    """How the wait was computed, e.g. 'Erlang C, M/M/40'."""
    cost_per_day_usd: float = 0.0


class LLMEstimate(_Rec):
    """Analytic figures of one `llm_server` (issue: LLM model)."""

    weights_gb: float
    kv_bytes_per_token: float
    kv_capacity_tokens: float
    """Tokens of KV cache that fit per replica after weights."""
    max_concurrent_seqs: int
    """Sequences per replica at the workload's mean token lengths (KV and max_batch bound)."""
    decode_step_ms: float
    """Decode iteration time at that batch."""
    prefill_ms: float
    """Prefill time of one mean prompt."""
    max_output_tokens_per_s_per_replica: float
    max_requests_per_s_per_replica: float
    replicas_needed: int
    """Replicas to carry the peak rate at ≤ 80 % of max throughput."""
    gpus_needed: int
    ttft_ms_estimate: float
    """Mean time to first token at the arrival rate (slot wait + rest of iteration + own prefill)."""
    tpot_ms_estimate: float
    """Mean time per output token at the arrival rate."""
    bound: Literal["memory", "compute"]
    """Whether decode at that batch is bandwidth- or compute-bound."""
    explanation: list[str] = Field(default_factory=list)
    """The arithmetic, line by line, so a reader can follow the GPU count."""
    ttft_ms_p95_estimate: float | None = None
    """95th-percentile TTFT at the arrival rate (analytic approximation, see the explanation)."""
    tpot_ms_p95_estimate: float | None = None
    """95th-percentile TPOT over requests at the arrival rate (analytic approximation)."""


class Estimate(_Rec):
    """The analytic twin's answer, instantly (`sdw estimate --json`)."""

    design: str
    arrival_rps: float
    stations: dict[str, StationEstimate]
    latency_ms_mean: float | None
    """End-to-end mean; inf when a station on the path is unstable (null in JSON, see `to_json`)."""
    latency_ms_p95_approx: float | None
    max_throughput_rps: float | None
    """Peak rate the whole design sustains (the bottleneck's saturation point)."""
    bottleneck: str | None
    stable: bool
    unstable: list[str] = Field(default_factory=list)
    """One sentence per saturated component: 'llm needs 1.4× its capacity at peak — 11 replicas more'."""
    cost_per_day_usd: float
    cost_breakdown: list[CostLine] = Field(default_factory=list)
    cost_per_1k_requests_usd: float | None = None
    llm: dict[str, LLMEstimate] = Field(default_factory=dict)
    pipeline: PipelineResult | None = None
    slo: list[SLOCheck] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Valid JSON: an unbounded figure (inf — an unstable station's wait, the end-to-end
        latency) or an undefined one (nan) becomes null; in Python the record keeps inf, so
        ``math.isinf(est.latency_ms_mean)`` still reads as 'unbounded'."""
        return _finite(super().to_json())


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x
