"""The component catalogue: one pydantic class per kind, a tagged union on ``kind``.

Every class forbids unknown keys, carries its units in its field names and documents each
field in the docstring right under it (the app shows those docstrings as help).

Usage::

    >>> from pydantic import TypeAdapter
    >>> from components.catalogue import Component
    >>> svc = TypeAdapter(Component).validate_python(
    ...     {"id": "svc", "kind": "service", "replicas": 2, "concurrency": 8,
    ...      "service_time": {"dist": "exponential", "mean_ms": 40}})
    >>> svc.servers
    16

Adding a kind is one class here plus one ``KINDS`` entry; ``tests/test_catalogue.py`` checks
that every kind also has a tier, a diagram shape, a simulation station and a cost rule.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from . import hardware
from .distributions import Count, Duration, LogNormal, LogNormalCount, fixed_count, fixed_ms
from .operations import Autoscale, Failures
from components.docstrings import install as _fast_docstrings

_fast_docstrings()  # the models' field descriptions from one parse of this module (start-up speed)

__all__ = [
    "ComponentBase",
    "Service",
    "LoadBalancer",
    "ApiGateway",
    "Cache",
    "Queue",
    "Database",
    "ObjectStorage",
    "LLMServer",
    "SpeculativeDecoding",
    "LLMPool",
    "lora_adapter_bytes",
    "LLMApi",
    "Embedder",
    "VectorDB",
    "KeywordSearch",
    "Reranker",
    "Guardrail",
    "Tool",
    "Judge",
    "BatchStage",
    "TrainingJob",
    "Monitoring",
    "Component",
    "KINDS",
    "TIERS",
    "Precision",
]

Precision = Literal["bf16", "fp16", "fp8", "int8", "int4", "fp4", "mxfp4"]

# Where the defaults come from. Figures with a published source cite it (components/data/*.csv
# holds the rows with full references); the rest are stated modelling assumptions that a design
# should override with its own measurements — the docstrings say "assumption" for those.
# - Redis GET ~0.62 ms (cache hit/miss 1 ms rounds it up): efficiency.csv cache_get_latency_ms.
# - Qdrant 8 vCPU: 1238 QPS, mean 3.54 ms / p95 4.95 ms at 100 client threads
#   (retrieval.csv, qdrant.tech single-node benchmark); at 8 queries in flight per node
#   Little's law gives 8 / 1238 s = 6.5 ms per query, p95 scaled by the same 4.95/3.54 ratio.
# - bge-large on 1x L4: ~62k tokens/s (efficiency.csv embedder_tokens_per_s_per_gpu_l4).
# - MiniLM-L-6 cross-encoder: 1800 pairs/s on a V100 (efficiency.csv reranker_pairs_per_s_per_gpu).
# - GPT-4o API: TTFT 0.45 s, 131 tokens/s (Artificial Analysis medians via retrieval.csv, 2026);
#   $2.50 / $10.00 per 1M input / output tokens (OpenAI pricing page, as loaded into
#   https://apis.io/providers/openai/#pricing, read 2026-11-05).
# - API weather (issue 13): TTFT lognormal with median 450 ms (AA, above) and p95 = 1.79 × the
#   median — GPT-4o's P95/P50 of TTFT (1,144 / 639 ms) in 24 h of 5-minute pings from one US
#   datacenter (https://modelstats.ai/blog/llm-api-latency-spikes-what-average-ttft-doesnt-tell-you);
#   σ = ln 1.79 / 1.645 = 0.354, so mean 479 ms, p95 806 ms. Output speed lognormal, mean 131
#   tokens/s, σ 0.2 (p95 178, p5 92): assumption, about the spread between the AA snapshots of
#   GPT-4o providers in the reference set (81–131 tokens/s).
# - Monitoring $500/month: assumption, ~25 hosts at Datadog's $18/host-month (prices.csv
#   monitoring_host_month) plus log ingestion.
# - Load balancer 1 ms, gateway 5 ms, queue enqueue 5 ms, database query 5 ms, object-storage GET
#   30 ms, keyword query 10 ms, guardrail 15 ms, tool call lognormal 300/900 ms, generic service
#   10 ms, batch stage 100 items/s per worker: assumptions (typical same-region figures).

# Rates and times have small positive floors (1e-3 tokens/s, 1e-6 items/s, 1e-3 ms) rather than
# `gt=0`: 5e-324 passes `gt=0` and turns the derived service times into inf (issue 14).
ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"

# Provider API weather defaults (sources in the comment block above).
API_TTFT_MEAN_MS, API_TTFT_P95_MS = 479.0, 806.0
API_SPEED_MEAN, API_SPEED_P95 = 131.0, 178.0


def _known_gpu(name: str | None) -> str | None:
    # Unknown names fail at load time, located at the field, with hardware's "did you mean".
    if name is not None:
        hardware.get_gpu(name)
    return name


def _known_model(name: str) -> str:
    hardware.get_model(name)
    return name


GpuName = Annotated[str, AfterValidator(_known_gpu)]
"""A GPU from components/data/gpus.csv (canonical name or alias, any case)."""
ModelName = Annotated[str, AfterValidator(_known_model)]
"""A model from components/data/models.csv (canonical name or alias, any case)."""

# Display tiers, in diagram order. Each kind declares its tier as a class variable.
TIERS: dict[str, str] = {
    "edge": "Edge & API",
    "retrieval": "Retrieval",
    "model": "Model serving",
    "data": "Data",
    "offline": "Offline & pipeline",
}


class ComponentBase(BaseModel):
    """Fields every component has."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    tier: ClassVar[str] = "edge"
    description: ClassVar[str] = ""

    id: str = Field(pattern=ID_PATTERN)
    """Unique name used by the flow edges (letters, digits, `_` and `-`)."""
    label: str | None = Field(default=None, max_length=200)
    """Display name for diagrams and documents; the id when empty."""
    notes: str | None = Field(default=None, max_length=5000)
    """Free text: why this component, what it assumes."""
    timeout_ms: float | None = Field(default=None, ge=1e-3, le=3_600_000)
    """Give up on a request that has waited longer than this here; it counts as dropped."""
    failures: Failures | None = None
    """Random failures of each replica (MTBF/MTTR, seeded); acted on in timeline runs (`sim.ops`)."""

    @property
    def display_name(self) -> str:
        return self.label or self.id


