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
from components.docstrings import install as _fast_docstrings

_fast_docstrings()  # the models' field descriptions from one parse of this module (start-up speed)

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
    "VarianceReduction",
    "OpsWindow",
    "FaultWindow",
    "ColdStartEvent",
    "RequestFates",
    "OpsResult",
    "NMinus1",
    "RetrievalEstimate",
    "EvalEstimate",
]


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Percentiles(_Rec):
    """Latency summary in milliseconds (the keys of `latency_ms`, `ttft_ms`, `tpot_ms`).

    A value is None (null in JSON) when it was not measured — no measured request completed —
    never a 0.0 placeholder that reads as "instant"."""

    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


class PercentileCI(_Rec):
    """95 % confidence intervals `[lo, hi]` of each summary statistic, in milliseconds.

    An interval is None (null in JSON) when there is none to give: fewer than two batches
    (one batch has no spread to estimate), or nothing measured — never `[x, x]` or `[0, 0]`."""

    mean: tuple[float, float] | None
    p50: tuple[float, float] | None
    p90: tuple[float, float] | None
    p95: tuple[float, float] | None
    p99: tuple[float, float] | None


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
    preemptions_per_s: float = 0.0
    """Sequences preempted per second, all replicas (`kv_policy: paged` when a step finds no free KV block)."""
    recomputed_tokens_per_s: float = 0.0
    """Tokens prefilled again per second because their sequence was preempted (recompute)."""
    prefix_hit_ratio: float | None = None
    """Share of prompt tokens served from the prefix cache (None: no shared prefixes in the workload)."""
    prefix_hit_ratio_per_replica: list[float] | None = None
    """The same share for each replica (routing decides how prefixes spread)."""
    ttft_saved_ms_mean: float | None = None
    """Prefill compute the prefix-cache hits skipped, per request, ms (≈ TTFT saved on an idle replica)."""
    prefill_busy_fraction: float | None = None
    """Disaggregated servers: share of time the prefill replicas are iterating (batch and KV above are the decode pool's)."""
    kv_transfer_ms_mean: float | None = None
    """Disaggregated servers: mean time to move a prompt's KV from a prefill to a decode replica, ms."""


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


class VarianceReduction(_Rec):
    """What control variates bought on the end-to-end p95 (`sim.des.control`): LLM designs."""

    method: str
    """How the estimate and its interval were formed."""
    controls: list[str]
    """Controls in the fit: arrival_span, output_tokens, prompt_tokens (each with a known mean)."""
    r_squared_p95: float
    """Share of the batch-to-batch variance of the p95 the controls explain."""
    variance_ratio_p95: float | None
    """(plain half-width / control-variate half-width)²: times fewer batches for the same interval."""
    precision_without: float | None
    """Relative half-width of the p95's interval from the same batches without the controls."""
    requests_needed: int | None
    """Requests (warm-up + batches) for the p95 to reach the target precision with the controls."""
    requests_needed_without: int | None
    """The same for plain batch means of the same batch size."""


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
    variance_reduction: VarianceReduction | None = None
    """LLM designs: the control variates behind `latency_ms` and its interval (None: plain batch means)."""
    ops: "OpsResult | None" = None
    """A timeline run (faults, failures, autoscaling, traces): time series, availability, replica-hours."""
    engine_path: str = "events"
    """How it was simulated: "events" (the event loop) or "fifo_recursion" (a feed-forward flow of plain
    FIFO stations run by the Kiefer–Wolfowitz recursion, the same sample path without events; `sim.des.chain`)."""


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


class RetrievalEstimate(_Rec):
    """Figures of one indexed `vector_db` (sim.quality.retrieval): recall, time, RAM, build."""

    index_type: str
    vectors: int
    vectors_per_shard: float
    dimensions: int
    precision: str
    shards: int
    replicas: int
    """Copies of each shard."""
    nodes: int
    """shards × replicas: the nodes that are paid for."""
    top_k: int
    params: dict[str, float] = Field(default_factory=dict)
    """The search parameters used (ef_search, hnsw_m, nlist, nprobe, pq_bytes)."""
    params_picked: bool = False
    """True when the model picked them for recall_target."""
    recall_at_k: float
    recall_target: float | None = None
    shard_query_ms: float
    """One query on one shard, idle node."""
    query_ms_mean: float
    """Mean of the slowest shard (the fan-out's wait)."""
    query_ms_p95: float
    ram_gb_per_node: float
    """One shard's index in RAM."""
    ram_needed_gb_per_node: float
    """With 20 % headroom."""
    node_ram_gb: float
    ssd_gb_per_node: float = 0.0
    build_hours: float = 0.0
    """Index build per shard (shards build in parallel)."""
    reembed_hours: float = 0.0
    """Re-embedding the whole corpus with the design's embedder."""
    explanation: list[str] = Field(default_factory=list)
    sources: dict[str, str] = Field(default_factory=dict)


