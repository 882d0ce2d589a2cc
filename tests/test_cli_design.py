"""`sdw validate / render / schema / list`, run in-process: exit codes, output, no tracebacks."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from cli.main import main
from designs import library
from designs.library import library_dir, list_library

GOOD = """\
name: mmc
problem: |
  Serve an M/M/10 queue.
  Second line is not listed.
workload: {requests_per_day: 8640000, peak_to_average: 1.0}
components:
  - {id: svc, kind: service, replicas: 1, concurrency: 10,
     service_time: {dist: exponential, mean_ms: 83.33}}
  - {id: orphan, kind: service}
entry: svc
flow: []
"""

BROKEN = """\
name: broken
workload: {requests_per_day: 1000}
components:
  - {id: a, kind: service, replicas: 0}
  - {id: b, kind: servce}
entry: a
flow: [{from: a, to: c}]
"""


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    return good, broken


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_validate_ok_with_warning(capsys, files):
    good, _ = files
    code, out, err = run(capsys, "validate", str(good))
    assert code == 0
    assert out.splitlines()[0] == f"ok  {good}  (2 components, 1 warning)"
    assert "'orphan' is not reachable" in out


def test_validate_broken_lists_every_located_problem(capsys, files):
    good, broken = files
    code, out, err = run(capsys, "validate", str(good), str(broken))
    assert code == 1
    assert f"ok  {good}" in out
    assert f"invalid  {broken}  (3 problems)" in err
    assert f"{broken}:4: error: components[0].replicas: found 0" in err
    assert f"{broken}:5: error: components[1].kind: unknown kind 'servce'" in err
    assert "did you mean 'service'?" in err
    assert f"{broken}:7: error: flow[0].to: 'c' is not a component id" in err
    assert "1 of 2 valid" in err


def test_validate_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "no such file" in err


def test_validate_the_library(capsys):
    paths = [str(p) for _, p, _ in list_library()]
    assert paths, f"no designs in {library_dir()}"
    code, out, err = run(capsys, "validate", *paths)
    assert code == 0, err
    assert out.count("ok  ") == len(paths)


@pytest.mark.parametrize("suffix", ["svg", "png", "dot"])
def test_render_to_files(capsys, files, tmp_path, suffix):
    good, _ = files
    target = tmp_path / f"out.{suffix}"
    code, out, err = run(capsys, "render", str(good), "-o", str(target))
    assert code == 0, err
    assert f"wrote {target}" in out
    data = target.read_bytes()
    if suffix == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    elif suffix == "svg":
        titles = {el.text for el in ET.fromstring(data).iter("{http://www.w3.org/2000/svg}title")}
        assert {"svc", "orphan"} <= titles
    else:
        assert data.decode().startswith('digraph "mmc" {') and '"svc" [' in data.decode()


def test_render_to_stdout(capsys, files):
    good, _ = files
    code, out, _ = run(capsys, "render", str(good), "-o", "-", "--format", "dot")
    assert code == 0 and out.startswith('digraph "mmc"')
    code, out, _ = run(capsys, "render", str(good), "-o", "-")
    assert code == 0 and "<svg" in out


def test_render_format_flag_overrides_suffix(capsys, files, tmp_path):
    good, _ = files
    target = tmp_path / "diagram.txt"
    code, _, err = run(capsys, "render", str(good), "-o", str(target), "--format", "dot")
    assert code == 0, err
    assert target.read_text().startswith("digraph")


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["-o", "out.pdf"], "cannot tell the format from 'out.pdf'"),
        (["-o", "-", "--format", "png"], "PNG is binary"),
    ],
)
def test_render_usage_errors(capsys, files, argv_tail, message):
    good, _ = files
    code, _, err = run(capsys, "render", str(good), *argv_tail)
    assert code == 2
    assert message in err


def test_render_broken_design(capsys, files, tmp_path):
    _, broken = files
    code, _, err = run(capsys, "render", str(broken), "-o", str(tmp_path / "x.svg"))
    assert code == 1
    assert "unknown kind 'servce'" in err
    assert not (tmp_path / "x.svg").exists()


def test_render_unwritable_output(capsys, files, tmp_path):
    good, _ = files
    code, _, err = run(capsys, "render", str(good), "-o", str(tmp_path / "no" / "dir" / "x.dot"))
    assert code == 1
    assert "cannot write" in err


def test_render_without_renderer(capsys, files, tmp_path, monkeypatch):
    from designs import render as render_mod

    monkeypatch.setattr(render_mod, "find_renderer", lambda: None)
    good, _ = files
    code, _, err = run(capsys, "render", str(good), "-o", str(tmp_path / "x.svg"))
    assert code == 1
    assert "no Graphviz renderer found" in err


def test_schema_prints_json(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert "components" in schema["properties"]
    assert "llm_server" in schema["properties"]["components"]["items"]["discriminator"]["mapping"]


@pytest.mark.parametrize("argv", [["validate"], ["render", "x.yaml"], ["nosuchcommand"], ["list", "--models", "--gpus"], []])
def test_usage_errors_exit_2(capsys, argv):
    code = main(argv)
    capsys.readouterr()
    assert code == 2


def test_list_shows_the_library(capsys):
    entries = list_library()
    assert len(entries) >= 1, f"no designs in {library_dir()}"
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name, path, problem in entries:
        line = next((ln for ln in out.splitlines() if path.name in ln), None)
        assert line is not None, f"{path.name} missing from sdw list"
        assert line.startswith(name)
        assert problem[:40] in line
        assert problem == "" or "\n" not in problem


def test_list_library_reads_name_and_first_problem_line(tmp_path, monkeypatch, capsys, files):
    good, broken = files
    (tmp_path / "tabs.yaml").write_text("name: !!python/object x\n")
    monkeypatch.setattr(library, "library_dir", lambda: tmp_path)
    got = {p.name: (n, prob) for n, p, prob in library.list_library()}
    assert got["good.yaml"] == ("mmc", "Serve an M/M/10 queue.")
    assert got["broken.yaml"] == ("broken", "")
    assert got["tabs.yaml"][0] == "tabs" and "unreadable" in got["tabs.yaml"][1]


def test_list_models_and_gpus(capsys):
    from components.hardware import gpu_names, model_names

    code, out, _ = run(capsys, "list", "--models")
    assert code == 0
    assert all(n in out for n in model_names())
    assert "kv_kb_per_token_bf16" in out
    code, out, _ = run(capsys, "list", "--gpus")
    assert code == 0
    assert all(n in out for n in gpu_names())
    assert "hbm_tb_per_s" in out
