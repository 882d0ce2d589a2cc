"""The quality lint rules: each fires on a design made for it and stays quiet on its fixed twin."""

from __future__ import annotations

import pytest

from designs.model import Design
from review.lint import RULES, lint
from review.lint_quality import QUALITY_RULE_TEXT

TOKENS = {"arrival_rps": 10, "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": 500},
                                         "output_tokens": {"dist": "fixed", "value": 100}}]}


def make(components, flow=(), *, slo=None, problem="", workload=None, notes="") -> Design:
    return Design.model_validate({
        "name": "t", "problem": problem, "notes": notes, "workload": workload or TOKENS, "slo": slo or {},
        "components": list(components) + [{"id": "mon", "kind": "monitoring"}],
        "entry": components[0]["id"],
        "flow": [{"from": a, "to": b, **(rest[0] if rest else {})} for a, b, *rest in flow],
    })


def fired(design, rule, prompt=None):
    return [f for f in lint(design, prompt=prompt) if f.rule == rule]


def test_every_quality_rule_is_described():
    assert set(QUALITY_RULE_TEXT) <= set(RULES)


def test_index_ram_fit():
    # 20M × 1024 float32 HNSW: 20M × (4,096 + 128) B = 84.5 GB + 20 % = 101 GB on a 32 GB node.
    big = {"id": "vec", "kind": "vector_db", "replicas": 2, "index_type": "hnsw", "vectors": 20_000_000, "dimensions": 1024}
    f = fired(make([big]), "index_ram")
    assert len(f) == 1 and f[0].severity == "error" and "101.4 GB" in f[0].message and "shards ≥ 4" in f[0].fix
    # Nearly full: int8 is 20M × 1,152 B = 23 GB + 20 % = 27.6 GB of 32 GB (86 %): a warning.
    near = fired(make([{**big, "precision": "int8"}]), "index_ram")
    assert [x.severity for x in near] == ["warning"] and "86%" in near[0].message
    # Fixed twin: int8 over 2 shards (13.8 GB per node).
    assert fired(make([{**big, "precision": "int8", "shards": 2}]), "index_ram") == []
    # Without an index model the raw float32 vectors are the floor: 98.3 GB per node.
    raw = {"id": "vec", "kind": "vector_db", "replicas": 2, "vectors": 20_000_000, "dimensions": 1024}
    assert [x.severity for x in fired(make([raw]), "index_ram")] == ["error"]
    assert fired(make([{**raw, "vectors": 1_000_000}]), "index_ram") == []


def test_recall_target_out_of_reach_is_a_lint_error():
    v = {"id": "vec", "kind": "vector_db", "replicas": 2, "index_type": "ivf_pq", "vectors": 1_000_000,
         "dimensions": 1536, "pq_bytes": 96, "recall_target": 0.95}
    f = fired(make([v]), "recall")
    assert len(f) == 1 and "PQ ceiling" in f[0].message
    assert fired(make([{**v, "index_type": "hnsw"}]), "recall") == []


def test_slo_metric_vs_the_prompts_words():
    svc = {"id": "svc", "kind": "service", "replicas": 2, "concurrency": 10}
    words = "Answers stream and the first token must arrive with p95 under 1 s."
    f = fired(make([svc], slo={"latency_p95_ms": 1000}, problem=words), "slo_metric")
    assert len(f) == 1 and "latency_p95_ms 1000" in f[0].message
    assert fired(make([svc], slo={"latency_p95_ms": 5000, "ttft_p95_ms": 1000}, problem=words), "slo_metric") == []
    e2e = "The full response must be back within 2 s end to end."
    assert len(fired(make([svc], slo={"ttft_p95_ms": 500}, problem=e2e), "slo_metric")) == 1
    assert fired(make([svc], slo={"ttft_p95_ms": 500, "latency_p95_ms": 2000}, problem=e2e), "slo_metric") == []


