"""What every command module shares: stderr messages and loading a design with its problems shown.

Usage::

    from cli.common import err, load_or_report

    design = load_or_report(args.file)   # None after printing every located problem
    if design is None:
        return 1
"""

from __future__ import annotations

import sys

from designs.io import DesignFileError, load_design
from designs.model import Design

__all__ = ["err", "report", "load_or_report"]


def err(msg: str) -> None:
    print(msg, file=sys.stderr)


def report(e: DesignFileError) -> None:
    """Print a design file's problems to stderr, one located line each."""
    err(f"invalid  {e.source}  ({len(e.problems)} problem{'s' if len(e.problems) != 1 else ''})")
    for p in e.problems:
        err("  " + p.format(e.source))


def load_or_report(path: str) -> Design | None:
    """The design, or None after printing every located problem to stderr."""
    try:
        return load_design(path)
    except DesignFileError as e:
        report(e)
        return None
