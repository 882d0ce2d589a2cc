"""The canonical design library: the YAML files in `designs/library/`.

Usage::

    >>> from designs.library import library_dir, list_library
    >>> for name, path, problem in list_library():
    ...     print(name, path.name, problem)

`list_library` only reads each file's `name` and `problem` (safely, through
`designs.io.parse_yaml`); validating the files is `designs.io.load_design`'s job, so a
broken file still shows up in the list instead of hiding.
"""

from __future__ import annotations

from pathlib import Path

from .io import DesignFileError, parse_yaml

__all__ = ["library_dir", "library_files", "list_library", "first_line"]


def library_dir() -> Path:
    """The folder holding the library designs, next to this package's modules."""
    return Path(__file__).parent / "library"


def library_files(folder: Path | None = None) -> list[Path]:
    """Library design files, sorted by file name."""
    d = folder or library_dir()
    return sorted(p for p in d.glob("*.yaml") if p.is_file()) if d.is_dir() else []


def first_line(text: str) -> str:
    """The first non-blank line of `text`, stripped ('' when there is none)."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def list_library(folder: Path | None = None) -> list[tuple[str, Path, str]]:
    """(name, path, first line of the problem) for every library file, sorted by file name.

    A file that cannot be read or parsed is listed under its file stem with the reason as
    its problem text.
    """
    out: list[tuple[str, Path, str]] = []
    for path in library_files(folder):
        try:
            data, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
        except DesignFileError as e:
            out.append((path.stem, path, f"(unreadable: {e.problems[0].message})"))
            continue
        except (OSError, UnicodeDecodeError) as e:
            out.append((path.stem, path, f"(unreadable: {e})"))
            continue
        data = data if isinstance(data, dict) else {}
        name = data.get("name")
        out.append((name if isinstance(name, str) and name else path.stem, path, first_line(data.get("problem") or "")))
    return out