class _Pool(ComponentBase):
    """A pool of identical servers: `replicas` × `concurrency` requests in service at once."""

    replicas: int = Field(default=1, ge=1, le=100_000)
    """Number of identical instances behind this component."""
    concurrency: int = Field(default=1, ge=1, le=100_000)
    """Requests one replica serves at the same time (worker threads, connections)."""
    replica_hourly_usd: float | None = Field(default=None, ge=0, le=10_000)
    """Price of one replica-hour in USD; empty takes the catalogue default for this kind."""
    zones: int = Field(default=1, ge=1, le=64)
    """Availability zones the replicas are spread over (round robin); a `zone_down` fault takes one."""
    autoscale: Autoscale | None = None
    """Autoscaler for the replicas over time; `replicas` is the starting count (moved into [min, max] at the first evaluation). Empty: fixed."""

    @property
    def servers(self) -> int:
        return self.replicas * self.concurrency


class Service(_Pool):
    """A generic application service: a multi-server FIFO queue."""

    tier: ClassVar[str] = "edge"
    description: ClassVar[str] = "Application service: replicas × concurrency servers, FIFO queue."
    kind: Literal["service"] = "service"
    service_time: Duration = Field(default_factory=lambda: fixed_ms(10))
    """Time one request occupies one server, in milliseconds."""


class LoadBalancer(_Pool):
    """L4/L7 load balancer in front of replicas."""

    tier: ClassVar[str] = "edge"
    description: ClassVar[str] = "Load balancer: adds a small fixed latency, rarely a bottleneck."
    kind: Literal["load_balancer"] = "load_balancer"
    concurrency: int = Field(default=10_000, ge=1, le=1_000_000)
    """Connections one instance handles at the same time."""
    latency: Duration = Field(default_factory=lambda: fixed_ms(1))
    """Added latency per request, in milliseconds."""


class ApiGateway(_Pool):
    """API gateway: auth, routing, request-rate limiting."""

    tier: ClassVar[str] = "edge"
    description: ClassVar[str] = "API gateway: auth and routing, a few ms per request."
    kind: Literal["api_gateway"] = "api_gateway"
    concurrency: int = Field(default=1_000, ge=1, le=1_000_000)
    """Requests one instance handles at the same time."""
    latency: Duration = Field(default_factory=lambda: fixed_ms(5))
    """Added latency per request, in milliseconds."""


class Cache(_Pool):
    """A cache in front of the rest of the flow: a hit answers at once, a miss goes on."""

    tier: ClassVar[str] = "data"
    description: ClassVar[str] = "Cache: hits return immediately; misses follow the outgoing edges."
    kind: Literal["cache"] = "cache"
    concurrency: int = Field(default=1_000, ge=1, le=1_000_000)
    """Requests one cache node serves at the same time."""
    hit_ratio: float = Field(default=0.3, ge=0, le=1)
    """Fraction of requests answered by the cache (0–1); the rest continue downstream."""
    hit_latency: Duration = Field(default_factory=lambda: fixed_ms(1))
    """Lookup time on a hit, in milliseconds (a Redis GET is well under 1 ms on a LAN)."""
    miss_latency: Duration = Field(default_factory=lambda: fixed_ms(1))
    """Lookup time on a miss before the request moves on, in milliseconds."""


class Queue(ComponentBase):
    """Asynchronous hand-off (broker): the caller's latency ends at enqueue."""

    tier: ClassVar[str] = "data"
    description: ClassVar[str] = (
        "Message queue / broker: the request is acknowledged at enqueue; consumers downstream "
        "work through the backlog."
    )
    kind: Literal["queue"] = "queue"
    enqueue_latency: Duration = Field(default_factory=lambda: fixed_ms(5))
    """Time to enqueue and acknowledge, in milliseconds."""
    max_depth: int | None = Field(default=None, ge=1, le=10**9)
    """Messages the broker holds at most; enqueues beyond are dropped. Empty means unbounded."""
    usd_per_million_requests: float | None = Field(default=None, ge=0, le=1_000)
    """Price per million enqueue requests in USD; empty takes the catalogue default."""


class Database(_Pool):
    """Relational or document database."""

    tier: ClassVar[str] = "data"
    description: ClassVar[str] = "Database: replicas × connections servers with a query time."
    kind: Literal["database"] = "database"
    concurrency: int = Field(default=50, ge=1, le=100_000)
    """Queries one instance runs at the same time (connection pool size)."""
    query_time: Duration = Field(default_factory=lambda: fixed_ms(5))
    """Time one query takes, in milliseconds."""
    storage_gb: float = Field(default=100, ge=0, le=1e7)
    """Data stored, in GB (sizing and documents)."""


class ObjectStorage(ComponentBase):
    """Object storage (S3-like): elastic, modelled as a pure delay."""

    tier: ClassVar[str] = "data"
    description: ClassVar[str] = "Object storage: elastic, a pure delay per GET; priced per GB-month."
    kind: Literal["object_storage"] = "object_storage"
    latency: Duration = Field(default_factory=lambda: fixed_ms(30))
    """Time for one GET, in milliseconds."""
    storage_gb: float = Field(default=1000, ge=0, le=1e9)
    """Data stored, in GB."""
    usd_per_gb_month: float | None = Field(default=None, ge=0, le=100)
    """Storage price in USD per GB-month; empty takes the catalogue default."""


