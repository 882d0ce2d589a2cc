"""The workspace folder: the user's own designs, autosaved drafts and a trash for undo.

Layout (default ``./workspace/``, or ``$SDW_WORKSPACE``)::

    workspace/
      designs/<name>.yaml     saved designs
      drafts/<draft_id>.yaml  work in progress, one per browser session
      trash/<name>.yaml       deleted designs, until restored or overwritten

Usage::

    >>> import tempfile
    >>> from designs.workspace import Workspace
    >>> ws = Workspace(tempfile.mkdtemp())
    >>> ws.check_name("../x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    designs.workspace.WorkspaceError: name '../x' contains a path separator or '..'; ...
    >>> ws.unique_name("my rag v2")
    'my_rag_v2'

Every write goes to a temporary file in the same folder and is then renamed over the
target with ``os.replace``, so a crash never leaves half a design file behind. Nothing
here imports streamlit: the app and tests call the same functions.
"""

from __future__ import annotations

from components.errors import Refusal

import os
import re
import tempfile
from pathlib import Path

from .io import DesignFileError, dump_design, load_design
from .model import Design

__all__ = ["Workspace", "WorkspaceError", "workspace_dir", "ENV_VAR", "safe_name"]

ENV_VAR = "SDW_WORKSPACE"
DEFAULT_DIR = "workspace"
# Letters, digits, '_', '-', '.', spaces inside; no separators, no leading dot (hidden files, '..').
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-. ]{0,99}$")


class WorkspaceError(Refusal):
    """A workspace operation was refused (bad name, missing design)."""


def workspace_dir(override: str | os.PathLike | None = None) -> Path:
    """The workspace root: `override`, else ``$SDW_WORKSPACE``, else ``./workspace``."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path(DEFAULT_DIR)


def safe_name(text: str) -> str:
    """A usable design name derived from free text ('My RAG v2!' → 'My_RAG_v2')."""
    s = re.sub(r"[^A-Za-z0-9_\-]+", "_", text.strip()).strip("_.-")
    return (s or "design")[:100]


class Workspace:
    """One workspace folder. Cheap to construct; folders are created on first write."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = workspace_dir(root)

    # --- names and paths -------------------------------------------------------------------

    @staticmethod
    def check_name(name: str) -> str:
        """Return `name` stripped, or raise `WorkspaceError` if it could escape the folder."""
        n = (name or "").strip()
        if n.endswith(".yaml"):
            n = n[: -len(".yaml")]
        if not n:
            raise WorkspaceError("name is empty; give the design a name")
        if "/" in n or "\\" in n or ".." in n or "\x00" in n:
            raise WorkspaceError(f"name '{name}' contains a path separator or '..'; use letters, digits, '_' and '-'")
        if not _NAME.match(n):
            raise WorkspaceError(f"name '{name}' is not allowed; use letters, digits, '_', '-', '.' and spaces (not first)")
        return n

    def _dir(self, sub: str) -> Path:
        return self.root / sub

    def path_of(self, name: str) -> Path:
        return self._dir("designs") / f"{self.check_name(name)}.yaml"

    # --- saved designs ---------------------------------------------------------------------

    def list_designs(self) -> list[tuple[str, Path]]:
        """Saved designs as (name, path), sorted by name."""
        d = self._dir("designs")
        if not d.is_dir():
            return []
        return sorted((p.stem, p) for p in d.glob("*.yaml") if p.is_file())

    def exists(self, name: str) -> bool:
        return self.path_of(name).is_file()

    def save(self, name: str, design: Design) -> Path:
        """Write `design` as `<name>.yaml` atomically; overwrites an existing file."""
        path = self.path_of(name)
        _atomic_write(path, dump_design(design))
        return path

    def load(self, name: str) -> Design:
        """Read a saved design; raises `DesignFileError` (located problems) or `WorkspaceError`."""
        path = self.path_of(name)
        if not path.is_file():
            raise WorkspaceError(f"no saved design '{name}' in {self._dir('designs')}")
        return load_design(path)

    def delete(self, name: str) -> Path:
        """Move a saved design to the trash; `restore(name)` undoes it."""
        path = self.path_of(name)
        if not path.is_file():
            raise WorkspaceError(f"no saved design '{name}' to delete")
        trash = self._dir("trash")
        trash.mkdir(parents=True, exist_ok=True)
        target = trash / path.name
        os.replace(path, target)
        return target

    def restore(self, name: str) -> Path:
        """Undo a delete: move `<name>.yaml` back from the trash (refuses to overwrite)."""
        n = self.check_name(name)
        src = self._dir("trash") / f"{n}.yaml"
        if not src.is_file():
            raise WorkspaceError(f"'{n}' is not in the trash")
        dst = self.path_of(n)
        if dst.exists():
            raise WorkspaceError(f"a design named '{n}' exists again; rename it before restoring")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        return dst

    def unique_name(self, base: str) -> str:
        """`base`, or `base_2`, `base_3`… — the first name not yet saved."""
        stem = self.check_name(safe_name(base))
        if not self.exists(stem):
            return stem
        n = 2
        while self.exists(f"{stem}_{n}"):
            n += 1
        return f"{stem}_{n}"

    # --- drafts (one per browser session) --------------------------------------------------

    def _draft_path(self, draft_id: str) -> Path:
        # Draft ids come from the URL (?draft=…), so they are checked like names.
        return self._dir("drafts") / f"{self.check_name(draft_id)}.yaml"

    def save_draft(self, draft_id: str, design: Design) -> Path:
        path = self._draft_path(draft_id)
        _atomic_write(path, dump_design(design))
        return path

    def load_draft(self, draft_id: str) -> Design | None:
        """The autosaved draft, or None if there is none (or it no longer validates)."""
        try:
            path = self._draft_path(draft_id)
        except WorkspaceError:
            return None
        if not path.is_file():
            return None
        try:
            return load_design(path)
        except DesignFileError:
            return None

    def discard_draft(self, draft_id: str) -> None:
        try:
            self._draft_path(draft_id).unlink(missing_ok=True)
        except WorkspaceError:
            pass


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
