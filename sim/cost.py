"""Daily cost of a design: one rule per component kind, each line showing its arithmetic and source.

Usage::

    >>> from designs.io import load_design
    >>> from sim.cost import daily_cost
    >>> # total, lines = daily_cost(load_design("designs/library/llm_serving.yaml"))
    >>> # lines[2].rule -> '20 GPUs × $3.99/h × 24 h'; lines[2].source -> 'Lambda on-demand …'

Rules (unit prices default to ``components/data/prices.csv`` and ``gpus.csv``, each with its
source; a price set on the component wins and says so):

* always-on pools — replicas × price per replica-hour × 24 h (service, gateway, guardrail: a CPU
  replica; cache: a cache node; database: a DB instance; vector_db, keyword_search: an 8-vCPU
  search node; embedder, reranker: their GPU or CPU replica; batch_stage online: workers);
* ``llm_server`` — GPUs × price per GPU-hour × 24 h;
* ``load_balancer`` — instances × hourly base + requests × price per 1M requests;
* ``llm_api``/``judge`` — calls/day × (fresh input × $/1M in + cached input × $/1M cached + output × $/1M out),
  × (1 − batch discount) with the batch API (``sim.providers.pricing``: prompt caching, agent context growth);
* ``queue`` — enqueues/day × price per 1M requests; ``tool`` — calls/day × price per call;
* ``object_storage`` — GB × price per GB-month / 30.4 days; ``monitoring`` — monthly price / 30.4;
* ``training_job`` (and, in pipeline designs, every stage ``sim.pipeline`` prices per run) —
  cost per run × runs per week / 7.

Calls per day use the whole day's volume (``requests_per_day``; items per run × runs per
week / 7 for a pipeline design; throughput × 86,400 s for a closed loop) times the component's visits per request — never the peak rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from components.hardware import get_gpu, price, source_of
from sim.results import CostLine, PipelineResult

__all__ = ["daily_cost", "COST_RULES", "CostContext", "DAYS_PER_MONTH", "RUN_PRICED_KINDS"]

DAYS_PER_MONTH = 30.4
"""365 / 12 = 30.42 days; monthly prices are divided by 30.4 (the usual cloud-billing figure)."""

RUN_PRICED_KINDS = frozenset({"batch_stage", "training_job", "embedder", "reranker", "llm_api", "judge"})
"""Kinds that ``sim.pipeline`` prices per run in a pipeline design (they run only during a run)."""


@dataclass
class CostContext:
    """What the rules need besides the component itself."""

    design: Any
    calls_per_day: dict[str, float]
    daily_volume: float
    volume_text: str
    tokens: dict[str, tuple[float, float]] = field(default_factory=dict)
    pipeline: PipelineResult | None = None

    @property
    def runs_per_week(self) -> float:
        batch = self.design.workload.batch
        return batch.runs_per_week if batch is not None else 1.0

    def stage_cost(self, cid: str) -> float | None:
        if self.pipeline is None:
            return None
        for s in self.pipeline.stages:
            if s.id == cid:
                return s.cost_usd
        return None


def _src(key: str, why: str = "") -> str:
    """'prices.csv <row> (<why this row>) — <the row's source>': which price row a line uses and why."""
    row = f"prices.csv {key}" + (f" ({why})" if why else "")
    return f"{row} — {source_of('price', key).split(' | ')[0]}"


# Why each kind without a price row of its own is priced at the row it uses (no invented prices).
_CPU_REPLICA = "one m7i.xlarge, 4 vCPU / 16 GiB, per replica"
_WHY = {
    "service": _CPU_REPLICA,
    "api_gateway": "a self-hosted gateway priced as one CPU replica, 4 vCPU, per replica; prices.csv has no API-gateway price",
    "guardrail": "a CPU classifier priced as one CPU replica, 4 vCPU, per replica; prices.csv has no guardrail price",
    "cache": "ElastiCache cache.r7g.large per node",
    "database": "RDS db.m7g.large Single-AZ per instance",
    "vector_db": "self-hosted Qdrant node, 8 vCPU / 32 GiB, the node class of its QPS benchmark",
    "keyword_search": ("same 8 vCPU node class as the Qdrant benchmark behind vector_db; "
                       "no separate keyword-search price"),
    "embedder": "CPU replica, 4 vCPU; no embedder price",
    "reranker": "CPU replica, 4 vCPU; no reranker price",
    "batch_stage": "one worker priced as one CPU replica, 4 vCPU; no batch-worker price",
}


