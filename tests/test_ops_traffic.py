"""Bursty arrivals and trace replay (sim/ops/traffic)."""

from __future__ import annotations

import math
import random

import pytest

from designs.model import Arrivals, Design
from sim import SimulationRefused, TraceError, load_trace, simulate
from sim.ops.traffic import BurstySource

SHIPPED = "designs/library/traces/synthetic_chat.csv"


def _svc(workload: dict) -> Design:
    return Design.model_validate({
        "name": "replay", "workload": workload,
        "components": [{"id": "svc", "kind": "service", "replicas": 4, "concurrency": 4,
                        "service_time": {"dist": "exponential", "mean_ms": 50}}],
        "entry": "svc"})


def test_replay_at_scale_1_gives_back_the_traces_arrivals_and_tokens():
    tr = load_trace(SHIPPED, ["chat", "short_answer"])
    d = _svc({"trace": {"path": SHIPPED}, "classes": [
        {"name": "chat", "share": 0.8}, {"name": "short_answer", "share": 0.2}]})
    r = simulate(d, seed=1)
    assert r.ops.fates.offered == tr.count == 1200
    assert r.ops.prompt_tokens == tr.prompt_tokens
    assert r.ops.output_tokens == tr.output_tokens
    assert r.ops.horizon_s == pytest.approx(tr.span_s, rel=1e-6)
    assert "sdw layout, 1,200 rows" in r.ops.trace
    # Deterministic arrivals: a second seed changes only the service times.
    assert simulate(d, seed=2).ops.fates.offered == tr.count


def test_time_scaling_to_a_target_rate():
    tr = load_trace(SHIPPED, ["chat", "short_answer"])
    r = simulate(_svc({"trace": {"path": SHIPPED, "target_rps": 10}, "classes": [
        {"name": "chat", "share": 0.8}, {"name": "short_answer", "share": 0.2}]}), seed=1)
    # (n − 1) gaps over the scaled span = 10/s exactly.
    assert (tr.count - 1) / r.ops.horizon_s == pytest.approx(10, rel=1e-6)
    assert r.ops.fates.offered == tr.count


def test_azure_and_burstgpt_layouts(tmp_path):
    az = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    az.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n"
                  "2023-11-16 18:15:51.2459590,879,55\n")
    t = load_trace(str(az))
    assert t.layout == "azure" and t.count == 3
    assert t.times == pytest.approx([0.0, 4.314579, 4.565369], abs=1e-6)
    assert t.prompt_tokens == 374 + 396 + 879 and t.output_tokens == 44 + 109 + 55
    bg = tmp_path / "BurstGPT_1.csv"
    bg.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                  "5,ChatGPT,472,18,490,Conversation log\n45,ChatGPT,1087,0,1087,Conversation log\n")
    b = load_trace(str(bg))
    assert b.layout == "burstgpt" and b.times == [0.0, 40.0] and b.output_tokens == 18


@pytest.mark.parametrize("row, where", [
    ("1.0,abc,10", "bad.csv:3: column 2 ('prompt_tokens'): expected a number, found 'abc'"),
    ("1.0,10", "bad.csv:3: column 3 ('output_tokens') is missing"),
    ("1.0,-5,10", "bad.csv:3: column 2 ('prompt_tokens'): expected a finite number ≥ 0"),
    ("1.0,5.5,10", "bad.csv:3: column 2 ('prompt_tokens'): expected a whole number of tokens"),
    ("1.0,5,10,essay", "bad.csv:3: column 4 ('class'): 'essay' is not a request class"),
])
def test_a_bad_row_names_file_line_and_column(tmp_path, row, where):
    p = tmp_path / "bad.csv"
    p.write_text("timestamp_s,prompt_tokens,output_tokens,class\n0.0,5,5\n" + row + "\n")
    with pytest.raises(TraceError) as e:
        load_trace(str(p), ["chat"])
    assert where in str(e.value)
    d = _svc({"trace": {"path": str(p)}, "classes": [{"name": "chat"}]})
    with pytest.raises(SimulationRefused, match="workload.trace.path: .*bad.csv:3: column"):
        simulate(d, seed=1)