def test_semantic_cache_shared_across_tenants():
    gw = {"id": "gw", "kind": "api_gateway", "replicas": 2, "label": "Gateway (SSO, tenant ACLs)"}
    cache = {"id": "semcache", "kind": "cache", "replicas": 2, "label": "Semantic cache"}
    svc = {"id": "svc", "kind": "service", "replicas": 2, "concurrency": 10}
    flow = [("gw", "semcache"), ("semcache", "svc")]
    f = fired(make([gw, cache, svc], flow), "shared_semantic_cache")
    assert len(f) == 1 and f[0].component == "semcache" and f[0].severity == "error"
    fixed = {**cache, "label": "Semantic cache, keyed per tenant"}
    assert fired(make([gw, fixed, svc], flow), "shared_semantic_cache") == []
    # No access control anywhere: a shared cache is fine.
    assert fired(make([{**gw, "label": "Gateway"}, cache, svc], flow), "shared_semantic_cache") == []


def test_tool_output_reaching_the_model_without_a_guardrail():
    llm = {"id": "agent", "kind": "llm_api", "notes": "fallback: a second region"}
    tool = {"id": "search", "kind": "tool"}
    guard = {"id": "tool_guard", "kind": "guardrail", "replicas": 2}
    loop = [("agent", "search"), ("search", "agent", {"p": 0.5, "max_repeats": 3})]
    f = fired(make([llm, tool], loop), "tool_output_injection")
    assert len(f) == 1 and f[0].component == "search" and "'agent'" in f[0].message
    fixed = [("agent", "search"), ("search", "tool_guard"), ("tool_guard", "agent", {"p": 0.5, "max_repeats": 3})]
    assert fired(make([llm, tool, guard], fixed), "tool_output_injection") == []


def test_cross_node_tensor_parallelism():
    big = {"id": "llm", "kind": "llm_server", "model": "llama-3.1-70b", "gpus_per_replica": 16, "replicas": 2}
    f = fired(make([big]), "cross_node_tp")
    assert len(f) == 1 and "16 GPUs" in f[0].message and "2 nodes" in f[0].message
    assert fired(make([{**big, "gpus_per_replica": 8}]), "cross_node_tp") == []


def test_retry_amplification_near_the_limit():
    # 10 calls/s of 500 + 100 tokens against a 400,000 tokens/min limit (11.1 calls/s sustainable).
    api = {"id": "api", "kind": "llm_api", "tpm_limit": 400_000, "on_limit": "retry", "max_retries": 5,
           "notes": "fallback: second region"}
    f = fired(make([api]), "retry_amplification")
    # 10/s × 600 tokens × 60 = 360k tokens/min of 400k (90 %); a 1.5× burst: 1 − 11.1/15 = 26 % throttled.
    assert len(f) == 1 and "90%" in f[0].message and "26%" in f[0].message
    assert fired(make([{**api, "on_limit": "wait"}]), "retry_amplification") == []


def _eval(**judge):
    j = {"id": "judge", "kind": "judge", "eval_regression_points": 1, **judge}
    return make([j], workload={"requests_per_day": 1000, "batch": {"items_per_run": 5000, "window_hours": 24}})


def test_too_few_eval_cases_for_the_stated_regression():
    # McNemar, ψ = 0.1, 1 point, 80 %: 7,847 cases needed; the run judges 5,000.
    f = fired(_eval(judge_human_agreement=1.0), "eval_cases")
    assert len(f) == 1 and "7,847" in f[0].message and "5,000" in f[0].message
    assert fired(_eval(judge_human_agreement=1.0, eval_cases=8000), "eval_cases") == []
    # A weaker judge needs more: at agreement 0.9, 8,000 cases are no longer enough.
    assert len(fired(_eval(judge_human_agreement=0.9, eval_cases=8000), "eval_cases")) == 1


def test_judge_without_agreement_figure():
    f = fired(_eval(eval_cases=50_000), "judge_agreement")
    assert len(f) == 1 and f[0].severity == "warning"
    assert fired(_eval(eval_cases=50_000, judge_human_agreement=0.9), "judge_agreement") == []
