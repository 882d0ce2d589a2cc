"""Training jobs and batch pipelines: duration, GPU-hours and cost of one run, analytically.

A pipeline design has ``workload.batch`` (items per run, window, runs per week). Its flow is a
DAG walked from ``entry``; every stage starts when all its inputs have finished (batch
semantics), so a fan-out's join waits for its slowest branch and the run takes the longest
(critical) path. The exception is a ``queue``: it decouples producer and consumer, so the
stage after it streams — it starts with the producer and ends at the later of its own work
and the producer's last item (plus one item's time). Stage costs count busy (work) time.
Per kind:

* ``batch_stage``: startup + items_in / (workers × items/s per worker); emits items × output_ratio.
* ``training_job``: :func:`training_estimate` hours (6 × params × tokens over the cluster's
  useful FLOPs, × the LoRA/QLoRA time fraction); items pass through.
* ``judge`` / ``llm_api`` (an eval gate, batch generation): items / the call rate its limits
  allow (rpm, tpm, max_concurrency — :func:`sim.providers.ratelimit.api_limits`) plus one call's latency;
  token cost per 1M tokens.
* ``embedder`` / ``reranker``: items × tokens (pairs) / (replicas × per-replica rate).
* ``llm_server`` (batch generation): items / the replicas' saturated request rate from the
  roofline twin (``sim.llm.roofline.llm_service_moments``), at the workload's token lengths.
* anything else: its mean latency (a database write, an object-store PUT); a ``cache`` passes
  on its misses and a ``guardrail`` its unblocked items, as in the request flow.

Usage::

    >>> from designs.io import load_design
    >>> from sim.pipeline import pipeline_result, training_estimate
    >>> # r = pipeline_result(load_design("designs/library/finetune_pipeline.yaml"))
    >>> # r.summary -> 'weekly run finishes in 9.5 h of a 24 h window'
    >>> # training_estimate(job)["hours"], ["tokens_per_s_per_gpu"], ["sources"]

Bad input raises :class:`PipelineError` (a ``ValueError``) naming the component and numbers.
"""

from __future__ import annotations

from components.errors import Refusal

import math
from typing import Any

from components.hardware import UnknownNameError, factor, get_gpu, get_model, price, source_of
from sim.providers.ratelimit import api_limits, mean_tokens_per_call
from sim.results import PipelineResult, PipelineStage

__all__ = [
    "PipelineError",
    "training_estimate",
    "training_memory_gb",
    "pipeline_result",
    "FULL_FT_BYTES_PER_PARAM",
    "LORA_BYTES_PER_PARAM",
    "QLORA_BYTES_PER_PARAM",
]

# Memory of a fine-tune before activations, in bytes per base-model parameter.
# Full fine-tune with mixed-precision Adam: fp16/bf16 weights (2) + gradients (2) + fp32 master
# weights, momentum and variance (4 + 4 + 4) = 16 bytes/param — ZeRO paper (Rajbhandari et al.,
# SC'20, arXiv 1910.02054, §3.1: "16Ψ bytes of memory"). Sharding (ZeRO-3/FSDP) spreads it over
# all GPUs, so the check compares it with the job's total GPU memory.
FULL_FT_BYTES_PER_PARAM = 16.0
# LoRA and QLoRA: the frozen base in BF16 (2 bytes) or NF4 (0.5 bytes) plus adapters with their
# own gradients and Adam states. Adapters at rank 8–64 on every linear layer are ≈ 0.5–1 % of the
# parameters; 1 % × 16 bytes = 0.16 bytes/param. Check: torchtune README (Llama 3.1 8B, 1× RTX
# 4090, batch 2, seq 2048) measures LoRA at 16.2 GiB peak = 2.17 bytes/param, QLoRA at 7.4 GiB =
# 0.99 bytes/param (activations and dequantisation buffers make the rest).
_ADAPTER_BYTES_PER_PARAM = 0.16
LORA_BYTES_PER_PARAM = 2.0 + _ADAPTER_BYTES_PER_PARAM
QLORA_BYTES_PER_PARAM = 0.5 + _ADAPTER_BYTES_PER_PARAM

_BYTES_PER_PARAM = {"full": FULL_FT_BYTES_PER_PARAM, "lora": LORA_BYTES_PER_PARAM, "qlora": QLORA_BYTES_PER_PARAM}


class PipelineError(Refusal):
    """A training job or pipeline that cannot be estimated; the message names the component."""


