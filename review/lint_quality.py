"""Lint rules for quality and safety an interviewer probes: index RAM, SLO wording, cache scope,
tool-output injection, cross-node tensor parallelism, retry amplification, eval sample size and
judge validity. Each finding states its numbers and a fix; `review.lint.lint` runs them all.

Usage::

    >>> from review.lint_quality import QUALITY_RULES, QUALITY_RULE_TEXT
    >>> sorted(QUALITY_RULE_TEXT)[:3]
    ['cross_node_tp', 'eval_cases', 'index_ram']

Every rule has the signature ``rule(design, estimate, result, prompt, reach) -> iterable of Finding``.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["QUALITY_RULES", "QUALITY_RULE_TEXT", "GPUS_PER_NODE", "INDEX_RAM_WARN"]

GPUS_PER_NODE = 8
"""GPUs joined by NVLink in one server (NVIDIA DGX/HGX H100: 8); beyond them traffic crosses the network."""
INDEX_RAM_WARN = 0.85
"""An index (with its 20 % headroom) above this share of a node's RAM leaves no room to grow."""
NVLINK_GBPS, IB_GBPS = 900, 50
"""Per-GPU bandwidth: NVLink 4 on H100 900 GB/s; one 400 Gb/s InfiniBand NIC per GPU = 50 GB/s (DGX H100)."""

QUALITY_RULE_TEXT: dict[str, str] = {
    "index_ram": "A vector index (one shard + 20 % headroom) does not fit, or nearly fills, a node's RAM.",
    "recall": "A vector index cannot reach, or is configured below, its recall target.",
    "slo_metric": "The SLO measures a different latency (TTFT vs end to end) from the one the prompt names.",
    "shared_semantic_cache": "A semantic cache shared across tenants in a design with per-tenant access control.",
    "tool_output_injection": "Tool output reaches a model with no guardrail in between (indirect prompt injection).",
    "cross_node_tp": "Tensor parallelism spans more GPUs than one node holds.",
    "retry_amplification": "Retries on a throttled provider multiply the attempts sent near its limit.",
    "eval_cases": "An eval judges fewer cases than it needs to detect the stated regression at the stated power.",
    "judge_agreement": "A judge with no stated agreement with human labels.",
}


def _finding(**kw):
    from review.lint import Finding

    return Finding(**kw)


def _text(c: Any) -> str:
    return " ".join(filter(None, (c.id.replace("_", " "), getattr(c, "label", None), getattr(c, "notes", None))))


# --- retrieval ------------------------------------------------------------------------------------


def _index_ram(design, est, result, prompt, reach):
    for c in design.components:
        if c.kind != "vector_db":
            continue
        if est is not None and c.id in getattr(est, "retrieval", {}):
            r = est.retrieval[c.id]
            share = r.ram_needed_gb_per_node / r.node_ram_gb
            if share > INDEX_RAM_WARN:
                yield _finding(rule="index_ram", severity="warning", component=c.id,
                               message=(f"'{c.id}' needs {r.ram_needed_gb_per_node:,.1f} GB per node ({r.ram_gb_per_node:,.1f} GB of "
                                        f"{r.index_type} index + 20 %) of {r.node_ram_gb:g} GB ({share:.0%}): no room for growth, "
                                        "upserts or a rebuild beside the live index"),
                               fix=f"add shards ({c.shards} → {c.shards + 1}), use precision int8 or ivf_pq, or larger nodes")
        elif c.index_type is None:
            # Without an index model, the raw float32 vectors alone bound the RAM any in-memory index needs.
            need = c.vectors * c.dimensions * 4 * 1.2 / 1e9 / max(1, getattr(c, "shards", 1))
            if need > c.node_ram_gb:
                yield _finding(rule="index_ram", severity="error", component=c.id,
                               message=(f"'{c.id}' holds {c.vectors:,} × {c.dimensions} float32 vectors = {need / 1.2:,.1f} GB "
                                        f"(+20 % = {need:,.1f} GB) per node, more than a {c.node_ram_gb:g} GB node before any index"),
                               fix=(f"set index_type and shards ≥ {math.ceil(need / c.node_ram_gb)}, precision int8, "
                                    "or index_type ivf_pq / diskann"))


# --- SLO wording ----------------------------------------------------------------------------------