class SpeculativeDecoding(BaseModel):
    """Speculative decoding on an `llm_server`: draft k tokens, verify them in one target step."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    method: Literal["draft_model", "eagle", "mtp"]
    """`draft_model` (a smaller model of the same family drafts), `eagle` (a one-layer head on the target's features) or `mtp` (multi-token-prediction heads trained with the model, DeepSeek-V3)."""
    draft_tokens: int | None = Field(default=None, le=16)
    """Tokens drafted per step, k; empty: 4 for draft_model and eagle, 1 for mtp (sim/llm/speculative.py)."""
    acceptance_rate: float | None = None
    """Probability α that the target accepts a drafted token, strictly between 0 and 1; empty: 0.6 draft_model, 0.75 eagle, 0.85 mtp (sources in sim/llm/speculative.py)."""
    draft_model: ModelName | None = Field(default=None, max_length=100)
    """The draft model for `method: draft_model` (catalogue name), run on the same GPUs."""

    @field_validator("draft_tokens")
    @classmethod
    def _k(cls, v):
        if v is not None and v < 1:
            raise ValueError(f"draft_tokens {v} drafts nothing: use 1–16 (1 for mtp, 3–5 typical for eagle or a "
                             "draft model), or remove `speculative` to turn it off")
        return v

    @field_validator("acceptance_rate")
    @classmethod
    def _alpha(cls, v):
        if v is not None and not 0 < v < 1:
            raise ValueError(f"acceptance_rate {v:g} is outside (0, 1): it is the probability that one drafted token "
                             "is accepted; published values are 0.6–0.9 (leave it empty for the method's default)")
        return v

    @model_validator(mode="after")
    def _draft(self):
        if self.method == "draft_model" and self.draft_model is None:
            raise ValueError("method draft_model needs draft_model: a smaller model of the target's family, "
                             "e.g. llama-3.1-8b for llama-3.1-70b")
        if self.method != "draft_model" and self.draft_model is not None:
            raise ValueError(f"draft_model is only used with method draft_model (method is {self.method}); remove it")
        return self


# KV links between the pools of a disaggregated llm_server, GB/s per GPU one way (sources in
# sim/llm/disagg.py): one 400 Gb/s NDR InfiniBand port per GPU; 100 GbE (assumption); NVLink 4
# (H100/H200) 900 GB/s total, NVLink 3 (A100) 600, NVLink 5 (B200) 1800 — half each way.
LINK_GB_PER_S = {"infiniband": 50.0, "ethernet": 12.5}
NVLINK_GB_PER_S = {"H100-SXM-80GB": 450.0, "H200-SXM-141GB": 450.0, "A100-SXM-80GB": 300.0, "B200-180GB": 900.0}


def kv_link_problem(comp) -> str | None:
    """Why a disaggregated server's pools cannot exchange KV over ``kv_link`` (None: they can)."""
    if comp.kv_link != "nvlink" or comp.prefill_pool is None or comp.decode_pool is None:
        return None
    gp, gd = hardware.get_gpu(comp.prefill_pool.gpu).name, hardware.get_gpu(comp.decode_pool.gpu).name
    if gp != gd:
        return (f"prefill_pool on {gp} and decode_pool on {gd} share no NVLink (an NVLink domain is one GPU type "
                f"in one node or rack): use kv_link: infiniband ({LINK_GB_PER_S['infiniband']:g} GB/s per GPU) or "
                "ethernet, or put both pools on the same GPU")
    if gp not in NVLINK_GB_PER_S:
        return (f"{gp} has no NVLink between replicas: use kv_link: infiniband "
                f"({LINK_GB_PER_S['infiniband']:g} GB/s per GPU) or ethernet, or an SXM GPU "
                f"({', '.join(NVLINK_GB_PER_S)})")
    return None


def lora_adapter_bytes(model_name: str, rank: int) -> float:
    """GPU bytes of one LoRA adapter of ``rank`` on every attention and MLP projection (BF16 A and B).

    Per layer: q, o (hidden ↔ q_heads × head_dim), k, v (hidden → kv_heads × head_dim) and the
    three MLP projections (hidden ↔ ffn); a rank-r adapter of a d_in × d_out matrix holds
    r × (d_in + d_out) parameters."""
    m = hardware.get_model(model_name)
    q, kv = m.q_heads * m.head_dim, m.kv_heads * m.head_dim
    per_layer = 2 * (m.hidden + q) + 2 * (m.hidden + kv) + 3 * (m.hidden + m.ffn_intermediate)
    return rank * per_layer * m.layers * 2.0


class LLMPool(BaseModel):
    """One pool of a disaggregated `llm_server` (prefill or decode): GPUs, TP and replicas."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    gpu: GpuName = Field(default="H100-SXM-80GB", min_length=1, max_length=100)
    """GPU type of this pool's replicas."""
    gpus_per_replica: int = Field(default=1, ge=1, le=64)
    """GPUs per replica (tensor parallelism)."""
    replicas: int = Field(default=1, ge=1, le=10_000)
    """Replicas in this pool."""
    gpu_hourly_usd: float | None = Field(default=None, ge=0, le=1_000)
    """Price of one GPU-hour in USD; empty takes the GPU catalogue price."""


class LLMServer(ComponentBase):
    """Self-hosted LLM: replicas of a model on GPUs with continuous batching."""

    tier: ClassVar[str] = "model"
    description: ClassVar[str] = (
        "Self-hosted LLM server (vLLM/TensorRT-LLM style): continuous batching, KV cache, "
        "tensor parallelism."
    )
    kind: Literal["llm_server"] = "llm_server"
    model: ModelName = Field(min_length=1, max_length=100)
    """Model name from the catalogue, e.g. `llama-3.1-8b` (see `sdw list --models`)."""
    gpu: GpuName = Field(default="H100-SXM-80GB", min_length=1, max_length=100)
    """GPU type from the catalogue, e.g. `H100-SXM-80GB`, `H200-SXM-141GB`."""
    gpus_per_replica: int = Field(default=1, ge=1, le=64)
    """GPUs per replica; the model is split across them by tensor parallelism."""
    precision: Precision = "bf16"
    """Weight precision: sets bytes per parameter and which peak FLOPs apply."""
    kv_cache_precision: Literal["bf16", "fp16", "fp8", "fp4"] = "bf16"
    """KV-cache element type: bf16/fp16 = 2 bytes, fp8 = 1 byte, fp4 (NVFP4, Blackwell) = 4.5 bits per element."""
    max_batch: int = Field(default=256, ge=1, le=4096)
    """Sequences decoded together at most per iteration (vLLM `max_num_seqs`)."""
    replicas: int = Field(default=1, ge=1, le=10_000)
    """Number of model replicas."""
    chunked_prefill_tokens: int | None = Field(default=None, ge=16, le=1_000_000)
    """Prefill at most this many prompt tokens per iteration (chunked prefill); empty: whole prompts."""
    prefix_cache_hit_ratio: float = Field(default=0.0, ge=0, le=1)
    """Override: fraction of prompt tokens found in the prefix cache, which skip prefill (no memory, no routing effect). 0 lets the hit ratio emerge from the request classes' `shared_prefix_tokens`, the KV memory and the routing."""
    gpu_memory_utilization: float = Field(default=0.9, ge=0.01, le=1)
    """Fraction of GPU memory the server may use for weights + KV cache (vLLM default 0.9)."""
    gpu_hourly_usd: float | None = Field(default=None, ge=0, le=1_000)
    """Price of one GPU-hour in USD; empty takes the GPU catalogue price."""
    activation_precision: Literal["auto", "bf16", "fp16", "fp8", "int8", "fp4"] = "auto"
    """Math the matrix multiplies run in (the A of W×A): `auto` takes the weight precision's usual kernel — int4 → bf16 (W4A16, AWQ/GPTQ), int8 → int8 (W8A8), fp8 → fp8, fp4 → fp4 (NVFP4), mxfp4 → fp4 on Blackwell, else bf16; `fp8` with int4 weights is W4A8."""
    pipeline_stages: int = Field(default=1, ge=1, le=64)
    """Pipeline-parallel stages per replica: each stage holds 1/stages of the layers on gpus_per_replica / pipeline_stages GPUs (tensor parallel inside one node)."""
    expert_parallel: int | None = Field(default=None, ge=1, le=1024)
    """MoE models: GPUs the experts are spread over (all-to-all dispatch and combine in each MoE layer); empty keeps the experts tensor-parallel like the dense layers."""
    kv_memory_basis: Literal["total", "free"] = "total"
    """How gpu_memory_utilization sizes the KV pool: `total` = that share of all GPU memory holds weights + KV (vLLM); `free` = that share of what is left after the weights (TensorRT-LLM kv_cache_free_gpu_mem_fraction)."""
    # --- engine mechanics (sim/llm/kv.py, sim/llm/batching.py, sim/llm/station.py) ---
    kv_policy: Literal["paged", "reserve_max"] = "paged"
    """KV allocation: `paged` (vLLM's default: blocks as tokens are produced; when a step cannot get a block the most recently admitted sequence is preempted and recomputed later) or `reserve_max` (TensorRT-LLM's guaranteed-no-evict: prompt + max_output_tokens reserved at admission, never preempted)."""
    kv_block_tokens: int = Field(default=16, ge=1, le=4096)
    """Tokens per KV-cache block with `kv_policy: paged` (vLLM's default block size: 16)."""
    max_output_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    """Cap on generated tokens per request (the API's `max_tokens`); a request class's own cap wins. Empty: what the model's context leaves after the prompt. `reserve_max` reserves this much at admission; longer answers stop here."""
    routing: Literal["least_outstanding_tokens", "round_robin", "prefix_affinity"] = "least_outstanding_tokens"
    """How requests pick a replica: `least_outstanding_tokens` (the fewer outstanding tokens of two random replicas), `round_robin`, or `prefix_affinity` (consistent hashing on the request's shared prefix with a load bound of 1.25 × the mean, so a prefix stays cached on one replica)."""

    speculative: SpeculativeDecoding | None = None
    """Speculative decoding (draft k tokens per step, verify in one pass); empty: off."""
    prefill_pool: LLMPool | None = None
    """Prefill/decode disaggregation: the replicas that run prompts (set with `decode_pool`; they replace `gpu`, `gpus_per_replica` and `replicas`)."""
    decode_pool: LLMPool | None = None
    """Prefill/decode disaggregation: the replicas that only decode, fed the prompts' KV over `kv_link`."""
    kv_link: Literal["infiniband", "nvlink", "ethernet"] = "infiniband"
    """How a disaggregated server moves KV from prefill to decode replicas: `infiniband` (400 Gb/s per GPU), `nvlink` (same SXM GPU type, one NVLink domain) or `ethernet` (100 GbE)."""
    kv_link_gb_per_s: float | None = Field(default=None, gt=0, le=10_000)
    """Measured KV-transfer bandwidth per GPU in GB/s; empty takes the `kv_link` figure (sim/llm/disagg.py)."""
    adapters: int = Field(default=0, ge=0, le=100_000)
    """Multi-LoRA: fine-tuned LoRA adapters served on the base model; each request draws one by Zipf popularity. 0: none."""
    adapter_zipf_s: float = Field(default=1.0, ge=0, le=4)
    """Zipf exponent of adapter popularity (share of requests ∝ 1 / rank^s; 0 = uniform); S-LoRA's evaluation draws adapters by a power law."""
    max_resident_adapters: int = Field(default=8, ge=1, le=10_000)
    """Adapters held in GPU memory per replica at once (vLLM `max_loras`); a request for another one waits for a free slot, then its swap-in. Assumption: 8 (vLLM's own default is 1)."""
    adapter_rank: int = Field(default=16, ge=1, le=1024)
    """LoRA rank (vLLM `max_lora_rank` default 16): sets each adapter's memory and swap-in time."""

    @model_validator(mode="after")
    def _adapters_fit(self):
        if self.adapters <= 0:
            return self
        n = min(self.adapters, self.max_resident_adapters)
        one = lora_adapter_bytes(self.model, self.adapter_rank)
        g = hardware.get_gpu(self.gpu)
        weights = hardware.get_model(self.model).weight_bytes(self.precision)
        # Same usable memory as the roofline (sim/llm/roofline.py: 2 GB per GPU reserved).
        room = self.gpus_per_replica * (g.hbm_gb * 1e9 * self.gpu_memory_utilization - 2e9) - weights
        if n * one >= room:
            fit = max(0, int(room // one) - 1)
            raise ValueError(
                f"{n} resident LoRA adapters of rank {self.adapter_rank} ({one / 1e6:,.0f} MB each) need "
                f"{n * one / 1e9:,.1f} GB, but {self.gpus_per_replica} × {g.name} leaves {max(0.0, room) / 1e9:,.1f} GB "
                f"after the weights (and the KV cache needs room too): use max_resident_adapters ≤ {fit}"
                + (", a lower adapter_rank" if self.adapter_rank > 8 else "") + " or more gpus_per_replica")
        return self

    @model_validator(mode="after")
    def _pools(self):
        if (self.prefill_pool is None) != (self.decode_pool is None):
            raise ValueError("prefill_pool and decode_pool go together: set both to disaggregate prefill and decode, "
                             "or neither for one aggregated pool")
        why = kv_link_problem(self)
        if why:
            raise ValueError(why)
        return self

    @model_validator(mode="after")
    def _draft_smaller(self):
        sd = self.speculative
        if sd is not None and sd.draft_model is not None:
            d, t = hardware.get_model(sd.draft_model), hardware.get_model(self.model)
            if d.params_total_b >= t.params_total_b:
                raise ValueError(
                    f"speculative.draft_model {d.name} ({d.params_total_b:g} B) is not smaller than the model "
                    f"{t.name} ({t.params_total_b:g} B): a draft must be far cheaper than its target; use a smaller "
                    f"model of the same family, or method: eagle / mtp")
        return self
    zones: int = Field(default=1, ge=1, le=64)
    """Availability zones the replicas are spread over (round robin); a `zone_down` fault takes one."""
    autoscale: Autoscale | None = None
    """Autoscaler for the replicas over time; `replicas` is the starting count (moved into [min, max] at the first evaluation). Empty: fixed."""

    @property
    def gpus(self) -> int:
        if self.prefill_pool is not None and self.decode_pool is not None:
            return sum(p.gpus_per_replica * p.replicas for p in (self.prefill_pool, self.decode_pool))
        return self.gpus_per_replica * self.replicas


class _ProviderApi(ComponentBase):
    """A hosted model behind a provider's API: speed, rate limits and per-token prices."""

    provider_model: str = Field(default="gpt-4o", max_length=100)
    """Provider and model name, for documents only."""
    ttft: Duration = Field(default_factory=lambda: LogNormal(mean_ms=API_TTFT_MEAN_MS, p95_ms=API_TTFT_P95_MS))
    """Time to first token, in milliseconds (GPT-4o: median 0.45 s (Artificial Analysis), p95 1.79 × the median (modelstats.ai))."""
    output_tokens_per_s: Count = Field(default_factory=lambda: LogNormalCount(mean=API_SPEED_MEAN, p95=API_SPEED_P95))
    """Output speed after the first token, tokens per second (AA median for GPT-4o: 131; spread σ 0.2 an assumption)."""
    rpm_limit: int | None = Field(default=None, ge=1, le=10**9)
    """Requests per minute allowed by the provider; empty means no limit."""
    tpm_limit: int | None = Field(default=None, ge=1, le=10**12)
    """Input + output tokens per minute allowed by the provider; empty means no limit."""
    on_limit: Literal["wait", "retry"] = "wait"
    """Over the limit: `wait` for the token bucket, or `retry` with exponential backoff."""
    max_retries: int = Field(default=5, ge=0, le=100)
    """Retries before the request is dropped, with `on_limit: retry`."""
    backoff_ms: float = Field(default=1000, ge=1e-3, le=600_000)
    """First retry delay in milliseconds; doubles on each retry."""
    max_concurrency: int | None = Field(default=None, ge=1, le=10**7)
    """Calls in flight at most from this design; empty means unbounded."""
    usd_per_1m_input_tokens: float = Field(default=2.5, ge=0, le=10_000)
    """Price per million input tokens in USD (OpenAI list price for GPT-4o: $2.50)."""
    usd_per_1m_output_tokens: float = Field(default=10.0, ge=0, le=10_000)
    """Price per million output tokens in USD (OpenAI list price for GPT-4o: $10)."""
    error_rate: float = Field(default=0.0, ge=0, lt=1)
    """Share of calls that fail (429s and 5xx, independent, seeded); a `retry` on the edge in retries them."""
    error_latency_ms: float = Field(default=100, ge=0, le=600_000)
    """Time until a failing call returns its error, in milliseconds (assumption: a fast 429/5xx)."""
    # Provider pricing as it is (sim.quality.agents, sim.cost): prompt caching, batch API,
    # context that grows each agent step. Defaults leave today's bill unchanged.
    usd_per_1m_cached_input_tokens: float | None = Field(default=None, ge=0, le=10_000)
    """Price per million cached input tokens in USD; empty: half the input price (OpenAI GPT-4o: $1.25 cached vs $2.50; Anthropic bills 0.1×)."""
    cache_write_multiplier: float = Field(default=1.0, ge=1, le=10)
    """Input price multiple for tokens written to the prompt cache (OpenAI: no write fee, 1; Anthropic 5-min cache: 1.25)."""
    shared_prefix_tokens: int = Field(default=0, ge=0, le=10_000_000)
    """Tokens every call starts with verbatim (system prompt, tool schemas): cacheable when ≥ prompt_cache_min_tokens."""
    prompt_cache_min_tokens: int = Field(default=1024, ge=0, le=1_000_000)
    """Shortest prefix the provider caches (OpenAI and Anthropic: 1,024 tokens)."""
    prompt_cache_ttl_s: float = Field(default=300, gt=0, le=86_400)
    """How long an idle cache entry lives, in seconds (Anthropic: 5 min; OpenAI: 5–10 min of inactivity)."""
    context_growth_tokens_per_step: float = Field(default=0, ge=0, le=10_000_000)
    """Tokens each repeat of an agent loop adds to this call's prompt (previous output + tool results); 0: every step sees the same prompt."""
    batch_api: bool = False
    """Send the calls through the provider's batch API: batch_discount off every token, results within batch_turnaround_h (pipelines only)."""
    batch_discount: float = Field(default=0.5, ge=0, le=1)
    """Fraction of the price the batch API takes off (OpenAI and Anthropic: 50 %)."""
    batch_turnaround_h: float = Field(default=24, gt=0, le=24 * 30)
    """Time within which a batch completes, in hours (OpenAI and Anthropic: 24 h)."""


class LLMApi(_ProviderApi):
    """External LLM provider behind an API, with rate limits and per-token prices."""

    tier: ClassVar[str] = "model"
    description: ClassVar[str] = (
        "External LLM API: time to first token + output tokens at a provider's speed, "
        "rate-limited in requests and tokens per minute, priced per 1M tokens."
    )
    kind: Literal["llm_api"] = "llm_api"


class _TokenPool(ComponentBase):
    """A pool of replicas that processes tokens (or pairs) in batches."""

    replicas: int = Field(default=1, ge=1, le=100_000)
    """Number of replicas (one GPU or CPU node each)."""
    max_batch: int = Field(default=32, ge=1, le=4096)
    """Requests batched together at most per forward pass."""
    gpu: GpuName | None = Field(default="L4-24GB", max_length=100)
    """GPU type of one replica for pricing; empty for a CPU replica priced per replica-hour."""
    replica_hourly_usd: float | None = Field(default=None, ge=0, le=10_000)
    """Price of one replica-hour in USD; empty takes the GPU or CPU catalogue price."""
    zones: int = Field(default=1, ge=1, le=64)
    """Availability zones the replicas are spread over (round robin); a `zone_down` fault takes one."""
    autoscale: Autoscale | None = None
    """Autoscaler for the replicas over time; `replicas` is the starting count (moved into [min, max] at the first evaluation). Empty: fixed."""


class Embedder(_TokenPool):
    """Embedding model: tokens per second per replica, batched."""

    tier: ClassVar[str] = "retrieval"
    description: ClassVar[str] = "Embedding model: batched, service time from tokens per second."
    kind: Literal["embedder"] = "embedder"
    tokens_per_s_per_replica: float = Field(default=62_000, ge=1e-3, le=1e9)
    """Tokens embedded per second by one replica at full batch (bge-large on 1× L4: ~62k)."""
    tokens_per_request: Count | None = None
    """Tokens embedded per request; empty uses the request's prompt tokens."""
    overhead_ms: float = Field(default=5, ge=0, le=60_000)
    """Fixed time per batch (tokenisation, transfer), in milliseconds."""


class Reranker(_TokenPool):
    """Cross-encoder reranker scoring (query, document) pairs."""

    tier: ClassVar[str] = "retrieval"
    description: ClassVar[str] = "Cross-encoder reranker: batched, service time from pairs per second."
    kind: Literal["reranker"] = "reranker"
    pairs_per_request: Count = Field(default_factory=lambda: fixed_count(50))
    """Candidate documents scored per query."""
    pairs_per_s_per_replica: float = Field(default=1800, ge=1e-3, le=1e9)
    """Pairs scored per second by one replica (MiniLM-L-6 on a V100: 1800 docs/s; the default L4 replica is taken as equal — assumption: 121 vs 125 dense FP16 tensor TFLOPS; a bge-reranker-base is ~7× slower per pair)."""
    overhead_ms: float = Field(default=5, ge=0, le=60_000)
    """Fixed time per batch, in milliseconds."""


class VectorDB(_Pool):
    """Approximate-nearest-neighbour index (HNSW, IVF)."""

    tier: ClassVar[str] = "retrieval"
    description: ClassVar[str] = "Vector database: ANN search, replicas × concurrency servers."
    kind: Literal["vector_db"] = "vector_db"
    concurrency: int = Field(default=8, ge=1, le=100_000)
    """Queries one node runs at once (about its vCPUs)."""
    query_time: Duration = Field(
        default_factory=lambda: LogNormal(mean_ms=6.5, p95_ms=9.1)
    )
    """Search time of one query on an idle node, in milliseconds (Qdrant 8 vCPU: 1238 QPS at 8 in flight ⇒ ~6.5 ms)."""
    vectors: int = Field(default=1_000_000, ge=0, le=10**12)
    """Vectors indexed (sizing and documents)."""
    dimensions: int = Field(default=1536, ge=1, le=65536)
    """Vector dimensions (sizing and documents)."""
    # The index model (sim.quality.retrieval). Without `index_type` the component keeps its
    # stated query_time (the behaviour before the model); with it, query time, recall and RAM
    # come from curves fitted to components/data/retrieval.csv.
    index_type: Literal["hnsw", "ivf_flat", "ivf_pq", "flat", "diskann"] | None = None
    """ANN index: `hnsw` (graph in RAM), `ivf_flat`/`ivf_pq` (inverted lists, raw or PQ codes), `flat` (exact scan), `diskann` (PQ codes in RAM, graph on SSD); empty keeps query_time as stated."""
    precision: Literal["float32", "float16", "int8"] = "float32"
    """Element type of the vectors held in RAM (int8 = scalar quantisation, 4× smaller, caps recall at ~0.996)."""
    top_k: int = Field(default=10, ge=1, le=10_000)
    """Neighbours returned per query (the k of recall@k)."""
    recall_target: float | None = Field(default=None, gt=0, le=1)
    """Recall@k the design needs; with no ef_search/nprobe the model picks the cheapest that reaches it, else checks it."""
    recall_measured: float | None = Field(default=None, gt=0, le=1)
    """Recall@k measured on your own index; replaces the model's figure."""
    hnsw_m: int = Field(default=16, ge=2, le=256)
    """HNSW links per node (M; Qdrant and hnswlib default 16): more links, more RAM and recall."""
    ef_construction: int = Field(default=100, ge=4, le=4096)
    """Search list while building the graph (Qdrant default ef_construct 100); sets build time."""
    ef_search: int | None = Field(default=None, ge=1, le=32768)
    """Search list per query (HNSW ef); empty: picked for recall_target, else ef_construction (Qdrant's default)."""
    nlist: int | None = Field(default=None, ge=1, le=10**8)
    """IVF lists (clusters); empty: 4·√(vectors per shard) (Faiss guideline)."""
    nprobe: int | None = Field(default=None, ge=1, le=10**8)
    """IVF lists probed per query; empty: picked for recall_target, else nlist/64 (assumption)."""
    pq_bytes: int = Field(default=64, ge=1, le=65536)
    """Bytes per vector of the PQ code (ivf_pq) or of the in-RAM codes (diskann)."""
    shards: int = Field(default=1, ge=1, le=100_000)
    """Shards the collection is split into; every query fans out to all of them. Nodes = shards × replicas."""
    node_ram_gb: float = Field(default=32, gt=0, le=100_000)
    """RAM of one node (the Qdrant benchmark node: 8 vCPU / 32 GB); one shard's index + 20 % must fit."""
    tokens_per_vector: float = Field(default=400, gt=0, le=1e6)
    """Tokens embedded per vector (chunk size) for the re-embed time — assumption: ~400-token chunks."""
    reembed_replicas: int | None = Field(default=None, ge=1, le=100_000)
    """Embedder replicas a full re-embed uses; empty: the design's embedder replicas."""


class KeywordSearch(_Pool):
    """Keyword / BM25 index (Elasticsearch, OpenSearch)."""

    tier: ClassVar[str] = "retrieval"
    description: ClassVar[str] = "Keyword (BM25) search: replicas × concurrency servers."
    kind: Literal["keyword_search"] = "keyword_search"
    concurrency: int = Field(default=8, ge=1, le=100_000)
    """Queries one node runs at once."""
    query_time: Duration = Field(default_factory=lambda: fixed_ms(10))
    """Time of one query, in milliseconds."""


class Guardrail(_Pool):
    """Input/output safety filter (classifier or rules)."""

    tier: ClassVar[str] = "edge"
    description: ClassVar[str] = "Guardrail: a safety classifier; blocked requests end here."
    kind: Literal["guardrail"] = "guardrail"
    concurrency: int = Field(default=16, ge=1, le=100_000)
    """Requests one replica checks at once."""
    service_time: Duration = Field(default_factory=lambda: fixed_ms(15))
    """Check time per request, in milliseconds."""
    block_ratio: float = Field(default=0.0, ge=0, le=1)
    """Fraction of requests blocked (they end here, answered with a refusal)."""


class Tool(ComponentBase):
    """An agent's tool call (search API, code runner, internal service)."""

    tier: ClassVar[str] = "edge"
    description: ClassVar[str] = "Agent tool call: a delay, optionally limited in concurrency, priced per call."
    kind: Literal["tool"] = "tool"
    latency: Duration = Field(default_factory=lambda: LogNormal(mean_ms=300, p95_ms=900))
    """Time one call takes, in milliseconds."""
    max_concurrency: int | None = Field(default=None, ge=1, le=10**7)
    """Calls in flight at most; empty means unbounded (an external service)."""
    usd_per_call: float = Field(default=0.0, ge=0, le=100)
    """Price of one call in USD (a paid search API, say)."""


class Judge(_ProviderApi):
    """LLM-as-judge for evaluations, behind an API."""

    tier: ClassVar[str] = "model"
    description: ClassVar[str] = (
        "LLM-as-judge: scores one output per request through a provider API with rate limits."
    )
    kind: Literal["judge"] = "judge"
    prompt_tokens: Count = Field(default_factory=lambda: fixed_count(1500))
    """Tokens in one judge prompt (rubric + question + answer)."""
    output_tokens: Count = Field(default_factory=lambda: fixed_count(150))
    """Tokens in one verdict (score + short rationale)."""
    # The eval as statistics (sim.quality.evalstats): what the judge's scores can detect.
    eval_outcome: Literal["binary", "score"] = "binary"
    """What the judge emits per case: `binary` pass/fail (McNemar) or a `score` (paired differences)."""
    eval_cases: int | None = Field(default=None, ge=1, le=10**10)
    """Cases per eval run; empty: the workload's items per run (or one day of requests)."""
    eval_regression_points: float | None = Field(default=None, gt=0, le=100)
    """Smallest drop the eval must detect: points of pass rate (1 = 1 %) or score units."""
    eval_power: float = 0.8
    """Probability of detecting that drop when it is real, in (0, 1) (0.8 is usual)."""
    eval_alpha: float = 0.05
    """Two-sided false-alarm rate of the comparison, in (0, 1)."""
    eval_discordant_ratio: float = Field(default=0.1, gt=0, le=1)
    """Share of cases where the candidate and the current model disagree (pass/fail) — assumption: measure it on the last two runs."""
    eval_score_sd: float = Field(default=1.0, gt=0, le=1e6)
    """Standard deviation of per-case score differences (score outcomes) — assumption: measure it on the last two runs."""
    judge_human_agreement: float | None = Field(default=None, gt=0, le=1)
    """Agreement with human labels the design assumes (binary: fraction of cases; score: correlation); empty: not validated."""

    @field_validator("eval_power", "eval_alpha")
    @classmethod
    def _probability(cls, v: float, info):
        if not (0 < v < 1):
            usual = "0.8 is the usual choice, 0.9 for a release gate" if info.field_name == "eval_power" else "0.05 is usual"
            raise ValueError(f"{info.field_name} {v!r} is not a probability in (0, 1); {usual}")
        return v


class BatchStage(ComponentBase):
    """A data-pipeline step processing items with a pool of workers."""

    tier: ClassVar[str] = "offline"
    description: ClassVar[str] = "Pipeline step: items per second per worker × workers; priced per worker-hour."
    kind: Literal["batch_stage"] = "batch_stage"
    workers: int = Field(default=4, ge=1, le=1_000_000)
    """Workers processing items in parallel."""
    items_per_s_per_worker: float = Field(default=100, ge=1e-6, le=1e9)
    """Items one worker processes per second."""
    output_ratio: float = Field(default=1.0, ge=0, le=1000)
    """Items out per item in (0.8 after a dedup that drops 20 %; chunking can exceed 1)."""
    startup_s: float = Field(default=0, ge=0, le=86_400)
    """Fixed time before the first item (scheduling, loading), in seconds."""
    worker_hourly_usd: float | None = Field(default=None, ge=0, le=10_000)
    """Price of one worker-hour in USD; empty takes the CPU replica default."""
    service_time: Duration | None = None
    """Per-request time when this stage sits on an online request path; empty derives it from items/s."""


class TrainingJob(ComponentBase):
    """A fine-tuning run: duration from 6 × params × tokens over the cluster's useful FLOPs."""

    tier: ClassVar[str] = "offline"
    description: ClassVar[str] = "Fine-tuning job: full, LoRA or QLoRA; GPU-hours and cost per run."
    kind: Literal["training_job"] = "training_job"
    model: ModelName = Field(min_length=1, max_length=100)
    """Base model name from the catalogue."""
    method: Literal["full", "lora", "qlora"] = "lora"
    """Fine-tuning method: full weights, LoRA adapters, or LoRA on a 4-bit base (QLoRA)."""
    tokens: float = Field(ge=1, le=1e15)
    """Training tokens per run (dataset tokens × epochs)."""
    gpu: GpuName = Field(default="H100-SXM-80GB", min_length=1, max_length=100)
    """GPU type from the catalogue."""
    gpus: int = Field(default=8, ge=1, le=100_000)
    """GPUs used by the job."""
    precision: Literal["bf16", "fp8"] = "bf16"
    """Compute precision: sets which peak FLOPs apply."""
    utilization: float | None = Field(default=None, ge=1e-3, le=1)
    """Model FLOPs utilisation (MFU); empty takes the catalogue default with its source."""
    gpu_hourly_usd: float | None = Field(default=None, ge=0, le=1_000)
    """Price of one GPU-hour in USD; empty takes the GPU catalogue price."""
    # Memory per GPU and reliability (sim.quality.training).
    seq_len_tokens: int = Field(default=2048, ge=1, le=10_000_000)
    """Tokens per training sequence (packed); activations grow with it (torchtune's rows: 2,048)."""
    micro_batch_per_gpu: int = Field(default=2, ge=1, le=4096)
    """Sequences one GPU processes per step (torchtune's rows: batch 2)."""
    sharding: Literal["none", "zero1", "zero2", "zero3"] = "zero3"
    """How weights, gradients and optimizer states split over the GPUs: ZeRO stage 1/2/3 (zero3 = FSDP full shard)."""
    activation_checkpointing: bool = True
    """Keep only each layer's input and recompute the rest in the backward pass (about a third more compute is not modelled)."""
    failure_rate_per_gpu_hour: float | None = Field(default=None, ge=0, le=1)
    """Unexpected job interruptions per GPU-hour; empty: Llama 3's 1.97e-5 (419 in 54 days on 16,384 H100s)."""
    checkpoint_interval_min: float | None = Field(default=None, gt=0, le=100_000)
    """Minutes between checkpoints; empty: Young's optimum √(2 × checkpoint time × MTBF)."""
    restart_min: float = Field(default=10, ge=0, le=10_000)
    """Minutes from a failure to training again (detect, reschedule, reload the checkpoint) — assumption."""
    gpu_acquisition_h: float = Field(default=0, ge=0, le=10_000)
    """Hours to obtain the GPUs before the job starts (0: on-demand capacity at hand — assumption; not billed)."""


class Monitoring(ComponentBase):
    """Metrics, traces and eval logging: off the request path, priced per month."""

    tier: ClassVar[str] = "offline"
    description: ClassVar[str] = "Monitoring / observability: off the request path; a monthly cost."
    kind: Literal["monitoring"] = "monitoring"
    monthly_usd: float = Field(default=500, ge=0, le=10**7)
    """Monthly price in USD (hosted metrics + logs for a small fleet)."""
    latency: Duration = Field(default_factory=lambda: fixed_ms(0))
    """Added latency when placed on a request path (usually 0: logging is asynchronous)."""


Component = Annotated[
    Union[
        Service,
        LoadBalancer,
        ApiGateway,
        Cache,
        Queue,
        Database,
        ObjectStorage,
        LLMServer,
        LLMApi,
        Embedder,
        VectorDB,
        KeywordSearch,
        Reranker,
        Guardrail,
        Tool,
        Judge,
        BatchStage,
        TrainingJob,
        Monitoring,
    ],
    Field(discriminator="kind"),
]
"""Any component, chosen by its `kind`."""

KINDS: dict[str, type[ComponentBase]] = {
    cls.model_fields["kind"].default: cls
    for cls in Component.__origin__.__args__  # type: ignore[attr-defined]
}
"""Kind name → class, in catalogue order."""
