"""`sdw accuracy`: the published-rows scoreboard on the command line, text and JSON.

Runs the analytic twin only (``--no-sim``) on two of the original calibration rows so the test
stays fast; bench/bench_accuracy.py runs the whole table.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

from cli.accuracy_cmds import _COLUMNS
from cli.main import main
from components.hardware import calibration_rows, factor, get_gpu

ROOT = pathlib.Path(__file__).resolve().parents[1]
IDS = "S1[26]"  # S12 (8B FP8 TRT-LLM max throughput) and S16 (8B BF16 vLLM batch 8)


@pytest.fixture(scope="module")
def board():
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["accuracy", "--no-sim", "--ids", IDS, "--json"]) == 0
    return json.loads(buf.getvalue())


def test_json_rows_errors_and_group_figures_agree(board):
    assert board["sim"] is False and board["by"] == ["source", "mode", "gpu", "family"]
    fit, held = board["splits"]["fit"], board["splits"]["held_out"]
    assert fit["rows"] == 2 and held["rows"] == 0 and fit["not_modelled"] == 0
    published = {r["id"]: r for r in calibration_rows("fit")}
    rows = {r["id"]: r for r in fit["row_scores"]}
    assert set(rows) == {"S12", "S16"}
    for rid, r in rows.items():
        assert r["measured"]["throughput"] == published[rid]["throughput_tok_s"]
        for m, got in r["twin"].items():  # the relative error is (model − published) / published
            assert r["error"]["twin"][m] == pytest.approx((got - r["measured"][m]) / r["measured"][m])
    # Every group's MAPE is the mean |error| of its rows, its worst row the largest |error|.
    for g in fit["groups"]:
        errs = [rows[i]["error"]["twin"][g["metric"]] for i in rows
                if rows[i]["source"] == g["source"] and rows[i]["mode"] == g["mode"] and g["metric"] in rows[i]["measured"]]
        assert g["rows"] == len(errs)
        assert g["twin"]["mape"] == pytest.approx(sum(map(abs, errs)) / len(errs))
        assert abs(g["twin"]["worst_error"]) == pytest.approx(max(map(abs, errs)))
        assert g["twin"]["within_25"] == sum(abs(e) <= 0.25 for e in errs) / len(errs)
        assert g["sim"]["mape"] is None  # --no-sim


def test_fixed_batch_row_is_the_hand_worked_roofline(board):
    # S16: 8 × (32 in, 128 out), Llama-3.1-8B BF16 on one H100. A decode step reads the 16.06 GB
    # of weights (and < 2 % of that in KV) at decode_bw_efficiency × 3.35 TB/s, plus the engine's
    # iteration overhead: TPOT ≈ 16.06e9 / (3.35e12 × η) + overhead (published: 7.79 ms).
    r = next(r for r in board["splits"]["fit"]["row_scores"] if r["id"] == "S16")
    bw = get_gpu("H100-SXM-80GB").hbm_bandwidth_tbps * 1e12 * factor("decode_bw_efficiency")
    hand_ms = 16.06e9 / bw * 1e3 + factor("iteration_overhead_ms")
    assert r["twin"]["tpot"] == pytest.approx(hand_ms, rel=0.03)
    assert r["twin"]["throughput"] == pytest.approx(8e3 / r["twin"]["tpot"], rel=0.02)


def test_text_is_the_bench_scoreboard(capsys):
    assert main(["accuracy", "--no-sim", "--ids", IDS, "--rows"]) == 0
    cli_text = capsys.readouterr().out
    spec = importlib.util.spec_from_file_location("bench_accuracy", ROOT / "bench" / "bench_accuracy.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--no-sim", "--ids", IDS, "--rows"]) == 0
    bench_text = capsys.readouterr().out.rsplit("\n(", 1)[0]  # the bench adds its run time
    assert cli_text.strip() == bench_text.strip()
    assert "## fit: 2 rows, 0 not modelled" in cli_text and "S16" in cli_text and "twin MAPE" in cli_text


def test_bad_arguments_are_located_errors(capsys):
    assert main(["accuracy", "--no-sim", "--by", "source,colour"]) == 2
    e = capsys.readouterr().err
    assert "unknown grouping column 'colour'" in e and "family" in e and "Traceback" not in e
    assert main(["accuracy", "--no-sim", "--ids", "NOPE-*"]) == 1
    e = capsys.readouterr().err
    assert "no row" in e and "NOPE-*" in e and "Traceback" not in e


def test_grouping_columns_are_the_scoreboards():
    from sim.llm.accuracy import GROUP_COLUMNS

    assert _COLUMNS == GROUP_COLUMNS
