"""The canonical design library: every file validates, round-trips, renders, states its case.

Parametrised over ``designs/library/*.yaml``; the five canonical names are required (other
code refers to them). Checks that need another module (the analytic twin, the LLM roofline,
the pipeline model) use that module's public function and assert the design's own numbers
against it, so a design edited into an unstable or under-provisioned state fails here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from designs.diagram import to_dot
from designs.io import dump_design, load_design, parse_design
from designs.render import render

LIBRARY = Path(__file__).resolve().parent.parent / "designs" / "library"
CANONICAL = ("rag_qa", "eval_at_scale", "llm_serving", "finetune_pipeline", "agent_workflow")
FILES = sorted(LIBRARY.glob("*.yaml"))
IDS = [p.stem for p in FILES]

# Graph warnings a library file is allowed to have, by file stem (none today: every component
# is on the flow or is monitoring).
INTENDED_WARNINGS: dict[str, set[str]] = {}

# An assumption either names where its number comes from or says it is assumed.
MARKER = re.compile(r"\b(sources?|assumptions?)\b", re.I)


@pytest.fixture(scope="module", params=FILES, ids=IDS)
def design(request):
    return load_design(request.param)


def test_the_five_canonical_designs_exist():
    assert set(CANONICAL) <= set(IDS), f"missing: {set(CANONICAL) - set(IDS)}"


def test_validates_without_unintended_warnings(design):
    found = {w.path + ": " + w.message for w in design.warnings()}
    allowed = INTENDED_WARNINGS.get(design.name, set())
    assert found <= allowed, f"unexpected warnings: {found - allowed}"


def test_round_trips_through_yaml(design):
    text = dump_design(design)
    again = parse_design(text)
    assert again == design
    assert dump_design(again) == text


def test_renders_to_svg_naming_every_component(design):
    svg = render(to_dot(design), "svg").decode("utf-8")
    assert svg.lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))
    for c in design.components:
        # Graphviz writes each node's name as its <title>; '-' is escaped as &#45;.
        title = "<title>" + c.id.replace("-", "&#45;") + "</title>"
        assert title in svg, f"{design.name}: node {c.id!r} missing from the SVG"


def test_states_problem_assumptions_notes_and_slo(design):
    assert len(design.problem.strip()) >= 40, "problem should quote the interviewer's prompt"
    assert len(design.assumptions) >= 3
    unmarked = [a for a in design.assumptions if not MARKER.search(a)]
    assert not unmarked, f"assumptions without a source or 'assumption' marker: {unmarked}"
    assert len(design.notes.strip()) >= 200, "notes should discuss trade-offs"
    assert any(v is not None for v in design.slo.model_dump().values()), "no SLO target set"
    for c in design.components:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", c.id), f"id {c.id!r} is not short snake_case"
        assert c.label, f"{c.id} has no human label"


def test_file_name_matches_design_name(design):
    assert (LIBRARY / f"{design.name}.yaml").is_file()


# --- design-specific facts ---------------------------------------------------------------


def test_serving_design_reads_the_target_and_plans_for_the_peak():
    d = load_design(LIBRARY / "llm_serving.yaml")
    w = d.workload
    assert w.requests_per_day == 10_000_000 and w.arrival_rps is None
    assert w.peak_rps == pytest.approx(10_000_000 / 86_400 * w.peak_to_average, rel=1e-12)
    assert 2 <= w.peak_to_average <= 3
    assert d.slo.ttft_p95_ms == 1000
    # The exponential argument in the notes: p95 of Exp(mean 0.5 s) = 0.5 × ln 20 ≈ 1.5 s.
    assert 0.5 * math.log(20) == pytest.approx(1.498, abs=1e-3)
    assert "1.5 s" in d.notes and "TTFT" in d.notes


def test_serving_replicas_carry_the_peak_at_most_80_percent_load():
    from sim.llm.twin import llm_estimate

    d = load_design(LIBRARY / "llm_serving.yaml")
    llm = d.component("llm")
    est = llm_estimate(llm, d.workload, d.workload.peak_rps)
    assert llm.replicas >= est.replicas_needed, est.explanation
    load = d.workload.peak_rps / (llm.replicas * est.max_requests_per_s_per_replica)
    assert load <= 0.8, f"{load:.0%} of max throughput at peak"
    assert est.ttft_ms_estimate < d.slo.ttft_p95_ms and est.tpot_ms_estimate < d.slo.tpot_p95_ms


def test_rag_retrieval_fans_out_and_joins_at_the_reranker():
    d = load_design(LIBRARY / "rag_qa.yaml")
    cache = next(c for c in d.components if c.kind == "cache")
    assert d.is_fanout(cache.id)
    assert {e.to for e in d.out_edges(cache.id)} == {"vector_db", "keyword_search"}
    assert d.join_of(cache.id) == "reranker"
    assert 0 < cache.hit_ratio < 1


def test_agent_loop_is_bounded():
    d = load_design(LIBRARY / "agent_workflow.yaml")
    loops = [e for e in d.flow if e.is_loop]
    assert len(loops) == 1 and loops[0].to == "planner"
    assert loops[0].max_repeats <= 5 and 0 < loops[0].p < 1


@pytest.mark.parametrize("name", ["finetune_pipeline", "eval_at_scale"])
def test_pipeline_designs_fit_their_window(name):
    from sim.pipeline import pipeline_result

    d = load_design(LIBRARY / f"{name}.yaml")
    assert d.workload.batch is not None
    r = pipeline_result(d)
    assert r.fits, r.summary
    # Not trivially inside the window either: the run has real work in it.
    assert r.duration_h > 0.1 * r.window_h, r.summary
    if name == "finetune_pipeline":
        assert d.workload.batch.runs_per_week == 1 and d.workload.batch.window_hours == 24
        assert "train" in r.critical_path and r.gpu_hours > 0 and r.cost_per_run_usd > 0


# --- the analytic twin at the peak rate ----------------------------------------------------


def test_stable_at_peak_and_meets_its_slos_in_the_analytic_twin(design):
    from sim.twin.analytic import estimate

    est = estimate(design)
    assert est.arrival_rps == pytest.approx(design.workload.peak_rps)
    assert est.stable and not est.unstable, est.unstable
    for cid, st in est.stations.items():
        assert st.utilization < 0.85, f"{cid} at {st.utilization:.0%} at peak"
    # Every LLM server has at least the replicas its roofline asks for at the rate reaching it.
    for cid, llm in est.llm.items():
        assert design.component(cid).replicas >= llm.replicas_needed, llm.explanation
    verdicts = [c for c in est.slo if c.met is not None]
    assert verdicts, "the twin checked none of the SLOs"
    failed = [f"{c.metric}: {c.detail}" for c in verdicts if not c.met]
    assert not failed, failed