def _money(x: float) -> str:
    return f"${x:,.4g}" if x < 100 else f"${x:,.0f}"


def _hourly(cid: str, kind: str, n: int, unit: str, usd_h: float, source: str) -> CostLine:
    return CostLine(id=cid, kind=kind, usd_per_day=n * usd_h * 24,
                    rule=f"{n} {unit}{'s' if n != 1 else ''} × {_money(usd_h)}/h × 24 h", source=source)


def _catalogue_or(value: float | None, key: str, why: str = "") -> tuple[float, str]:
    if value is not None:
        return value, "set in the design"
    return price(key), _src(key, why)


def _pool_rule(key: str, unit: str = "replica") -> Callable[[Any, CostContext], CostLine]:
    def rule(comp, ctx):
        usd_h, src = price(key), _src(key, _WHY.get(comp.kind, ""))
        return _hourly(comp.id, comp.kind, comp.replicas, unit, usd_h, src)

    return rule


def _vector_db(comp, ctx):
    # Every shard has `replicas` copies: shards × replicas nodes are paid for.
    usd_h, src = price("vector_db_node_hour"), _src("vector_db_node_hour", _WHY["vector_db"])
    shards = getattr(comp, "shards", 1)
    if shards == 1:
        return _hourly(comp.id, comp.kind, comp.replicas, "node", usd_h, src)
    n = shards * comp.replicas
    return CostLine(id=comp.id, kind=comp.kind, usd_per_day=n * usd_h * 24,
                    rule=f"{shards} shards × {comp.replicas} replicas = {n} nodes × {_money(usd_h)}/h × 24 h", source=src)


def _load_balancer(comp, ctx):
    base, per_m = price("lb_hour"), price("lb_usd_per_million_requests")
    calls = ctx.calls_per_day.get(comp.id, 0.0)
    usd = comp.replicas * base * 24 + calls / 1e6 * per_m
    return CostLine(id=comp.id, kind=comp.kind, usd_per_day=usd,
                    rule=f"{comp.replicas} × {_money(base)}/h × 24 h + {calls:,.0f} requests/day × {_money(per_m)}/1M",
                    source=f"{_src('lb_hour', 'ALB base charge per instance')}; "
                           f"{_src('lb_usd_per_million_requests', 'ALB LCUs at one new connection per request')}")


def _queue(comp, ctx):
    per_m, src = _catalogue_or(comp.usd_per_million_requests, "queue_usd_per_million_requests", "SQS Standard")
    calls = ctx.calls_per_day.get(comp.id, 0.0)
    return CostLine(id=comp.id, kind=comp.kind, usd_per_day=calls / 1e6 * per_m,
                    rule=f"{calls:,.0f} enqueues/day × {_money(per_m)}/1M requests", source=src)


def _object_storage(comp, ctx):
    per_gb, src = _catalogue_or(comp.usd_per_gb_month, "object_storage_gb_month", "S3 Standard, first 50 TB")
    return CostLine(id=comp.id, kind=comp.kind, usd_per_day=comp.storage_gb * per_gb / DAYS_PER_MONTH,
                    rule=f"{comp.storage_gb:,.0f} GB × {_money(per_gb)}/GB-month / {DAYS_PER_MONTH} days", source=src)


def _gpu_price(gpu_name: str, override: float | None) -> tuple[float, str]:
    if override is not None:
        return override, "set in the design"
    g = get_gpu(gpu_name)
    return g.gpu_hourly_usd, g.price_source


def _llm_server(comp, ctx):
    pools = [p for p in (getattr(comp, "prefill_pool", None), getattr(comp, "decode_pool", None)) if p is not None]
    if pools:  # prefill/decode disaggregation: each pool at its own GPU's price
        parts = [(p.gpus_per_replica * p.replicas, *_gpu_price(p.gpu, p.gpu_hourly_usd), p.gpu) for p in pools]
        usd = sum(n * usd_h * 24 for n, usd_h, _, _ in parts)
        rule = " + ".join(f"{n} {g} × {_money(usd_h)}/h × 24 h" for n, usd_h, _, g in parts)
        return CostLine(id=comp.id, kind=comp.kind, usd_per_day=usd, rule=f"prefill {rule.replace(' + ', ' + decode ', 1)}",
                        source="; ".join(dict.fromkeys(src for _, _, src, _ in parts)))
    usd_h, src = _gpu_price(comp.gpu, comp.gpu_hourly_usd)
    return _hourly(comp.id, comp.kind, comp.gpus, "GPU", usd_h, src)


