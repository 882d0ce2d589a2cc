"""The rubric cites its numbers, stays consistent with the SLO/budget verdict, and scores evals as statistics."""

from __future__ import annotations

from designs.io import load_design
from designs.library import library_dir
from designs.model import Design
from review.grading import CAP_WHEN_FAILING, rubric
from review.lint import lint
from sim import estimate


def _scores(design):
    est = estimate(design)
    return {r.area: r for r in rubric(design, est, None, lint(design, est), [])}


def _eval_design(**judge) -> Design:
    d = load_design(library_dir() / "eval_at_scale.yaml")
    data = d.model_dump(mode="json", by_alias=True, exclude_none=True)
    for c in data["components"]:
        if c["id"] == "judge":
            c.pop("judge_human_agreement", None)
            c.update(judge)
    return Design.model_validate(data)


def test_every_area_cites_numbers_from_the_twin_or_the_lint():
    s = _scores(load_design(library_dir() / "rag_qa.yaml"))
    for area in ("requirements", "architecture", "scaling", "cost"):
        assert s[area].evidence, area
        assert all(e.split(":")[0] in ("twin", "sim", "lint over_budget", "model") or e.startswith("lint ") for e in s[area].evidence)
    # The vector index's figures are the architecture's evidence.
    assert any("recall@25 0.95" in e and "GB per node" in e for e in s["architecture"].evidence)
    assert any("bottleneck" in e for e in s["scaling"].evidence)


def test_failing_the_budget_caps_scaling_and_cost_below_strong():
    d = load_design(library_dir() / "llm_serving.yaml")
    data = d.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["slo"]["daily_budget_usd"] = 500  # the design costs ~$1,630/day
    s = _scores(Design.model_validate(data))
    assert s["cost"].score <= CAP_WHEN_FAILING and s["scaling"].score <= CAP_WHEN_FAILING
    assert s["scaling"].level != "strong" and any("capped" in r for r in s["scaling"].reasons)
    # The same design within budget is strong on scaling.
    assert _scores(d)["scaling"].level == "strong"


def test_evaluation_area_scores_validity_sample_size_and_cost():
    validated = _scores(_eval_design(judge_human_agreement=0.9))["evaluation"]
    unvalidated = _scores(_eval_design())["evaluation"]
    too_few = _scores(_eval_design(judge_human_agreement=0.9, eval_cases=5000))["evaluation"]
    assert validated.score == 5.0 and validated.level == "strong"
    assert unvalidated.score < validated.score and "validate" in unvalidated.probe
    assert too_few.score < validated.score and "5,000 cases" in too_few.probe
    # Evidence: the McNemar arithmetic and the run's cost.
    assert any("McNemar" in e for e in validated.evidence) and any("$1,300" in e for e in validated.evidence)
    # 200k cases where ~30k detect the drop: the interviewer asks why judge them all.
    assert "29,922" in validated.probe


def test_unsafe_architecture_scores_lower():
    rag = load_design(library_dir() / "rag_qa.yaml")
    data = rag.model_dump(mode="json", by_alias=True, exclude_none=True)
    for c in data["components"]:
        if c["id"] == "semantic_cache":
            c["label"] = "Semantic cache (similar past questions)"
    shared = _scores(Design.model_validate(data))["architecture"]
    assert shared.score < _scores(rag)["architecture"].score
    assert "tenant" in shared.probe
