"""The model against published serving measurements (components/data/serving_calibration.csv).

* The five rows the model was first calibrated on (issue 4) are re-derived within ±25 % by one
  simulated replica driven the way each row was measured (closed loop in steady state, fixed
  batch, or all prompts at t = 0) — no regression allowed.
* Every row carries a split tag set before any coefficient was fitted; the scoreboard
  (`sim.llm.accuracy`, `bench/bench_accuracy.py`) reports both splits. Here a few held-out rows
  that exercise the issue-11 fixes are checked against their published figures.
"""

import pytest

from components.hardware import calibration_rows
from sim.llm.accuracy import score_row, summarise
from sim.llm.calibrate import calibration_report, run_row

ORIGINAL = [r for r in calibration_rows() if r["id"] in ("S1", "S5", "S12", "S16", "S20")]
BY_ID = {r["id"]: r for r in calibration_rows()}
TOL = 0.25


@pytest.mark.parametrize("row", ORIGINAL, ids=[r["id"] for r in ORIGINAL])
def test_original_row_within_25_percent(row):
    r = run_row(row)
    checks = [("throughput tok/s", r.throughput_tok_s, row["throughput_tok_s"]),
              ("TPOT ms", r.tpot_ms, row["tpot_ms"]), ("TTFT ms", r.ttft_ms, row["ttft_ms"])]
    assert row["throughput_tok_s"] is not None and row["split"] == "fit"
    for name, model, measured in checks:
        if measured is None:
            continue
        err = (model - measured) / measured
        assert abs(err) <= TOL, f"{row['id']} {name}: model {model:.2f} vs measured {measured:.2f} ({err:+.1%})"


def test_report_covers_every_row_and_metric_the_rows_publish():
    rep = calibration_report(ORIGINAL)
    assert [r["id"] for r in rep] == [r["id"] for r in ORIGINAL]
    for r, row in zip(rep, ORIGINAL):
        assert r["throughput_rel_err"] is not None
        assert (r["tpot_rel_err"] is None) == (row["tpot_ms"] is None)
        assert (r["ttft_rel_err"] is None) == (row["ttft_ms"] is None)


def test_closed_loop_is_measured_in_steady_state():
    """NIM, Llama-3.3-70B FP8 on 2 × H100, 5000 in / 500 out, 25 clients (held out): the old
    protocol (all clients at t = 0, 4 requests each, averaged over start and drain) gave TTFT
    +237 % and throughput −12 %; the steady-state window must land within ±25 %."""
    row = BY_ID["N-L70-H100-5000-500-c25"]
    assert row["split"] == "held_out"
    r = run_row(row)
    assert r.ttft_ms == pytest.approx(row["ttft_ms"], rel=0.25)
    assert r.throughput_tok_s == pytest.approx(row["throughput_tok_s"], rel=0.25)
    assert r.tpot_ms == pytest.approx(row["tpot_ms"], rel=0.25)


def test_scoreboard_groups_count_rows_and_errors():
    rows = [BY_ID[i] for i in ("S12", "T-L8-H200-128-2048", "T-L405-H100-128-2048")]
    scores = [score_row(r, sim=False) for r in rows]
    assert all(s.not_modelled is None for s in scores)
    groups = summarise(scores, by=("mode",))
    (g,) = groups
    assert g.metric == "throughput" and g.rows == 3 and g.not_modelled == 0
    errs = [abs(s.err("twin", "throughput")) for s in scores]
    assert g.mape_twin == pytest.approx(sum(errs) / 3)
    assert g.within25_twin == pytest.approx(sum(e <= 0.25 for e in errs) / 3)
    assert abs(g.worst_twin[1]) == pytest.approx(max(errs))


def test_unrepresentable_rows_are_counted_not_dropped():
    row = dict(BY_ID["S12"], id="X", model_name="no-such-model")
    s = score_row(row, sim=False)
    assert s.not_modelled and "no-such-model" in s.not_modelled
    (g,) = summarise([s], by=("mode",))
    assert g.rows == 1 and g.not_modelled == 1 and g.mape_twin is None