def test_unknown_header_and_missing_file(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("time,in,out\n1,2,3\n")
    with pytest.raises(TraceError, match="x.csv:1: unknown header"):
        load_trace(str(p))
    with pytest.raises(TraceError, match="cannot read the trace"):
        load_trace(str(tmp_path / "nope.csv"))


@pytest.mark.parametrize("process", ["gamma", "lognormal"])
def test_renewal_gaps_have_the_stated_cv_and_mean(process):
    src = BurstySource(Arrivals(process=process, cv=2.0), random.Random(3), 10.0)
    t, gaps = 0.0, []
    for _ in range(100_000):
        g = src.gap(t)
        t += g
        gaps.append(g)
    m = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - m) ** 2 for g in gaps) / len(gaps))
    assert 1 / m == pytest.approx(10, rel=0.02)
    assert sd / m == pytest.approx(2.0, rel=0.05)


def test_mmpp_keeps_the_mean_rate_and_bursts():
    spec = Arrivals(process="mmpp", burst_factor=4, high_share=0.1, mean_burst_s=30)
    src = BurstySource(spec, random.Random(4), 5.0)
    t, n, counts = 0.0, 0, {}
    while t < 20_000:
        t += src.gap(t)
        n += 1
        counts[int(t // 10)] = counts.get(int(t // 10), 0) + 1
    assert n / t == pytest.approx(5, rel=0.05)
    # Index of dispersion of 10 s counts well above Poisson's 1.
    xs = [counts.get(i, 0) for i in range(2000)]
    m = sum(xs) / len(xs)
    assert sum((x - m) ** 2 for x in xs) / len(xs) / m > 3


def test_gamma_arrivals_into_mm1_match_the_gm1_formula():
    # G/M/1 with gamma gaps (mean 1/λ, CV 2: shape k = 1/4, scale 1/(λk)): the sojourn time is
    # exponential with rate μ(1 − σ), σ the root in (0, 1) of σ = A*(μ(1 − σ)), A*(s) =
    # (1 + s/(λk))^(−k) the gaps' Laplace transform (Kleinrock, Queueing Systems I, §6.4).
    lam, mu, cv = 6.0, 10.0, 2.0
    k = 1 / cv**2
    sigma = 0.5
    for _ in range(500):
        sigma = (1 + mu * (1 - sigma) / (lam * k)) ** (-k)
    mean_ms = 1000 / (mu * (1 - sigma))
    d = Design.model_validate({
        "name": "gm1", "workload": {"arrival_rps": lam, "arrivals": {"process": "gamma", "cv": cv}},
        "components": [{"id": "s", "kind": "service", "service_time": {"dist": "exponential", "mean_ms": 100}}],
        "entry": "s"})
    r = simulate(d, seed=2, precision=0.04, max_seconds=20)
    assert r.latency_ms.mean == pytest.approx(mean_ms, rel=0.06)
    assert r.latency_ms.p95 == pytest.approx(mean_ms * math.log(20), rel=0.06)
    # Poisson arrivals at the same rate wait far less (M/M/1: 1/(μ − λ) = 250 ms mean sojourn).
    assert mean_ms > 1.5 * 250


def test_whole_day_bursty_arrivals_keep_each_hours_mean():
    prof = [1.0] * 12 + [3.0] * 12
    d = _svc({"requests_per_day": 86_400, "profile_24h": prof, "arrivals": {"process": "gamma", "cv": 1.5}})
    r = simulate(d, seed=3, whole_day=True, max_seconds=60)
    w = r.ops.windows
    first = sum(x.arrivals for x in w if x.t_end_s <= 12 * 3600)
    second = sum(x.arrivals for x in w if x.t_start_s >= 12 * 3600)
    # 0.5/s then 1.5/s: 21,600 and 64,800 expected; gamma CV 1.5 widens the sd to ≈ 1.5 √n.
    assert first == pytest.approx(21_600, abs=5 * 1.5 * math.sqrt(21_600))
    assert second == pytest.approx(64_800, abs=5 * 1.5 * math.sqrt(64_800))
