"""Start-up: commands load only what they need (issue 9: `sdw --help` ≤ 0.5 s, validate ≤ 1 s)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return set(out)


def test_help_loads_no_design_model_and_validate_no_simulator():
    help_mods = _modules_after("import contextlib, io\nfrom cli.main import main\n"
                               "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])")
    assert "cli.design_cmds" in help_mods and "cli.sim_cmds" in help_mods  # every command registered
    assert not {"pydantic", "designs.model", "simpy", "streamlit", "altair", "graphviz"} & help_mods
    val_mods = _modules_after("import contextlib, io\nfrom cli.main import main\n"
                              "with contextlib.redirect_stdout(io.StringIO()): "
                              "main(['validate', 'designs/library/llm_serving.yaml'])")
    assert "designs.model" in val_mods
    assert not {"simpy", "streamlit", "altair", "graphviz"} & val_mods
