"""Design lint: every rule fires on a small design made to trigger it and stays quiet on its twin."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from designs.io import dump_design, load_design
from designs.library import library_dir
from designs.model import Design
from review.lint import RULES, lint
from designs.forms import add_edge
from review.prompts import get_prompt, skeleton_design

analytic = pytest.importorskip("sim.twin.analytic")


def make(components, flow=(), *, entry=None, slo=None, workload=None, assumptions=()) -> Design:
    return Design.model_validate({
        "name": "t",
        "workload": workload or {"arrival_rps": 100, "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": 500}, "output_tokens": {"dist": "fixed", "value": 100}}]},
        "slo": slo or {},
        "components": list(components),
        "entry": entry or components[0]["id"],
        "flow": [{"from": a, "to": b, **kw} for a, b, *rest in flow for kw in [rest[0] if rest else {}]],
        "assumptions": list(assumptions),
    })


def svc(cid="svc", replicas=2, conc=10, mean_ms=50.0, **kw):
    return {"id": cid, "kind": "service", "replicas": replicas, "concurrency": conc,
            "service_time": {"dist": "exponential", "mean_ms": mean_ms}, **kw}


MON = {"id": "mon", "kind": "monitoring"}


def rules(design, **kw):
    return {(f.rule, f.severity, f.component) for f in lint(design, **kw)}


def fired(design, rule, **kw):
    return [f for f in lint(design, **kw) if f.rule == rule]


def test_library_serving_design_has_no_error():
    d = load_design(library_dir() / "llm_serving.yaml")
    errors = [f for f in lint(d) if f.severity == "error"]
    assert errors == [], [f.format() for f in errors]


def test_every_rule_has_a_description_and_findings_carry_a_fix():
    d = make([svc(replicas=1)])
    for f in lint(d):
        assert f.rule in RULES
        assert f.fix


def test_spof():
    assert fired(make([svc(replicas=1), MON]), "spof")[0].component == "svc"
    assert fired(make([svc(replicas=1), MON]), "spof")[0].severity == "warning"
    assert not fired(make([svc(replicas=2), MON]), "spof")


def test_missing_cache_from_assumption_and_from_prompt():
    d = make([svc(), MON], assumptions=["repeated_query_ratio: 0.3 (FAQ traffic, from logs)"])
    f = fired(d, "missing_cache")
    assert f and "30%" in f[0].message and "30.0 requests/s" in f[0].message
    cached = make([{"id": "cache", "kind": "cache", "replicas": 2, "hit_ratio": 0.3}, svc(), MON], [("cache", "svc")],
                  assumptions=["repeated_query_ratio: 0.3"])
    assert not fired(cached, "missing_cache")
    # Stated only in the practice prompt's requirements.
    prompt = get_prompt("rag-2m")
    assert fired(make([svc(), MON]), "missing_cache", prompt=prompt)
    assert not fired(make([svc(), MON]), "missing_cache", prompt=get_prompt("rag-budget"))
    # Stated as a percentage in the problem text.
    d2 = make([svc(), MON])
    d2 = d2.model_copy(update={"problem": "About 40 % of questions repeat verbatim."})
    assert "40%" in fired(d2, "missing_cache")[0].message


def _llm(model, gpu, tp=1, precision="bf16", replicas=2):
    return {"id": "llm", "kind": "llm_server", "model": model, "gpu": gpu, "gpus_per_replica": tp,
            "precision": precision, "replicas": replicas}


def _long(prompt_tokens):
    return {"requests_per_day": 10_000, "classes": [{"name": "long", "prompt_tokens": {"dist": "fixed", "value": prompt_tokens},
                                                     "output_tokens": {"dist": "fixed", "value": 500}}]}


def test_kv_cache_cannot_hold_a_sequence():
    # Llama-3.1-8B in BF16 on one 24 GB L4: ~16 GB of weights leave room for far fewer than 100k tokens of KV.
    tight = make([_llm("llama-3.1-8b", "L4-24GB"), MON], workload=_long(100_000))
    f = fired(tight, "kv_cache")
    assert f and f[0].severity == "error" and f[0].component == "llm" and "KV" in f[0].message
    assert not fired(tight, "analytic_failed")
    roomy = make([_llm("llama-3.1-8b", "H100-SXM-80GB"), MON], workload=_long(30_000))
    assert not fired(roomy, "kv_cache")


def test_weights_that_do_not_fit_are_a_kv_cache_error_per_component():
    # 70B in BF16 needs 141 GB of weights; one 80 GB H100 cannot hold them, two H100 in FP8 can.
    big = make([_llm("llama-3.1-70b", "H100-SXM-80GB"), MON])
    f = fired(big, "kv_cache")
    assert f and f[0].severity == "error" and f[0].component == "llm" and "141 GB of weights" in f[0].message
    assert not fired(big, "analytic_failed")
    ok = make([_llm("llama-3.1-70b", "H100-SXM-80GB", tp=2, precision="fp8"), MON])
    assert not [x for x in fired(ok, "kv_cache") if x.severity == "error"]


def test_full_finetune_over_memory_is_a_config_error():
    job = {"id": "ft", "kind": "training_job", "model": "llama-3.1-70b", "method": "full", "tokens": 1e9, "gpus": 8}
    f = fired(make([job, MON], workload={"arrival_rps": 1, "batch": {"items_per_run": 1000}}), "config")
    assert f and f[0].component == "ft" and "640 GB" in f[0].message
    lora = {**job, "method": "lora"}
    assert not fired(make([lora, MON], workload={"arrival_rps": 1, "batch": {"items_per_run": 1000}}), "config")


def test_kv_cache_starves_batching():
    # 70B FP8 on 2 × H100: ~212k KV tokens per replica hold only 3 sequences of 60.5k tokens.
    d = make([_llm("llama-3.1-70b", "H100-SXM-80GB", tp=2, precision="fp8"), MON], workload=_long(60_000))
    est = analytic.estimate(d)
    assert est.llm["llm"].max_concurrent_seqs < 4  # the premise
    f = fired(d, "kv_cache", estimate=est)
    assert f and f[0].severity == "warning" and f"{est.llm['llm'].max_concurrent_seqs} concurrent" in f[0].message
    short = make([_llm("llama-3.1-70b", "H100-SXM-80GB", tp=2, precision="fp8"), MON], workload=_long(2_000))
    assert not fired(short, "kv_cache")


def _api(rpm, tpm=None, cid="api"):
    d = {"id": cid, "kind": "llm_api", "rpm_limit": rpm}
    if tpm:
        d["tpm_limit"] = tpm
    return d


def test_rate_limit_exceeded():
    over = make([_api(rpm=3000), MON])  # 100 requests/s = 6000/min offered
    f = fired(over, "rate_limit")
    assert f and f[0].severity == "error" and "6,000/min" in f[0].message
    assert not fired(make([_api(rpm=60_000), MON]), "rate_limit")
    # The token limit binds: 100/s × 600 tokens × 60 = 3.6 M tokens/min.
    assert fired(make([_api(rpm=60_000, tpm=1_000_000), MON]), "rate_limit")[0].severity == "error"


def test_no_monitoring_and_no_eval_loop():
    bare = make([_api(rpm=60_000)])
    assert fired(bare, "no_monitoring")
    assert fired(bare, "no_eval_loop")[0].severity == "warning"
    judged = make([_api(rpm=60_000), {"id": "judge", "kind": "judge"}, MON], [("api", "judge", {"p": 0.01})])
    assert not fired(judged, "no_monitoring")
    assert not fired(judged, "no_eval_loop")
    # A pipeline's eval gate (any component that says it evaluates) is an eval loop too.
    gated = make([_api(rpm=60_000), svc("eval_gate"), MON], [("api", "eval_gate")])
    assert not fired(gated, "no_eval_loop")


def test_no_fallback_for_external_api():
    alone = make([svc("router"), _api(rpm=60_000), MON], [("router", "api")])
    assert fired(alone, "no_fallback")[0].component == "api"
    backed = make([svc("router"), _api(rpm=60_000), _llm("llama-3.1-8b", "H100-SXM-80GB"), MON],
                  [("router", "api", {"p": 0.95}), ("router", "llm", {"p": 0.05})])
    assert not fired(backed, "no_fallback")


def test_slo_unmet_at_peak():
    # 100/s on 6 servers of 50 ms: ρ = 0.83; p95 is far above 60 ms.
    hot = make([svc(replicas=1, conc=6), MON], slo={"latency_p95_ms": 60})
    f = fired(hot, "slo_unmet")
    assert f and f[0].severity == "error" and "latency_p95_ms" in f[0].message
    assert not fired(make([svc(), MON], slo={"latency_p95_ms": 2000}), "slo_unmet")


def test_over_budget():
    f = fired(make([svc(), MON], slo={"daily_budget_usd": 1}), "over_budget")
    assert f and f[0].severity == "error" and "budget" in f[0].message
    assert not fired(make([svc(), MON], slo={"daily_budget_usd": 100_000}), "over_budget")


def test_high_utilization():
    warm = make([svc(replicas=1, conc=6), MON])  # ρ = 100 × 0.05 / 6 = 0.83
    f = fired(warm, "high_utilization")
    assert f and f[0].severity == "warning" and "83%" in f[0].message
    hot = make([svc(replicas=1, conc=4), MON])  # ρ = 1.25
    assert fired(hot, "high_utilization")[0].severity == "error"
    assert not fired(make([svc(replicas=2, conc=10), MON]), "high_utilization")  # ρ = 0.25


def test_unwired_component():
    d = make([svc(), svc("orphan"), MON])
    assert fired(d, "unwired")[0].component == "orphan"
    assert not fired(make([svc(), svc("next"), MON], [("svc", "next")]), "unwired")


def test_cli_lint_exit_codes_and_json(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(dump_design(make([svc(), MON])))
    assert main(["lint", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(dump_design(make([svc(), MON], slo={"daily_budget_usd": 1})))
    capsys.readouterr()
    assert main(["lint", str(bad), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert any(f["rule"] == "over_budget" and f["severity"] == "error" for f in data)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ncomponents: []\n")
    assert main(["lint", str(broken)]) == 1
    assert "broken.yaml" in capsys.readouterr().err


def test_incomplete_for_the_prompt():
    prompt = get_prompt("serve-10m")
    skeleton = skeleton_design(prompt)  # the LLM is not wired yet
    f = fired(skeleton, "incomplete", prompt=prompt)
    assert f and f[0].severity == "error" and f[0].component == "llm" and "no edge leads to it" in f[0].message
    wired = add_edge(skeleton, "router", "llm")
    assert not fired(wired, "incomplete", prompt=prompt)
    assert not fired(skeleton, "incomplete")  # without a prompt there is nothing to require
