"""Hardware-configuration checks: every problem at once, each naming the component and numbers."""

import pytest

from cli.main import main
from designs.io import load_design, parse_design
from designs.library import library_files
from sim.twin.analytic import EstimateError, estimate
from sim.check import ConfigError, config_problems, require_runnable

BAD = """
name: too_big
workload: {requests_per_day: 1000000}
components:
  - {id: chat, kind: llm_server, model: llama-3.1-70b, gpu: H100, precision: bf16}
  - {id: big, kind: llm_server, model: llama-3.1-405b, gpu: H100, gpus_per_replica: 2, precision: fp8}
  - {id: ft, kind: training_job, model: llama-3.1-70b, method: full, tokens: 1.0e9, gpus: 8}
entry: chat
flow: [{from: chat, to: big}, {from: big, to: ft}]
"""


def test_every_problem_is_reported_with_component_and_numbers():
    problems = config_problems(parse_design(BAD))
    # located at the field to change (the line of the component when the field is not written)
    assert [p.path for p in problems] == ["components[0].gpus_per_replica",
                                          "components[1].gpus_per_replica", "components[2]"]
    chat, big, ft = (p.message for p in problems)
    assert "chat: llama-3.1-70b in BF16 needs 141 GB of weights; 1 × H100-SXM-80GB has 80 GB" in chat
    assert "gpus_per_replica ≥ 2" in chat  # the way out, in numbers
    assert "big: llama-3.1-405b" in big and "406 GB" in big
    assert "training_job 'ft'" in ft and "640 GB" in ft


def test_runnable_library_designs_have_no_problems():
    for path in library_files():
        assert config_problems(load_design(path)) == [], path


def test_estimate_and_require_runnable_refuse_with_all_problems():
    design = parse_design(BAD)
    with pytest.raises(ConfigError) as err:
        require_runnable(design)
    assert len(err.value.problems) == 3
    with pytest.raises(EstimateError) as err2:
        estimate(design)
    assert "chat:" in str(err2.value) and "big:" in str(err2.value) and "'ft'" in str(err2.value)


@pytest.mark.parametrize("command", ["validate", "estimate", "run", "lint"])
def test_cli_reports_config_errors_without_traceback(tmp_path, capsys, command):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    code = main([command, str(f)])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert "needs 141 GB of weights" in err
    if command != "lint":  # lint reports findings per component on stdout
        assert "big: llama-3.1-405b" in err  # every problem, not just the first
    if command == "validate":  # located: file:line of each component
        assert f"{f}:5: error: components[0]" in err and f"{f}:6: error: components[1]" in err
