"""`sdw run | estimate | compare` through the real entry point."""

from __future__ import annotations

import json

import pytest

from cli.main import main

DESIGN = """\
name: two_step
workload: {arrival_rps: 60}
slo: {latency_p95_ms: 200, availability: 0.99}
components:
  - {id: api, kind: service, replicas: 1, concurrency: REPLICAS, service_time: {dist: exponential, mean_ms: 20}}
  - {id: db, kind: database, replicas: 1, concurrency: 4, query_time: {dist: exponential, mean_ms: 10}}
entry: api
flow:
  - {from: api, to: db}
"""

ISSUE_KEYS = {"design", "arrival_rps", "simulated_requests", "completed_requests", "dropped_requests", "stable",
              "stopped_by", "latency_ms", "latency_ms_ci95", "components", "slo", "cost_per_day_usd", "seed", "wall_s"}
PCT_KEYS = {"mean", "p50", "p90", "p95", "p99"}


@pytest.fixture
def files(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(DESIGN.replace("REPLICAS", "2"))
    b.write_text(DESIGN.replace("REPLICAS", "3"))
    return str(a), str(b)


def test_run_json_is_one_object_with_every_issue_key(files, capsys):
    assert main(["run", files[0], "--seed", "3", "--precision", "0.05", "--max-seconds", "20", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)  # the whole of stdout is one JSON object
    assert ISSUE_KEYS <= set(data)
    assert set(data["latency_ms"]) == PCT_KEYS
    assert set(data["latency_ms_ci95"]) == PCT_KEYS and len(data["latency_ms_ci95"]["p95"]) == 2
    lo, hi = data["latency_ms_ci95"]["p95"]
    assert lo <= data["latency_ms"]["p95"] <= hi
    assert data["stopped_by"] in ("precision", "max_requests", "max_seconds")
    assert data["seed"] == 3 and data["stable"] is True
    for cid in ("api", "db"):
        comp = data["components"][cid]
        assert {"utilization", "mean_queue_len", "wait_ms_p95", "throughput_rps", "dropped"} <= set(comp)
    assert {s["metric"] for s in data["slo"]} == {"latency_p95_ms", "availability"}
    assert all({"metric", "target", "value", "met"} <= set(s) for s in data["slo"])
    assert data["cost_per_day_usd"] > 0


def test_run_text_report(files, capsys):
    assert main(["run", files[0], "--precision", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "Simulated two_step" in out and "p95" in out and "Bottleneck:" in out and "Little's law" in out
    # two FIFO stations in a chain: the event-free path, and the report says which engine ran
    assert "Engine: FIFO recursion" in out


def test_run_names_the_engine_path_in_text_and_json(files, capsys):
    assert main(["run", files[0], "--precision", "0.05", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engine_path"] == "fifo_recursion"



def test_a_design_with_a_loop_runs_on_the_event_loop_and_says_nothing_of_the_recursion(tmp_path, capsys):
    looped = tmp_path / "loop.yaml"
    looped.write_text(DESIGN.replace("REPLICAS", "2") + "  - {from: db, to: api, p: 0.2, max_repeats: 2}\n")
    assert main(["run", str(looped), "--precision", "0.05", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engine_path"] == "events"
    assert main(["run", str(looped), "--precision", "0.05"]) == 0
    assert "FIFO recursion" not in capsys.readouterr().out


def test_estimate_prints_the_analytic_twin(files, capsys):
    assert main(["estimate", files[0]]) == 0
    out = capsys.readouterr().out
    assert "two_step" in out and "api" in out and "db" in out
    assert main(["estimate", files[0], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stations"]["api"]["utilization"] == pytest.approx(60 * 0.020 / 2)


def test_compare_shows_deltas_against_the_first(files, capsys):
    assert main(["compare", files[0], files[1], "--precision", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "[0]" in out and "[1]" in out and "latency_ms.p95" in out
    assert "%)" in out  # a relative delta on the second column
    assert main(["compare", files[0], files[1], "--precision", "0.05", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["designs"]) == 2 and len(data["deltas"]) == 2
    assert data["deltas"][0]["latency_ms.p95"]["delta"] == 0
    assert data["deltas"][1]["latency_ms.p95"]["delta"] < 0  # three servers beat two


def test_invalid_design_exits_1_with_located_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DESIGN.replace("REPLICAS", "0"))
    assert main(["run", str(bad), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "components[0].concurrency" in captured.err and "Traceback" not in captured.err
    assert main(["estimate", str(tmp_path / "missing.yaml")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_usage_errors_exit_2(files, capsys):
    assert main(["run", files[0], "--precision", "3"]) == 2
    assert main(["compare", files[0]]) == 2


@pytest.mark.parametrize("argv, message", [
    (["run", "F", "--max-requests", "inf"], "--max-requests: expected a whole number, got 'inf'"),
    (["run", "F", "--max-requests", "2.5"], "expected a whole number, got '2.5'"),
    (["run", "F", "--max-seconds", "nan"], "--max-seconds: expected a positive number, got nan"),
    (["size", "F", "--workers", "0"], "--workers: expected 1 or more, got 0"),
    (["size", "F", "--verify", "-1"], "--verify: expected 0 or more, got -1"),
    (["doc", "F", "-o", "x.md", "--max-requests", "1e400"], "expected a whole number, got '1e400'"),
    (["doc", "F", "-o", "x.md", "--max-seconds", "-3"], "--max-seconds: expected a positive number, got -3"),
])
def test_number_flags_refuse_what_is_not_a_count_or_a_positive_number(files, capsys, argv, message):
    # `--max-requests inf` used to escape as an OverflowError traceback (int(float('inf'))).
    argv = [files[0] if a == "F" else a for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_number_flags_accept_scientific_counts(files, capsys):
    assert main(["run", files[0], "--max-requests", "2e4", "--max-seconds", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["simulated_requests"] <= 20_000
