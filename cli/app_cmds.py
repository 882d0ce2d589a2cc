"""`sdw app`: start the Streamlit app on a workspace chosen by whoever starts the server.

The workspace root (saved designs, drafts, trash, attempts.sqlite) is the server's
configuration — ``$SDW_WORKSPACE`` — never a visitor's choice. This command sets it from
``--workspace`` and runs ``streamlit run app.py`` with it::

    sdw app --workspace ~/sdw-work                  # http://localhost:8501
    sdw app --workspace /srv/sdw --port 8600 --address 0.0.0.0
    sdw app --workspace w -- --server.headless true # anything after -- goes to streamlit
    sdw app --workspace w --print-command           # show what would run, start nothing

The same without the command: ``SDW_WORKSPACE=~/sdw-work uv run streamlit run app.py``.
Exit codes: 2 when the workspace cannot be used (a file, or a folder that cannot be made);
otherwise streamlit's own.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .common import err as _err

__all__ = ["register", "cmd_app", "app_command", "APP_FILE"]

APP_FILE = Path(__file__).resolve().parents[1] / "app.py"
"""The Streamlit entry point (the project's app.py, beside the packages)."""


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 1..65535, got {n}")
    return n


def app_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The argv and environment `sdw app` runs: streamlit on app.py with $SDW_WORKSPACE set to
    the resolved `--workspace` (made if missing). Raises `OSError`/`NotADirectoryError` when
    the folder cannot be used."""
    from designs.workspace import ENV_VAR, workspace_dir

    root = workspace_dir(args.workspace).resolve()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "streamlit", "run", str(APP_FILE), "--server.port", str(args.port)]
    if args.address:
        argv += ["--server.address", args.address]
    argv += list(args.streamlit_args or [])
    env = dict(os.environ, **{ENV_VAR: str(root)})
    return argv, env


def cmd_app(args: argparse.Namespace) -> int:
    from designs.workspace import ENV_VAR

    try:
        argv, env = app_command(args)
    except OSError as e:
        _err(f"sdw app: error: the workspace cannot be used: {e}")
        return 2
    if args.print_command:
        print(f"{ENV_VAR}={shlex.quote(env[ENV_VAR])} {shlex.join(argv)}")
        return 0
    print(f"workspace: {env[ENV_VAR]}", file=sys.stderr)
    sys.stderr.flush()
    if os.name == "posix":  # become streamlit: signals (Ctrl-C, a supervisor's TERM) reach it directly
        os.execve(argv[0], argv, env)
    import subprocess

    return subprocess.call(argv, env=env)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the Streamlit app on a workspace folder",
                       description="Start the app with its workspace root set (the server's choice, not a visitor's).")
    p.add_argument("--workspace", metavar="DIR", default=None,
                   help="workspace folder (designs, drafts, trash, attempts.sqlite); default $SDW_WORKSPACE or ./workspace")
    p.add_argument("--port", type=_port, default=8501, help="port to serve on (default 8501, streamlit's)")
    p.add_argument("--address", default=None, help="address to bind (default: streamlit's)")
    p.add_argument("--print-command", action="store_true", help="print the command that would run and exit")
    p.add_argument("streamlit_args", nargs="*", metavar="-- STREAMLIT_ARGS", help="passed on to `streamlit run`")
    p.set_defaults(handler=cmd_app)