# --- training jobs ----------------------------------------------------------------------------


def _hw(job: Any):
    """(ModelSpec, GPU) of a job, or a PipelineError carrying the hardware module's hint."""
    try:
        model = get_model(job.model)
    except UnknownNameError as e:
        raise PipelineError(f"training_job '{job.id}': model: {e}") from None
    try:
        gpu = get_gpu(job.gpu)
    except UnknownNameError as e:
        raise PipelineError(f"training_job '{job.id}': gpu: {e}") from None
    return model, gpu


def training_memory_gb(job: Any) -> float:
    """Memory the job needs before activations, in GB (see the *_BYTES_PER_PARAM constants)."""
    model, _ = _hw(job)
    return model.params_total_b * _BYTES_PER_PARAM[job.method]


def training_estimate(job: Any) -> dict[str, Any]:
    """Duration, GPU-hours and cost of one fine-tuning run, with every factor's source.

    compute hours = k × active params × tokens / (GPUs × dense peak FLOPs(precision) × MFU) / 3600
    with k = 6 for a full fine-tune (MFU ``training_mfu``) and k = 4 for LoRA/QLoRA (frozen
    weights get no weight gradient; MFU from LoRA measurements, ``sim.quality.training``);
    ``hours`` adds checkpoints, failures and restarts (the job's ``reliability``). Mixture-of-
    experts models use active parameters for FLOPs and total parameters for memory. Memory is
    checked per GPU: sharded states + activations at ``seq_len_tokens`` × ``micro_batch_per_gpu``.

    Returns a dict with ``hours``, ``gpu_hours``, ``gpu_hourly_usd``, ``cost_usd``,
    ``tokens_per_s_per_gpu`` (for comparison with measured fine-tune throughput),
    ``flops``, ``peak_tflops``, ``mfu``, ``method_fraction``, ``memory_needed_gb``,
    ``memory_total_gb``, ``sources`` (factor → where it comes from), ``explanation`` lines
    and ``warnings``. Raises :class:`PipelineError` for an unknown model or GPU, zero tokens,
    a job whose weights and optimizer states cannot fit the GPUs' total memory, or one GPU's
    share (states + activations) that exceeds its HBM — the message names the sharding,
    checkpointing or batch that would fit.
    """
    model, gpu = _hw(job)
    cid = f"training_job '{job.id}'"
    if not (job.tokens and job.tokens > 0 and math.isfinite(job.tokens)):
        raise PipelineError(f"{cid}: tokens is {job.tokens!r}; a run trains on a positive number of tokens (dataset tokens × epochs)")
    if job.gpus < 1:
        raise PipelineError(f"{cid}: gpus is {job.gpus}; a job needs at least one GPU")

    need_gb = model.params_total_b * _BYTES_PER_PARAM[job.method]
    have_gb = job.gpus * gpu.hbm_gb
    what = {
        "full": f"full fine-tune needs ≈ {need_gb:,.0f} GB for weights + gradients + Adam states "
                f"({FULL_FT_BYTES_PER_PARAM:g} B/param × {model.params_total_b:g} B params, before activations)",
        "lora": f"LoRA needs ≈ {need_gb:,.0f} GB for BF16 base weights + adapters "
                f"({LORA_BYTES_PER_PARAM:g} B/param × {model.params_total_b:g} B params, before activations)",
        "qlora": f"QLoRA needs ≈ {need_gb:,.0f} GB for the 4-bit base + adapters "
                 f"({QLORA_BYTES_PER_PARAM:g} B/param × {model.params_total_b:g} B params, before activations)",
    }[job.method]
    if need_gb > have_gb:
        min_gpus = math.ceil(need_gb / gpu.hbm_gb)
        hint = f"use ≥ {min_gpus} × {gpu.name}"
        if job.method == "full":
            hint += " or method: lora / qlora"
        elif job.method == "lora":
            hint += " or method: qlora"
        raise PipelineError(
            f"{cid}: {model.name} {what}; {job.gpus} × {gpu.name} {'has' if job.gpus == 1 else 'have'} "
            f"{have_gb:,.0f} GB; {hint}"
        )

    from sim.quality.training import memory_per_gpu, fitting_options, reliability, train_flops_per_param_token, train_mfu

    # Memory on one GPU: sharded states + activations at the sequence length + logits.
    mem = memory_per_gpu(job, model)
    if mem["total_gb"] > gpu.hbm_gb:
        raise PipelineError(
            f"{cid}: {model.name} {job.method} needs {mem['total_gb']:,.1f} GB per GPU ({'; '.join(mem['lines'])}) "
            f"but {gpu.name} has {gpu.hbm_gb:g} GB; would fit: {', or '.join(fitting_options(job, model, gpu.hbm_gb))}")

    if job.utilization is not None:
        mfu, mfu_src = job.utilization, "set on the component (utilization)"
    else:
        mfu, mfu_src = train_mfu(job.method, job.precision, gpu.has_fp8)
    per_token = train_flops_per_param_token(job.method)
    fraction, frac_src = 1.0, (f"{per_token} FLOPs per parameter per token "
                               + ("(forward 2 + backward 4)" if job.method == "full" else
                                  "(forward 2 + activation gradients 2; frozen weights get no weight gradient)"))
    peak_tflops = gpu.peak_tflops(job.precision)
    params_active = model.params_active_b * 1e9
    flops = per_token * params_active * job.tokens
    seconds = flops / (job.gpus * peak_tflops * 1e12 * mfu)
    compute_h = seconds / 3600.0
    # Checkpoints hold what a restart needs: all states (full) or the adapters and their optimizer.
    ckpt_bytes = model.params_total_b * 1e9 * (16.0 if job.method == "full" else 0.16)
    rel = reliability(job, compute_h, ckpt_bytes)
    hours = rel["wall_h"]
    gpu_hours = hours * job.gpus
    hourly = job.gpu_hourly_usd if job.gpu_hourly_usd is not None else gpu.gpu_hourly_usd
    hourly_src = "set on the component (gpu_hourly_usd)" if job.gpu_hourly_usd is not None else gpu.price_source
    cost = gpu_hours * hourly
    tps_per_gpu = job.tokens / seconds / job.gpus

    warnings = []
    if need_gb > 0.8 * have_gb:
        warnings.append(
            f"{cid}: {what} — {need_gb / have_gb:.0%} of {have_gb:,.0f} GB on {job.gpus} × {gpu.name}; "
            "activations may not fit"
        )
    if mem["total_gb"] > 0.9 * gpu.hbm_gb:
        warnings.append(f"{cid}: {mem['total_gb']:,.1f} GB per GPU of {gpu.hbm_gb:g} GB: little room for fragmentation")
    if job.precision == "fp8" and not gpu.has_fp8:
        warnings.append(f"{cid}: {gpu.name} has no FP8 tensor cores; the BF16 peak applies")
    moe = f" (MoE: {model.params_active_b:g} B active of {model.params_total_b:g} B)" if model.is_moe else ""
    lines = [
        f"FLOPs = {per_token} × {model.params_active_b:g}e9 params{moe} × {job.tokens:,.4g} tokens = {flops:.3e}",
        f"cluster = {job.gpus} × {gpu.name} × {peak_tflops:g} TFLOPS ({job.precision}, dense) × MFU {mfu:.3f} ({job.method})",
        f"compute = FLOPs / cluster / 3600 = {compute_h:.2f} h",
        rel["line"],
        f"GPU-hours = {hours:.2f} h × {job.gpus} = {gpu_hours:,.1f}; cost = × ${hourly:.2f}/GPU-h = ${cost:,.0f}",
        f"throughput = {tps_per_gpu:,.0f} tokens/s per GPU",
        f"memory: {what}; {have_gb:,.0f} GB available",
        f"memory per GPU = {mem['total_gb']:,.1f} of {gpu.hbm_gb:g} GB: " + "; ".join(mem["lines"]),
    ]
    return {
        "id": job.id,
        "model": model.name,
        "gpu": gpu.name,
        "gpus": job.gpus,
        "method": job.method,
        "precision": job.precision,
        "tokens": job.tokens,
        "flops": flops,
        "peak_tflops": peak_tflops,
        "mfu": mfu,
        "method_fraction": fraction,
        "hours": hours,
        "gpu_hours": gpu_hours,
        "gpu_hourly_usd": hourly,
        "cost_usd": cost,
        "tokens_per_s_per_gpu": tps_per_gpu,
        "memory_needed_gb": need_gb,
        "memory_total_gb": have_gb,
        "memory_per_gpu_gb": mem["total_gb"],
        "memory_per_gpu": mem,
        "compute_hours": compute_h,
        "reliability": rel,
        "acquisition_hours": job.gpu_acquisition_h,
        "sources": {
            "params": model.source,
            "peak_tflops": gpu.spec_source,
            "mfu": mfu_src,
            "method_fraction": frac_src,
            "gpu_hourly_usd": hourly_src,
            "memory": "ZeRO (arXiv 1910.02054) 16 B/param for full; LoRA/QLoRA base + 1 % adapters; activations "
                      "Korthikanti et al. 2022 (arXiv 2205.05198) — sim/quality/training.py",
            "failures": rel["rate_source"],
        },
        "explanation": lines,
        "warnings": warnings,
    }