def _tokens_per_call(comp, ctx) -> tuple[float, float]:
    if comp.id in ctx.tokens:
        return ctx.tokens[comp.id]
    if comp.kind == "judge":
        return comp.prompt_tokens.expected(), comp.output_tokens.expected()
    classes = ctx.design.workload.request_classes()
    return (sum(c.share * c.prompt_tokens.expected() for c in classes),
            sum(c.share * c.output_tokens.expected() for c in classes))


def _per_run(comp, ctx) -> CostLine | None:
    """Pipeline designs: the per-run cost sim.pipeline computed, spread over the week.

    Used for the kinds that only run during a run (RUN_PRICED_KINDS) and for any stage
    sim.pipeline gives a cost (an llm_server it rents for the run's hours, say).
    """
    per_run = ctx.stage_cost(comp.id)
    if per_run is None or (comp.kind not in RUN_PRICED_KINDS and per_run <= 0):
        return None
    rpw = ctx.runs_per_week
    return CostLine(id=comp.id, kind=comp.kind, usd_per_day=per_run * rpw / 7,
                    rule=f"{_money(per_run)} per run × {rpw:g} runs/week / 7",
                    source="sim.pipeline (see the pipeline stage detail)")


def _api(comp, ctx):
    tin, tout = _tokens_per_call(comp, ctx)
    calls = ctx.calls_per_day.get(comp.id, 0.0)
    from sim.providers.pricing import PRICING_SOURCES, api_call_price

    per_call, text, _ = api_call_price(comp, ctx.design, tin, tout, calls)
    src = f"per-token prices on the component ({comp.provider_model}; catalogue default: OpenAI list price for GPT-4o)"
    if "cached" in text or "batch" in text or "cache-write" in text:
        src += f"; {PRICING_SOURCES}"
    return CostLine(id=comp.id, kind=comp.kind, usd_per_day=calls * per_call,
                    rule=f"{calls:,.0f} calls/day × {text}", source=src)


def _token_pool(comp, ctx):
    if comp.replica_hourly_usd is not None:
        usd_h, src = comp.replica_hourly_usd, "set in the design"
    elif comp.gpu:
        usd_h, src = _gpu_price(comp.gpu, None)
        src = f"gpus.csv {comp.gpu} hourly price (one GPU per replica) — {src}"
    else:
        usd_h, src = price("cpu_replica_hour"), _src("cpu_replica_hour", _WHY[comp.kind])
    unit = f"{comp.gpu} replica" if comp.gpu else "CPU replica"
    return _hourly(comp.id, comp.kind, comp.replicas, unit, usd_h, src)


def _tool(comp, ctx):
    calls = ctx.calls_per_day.get(comp.id, 0.0)
    return CostLine(id=comp.id, kind=comp.kind, usd_per_day=calls * comp.usd_per_call,
                    rule=f"{calls:,.0f} calls/day × ${comp.usd_per_call:g} per call",
                    source="usd_per_call on the component")


def _batch_stage(comp, ctx):
    usd_h, src = _catalogue_or(comp.worker_hourly_usd, "cpu_replica_hour", _WHY["batch_stage"])
    return _hourly(comp.id, comp.kind, comp.workers, "worker", usd_h, src)


def _training_job(comp, ctx):
    rpw = ctx.runs_per_week
    try:
        from sim.pipeline import training_estimate
    except ImportError:  # pragma: no cover - sim.pipeline ships with the engine
        return CostLine(id=comp.id, kind=comp.kind, usd_per_day=0.0,
                        rule="unpriced: sim.pipeline is not available", source="")
    est = training_estimate(comp)
    per_run = est["cost_usd"]
    return CostLine(
        id=comp.id, kind=comp.kind, usd_per_day=per_run * rpw / 7,
        rule=(f"{est['gpus']} GPUs × {est['hours']:.3g} h × ${est['gpu_hourly_usd']:.2f}/h = {_money(per_run)} per run "
              f"× {rpw:g} runs/week / 7"),
        source="sim.pipeline.training_estimate (6·params·tokens full, 4·params·tokens LoRA / cluster FLOPs; MFU from efficiency.csv LoRA rows; failures and checkpoints)")