_FIRST_TOKEN = re.compile(r"first token|time to first|\bttft\b|start(?:s)? streaming", re.I)
_END_TO_END = re.compile(r"end[- ]to[- ]end|full (?:response|answer)|complete (?:response|answer)|whole (?:response|answer)", re.I)


def _slo_metric(design, est, result, prompt, reach):
    words = getattr(prompt, "statement", None) or design.problem or ""
    slo = design.slo
    if _FIRST_TOKEN.search(words) and slo.ttft_p95_ms is None:
        said = slo.latency_p95_ms
        yield _finding(rule="slo_metric", severity="warning",
                       message=("the prompt states a time-to-first-token target, but the design sets "
                                + (f"only an end-to-end latency_p95_ms {said:g} ms" if said else "no TTFT SLO")
                                + ": the metric users feel while an answer streams is not checked"),
                       fix="set slo.ttft_p95_ms to the prompt's figure (and keep end to end as a separate, looser target)")
    elif _END_TO_END.search(words) and slo.latency_p95_ms is None and slo.ttft_p95_ms is not None:
        yield _finding(rule="slo_metric", severity="warning",
                       message=(f"the prompt states an end-to-end target, but the design sets only ttft_p95_ms "
                                f"{slo.ttft_p95_ms:g} ms: a fast first token says nothing about the whole answer"),
                       fix="set slo.latency_p95_ms to the prompt's end-to-end figure")


# --- safety ---------------------------------------------------------------------------------------

_TENANT = re.compile(r"tenant|\bacls?\b|access control|permission|entitlement", re.I)
_SCOPED = re.compile(r"per[- ]tenant|tenant[- ](?:scoped|keyed|partitioned|aware)|keyed by (?:tenant|acl)|"
                     r"partitioned by (?:tenant|acl)|acl[- ](?:aware|keyed|scoped)|per[- ]acl", re.I)


def _shared_semantic_cache(design, est, result, prompt, reach):
    texts = [design.problem, design.notes, *design.assumptions, *(_text(c) for c in design.components if c.kind != "cache")]
    if not any(_TENANT.search(t or "") for t in texts):
        return
    for c in design.components:
        if c.kind != "cache" or c.id not in reach or _SCOPED.search(_text(c)):
            continue
        if "semantic" not in _text(c).lower():
            continue
        yield _finding(rule="shared_semantic_cache", severity="error", component=c.id,
                       message=(f"'{c.id}' answers similar questions from one shared cache (hit ratio {c.hit_ratio:.0%}) while the design "
                                "enforces per-tenant access control: a hit can return an answer built from documents the asker may not see"),
                       fix=f"key '{c.id}' by tenant / ACL group (say so in its label or notes: 'per-tenant'), or check ACLs on every hit")


def _tool_output_injection(design, est, result, prompt, reach):
    kinds = {c.id: c.kind for c in design.components}
    models = {"llm_api", "llm_server"}
    for t in design.components:
        if t.kind != "tool" or t.id not in reach:
            continue
        # Walk every edge (loops too): does the tool's output reach a model without a guardrail?
        seen, frontier, hit = {t.id}, [t.id], None
        while frontier and hit is None:
            nxt = []
            for u in frontier:
                for e in design.flow:
                    if e.from_ != u or e.to in seen:
                        continue
                    seen.add(e.to)
                    if kinds[e.to] in models:
                        hit = e.to
                        break
                    if kinds[e.to] != "guardrail":
                        nxt.append(e.to)
            frontier = nxt
        if hit is not None:
            yield _finding(rule="tool_output_injection", severity="warning", component=t.id,
                           message=(f"output of tool '{t.id}' reaches model '{hit}' with no guardrail in between: a web page or "
                                    "document can carry instructions the model follows (indirect prompt injection); the input "
                                    "and output guardrails never see it"),
                           fix=f"put a `guardrail` on the path from '{t.id}' to '{hit}' (or mark tool output as data and strip instructions)")


# --- serving --------------------------------------------------------------------------------------