# --- pipelines --------------------------------------------------------------------------------

_LATENCY_FIELDS = ("service_time", "latency", "query_time", "enqueue_latency")


def _mean_latency_s(comp: Any) -> float:
    """Mean latency of a component without a throughput model (its first duration field)."""
    if comp.kind == "cache":
        return (comp.hit_ratio * comp.hit_latency.expected() + (1 - comp.hit_ratio) * comp.miss_latency.expected()) / 1000.0
    for name in _LATENCY_FIELDS:
        d = getattr(comp, name, None)
        if d is not None and hasattr(d, "expected"):
            return d.expected() / 1000.0
    return 0.0


def _stage(comp: Any, items: float, design: Any) -> dict[str, Any]:
    """Duration (s), items out, GPU-hours, cost and a one-line explanation for one stage."""
    kind = comp.kind
    out = items
    gpu_h = cost = 0.0
    if kind == "batch_stage":
        rate = comp.workers * comp.items_per_s_per_worker
        dur = comp.startup_s + items / rate
        out = items * comp.output_ratio
        hourly = comp.worker_hourly_usd if comp.worker_hourly_usd is not None else price("cpu_replica_hour")
        cost = comp.workers * dur / 3600 * hourly
        detail = (f"{comp.startup_s:g} s startup + {items:,.0f} items / ({comp.workers} workers × "
                  f"{comp.items_per_s_per_worker:g}/s) = {dur / 3600:.2f} h; {comp.workers} × ${hourly:.4g}/h")
    elif kind == "training_job":
        est = training_estimate(comp)
        # GPU acquisition is waiting before the job, on the clock but not on the bill.
        dur, gpu_h, cost = (est["hours"] + est["acquisition_hours"]) * 3600, est["gpu_hours"], est["cost_usd"]
        detail = (f"{est['model']} {est['method']} on {est['gpus']} × {est['gpu']}: {est['hours']:.2f} h, "
                  f"{est['tokens_per_s_per_gpu']:,.0f} tok/s/GPU, ${est['gpu_hourly_usd']:.2f}/GPU-h")
    elif kind in ("judge", "llm_api"):
        lim = api_limits(comp, design.workload, arrival_rps=0.0)
        prompt, output = mean_tokens_per_call(comp, design.workload)
        one = lim["mean_service_s"]
        rate = lim["max_throughput_rps"]
        if rate:
            dur = items / rate + one
            why = f"{lim['binding']} limit" if rate == lim["max_sustainable_rps"] else "max_concurrency"
            detail = f"{items:,.0f} calls / {rate:,.3g} calls/s ({why}) + {one:.2f} s = {dur / 3600:.2f} h"
        else:
            dur = one
            detail = f"no rate limit or concurrency cap: all {items:,.0f} calls in parallel, {one:.2f} s"
        if comp.batch_api:
            # The provider's batch API runs on its own pool and promises results within the
            # turnaround window, not at a rate: plan for the window (OpenAI/Anthropic: 24 h).
            dur = comp.batch_turnaround_h * 3600
            detail = f"batch API: {items:,.0f} calls, results within {comp.batch_turnaround_h:g} h (the provider's turnaround)"
        from sim.providers.pricing import api_call_price

        # The cache stays warm at the run's own call rate, spread over a day for the formula.
        per_call, text, _ = api_call_price(comp, design, prompt, output, items / max(dur, 1.0) * 86_400)
        cost = items * per_call
        detail += f"; {items:,.0f} × {text}"
    elif kind == "llm_server":
        # Batch generation on self-hosted replicas: items at the replicas' saturated request rate
        # (the roofline twin in sim.llm: sequence slots / mean slot time), plus one request.
        from sim.llm.twin import llm_service_moments

        try:
            mean_s, _, slots = llm_service_moments(comp, design.workload)
        except ValueError as e:
            raise PipelineError(f"llm_server '{comp.id}': {e}") from None
        rate = slots / mean_s
        dur = items / rate + mean_s
        gpu = get_gpu(comp.gpu)
        hourly = comp.gpu_hourly_usd if comp.gpu_hourly_usd is not None else gpu.gpu_hourly_usd
        gpu_h = comp.gpus * dur / 3600
        cost = gpu_h * hourly
        detail = (f"{items:,.0f} requests / {rate:,.3g} requests/s ({comp.replicas} replicas saturated, "
                  f"roofline) + {mean_s:.2f} s = {dur / 3600:.2f} h; {comp.gpus} GPUs × ${hourly:.2f}/h")
    elif kind in ("embedder", "reranker"):
        if kind == "embedder":
            # Without its own token count, an embedder embeds the item's prompt tokens.
            per = (comp.tokens_per_request.expected() if comp.tokens_per_request is not None
                   else sum(c.share * c.prompt_tokens.expected() for c in design.workload.request_classes()))
            rate, unit = comp.tokens_per_s_per_replica, "tokens"
        else:
            per, rate, unit = comp.pairs_per_request.expected(), comp.pairs_per_s_per_replica, "pairs"
        work = items * per
        dur = work / (comp.replicas * rate) + comp.overhead_ms / 1000.0
        gpu = get_gpu(comp.gpu) if comp.gpu else None
        hourly = comp.replica_hourly_usd if comp.replica_hourly_usd is not None else (
            gpu.gpu_hourly_usd if gpu else price("cpu_replica_hour"))
        gpu_h = comp.replicas * dur / 3600 if gpu else 0.0
        cost = comp.replicas * dur / 3600 * hourly
        detail = (f"{items:,.0f} items × {per:,.0f} {unit} / ({comp.replicas} × {rate:,.0f} {unit}/s) = "
                  f"{dur / 3600:.2f} h; {comp.replicas} × ${hourly:.4g}/h")
    else:
        dur = _mean_latency_s(comp)
        if kind == "cache":
            out = items * (1 - comp.hit_ratio)
        elif kind == "guardrail":
            out = items * (1 - comp.block_ratio)
        detail = f"mean latency {dur * 1000:.3g} ms (no throughput model in a pipeline; always-on cost is in the daily cost)"
    return {"duration_s": dur, "items_out": out, "gpu_hours": gpu_h, "cost_usd": cost, "detail": detail}


