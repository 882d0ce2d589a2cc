"""`sdw size`: exit codes, JSON keys, the written winner, messages without tracebacks."""

from __future__ import annotations

import json

from cli.main import main
from designs.io import load_design

MMC = """name: mmc
workload: {arrival_rps: 100}
components:
  - {id: svc, kind: service, replicas: 1, concurrency: 1, service_time: {dist: exponential, mean_ms: 83.333}}
entry: svc
slo: {latency_p95_ms: %s}
"""

KEYS = {"design", "status", "message", "objective", "headroom", "n_minus_1", "seed", "winner", "winner_design",
        "frontier", "closest", "rejected", "overturned", "baseline", "candidates_total", "candidates_evaluated",
        "candidates_pruned", "twin_evaluations", "simulations", "stopped_by", "partial", "wall_s", "warnings"}


def test_size_json_and_output(tmp_path, capsys):
    f = tmp_path / "mmc.yaml"
    f.write_text(MMC % 300)
    out = tmp_path / "sized.yaml"
    assert main(["size", str(f), "--verify", "0", "--json", "-o", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert KEYS <= set(data)
    assert data["winner"]["replicas"] == {"svc": 10} and data["status"] == "ok"
    assert load_design(out).component("svc").replicas == 10


def test_size_unreachable_and_bad_space_exit_1_without_traceback(tmp_path, capsys):
    f = tmp_path / "mmc.yaml"
    f.write_text(MMC % 50)
    assert main(["size", str(f), "--verify", "0"]) == 1
    text = capsys.readouterr().out
    assert "slo_unreachable" in text and "closest" in text.lower()
    space = tmp_path / "space.yaml"
    space.write_text("components:\n  svx: {min_replicas: 2}\n")
    assert main(["size", str(f), "--space", str(space)]) == 1
    e = capsys.readouterr().err
    assert "space.yaml:2" in e and "did you mean 'svc'" in e and "Traceback" not in e
    assert main(["size", str(f), "--executor", "localhost:1"]) == 1
    assert "expected a Dask scheduler address" in capsys.readouterr().err
    assert main(["size", str(f), "--workers", "0"]) == 2