class EvalEstimate(_Rec):
    """One judge's eval plan as statistics (sim.quality.evalstats): cases, validity, cost, time."""

    judge: str
    outcome: str
    """binary (pass/fail, McNemar) or score (paired z on differences)."""
    cases: int
    """Cases per eval run."""
    cases_from: str = ""
    regression_points: float | None = None
    """The drop the eval must detect (points of pass rate, or score units)."""
    power: float
    alpha: float
    human_agreement: float | None = None
    cases_needed: int | None = None
    """With a judge that always agrees with humans."""
    cases_needed_with_judge: int | None = None
    """With this judge's stated agreement."""
    enough_cases: bool | None = None
    detectable_points: float | None = None
    """Smallest drop this many cases detect at this power (through this judge when its agreement is stated)."""
    run_cost_usd: float | None = None
    run_hours: float | None = None
    explanation: list[str] = Field(default_factory=list)
    sources: dict[str, str] = Field(default_factory=dict)


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
    decode_batch_at_load: float | None = None
    """Mean decode batch per replica at the arrival rate (None when saturated)."""
    prefix_cache_hit_ratio: float = 0.0
    """Share of prompt tokens the prefix cache serves (the flat override, or what the shared prefixes, the KV left and the routing give)."""
    speculative_tokens_per_step: float | None = None
    """Speculative decoding: expected tokens per target step per sequence, (1 − α^(k+1)) / (1 − α)."""
    speculative_breakeven_batch: int | None = None
    """Speculative decoding: the batch from which it is no faster per token than plain decoding (None: pays up to max_batch)."""
    pools: dict[str, dict] | None = None
    """Disaggregated servers: per pool (`prefill`, `decode`) its replicas, GPUs, replicas/GPUs needed, capacity per replica and TTFT or TPOT (the per-replica fields above are the decode pool's)."""
    kv_transfer_ms: float | None = None
    """Disaggregated servers: mean KV transfer per request from a prefill to a decode replica, ms."""


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
    retrieval: dict[str, RetrievalEstimate] = Field(default_factory=dict)
    """Indexed vector_db components: recall@k, query time, RAM per node, build and re-embed hours."""
    evaluation: dict[str, EvalEstimate] = Field(default_factory=dict)
    """Judges: cases needed for the stated regression and power, judge validity, cost and hours per run."""

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


# --- operations over time (issue 13) --------------------------------------------------------------


class OpsWindow(_Rec):
    """One window of a timeline run; requests are counted by the window they arrived in."""

    t_start_s: float
    t_end_s: float
    arrivals: int
    succeeded: int
    failed: int
    retries: int = 0
    """Attempts beyond the first started in this window (all retry edges)."""
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_p99: float | None = None
    replicas: dict[str, int] = Field(default_factory=dict)
    """Replicas serving at the end of the window, per component with ops (failed and starting excluded)."""
    provisioned: dict[str, int] = Field(default_factory=dict)
    """Replicas that exist (paid for) at the end of the window: serving, starting, failed or draining."""
    queued: dict[str, int] = Field(default_factory=dict)
    """Requests waiting (the backlog) at the end of the window, per component with ops."""


class FaultWindow(_Rec):
    """A fault that happened: scheduled (`faults:`) or random (`failures:`)."""

    component: str
    what: str
    start_s: float
    end_s: float
    source: Literal["scheduled", "random"]
    lost_requests: int = 0
    """Requests in service on the failed replicas at the failure (retried or failed per the policy)."""


class ColdStartEvent(_Rec):
    """A replica the autoscaler asked for, and when it served."""

    component: str
    requested_s: float
    ready_s: float


class RequestFates(_Rec):
    """What happened to each offered request of a timeline run."""

    offered: int
    succeeded: int
    failed: int
    retried: int = 0
    """Calls that needed at least one retry and then succeeded (completed late)."""
    fallbacks: int = 0
    """Calls answered by a fallback component after the primary failed."""
    attempts: int = 0
    """Attempts along retry/fallback edges, first ones included."""
    gave_up: int = 0
    """Calls that failed every attempt (and had no fallback left)."""


class OpsResult(_Rec):
    """The operator's view of a timeline run (`sdw run --json` key `ops`)."""

    horizon_s: float
    """Length of the arrivals' timeline, in seconds (requests in flight then are drained)."""
    window_s: float
    availability: float | None
    """Successful / offered requests (a fault's failures included)."""
    availability_ci95: tuple[float, float] | None = None
    """95 % interval from the time batches (indicative: faults are correlated in time)."""
    fates: RequestFates
    windows: list[OpsWindow] = Field(default_factory=list)
    faults: list[FaultWindow] = Field(default_factory=list)
    cold_starts: list[ColdStartEvent] = Field(default_factory=list)
    replica_hours: dict[str, float] = Field(default_factory=dict)
    """Replica-hours provisioned per component with ops, over the run."""
    waited_for_cold_start: dict[str, int] = Field(default_factory=dict)
    """Requests that queued at a component while one of its replicas was starting (the scale-up lag users feel)."""
    autoscaled_cost_per_day_usd: float | None = None
    """Daily cost with the replica-hours actually used (whole-day runs with autoscaling)."""
    fixed_cost_per_day_usd: float | None = None
    """Daily cost with every component at its fixed (peak) replica count all day."""
    prompt_tokens: int = 0
    """Prompt tokens of the offered requests (a trace's own total at scale 1)."""
    output_tokens: int = 0
    trace: str | None = None
    """The replayed trace: path, layout, rows and scale."""


class NMinus1(_Rec):
    """The twin with one replica (and one zone) of a component down, at the peak rate."""

    component: str
    replicas: int
    zones: int
    utilization: float
    utilization_one_down: float | None
    """Utilisation with one replica down (None: the component has one replica — it is down)."""
    slo_ok_one_down: bool | None
    """Whether the design stays stable with every latency SLO met with one replica down (None: not re-checked, past the time budget)."""
    utilization_zone_down: float | None = None
    slo_ok_zone_down: bool | None = None
    replicas_to_survive: int | None = None
    """Fewest replicas whose loss of one keeps the component stable and the SLOs met."""
    utilization_survivor: float | None = None
    """Utilisation of that many replicas with one down."""
    detail: str = ""


RunResult.model_rebuild()
