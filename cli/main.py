"""`sdw`: the command-line face of the workbench.

Each command group lives in its own module with a `register(subparsers)` function that adds
its subcommands; a subcommand's handler takes the parsed args and returns an exit code:
0 success, 1 invalid input (a design that fails validation, an unstable or failing check
where the command says so), 2 usage error. Handlers never let a traceback reach the user:
a `components.errors.Refusal` (the user's input is wrong) prints as ``error:``, anything else
as ``internal error:`` with the ``SDW_DEBUG=1`` hint (exit 1 either way).

Usage::

    sdw validate designs/library/*.yaml
    sdw render designs/library/rag_qa.yaml -o rag.svg
"""

from __future__ import annotations

import argparse
import os
import sys

# Cache bytecode even where PYTHONDONTWRITEBYTECODE=1 is set (these machines): otherwise every
# `sdw` start compiles pydantic and the project from source again. uv does not compile the
# environment (see pyproject.toml), so the first run writes the cache for what it imports.
sys.dont_write_bytecode = False

from components.errors import Refusal

__all__ = ["main", "build_parser"]

# Command modules, in the order `sdw --help` lists them. Each has register(subparsers).
COMMAND_MODULES = ("cli.design_cmds", "cli.sim_cmds", "cli.review_cmds", "cli.size_cmds", "cli.app_cmds",
                   "cli.accuracy_cmds")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="sdw",
        description="System Design Workbench: validate, draw, estimate and simulate AI system designs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a command group not built yet
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sdw schema | head`
        return 0
    except Refusal as e:
        # Deliberate refusals raised below the handlers (a model that does not fit its GPUs,
        # a refused workload) are about the user's input: say what is wrong, no traceback.
        # Any other exception — a plain ValueError included — is ours, and reported as such.
        print(f"sdw {args.command}: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug of ours: still no traceback unless asked for
        if os.environ.get("SDW_DEBUG"):
            raise
        print(
            f"sdw {args.command}: internal error: {type(e).__name__}: {e}\n"
            "  (set SDW_DEBUG=1 to see the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