def _tail_s(comp: Any, design: Any) -> float | None:
    """Time a streaming consumer needs after its producer's last item; None: it cannot stream."""
    if comp.kind == "training_job":
        return None  # training needs the whole dataset before it starts
    if comp.kind == "batch_stage":
        return 1.0 / comp.items_per_s_per_worker  # one item on one worker (startup is paid up front)
    return _stage(comp, 1.0, design)["duration_s"]


def _topo_order(design: Any, nodes: set[str]) -> list[str]:
    """Forward-flow nodes reachable from entry in a topological order (Kahn, file order on ties)."""
    indeg = {n: 0 for n in nodes}
    for n in nodes:
        for e in design.out_edges(n):
            indeg[e.to] += 1
    order_ix = {c.id: i for i, c in enumerate(design.components)}
    ready = sorted((n for n in nodes if indeg[n] == 0), key=order_ix.get)
    out = []
    while ready:
        n = ready.pop(0)
        out.append(n)
        for e in design.out_edges(n):
            indeg[e.to] -= 1
            if indeg[e.to] == 0:
                ready.append(e.to)
                ready.sort(key=order_ix.get)
    return out


def _cadence(runs_per_week: float) -> str:
    if abs(runs_per_week - 1) < 1e-9:
        return "weekly run"
    if abs(runs_per_week - 7) < 1e-9:
        return "daily run"
    if abs(runs_per_week - 168) < 1e-9:
        return "hourly run"
    return f"run ({runs_per_week:g} per week)"


