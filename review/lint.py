"""Design lint: what a system-design interviewer would flag, each with its numbers and a fix.

Usage::

    >>> from designs.io import load_design
    >>> from review.lint import lint, RULES
    >>> findings = lint(load_design("designs/library/llm_serving.yaml"))   # runs the analytic twin
    >>> [f.rule for f in findings if f.severity == "error"]
    []

`lint(design, estimate=None, result=None, prompt=None)` reads the analytic estimate (computed
here when not given), the simulation result when there is one, and the practice prompt's
requirements. Every rule has an id in `RULES`; each finding names the component, states the
figures that triggered it and suggests a fix. Severity: `error` (the design fails its brief),
`warning` (an interviewer will push on it), `info` (worth a sentence in the write-up).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from designs.model import Design

__all__ = ["Finding", "RULES", "lint", "slo_checks", "REQUEST_PATH_KINDS", "UTILIZATION_LIMIT", "repeated_query_ratio"]

Severity = Literal["error", "warning", "info"]

# Kinds that serve requests synchronously with a replica count: one replica is one failure away
# from an outage. Queues, object storage, tools and APIs are managed/elastic; monitoring and
# offline kinds are off the request path.
REQUEST_PATH_KINDS = frozenset(
    {"service", "api_gateway", "cache", "database", "vector_db", "keyword_search", "guardrail",
     "llm_server", "embedder", "reranker", "load_balancer"}
)
MODEL_KINDS = frozenset({"llm_server", "llm_api"})
# 80 %: the usual planning ceiling — above it M/M/c waits grow steeply (at ρ = 0.9 the M/M/1
# mean wait is 9 service times) and a replica loss pushes the rest past saturation.
UTILIZATION_LIMIT = 0.8
# Below this many concurrent sequences per replica, continuous batching has nothing to batch.
MIN_USEFUL_SEQS = 4
# A repeated fraction below this is not worth a cache's complexity.
MIN_REPEAT_FOR_CACHE = 0.1

RULES: dict[str, str] = {
    "spof": "Single point of failure: one replica of a request-path component.",
    "missing_cache": "Repeated queries are stated but no cache sits on the request path.",
    "kv_cache": "LLM replicas cannot hold the KV cache of enough sequences at the stated lengths.",
    "rate_limit": "Offered rate to an external API or judge exceeds (or nears) its provider limit.",
    "no_monitoring": "No monitoring component: nothing measures latency, errors or drift.",
    "no_eval_loop": "An LLM design with no evaluation loop (judge or logged evals).",
    "no_fallback": "An external LLM API with no alternative branch when it fails or throttles.",
    "slo_unmet": "An SLO is not met at the peak rate.",
    "over_budget": "Cost per day exceeds the budget.",
    "high_utilization": "A component runs above 80 % utilisation at peak (100 %: unstable).",
    "unwired": "A component is not reachable from the entry: it gets no traffic.",
    "incomplete": "The prompt needs a kind of component (an LLM, retrieval, a judge, a training job) that no path reaches.",
    "analytic_failed": "The analytic model could not evaluate the design.",
    "config": "A component's hardware cannot hold it (e.g. a full fine-tune whose optimizer states exceed the GPUs).",
    "n_minus_1": "Losing one replica (or one zone) of a component saturates it or breaks a latency SLO at peak.",
}

from .lint_quality import QUALITY_RULE_TEXT, QUALITY_RULES  # noqa: E402 - rules of issue 15, kept in their own module

RULES.update(QUALITY_RULE_TEXT)


class Finding(BaseModel):
    """One lint finding."""

    model_config = ConfigDict(extra="forbid")

    rule: str
    severity: Severity
    component: str | None = None
    message: str
    fix: str = ""

    def format(self) -> str:
        where = f" [{self.component}]" if self.component else ""
        tail = f"\n    fix: {self.fix}" if self.fix else ""
        return f"{self.severity}: {self.rule}{where}: {self.message}{tail}"


def lint(design: Design, estimate: Any = None, result: Any = None, prompt: Any = None) -> list[Finding]:
    """Every finding for `design`, errors first, then warnings, then info."""
    out: list[Finding] = []
    from sim import config_problems

    # Hardware that cannot run the design: one finding per component, with its numbers.
    for prob in config_problems(design):
        comp = design.components[int(prob.path.split("[")[1].split("]")[0])]
        out.append(_config_finding(comp, prob.message))
    # The twin refuses such a design; the remaining rules still run without it.
    if estimate is None and not out:
        try:
            from sim import estimate as _estimate

            estimate = _estimate(design)
        except Exception as e:  # noqa: BLE001 - report the failure as a finding, never a traceback
            out.append(_estimate_failure(design, e))
            estimate = None
    reach = design.reachable()
    for rule in (_incomplete, _unwired, _spof, _missing_cache, _kv_cache, _rate_limit, _monitoring, _eval_loop,
                 _fallback, _slo, _budget, _utilization, _n_minus_1, *ENGINE_RULES):
        out.extend(rule(design, estimate, result, prompt, reach))
    for rule in QUALITY_RULES:
        out.extend(rule(design, estimate, result, prompt, reach))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: order[f.severity])


_LLM_FAIL = re.compile(r"llm_server '([^']+)'")


def _config_finding(comp: Any, msg: str) -> Finding:
    cid = comp.id
    if comp.kind == "llm_server":  # weights or KV that do not fit the replica's GPUs
        return Finding(rule="kv_cache", severity="error", component=cid, message=msg,
                       fix="raise gpus_per_replica (tensor parallelism), use fp8 weights or kv_cache_precision: fp8, "
                           "a GPU with more HBM (H200 141 GB), or shorter requests")
    if comp.kind == "vector_db":  # the retrieval model's errors already say what would work
        ram = "RAM" in msg and "would fit" in msg
        return Finding(rule="index_ram" if ram else "recall", severity="error", component=cid, message=msg,
                       fix=msg.split("would fit: ", 1)[1] if ram else "see the message: the parameters or index type that reach the target")
    if comp.kind == "judge":
        return Finding(rule="eval_cases", severity="error", component=cid, message=msg, fix="see the message")
    return Finding(rule="config", severity="error", component=cid, message=msg,
                   fix="change the component so its hardware can hold it (more GPUs, LoRA/QLoRA, a larger GPU)")


def _estimate_failure(design: Design, err: Exception) -> Finding:
    """The twin refuses an LLM replica whose weights or one sequence's KV do not fit: that is
    the KV rule's error, stated with the twin's own numbers."""
    msg = str(err)
    m = _LLM_FAIL.search(msg)
    if m and re.search(r"KV cache|weights|context", msg):
        return Finding(rule="kv_cache", severity="error", component=m.group(1), message=msg,
                       fix="raise gpus_per_replica (tensor parallelism), use fp8 weights or kv_cache_precision: fp8, "
                           "a GPU with more HBM (H200 141 GB), or shorter requests")
    return Finding(rule="analytic_failed", severity="error", message=f"the analytic model raised: {msg}",
                   fix="check the design with `sdw validate` and `sdw estimate`")


# --- rules -------------------------------------------------------------------------------------


def _incomplete(design, est, result, prompt, reach):
    kinds = {c.kind for c in design.components if c.id in reach}
    for group in getattr(prompt, "required", None) or []:
        if not kinds.intersection(group):
            present = [c.id for c in design.components if c.kind in group]
            where = f" ('{present[0]}' exists but no edge leads to it)" if present else ""
            yield Finding(rule="incomplete", severity="error", component=present[0] if present else None,
                          message=f"the prompt needs {' or '.join(group)} on the request path, and none is reachable from '{design.entry}'{where}",
                          fix=(f"connect '{present[0]}' into the flow" if present else f"add a `{group[0]}` and connect it into the flow"))


def _unwired(design, est, result, prompt, reach):
    for c in design.components:
        if c.id not in reach and c.kind != "monitoring":
            yield Finding(rule="unwired", severity="warning", component=c.id,
                          message=f"'{c.id}' ({c.kind}) is not reachable from entry '{design.entry}', so it carries no traffic and the estimate ignores it",
                          fix=f"add a flow edge into '{c.id}' from the step before it, or remove it")


def _spof(design, est, result, prompt, reach):
    for c in design.components:
        if c.kind not in REQUEST_PATH_KINDS or c.id not in reach:
            continue
        replicas = getattr(c, "replicas", 1)
        if replicas > 1:
            continue
        if c.kind == "load_balancer":
            # A managed load balancer (the catalogue prices an AWS ALB) is redundant inside.
            yield Finding(rule="spof", severity="info", component=c.id,
                          message=f"'{c.id}' has 1 replica; fine for a managed load balancer (redundant across zones inside), a single point of failure if self-hosted",
                          fix="say it is managed, or run 2 instances behind DNS failover")
            continue
        extra = ""
        if c.kind == "llm_server":
            extra = f" — {c.gpus} GPU(s) whose loss stops all generation"
        yield Finding(rule="spof", severity="warning", component=c.id,
                      message=f"'{c.id}' ({c.kind}) runs 1 replica on the request path{extra}; one crash or deploy takes the service down",
                      fix=f"set replicas ≥ 2 for '{c.id}' (spread over zones) and size so that N−1 replicas still carry the peak")


_RATIO_PATTERNS = (
    re.compile(r"repeated_query_ratio\s*[:=]\s*([0-9]*\.?[0-9]+)", re.I),
    re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*%\s*of\s+(?:the\s+)?(?:queries|questions|requests|prompts)\s+(?:are\s+)?(?:repeat|duplicate|identical)", re.I),
)
_REPEAT_WORDS = re.compile(r"\brepeat(?:ed)?\s+(?:queries|questions|requests|prompts)\b", re.I)


def repeated_query_ratio(design: Design, prompt: Any = None) -> tuple[float | None, str]:
    """The stated fraction of repeated queries and where it is stated (None when not stated).

    Reads the prompt's `requirements.repeated_query_ratio`, then the design's assumptions,
    problem and notes (`repeated_query_ratio: 0.3`, '30 % of questions repeat'). A mention of
    repeated queries without a number counts as 0.2 — the low end of FAQ-style traffic.
    """
    req = getattr(prompt, "requirements", None)
    if req is not None and getattr(req, "repeated_query_ratio", None) is not None:
        return float(req.repeated_query_ratio), f"prompt {getattr(prompt, 'id', '')}".strip()
    texts = [("assumptions", a) for a in design.assumptions] + [("problem", design.problem), ("notes", design.notes)]
    for where, text in texts:
        for pat in _RATIO_PATTERNS:
            m = pat.search(text or "")
            if m:
                v = float(m.group(1))
                return (v / 100 if "%" in m.group(0) else v), f"design {where}"
    for where, text in texts:
        if _REPEAT_WORDS.search(text or ""):
            return 0.2, f"design {where} (mentions repeated queries; no ratio stated, 0.2 assumed)"
    return None, ""


def _missing_cache(design, est, result, prompt, reach):
    ratio, where = repeated_query_ratio(design, prompt)
    if ratio is None or ratio < MIN_REPEAT_FOR_CACHE:
        return
    if any(c.kind == "cache" and c.id in reach for c in design.components):
        return
    peak = design.workload.peak_rps
    downstream = [c.id for c in design.components if c.id in reach and c.kind in MODEL_KINDS | {"embedder", "vector_db", "reranker"}]
    saved = ""
    if est is not None and est.cost_breakdown:
        model_cost = sum(line.usd_per_day for line in est.cost_breakdown if line.id in downstream)
        if model_cost > 0:
            saved = f"; up to ${model_cost * ratio:,.0f}/day of the ${model_cost:,.0f}/day behind it"
    yield Finding(rule="missing_cache", severity="warning", component=None,
                  message=(f"{ratio:.0%} of queries repeat ({where}), yet no cache is on the request path: "
                           f"{peak:,.1f} requests/s × {ratio:.2f} = {peak * ratio:,.1f} requests/s at peak recompute the same answer"
                           f"{' through ' + ' → '.join(downstream) if downstream else ''}{saved}"),
                  fix=f"add a `cache` (hit_ratio ≈ {ratio:.2f}) right after the entry; misses follow its outgoing edges")


def _mean_tokens(design: Design) -> tuple[float, float]:
    classes = design.workload.request_classes()
    p = sum(c.share * c.prompt_tokens.expected() for c in classes) / sum(c.share for c in classes)
    o = sum(c.share * c.output_tokens.expected() for c in classes) / sum(c.share for c in classes)
    return p, o


def _kv_cache(design, est, result, prompt, reach):
    if est is None:
        return
    p_tok, o_tok = _mean_tokens(design)
    for cid, llm in (est.llm or {}).items():
        comp = design.component(cid)
        seqs = llm.max_concurrent_seqs
        where = (f"{comp.model} on {comp.gpus_per_replica} × {comp.gpu} ({comp.precision}): weights {llm.weights_gb:,.1f} GB, "
                 f"KV {llm.kv_bytes_per_token / 1024:,.0f} KiB/token, room for {max(llm.kv_capacity_tokens, 0):,.0f} KV tokens per replica; "
                 f"a mean sequence is {p_tok:,.0f} + {o_tok:,.0f} = {p_tok + o_tok:,.0f} tokens")
        fix = ("raise gpus_per_replica (tensor parallelism), use fp8 weights or kv_cache_precision: fp8, "
               "or a GPU with more HBM (H200 141 GB)")
        if seqs < 1 or llm.kv_capacity_tokens < p_tok + o_tok:
            yield Finding(rule="kv_cache", severity="error", component=cid,
                          message=f"'{cid}' cannot hold the KV cache of one sequence: {where}", fix=fix)
        elif seqs < MIN_USEFUL_SEQS:
            yield Finding(rule="kv_cache", severity="warning", component=cid,
                          message=f"'{cid}' fits only {seqs} concurrent sequence(s) per replica, so continuous batching is starved: {where}",
                          fix=fix)


def _rate_limit(design, est, result, prompt, reach):
    try:
        from sim import api_limits
    except ImportError:
        return
    for c in design.components:
        if c.kind not in ("llm_api", "judge") or c.id not in reach:
            continue
        arrival = None
        if est is not None and c.id in est.stations:
            arrival = est.stations[c.id].arrival_rps
        lim = api_limits(c, design.workload, arrival_rps=arrival)
        cap = lim.get("max_sustainable_rps")
        if not cap:
            continue
        rate = lim["arrival_rps"]
        tokens = lim["mean_tokens_per_request"]
        detail = (f"'{c.id}' is offered {rate:,.2f} requests/s ({rate * 60:,.0f}/min, {rate * 60 * tokens:,.0f} tokens/min at "
                  f"{tokens:,.0f} tokens per call) against limits of {c.rpm_limit or '∞'} requests/min and {c.tpm_limit or '∞'} tokens/min "
                  f"= {cap:,.2f} requests/s sustainable (binding: {lim['binding']})")
        fix = ("raise the provider tier, spread calls over a second deployment or provider, cache repeated calls, "
               "or put a queue in front and smooth the peak")
        if rate >= cap:
            yield Finding(rule="rate_limit", severity="error", component=c.id, message=f"{detail}: {rate / cap:.1f}× over the limit; calls queue or fail with 429", fix=fix)
        elif rate >= UTILIZATION_LIMIT * cap:
            yield Finding(rule="rate_limit", severity="warning", component=c.id, message=f"{detail}: {rate / cap:.0%} of the limit; a burst will hit 429s", fix=fix)


def _monitoring(design, est, result, prompt, reach):
    if not any(c.kind == "monitoring" for c in design.components):
        yield Finding(rule="no_monitoring", severity="warning",
                      message="no monitoring component: nothing tracks latency percentiles, errors, queue depth or cost",
                      fix="add a `monitoring` component (off the request path) and name what it tracks: p95, TTFT/TPOT, queue depth, 429s, $/day")


_EVAL_WORDS = re.compile(r"\beval(?:uation|s)?\b|\bjudge\b|\bgolden set\b", re.I)


def _eval_loop(design, est, result, prompt, reach):
    if not any(c.kind in MODEL_KINDS | {"training_job"} for c in design.components):
        return
    if any(c.kind == "judge" for c in design.components):
        return
    mon = [c for c in design.components if c.kind == "monitoring"]
    # An eval step may be any component that says so: monitoring that logs evals, a pipeline's
    # `eval_gate` batch stage, an offline eval service.
    if any(_EVAL_WORDS.search(" ".join(filter(None, (c.id.replace("_", " "), c.label, c.notes))))
           for c in design.components if c.kind not in MODEL_KINDS):
        return
    yield Finding(rule="no_eval_loop", severity="warning" if not mon else "info",
                  message="the design generates with an LLM but nothing evaluates the outputs (no judge, no eval logging named)",
                  fix="add a `judge` fed by a sample of traffic (through a queue, off the request path), or say which offline eval suite gates releases")


_FALLBACK_WORDS = re.compile(r"fallback|fall back|backup|secondary|failover", re.I)


def _fallback(design, est, result, prompt, reach):
    apis = [c for c in design.components if c.kind == "llm_api" and c.id in reach]
    for api in apis:
        preds = {e.from_ for e in design.flow if e.to == api.id and not e.is_loop}
        alt = any(
            e.to != api.id and design.component(e.to).kind in MODEL_KINDS
            for p in preds for e in design.out_edges(p)
        )
        named = any(
            c.id != api.id and c.kind in MODEL_KINDS and _FALLBACK_WORDS.search(" ".join(filter(None, (c.id, c.label, c.notes))))
            for c in design.components
        ) or bool(_FALLBACK_WORDS.search(api.notes or "")) or any(e.fallback and e.from_ == api.id for e in design.flow)
        if not (alt or named):
            yield Finding(rule="no_fallback", severity="warning", component=api.id,
                          message=f"'{api.id}' calls an external provider ({api.provider_model}) with no alternative branch: an outage or a 429 storm fails every request that reaches it",
                          fix=f"add a second model (another provider or a small self-hosted `llm_server`) as a branch next to '{api.id}', and a timeout_ms on '{api.id}'")


_BUDGET_METRICS = {"cost_per_day_usd", "daily_budget_usd"}


def slo_checks(est: Any, result: Any) -> tuple[list, str]:
    """(SLO checks, source): the simulation's, with the analytic check standing in for any
    metric the simulation could not measure (its detail then starts with 'analytic:')."""
    if result is None or not result.slo:
        return (list(est.slo) if est is not None else []), "analytic estimate"
    by_metric = {c.metric: c for c in (est.slo if est is not None else [])}
    out, mixed = [], False
    for c in result.slo:
        alt = by_metric.get(c.metric)
        if c.met is None and alt is not None and alt.met is not None:
            out.append(alt.model_copy(update={"detail": f"analytic: {alt.detail}" if alt.detail else "analytic"}))
            mixed = True
        else:
            out.append(c)
    return out, "simulation + analytic" if mixed else "simulation"


def _slo(design, est, result, prompt, reach):
    checks, source = slo_checks(est, result)
    seen_pipeline = False
    for chk in checks:
        if chk.metric in _BUDGET_METRICS:
            continue
        seen_pipeline |= chk.metric == "pipeline_hours"
        if chk.met is False:
            val = _num(chk.value) if chk.value is not None else "unknown"
            yield Finding(rule="slo_unmet", severity="error",
                          message=f"{chk.metric}: {val} against a target of {_num(chk.target)} at peak ({source}){' — ' + chk.detail if chk.detail else ''}",
                          fix=_slo_fix(chk.metric, est))
    pipe = (result.pipeline if result is not None and result.pipeline else None) or (est.pipeline if est is not None else None)
    if pipe is not None and not pipe.fits and not seen_pipeline:
        yield Finding(rule="slo_unmet", severity="error",
                      message=f"a run takes {pipe.duration_h:,.1f} h, longer than its {pipe.window_h:,.1f} h window ({pipe.summary})",
                      fix=f"add GPUs or workers to the critical path: {' → '.join(pipe.critical_path)}")


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _slo_fix(metric: str, est) -> str:
    bott = getattr(est, "bottleneck", None) if est is not None else None
    if metric.startswith("ttft"):
        return "cut queueing before prefill: more LLM replicas, chunked prefill, prefix caching, shorter prompts"
    if metric.startswith("tpot"):
        return "smaller decode batches (lower max_batch), fp8 weights, or more tensor parallelism"
    if metric == "availability":
        return "remove drop sources: timeouts, full queues, rate-limit retries exhausted; add capacity or a fallback"
    return f"add capacity at the bottleneck{' ' + repr(bott) if bott else ''} or take work off the path (cache, async queue)"


def _budget(design, est, result, prompt, reach):
    budget = design.slo.daily_budget_usd
    req = getattr(prompt, "requirements", None)
    if budget is None and req is not None:
        budget = getattr(req, "daily_budget_usd", None)
    if budget is None:
        return
    rec = result if result is not None else est
    if rec is None:
        return
    cost = rec.cost_per_day_usd
    if cost <= budget:
        return
    lines = sorted(rec.cost_breakdown or (est.cost_breakdown if est is not None else []), key=lambda l: -l.usd_per_day)[:3]
    top = "; ".join(f"{l.id} ${l.usd_per_day:,.0f} ({l.rule})" for l in lines)
    yield Finding(rule="over_budget", severity="error",
                  message=f"${cost:,.0f}/day is {cost / budget:.2f}× the ${budget:,.0f}/day budget{'; largest: ' + top if top else ''}",
                  fix="trim the largest line: fewer or cheaper GPUs (fp8, smaller model), cache repeated work, autoscale to the diurnal curve")


def _utilization(design, est, result, prompt, reach):
    util: dict[str, float] = {}
    if est is not None:
        util.update({cid: st.utilization for cid, st in est.stations.items()})
    if result is not None:
        for cid, st in result.components.items():
            # An LLM server's simulated utilisation is the share of time it is iterating, which
            # continuous batching keeps near 100 % at any load; its saturation is the analytic
            # slot utilisation (sequences in flight / slots), so only that one counts.
            if st.kind == "llm_server" and cid in util:
                continue
            util[cid] = max(util.get(cid, 0.0), st.utilization)
    for cid, u in util.items():
        if u < UTILIZATION_LIMIT:
            continue
        need = None
        if est is not None and cid in est.llm:
            need = est.llm[cid].replicas_needed
        elif est is not None and cid in est.stations:
            need = est.stations[cid].replicas_needed
        try:
            have = getattr(design.component(cid), "replicas", None)
        except KeyError:
            have = None
        sizing = f" ({have} replicas now, {need} needed for ≤ 80 %)" if need and have else ""
        if u >= 1:
            yield Finding(rule="high_utilization", severity="error", component=cid,
                          message=f"'{cid}' needs {u:.0%} of its capacity at peak: unstable, its queue grows without bound{sizing}",
                          fix=f"add replicas to '{cid}'{f' (≥ {need})' if need else ''} or take load off it (cache, batching)")
        else:
            yield Finding(rule="high_utilization", severity="warning", component=cid,
                          message=f"'{cid}' runs at {u:.0%} at peak, above the {UTILIZATION_LIMIT:.0%} planning ceiling: waits grow steeply and losing a replica saturates it{sizing}",
                          fix=f"add replicas to '{cid}'{f' (≥ {need})' if need else ''}")


# --- LLM engine mechanics (issue 12: KV policy, prefix caching, routing) -----------------------
# Kept in one block so other rule sets merge cleanly; `lint` runs everything in ENGINE_RULES.

RULES.update({
    "prefix_affinity_no_prefix": "Prefix-affinity routing on an LLM server whose requests share no prefix.",
    "heavy_preemption": "A paged-KV LLM server preempts many sequences (their prompts are recomputed).",
    "reserve_max_uncapped": "reserve_max KV policy with no max_output_tokens: each sequence reserves the whole context.",
})
# Preempting more than 5 % of requests means a sizeable share of prefill work is redone and those
# requests' answers stall; vLLM logs a warning at the first preemption for the same reason
# ("Sequence group … is preempted … not enough KV cache space"). Threshold: assumption.
PREEMPTION_SHARE_LIMIT = 0.05


def _llm_servers(design, reach):
    return [c for c in design.components if c.kind == "llm_server" and c.id in reach]


def _prefix_affinity_no_prefix(design, est, result, prompt, reach):
    if any(c.shared_prefix_tokens > 0 for c in design.workload.request_classes()):
        return
    for c in _llm_servers(design, reach):
        if c.routing == "prefix_affinity":
            yield Finding(rule="prefix_affinity_no_prefix", severity="warning", component=c.id,
                          message=f"'{c.id}' routes by prefix affinity, but no request class has shared_prefix_tokens: "
                                  "there is nothing to keep cached, and hashing only skews the load",
                          fix="set shared_prefix_tokens and distinct_prefixes on the classes that share a system prompt "
                              "or history, or use routing: least_outstanding_tokens")


def _heavy_preemption(design, est, result, prompt, reach):
    if result is None:
        return
    for cid, st in result.components.items():
        llm = getattr(st, "llm", None)
        if llm is None or not llm.preemptions_per_s:
            continue
        rps = st.throughput_rps or 0.0
        share = llm.preemptions_per_s / rps if rps else 1.0
        if share < PREEMPTION_SHARE_LIMIT:
            continue
        yield Finding(rule="heavy_preemption", severity="warning", component=cid,
                      message=f"'{cid}' preempts {llm.preemptions_per_s:,.1f} sequences/s ({share:.0%} of its requests) and "
                              f"recomputes {llm.recomputed_tokens_per_s:,.0f} tokens/s: its KV cache is too small for the batch",
                      fix="give it more KV (gpu_memory_utilization, kv_cache_precision: fp8, more gpus_per_replica or a GPU "
                          "with more HBM), lower max_batch, or kv_policy: reserve_max (no preemption, fewer sequences)")


def _reserve_max_uncapped(design, est, result, prompt, reach):
    classes = design.workload.request_classes()
    for c in _llm_servers(design, reach):
        if c.kv_policy != "reserve_max" or c.max_output_tokens is not None:
            continue
        open_ = [k.name for k in classes if k.max_output_tokens is None]
        if not open_:
            continue
        seqs = est.llm[c.id].max_concurrent_seqs if est is not None and c.id in (est.llm or {}) else None
        who = "every sequence reserves" if len(open_) == len(classes) else f"each {', '.join(open_)} request reserves"
        yield Finding(rule="reserve_max_uncapped", severity="warning", component=c.id,
                      message=f"'{c.id}' uses kv_policy: reserve_max without max_output_tokens, so {who} "
                              "what the model's context leaves after its prompt"
                              + (f": only {seqs} sequence(s) fit per replica" if seqs is not None else ""),
                      fix="set max_output_tokens on the server or the request classes (the API's max_tokens), "
                          "or use kv_policy: paged")


RULES["speculative_compute_bound"] = "Speculative decoding on an LLM server whose batch is large enough that verification is compute-bound."


def _speculative_compute_bound(design, est, result, prompt, reach):
    if est is None:
        return
    for c in _llm_servers(design, reach):
        le = (est.llm or {}).get(c.id)
        if c.speculative is None or le is None:
            continue
        be, b = le.speculative_breakeven_batch, le.decode_batch_at_load
        batch = b if b is not None else float(le.max_concurrent_seqs)  # saturated: the batch is full
        if be is not None and batch >= be:
            yield Finding(rule="speculative_compute_bound", severity="warning", component=c.id,
                          message=f"'{c.id}' runs speculative decoding ({c.speculative.method}) at a decode batch of "
                                  f"{batch:,.0f}, above the {be} where verifying {le.speculative_tokens_per_step:.2f} tokens "
                                  "per step stops paying: each step computes k + 1 tokens per sequence, so it is slower "
                                  "per token than plain decoding",
                          fix="turn speculative off for this pool (or lower draft_tokens), or keep it for a low-batch, "
                              "latency-bound pool and route the bulk traffic elsewhere")


ENGINE_RULES = (_prefix_affinity_no_prefix, _heavy_preemption, _reserve_max_uncapped, _speculative_compute_bound)
def _n_minus_1(design, est, result, prompt, reach):
    """N−1 at peak from the twin (`sim.n_minus_one`): one replica, and one zone, down."""
    if est is None:
        return
    from sim import n_minus_one

    try:
        rows = n_minus_one(design, est)
    except Exception:  # noqa: BLE001 - a lint rule never crashes the review
        return
    for cid, n in rows.items():
        if n.replicas < 2:
            continue  # one replica: the spof rule says it
        pct = lambda x: "∞" if x is None else f"{x * 100:.0f} %"  # noqa: E731
        survive = (f"; {n.replicas_to_survive} replicas survive one loss at {pct(n.utilization_survivor)}"
                   if n.replicas_to_survive else "")
        if n.slo_ok_one_down is False:
            why = "" if (n.utilization_one_down or 2) >= 1 else " and a latency SLO breaks"
            yield Finding(rule="n_minus_1", severity="warning", component=cid,
                          message=f"`{cid}`: {n.replicas} replicas at {pct(n.utilization)} → {pct(n.utilization_one_down)} "
                                  f"if one fails{why}{survive}",
                          fix=f"size '{cid}' so N−1 carries the peak"
                              + (f": replicas ≥ {n.replicas_to_survive}" if n.replicas_to_survive else "")
                              + ", or add an autoscaler with headroom for the cold start")
        elif n.zones > 1 and n.slo_ok_zone_down is False:
            yield Finding(rule="n_minus_1", severity="warning", component=cid,
                          message=f"`{cid}`: {n.replicas} replicas over {n.zones} zones at {pct(n.utilization)} → "
                                  f"{pct(n.utilization_zone_down)} if a zone fails",
                          fix=f"add replicas to '{cid}' so the other zones carry the peak, or spread it over more zones")
