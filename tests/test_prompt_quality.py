"""Practice prompts ask what an interviewer asks: eval statistics, corpus-sized retrieval."""

from __future__ import annotations

import pytest

from review.lint import lint
from review.prompts import get_prompt, reference_design, skeleton_design
from sim import estimate


def test_eval_prompts_ask_for_cases_power_and_judge_validity_not_an_ack_latency():
    for pid, points, power in (("eval-1m", 1, 0.8), ("eval-burst", 2, 0.9)):
        p = get_prompt(pid)
        assert p.requirements.latency_p95_ms is None and "200 ms" not in p.statement and "300 ms" not in p.statement
        assert "power" in p.statement and "human" in p.statement
        for d in (skeleton_design(p), reference_design(p)):
            judge = next(c for c in d.components if c.kind == "judge")
            assert (judge.eval_regression_points, judge.eval_power) == (points, power)
        e = estimate(reference_design(p)).evaluation["judge"]
        assert e.cases_needed is not None and e.run_cost_usd > 0


def test_rag_reference_at_the_stated_corpus_size_fits_its_nodes():
    p = get_prompt("rag-10m")  # "… over 100 million chunks"
    ref = reference_design(p)
    vdb = ref.component("vector_db")
    assert vdb.vectors == 100_000_000 and vdb.shards >= 2
    est = estimate(ref)
    r = est.retrieval["vector_db"]
    # 100M / shards × 1,152 B (int8 + 2 × 16 links) × 1.2 headroom, within the node's RAM
    # (6 shards: 23.0 GB of 32 GB; the sizing search may add shards for latency).
    assert r.ram_needed_gb_per_node == pytest.approx(100e6 / vdb.shards * 1152 * 1.2 / 1e9)
    assert r.ram_needed_gb_per_node <= vdb.node_ram_gb
    assert r.recall_at_k >= 0.95
    assert not [f for f in lint(ref, est, prompt=p) if f.rule in ("index_ram", "recall")]
    # The attempt starts at the stated size too, so its lint asks for an index that fits.
    assert skeleton_design(p).component("vectors").vectors == 100_000_000