def _cross_node_tp(design, est, result, prompt, reach):
    for c in design.components:
        if c.kind != "llm_server":
            continue
        pp = getattr(c, "pipeline_parallel", None) or getattr(c, "pp", None) or 1
        tp = getattr(c, "tensor_parallel", None) or max(1, c.gpus_per_replica // pp)
        if tp > GPUS_PER_NODE:
            nodes = math.ceil(tp / GPUS_PER_NODE)
            yield _finding(rule="cross_node_tp", severity="warning", component=c.id,
                           message=(f"'{c.id}' splits each layer over {tp} GPUs by tensor parallelism, {nodes} nodes of {GPUS_PER_NODE}: "
                                    f"two all-reduces per layer cross the network at ~{IB_GBPS} GB/s per GPU instead of NVLink's "
                                    f"{NVLINK_GBPS} GB/s ({NVLINK_GBPS // IB_GBPS}× slower), so decode steps stall on communication"),
                           fix=(f"keep tensor parallelism ≤ {GPUS_PER_NODE} (one node) and split across nodes by pipeline parallelism, "
                                "or use fp8 weights or a GPU with more HBM so one node holds the model"))


def _retry_amplification(design, est, result, prompt, reach):
    from sim import api_limits

    for c in design.components:
        if c.kind not in ("llm_api", "judge") or c.id not in reach or c.on_limit != "retry":
            continue
        arrival = est.stations[c.id].arrival_rps if est is not None and c.id in est.stations else None
        lim = api_limits(c, design.workload, arrival_rps=arrival)
        cap, rate = lim.get("max_sustainable_rps"), lim["arrival_rps"]
        if not cap or rate < 0.8 * cap:
            continue
        burst = 1.5 * rate  # a burst half above the peak
        f = max(0.0, 1 - cap / burst)  # share of attempts throttled at the burst
        r = c.max_retries
        amp = (1 - f ** (r + 1)) / (1 - f) if f < 1 else r + 1
        yield _finding(rule="retry_amplification", severity="warning", component=c.id,
                       message=(f"'{c.id}' retries throttled calls (on_limit: retry, max_retries {r}) at {rate / cap:.0%} of its "
                                f"provider limit: in a 1.5× burst {f:.0%} of attempts get 429s and each call is sent "
                                f"{amp:.2f}× on average — {burst * amp:,.2f} attempts/s against {cap:,.2f}/s sustainable, "
                                "so the retries themselves keep the limit saturated"),
                       fix="use on_limit: wait (a client-side token bucket), cap retries with jittered backoff and a retry budget, or raise the limit")


# --- evaluation -----------------------------------------------------------------------------------


def _eval_cases(design, est, result, prompt, reach):
    if est is None:
        return
    for cid, e in (getattr(est, "evaluation", None) or {}).items():
        need = e.cases_needed_with_judge or e.cases_needed
        if need is None or e.enough_cases is not False:
            continue
        yield _finding(rule="eval_cases", severity="error", component=cid,
                       message=(f"'{cid}' judges {e.cases:,} cases per run ({e.cases_from}); detecting a {e.regression_points:g}-point "
                                f"drop at {e.power:.0%} power needs {need:,}"
                                + (f" ({e.cases_needed:,} with a perfect judge, more with agreement {e.human_agreement:g})"
                                   if e.cases_needed_with_judge else "")
                                + f"; with {e.cases:,} the smallest detectable drop is {e.detectable_points:.3g} points"),
                       fix=f"judge ≥ {need:,} cases per run (set eval_cases), pair the candidate with the current model on the same cases, or a better-validated judge")


def _judge_agreement(design, est, result, prompt, reach):
    for c in design.components:
        if c.kind != "judge" or c.id not in reach:
            continue
        if c.judge_human_agreement is None:
            yield _finding(rule="judge_agreement", severity="warning", component=c.id,
                           message=(f"'{c.id}' scores outputs with no stated agreement with human labels: every figure it produces "
                                    "(pass rates, regressions) inherits an error of unknown size, and a judge at 80 % agreement "
                                    "shrinks a real 1-point drop to 0.6 points"),
                           fix=f"label a few hundred cases by hand, measure agreement (or Cohen's kappa) and set judge_human_agreement on '{c.id}'")
        elif c.judge_human_agreement < 0.8 and c.eval_outcome == "binary":
            a = c.judge_human_agreement
            yield _finding(rule="judge_agreement", severity="info", component=c.id,
                           message=f"'{c.id}' agrees with humans on {a:.0%} of cases: observed differences shrink to {2 * a - 1:.2f}× the real ones",
                           fix="improve the rubric or the judge model, or judge disagreements twice")


QUALITY_RULES = (_index_ram, _slo_metric, _shared_semantic_cache, _tool_output_injection, _cross_node_tp,
                 _retry_amplification, _eval_cases, _judge_agreement)
"""The rules, in report order."""