def _monitoring(comp, ctx):
    return CostLine(id=comp.id, kind=comp.kind, usd_per_day=comp.monthly_usd / DAYS_PER_MONTH,
                    rule=f"{_money(comp.monthly_usd)}/month / {DAYS_PER_MONTH} days",
                    source="monthly_usd on the component (catalogue default: ~25 hosts at Datadog's $18/host-month, "
                           "prices.csv monitoring_host_month)")


COST_RULES: dict[str, Callable[[Any, CostContext], CostLine]] = {
    "service": _pool_rule("cpu_replica_hour"),
    "load_balancer": _load_balancer,
    "api_gateway": _pool_rule("cpu_replica_hour"),
    "cache": _pool_rule("cache_node_hour", "node"),
    "queue": _queue,
    "database": _pool_rule("database_instance_hour", "instance"),
    "object_storage": _object_storage,
    "llm_server": _llm_server,
    "llm_api": _api,
    "embedder": _token_pool,
    "vector_db": _vector_db,
    "keyword_search": _pool_rule("vector_db_node_hour", "node"),
    "reranker": _token_pool,
    "guardrail": _pool_rule("cpu_replica_hour"),
    "tool": _tool,
    "judge": _api,
    "batch_stage": _batch_stage,
    "training_job": _training_job,
    "monitoring": _monitoring,
}
"""Component kind → rule ``(comp, ctx) -> CostLine``; every kind in the catalogue has one."""


def daily_cost(
    design: Any,
    arrival_rps_by_component: dict[str, float] | None = None,
    tokens: dict[str, tuple[float, float]] | None = None,
    *,
    arrival_rps: float | None = None,
    visits: dict[str, float] | None = None,
    pipeline: PipelineResult | None = None,
) -> tuple[float, list[CostLine]]:
    """(USD per day, one CostLine per component) for `design`.

    * ``arrival_rps_by_component``: measured or estimated rates (requests/s) at each component,
      taken at the design's rate ``arrival_rps`` (default ``workload.peak_rps``); they give the
      visits per request of per-call rules. Without them (or ``visits``) the analytic traffic is used.
    * ``tokens``: ``{component id: (mean prompt tokens, mean output tokens)}`` per call, e.g.
      measured by the simulator; default the workload's (or the judge's own) means.
    * ``pipeline``: a ``PipelineResult`` already computed (else computed here for batch designs).
    """
    wl = design.workload
    if visits is None:
        if arrival_rps_by_component is not None:
            base = arrival_rps or wl.peak_rps
            visits = {cid: (r / base if base > 0 else 0.0) for cid, r in arrival_rps_by_component.items()}
        else:
            from sim.twin.flow import visits_per_request

            visits = visits_per_request(design)
    if pipeline is None and wl.batch is not None:
        try:
            from sim.pipeline import pipeline_result

            pipeline = pipeline_result(design)
        except ImportError:  # pragma: no cover
            pipeline = None
    if wl.batch is not None:
        volume = wl.batch.items_per_run * wl.batch.runs_per_week / 7
        text = f"{wl.batch.items_per_run:,.0f} items/run × {wl.batch.runs_per_week:g} runs/week / 7"
    elif wl.closed_loop and arrival_rps:
        # A closed loop has no daily figure of its own: its throughput, all day (as the engine).
        volume, text = arrival_rps * 86_400, f"{arrival_rps:,.4g} requests/s × 86,400 s"
    else:
        volume, text = wl.requests_per_day, f"{wl.requests_per_day:,.0f} requests/day"
    ctx = CostContext(
        design=design, calls_per_day={cid: volume * v for cid, v in visits.items()}, daily_volume=volume,
        volume_text=text, tokens=dict(tokens or {}), pipeline=pipeline,
    )
    lines = []
    for comp in design.components:
        try:
            rule = COST_RULES[comp.kind]
        except KeyError:
            raise ValueError(f"component '{comp.id}': no cost rule for kind '{comp.kind}'") from None
        line = _per_run(comp, ctx) or rule(comp, ctx)
        if not math.isfinite(line.usd_per_day):
            raise ValueError(f"component '{comp.id}': cost is not a finite number ({line.rule})")
        lines.append(line)
    return sum(ln.usd_per_day for ln in lines), lines
