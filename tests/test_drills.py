"""Drills: a change or a fault on a copy of the design, the twin re-run, a prediction graded."""

from __future__ import annotations

import pytest

from designs.io import load_design
from designs.model import Design
from review.drills import DRILLS, Prediction, apply_drill, parse_prediction, run_drill


def pool() -> Design:
    # 4 servers of 10/s at 20/s: ρ 0.5. Doubling traffic: ρ 1.0 — unstable; the sizing rule
    # (ρ ≤ 0.8) then needs ceil(40 / (0.8 × 10)) = 5 servers, 1 more... of 4 replicas here.
    return Design.model_validate({
        "name": "p", "workload": {"arrival_rps": 20},
        "components": [{"id": "svc", "kind": "service", "replicas": 4, "zones": 2,
                        "service_time": {"dist": "exponential", "mean_ms": 100}}],
        "entry": "svc", "slo": {"latency_p95_ms": 1000}})


def test_the_drill_changes_a_copy_not_the_design():
    d = pool()
    changed, what = apply_drill(d, "traffic_x2")
    assert changed.workload.arrival_rps == 40 and d.workload.arrival_rps == 20
    assert what == "peak traffic doubled"


def test_traffic_x2_regrades_utilisation_and_replicas():
    r = run_drill(pool(), "traffic_x2", prediction="utilisation doubles")
    assert r.before["utilization:svc"] == pytest.approx(0.5)
    assert r.after["utilization:svc"] == pytest.approx(1.0)
    assert r.after["replicas_needed:svc"] == 5  # ceil(40 × 0.1 / 0.8)
    assert r.grade.verdict == "good" and r.grade.actual == pytest.approx(1.0)
    assert r.wall_s < 1.0  # the twin, not a simulation


def test_lose_zone_takes_the_largest_zone():
    r = run_drill(pool(), "lose_zone", component="svc")
    assert r.change == "svc: 4 → 2 replicas"
    assert r.after["utilization:svc"] == pytest.approx(1.0)
    assert r.after["availability"] is None  # unstable: the backlog grows


@pytest.mark.parametrize("text, want", [
    ("TTFT p95 will roughly double", Prediction(metric="ttft_p95_ms", factor=2.0)),
    ("we need 3 more replicas", Prediction(metric="replicas_needed:llm", delta=3.0)),
    ("cost × 1.5", Prediction(metric="cost_per_day_usd", factor=1.5)),
    ("availability 50 %", Prediction(metric="availability", value=0.5)),
    ("p95 latency 2.5 s", Prediction(metric="latency_p95_ms", value=2500.0)),
])
def test_predictions_are_read_from_words(text, want):
    p = parse_prediction(text, component="llm")
    assert (p.metric, p.value, p.factor, p.delta) == (want.metric, want.value, want.factor, want.delta)


def test_a_prediction_without_a_metric_is_refused():
    with pytest.raises(ValueError, match="name what changes"):
        parse_prediction("it gets worse")


def test_llm_traffic_x2_grades_the_replica_count_with_the_arithmetic():
    import math

    from sim import estimate

    d = load_design("designs/library/llm_serving.yaml")
    # The twin's λ* per replica at ρ ≤ 0.8: ⌈λ / (0.8 λ*)⌉ replicas today and ⌈2λ / (0.8 λ*)⌉ for
    # twice the traffic (the figure moves with the LLM model's coefficients; the arithmetic does not).
    lam_star = estimate(d).llm["llm"].max_requests_per_s_per_replica
    rate = d.workload.peak_rps
    today, doubled = math.ceil(rate / (0.8 * lam_star)), math.ceil(2 * rate / (0.8 * lam_star))
    assert 10 <= today <= 25 and doubled in (2 * today - 1, 2 * today)
    r = run_drill(d, "traffic_x2", prediction=f"we need {doubled - today} more replicas", component="llm")
    assert r.before["replicas_needed:llm"] == today and r.after["replicas_needed:llm"] == doubled
    assert r.grade.verdict == "good" and f"a change of +{doubled - today}" in r.grade.arithmetic
    off = run_drill(d, "traffic_x2", prediction="we need 2 more replicas", component="llm")
    assert off.grade.verdict == "off"
    assert any("unstable: `llm`" in ln for ln in r.lines)


def test_provider_outage_without_and_with_a_fallback():
    base = {
        "name": "api", "workload": {"arrival_rps": 5},
        "components": [{"id": "gw", "kind": "api_gateway"}, {"id": "api", "kind": "llm_api"},
                       {"id": "backup", "kind": "llm_api"}],
        "entry": "gw", "flow": [{"from": "gw", "to": "api"}]}
    # Every request calls the API: 30 of 60 minutes out → availability 1 − 30/60 = 50 %.
    r = run_drill(Design.model_validate(base), "provider_down_30min", prediction="availability 50 %")
    assert r.after["availability"] == pytest.approx(0.5)
    assert r.grade.verdict == "good"
    with_fb = dict(base, flow=base["flow"] + [{"from": "api", "to": "backup", "fallback": True}])
    r2 = run_drill(Design.model_validate(with_fb), "provider_down_30min")
    assert r2.after["availability"] == 1.0 and "calls go to 'backup'" in r2.change