def pipeline_result(design: Any) -> PipelineResult | None:
    """The critical path, window verdict, GPU-hours and cost of one run; None without ``workload.batch``.

    Items enter at ``entry``. A plain edge passes the fraction ``p`` of a stage's output on; a
    fan-out (parallel edges) passes all of it to every branch, and the join counts the stream
    once (the largest of its branches' outputs), matching the request-flow semantics. Back
    edges (``max_repeats``) are not part of a run's timeline. Raises :class:`PipelineError` for
    a training job that cannot run (unknown model or GPU, no memory, zero tokens) or an
    ``llm_server`` stage whose configuration the roofline twin refuses.
    """
    batch = getattr(design.workload, "batch", None)
    if batch is None:
        return None
    comps = design.by_id()
    nodes = design.reachable()
    order = _topo_order(design, nodes)

    # Which incoming edges of a join belong to its fan-out: their contributions combine by max.
    fan_members: dict[str, set[tuple[str, str]]] = {}
    for f in order:
        if design.is_fanout(f):
            j = design.join_of(f)
            if j is None:
                continue
            region = set()
            for e in design.out_edges(f):
                region |= set(design._distances(e.to))
            region.discard(j)
            fan_members.setdefault(j, set()).update(
                (u, j) for u in region | {f} if any(e.to == j for e in design.out_edges(u))
            )

    incoming: dict[str, list[tuple[str, float]]] = {n: [] for n in nodes}  # (source, items)
    stages: dict[str, PipelineStage] = {}
    finish_s: dict[str, float] = {}
    begin_s: dict[str, float] = {}
    stream_start: dict[str, float] = {}
    pred_of: dict[str, str | None] = {}
    for n in order:
        if n == design.entry:
            items, start, pred = float(batch.items_per_run), 0.0, None
        else:
            members = fan_members.get(n, set())
            joined = [x for u, x in incoming[n] if (u, n) in members]
            rest = [x for u, x in incoming[n] if (u, n) not in members]
            items = (max(joined) if joined else 0.0) + sum(rest)
            srcs = [u for u, _ in incoming[n]]
            pred = max(srcs, key=lambda u: finish_s[u]) if srcs else None
            start = finish_s[pred] if pred else 0.0
        st = _stage(comps[n], items, design)
        finish = start + st["duration_s"]
        detail = st["detail"]
        tail = _tail_s(comps[n], design) if pred is not None and comps[pred].kind == "queue" else None
        if tail is not None:
            # A consumer of a queue streams: it starts as the producer's first items are
            # enqueued and ends after its own work or the producer's last item, whichever is later.
            start = stream_start[pred]
            finish = max(start + st["duration_s"], finish_s[pred] + tail)
            detail += f"; streams from '{pred}' (work {st['duration_s'] / 3600:.2f} h within a {(finish - start) / 3600:.2f} h span)"
        begin_s[n] = start
        finish_s[n] = finish
        if comps[n].kind == "queue":
            # Items reach a queue as its producer emits them: from the producer's start on.
            stream_start[n] = (begin_s[pred] if pred is not None else 0.0) + st["duration_s"]
        pred_of[n] = pred
        stages[n] = PipelineStage(
            id=n, kind=comps[n].kind, start_h=start / 3600, duration_h=(finish - start) / 3600,
            items_in=items, items_out=st["items_out"], gpu_hours=st["gpu_hours"],
            cost_usd=st["cost_usd"], detail=detail,
        )
        for e in design.out_edges(n):
            share = 1.0 if e.parallel else e.p
            incoming[e.to].append((n, st["items_out"] * share))

    last = max(order, key=lambda n: (finish_s[n], -order.index(n)))
    path = [last]
    while pred_of[path[-1]] is not None:
        path.append(pred_of[path[-1]])
    path.reverse()
    duration_h = finish_s[last] / 3600
    window_h = batch.window_hours
    fits = duration_h <= window_h
    gpu_hours = sum(s.gpu_hours for s in stages.values())
    cost = sum(s.cost_usd for s in stages.values())
    cadence = _cadence(batch.runs_per_week)
    if fits:
        summary = f"{cadence} finishes in {duration_h:.3g} h of a {window_h:g} h window"
    else:
        longest = max(path, key=lambda n: stages[n].duration_h)
        summary = (f"{cadence} takes {duration_h:.3g} h — over its {window_h:g} h window by "
                   f"{duration_h - window_h:.3g} h; longest stage: {longest} ({stages[longest].duration_h:.3g} h)")
    summary += f"; {gpu_hours:,.1f} GPU-hours, ${cost:,.0f} per run"
    return PipelineResult(
        duration_h=duration_h, window_h=window_h, fits=fits, gpu_hours=gpu_hours,
        cost_per_run_usd=cost, stages=[stages[n] for n in order], critical_path=path, summary=summary,
    )
