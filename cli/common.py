"""What every command module shares: stderr messages and loading a design with its problems shown.

Usage::

    from cli.common import err, load_or_report

    design = load_or_report(args.file)   # None after printing every located problem
    if design is None:
        return 1
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `sdw --help` must not pay for pydantic models
    from designs.io import DesignFileError
    from designs.model import Design

__all__ = ["err", "report", "load_or_report", "clobbers_input", "write_output",
           "whole_number", "positive_number"]


def whole_number(text: str, minimum: int = 0) -> int:
    """An argparse `type=` for counts: accepts ``2000000`` and ``2e6``, refuses fractions,
    infinities and values below `minimum` with a message (argparse turns it into exit 2)."""
    try:
        f = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if not math.isfinite(f) or f != int(f):
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'")
    v = int(f)
    if v < minimum:
        raise argparse.ArgumentTypeError(f"expected {minimum} or more, got {v}")
    return v


def positive_number(text: str, what: str = "a number") -> float:
    """An argparse `type=` for a finite number > 0 (seconds, factors); `what` names it in the message."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return v


def err(msg: str) -> None:
    print(msg, file=sys.stderr)


def report(e: DesignFileError) -> None:
    """Print a design file's problems to stderr, one located line each."""
    err(f"invalid  {e.source}  ({len(e.problems)} problem{'s' if len(e.problems) != 1 else ''})")
    for p in e.problems:
        err("  " + p.format(e.source))


def load_or_report(path: str) -> Design | None:
    """The design, or None after printing every located problem to stderr."""
    from designs.io import DesignFileError, load_design

    try:
        return load_design(path)
    except DesignFileError as e:
        report(e)
        return None


def clobbers_input(outputs, inputs) -> str | None:
    """The first output path that is one of the input files (same file, or the same path once
    resolved), so `sdw render d.yaml -o d.yaml` is refused instead of destroying the design."""
    import os
    from pathlib import Path

    for o in outputs:
        for i in inputs:
            po, pi = Path(o), Path(i)
            try:
                if po.exists() and pi.exists() and os.path.samefile(po, pi):
                    return str(o)
            except OSError:
                pass
            if po.resolve() == pi.resolve():
                return str(o)
    return None


def write_output(path, data: bytes | str) -> None:
    """Write a command's output file atomically (temporary file, fsync, rename): a full disk or
    a kill leaves the previous file whole, never a truncated one. Raises OSError."""
    from designs.workspace import write_atomic

    write_atomic(path, data)