def test_the_outage_drill_simulates_on_demand():
    d = Design.model_validate({
        "name": "api", "workload": {"arrival_rps": 2},
        "components": [{"id": "gw", "kind": "api_gateway"}, {"id": "api", "kind": "llm_api"}],
        "entry": "gw", "flow": [{"from": "gw", "to": "api"}]})
    r = run_drill(d, "provider_down_30min", simulate=True, seed=1)
    assert r.simulated["availability"] == pytest.approx(0.5, abs=0.03)


def test_every_drill_is_listed():
    assert set(DRILLS) == {"traffic_x2", "prompts_x4", "switch_70b", "lose_replica", "lose_zone", "provider_down_30min"}
    r = run_drill(load_design("designs/library/rag_qa.yaml"), "switch_70b")
    assert "llama-3.1-70b" in r.change and r.after["cost_per_day_usd"] > r.before["cost_per_day_usd"]


# --- drills in the review's grade ----------------------------------------------------------------

def test_a_review_without_drills_is_scored_as_before():
    from review.grading import DRILLS_AREA, review_attempt

    rv = review_attempt(pool(), None, {"peak_qps": 20}, simulate=False)
    assert DRILLS_AREA not in {r.area for r in rv.rubric} and rv.drills == []
    assert rv.total == round(100 * sum(r.score for r in rv.rubric) / (5 * 7), 1)  # 7 areas of 5 points


def test_a_right_prediction_scores_and_a_wrong_one_does_not():
    from review.grading import DRILLS_AREA, review_attempt, with_drills

    d = pool()
    base = review_attempt(d, None, {"peak_qps": 20}, simulate=False)
    s7 = sum(r.score for r in base.rubric)
    # traffic × 2: ρ = 20 × 0.1 / 4 = 0.5 → 40 × 0.1 / 4 = 1.0, i.e. utilisation × 2.
    right = review_attempt(d, None, {"peak_qps": 20}, simulate=False,
                           drills=[{"drill": "traffic_x2", "prediction": "utilisation doubles"}])
    area = next(r for r in right.rubric if r.area == DRILLS_AREA)
    assert right.drills[0].grade.verdict == "good" and area.score == 5.0
    assert "utilization:svc: 0.5 → 1 (× 2); you said × 2 of 0.5 = 1: 1.00× off" in area.evidence[0]
    assert right.total == round(100 * (s7 + 5) / 40, 1)  # the drills weigh 5 of 40 points
    assert right.scores[DRILLS_AREA] == 5.0
    # "utilisation halves": × 0.5 of 0.5 = 0.25 against 1.0 — 4× off, scores 0.
    wrong = with_drills(base, d, [run_drill(d, "traffic_x2", prediction="utilisation halves")])
    g = wrong.drills[0].grade
    assert (g.verdict, g.score, g.predicted, g.actual) == ("off", 0.0, 0.25, 1.0)
    assert "you said × 0.5 of 0.5 = 0.25: 4.00× off" in g.arithmetic
    assert wrong.total == round(100 * s7 / 40, 1) < right.total
    # A drill with no prediction counts 0 (like a missing estimate); the mean of 1 and 0 is 2.5 / 5.
    mixed = with_drills(right, d, [run_drill(d, "lose_replica", component="svc")])
    assert next(r for r in mixed.rubric if r.area == DRILLS_AREA).score == 2.5
    assert any(ln.startswith("drills: 1 of 2 predicted, 2.5/5 (12.5 % of the total)") for ln in mixed.summary)


def test_stored_drills_regrade_the_attempt(tmp_path):
    from review.grading import review_attempt, with_drills
    from review.history import get_attempt, list_drills, progress_series, save_attempt, save_drill, update_attempt_scores

    d = pool()
    rv = review_attempt(d, None, {}, simulate=False)
    aid = save_attempt(tmp_path, prompt_id="p", started_at=0.0, finished_at=60.0, estimates={}, design_yaml="",
                       scores=rv.scores)
    save_drill(tmp_path, aid, run_drill(d, "traffic_x2", prediction="utilisation doubles"))
    rv2 = with_drills(rv, d, list_drills(tmp_path, aid))  # the stored JSON, not a re-run
    assert rv2.drills[0].grade.verdict == "good" and rv2.total > rv.total
    assert update_attempt_scores(tmp_path, aid, rv2.scores)
    a = get_attempt(tmp_path, aid)
    assert a.total == rv2.total and a.scores["drills"] == 5.0
    assert progress_series(tmp_path)[0]["drills"] == 5.0


def test_a_review_with_an_ungradable_drill_survives_its_json_round_trip():
    # The practice round is stored as JSON (a refresh restores it): a prediction about a figure
    # the drill leaves unbounded (TTFT of a design with no LLM) has no predicted / actual value.
    from review.grading import Review, review_attempt

    d = pool()
    rv = review_attempt(d, None, {}, simulate=False, drills=[{"drill": "traffic_x2", "prediction": "TTFT doubles"}])
    g = rv.drills[0].grade
    assert (g.verdict, g.score, g.predicted, g.actual) == ("off", 0.0, None, None) and "no figure after" in g.arithmetic
    back = Review.model_validate_json(rv.model_dump_json())
    assert back.drills[0].grade == g and back.total == rv.total
