"""Render DOT text to SVG or PNG bytes with a Graphviz-compatible executable.

A real Graphviz `dot` on PATH is preferred; otherwise the `graphviz-pure` executable that the
`graphviz-pure` package installs next to the interpreter (or anywhere on PATH). Both take the
DOT source on stdin and dot's flags; graphviz-pure writes svg, png and json, not pdf.

Usage::

    >>> from designs.diagram import to_dot
    >>> from designs.render import render, RenderError, find_renderer
    >>> svg = render(to_dot(design), "svg")          # bytes
    >>> find_renderer()                               # '/usr/bin/dot' or '.../bin/graphviz-pure'

Nothing here writes files: callers decide where the bytes go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Literal

__all__ = ["render", "find_renderer", "RenderError", "FORMATS", "TIMEOUT_S"]

FORMATS = ("svg", "png")
# A design diagram lays out in well under a second; a minute means a hung process.
TIMEOUT_S = 60.0


class RenderError(RuntimeError):
    """No renderer was found, or it failed; the message says which and why."""


def _pure_candidates() -> list[Path]:
    names = ["graphviz-pure", "graphviz-pure.exe"] if os.name == "nt" else ["graphviz-pure"]
    dirs = [sysconfig.get_path("scripts")]
    return [Path(d) / n for d in dirs if d for n in names]


def find_renderer() -> str | None:
    """Path of the executable `render` would use: `dot`, else graphviz-pure; None if neither."""
    dot = shutil.which("dot")
    if dot:
        return dot
    for cand in _pure_candidates():
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which("graphviz-pure")


def render(dot: str, fmt: Literal["svg", "png"] = "svg", *, timeout_s: float = TIMEOUT_S) -> bytes:
    """The DOT text laid out and drawn as `fmt`; raises `RenderError` with a clear message."""
    if fmt not in FORMATS:
        raise RenderError(f"unsupported format '{fmt}'; expected one of {', '.join(FORMATS)}")
    exe = find_renderer()
    if exe is None:
        raise RenderError(
            "no Graphviz renderer found: install Graphviz (`dot`) or the `graphviz-pure` package "
            "(`uv sync` installs it); DOT output (-o file.dot) needs neither"
        )
    name = Path(exe).name
    try:
        proc = subprocess.run(
            [exe, f"-T{fmt}"],
            input=dot.encode("utf-8"),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RenderError(f"{name} did not finish within {timeout_s:g} s") from None
    except OSError as e:
        raise RenderError(f"could not run {exe}: {e.strerror or e}") from None
    if proc.returncode != 0 or not proc.stdout:
        # Keep the renderer's own words, but only the lines that say what went wrong
        # (graphviz-pure also warns about glyph widths for non-ASCII text).
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        useful = [ln for ln in err if "no value for width" not in ln][-5:] or err[-5:]
        detail = "; ".join(useful) or "no output"
        raise RenderError(f"{name} failed (exit {proc.returncode}) rendering {fmt}: {detail}")
    return proc.stdout
