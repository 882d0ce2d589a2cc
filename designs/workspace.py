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
target with ``os.replace``, so a crash never leaves half a design file behind; temporary files
a killed save left behind are removed the first time a process opens the workspace. Saving
never replaces a design silently: `save` refuses an existing name unless ``overwrite=True``
(the caller asks first), and `save_new` claims a free name with an exclusive create, retrying
the next suffix, so concurrent "duplicate" clicks each get their own file. The root is
configured (``$SDW_WORKSPACE`` or the constructor), never chosen by a visitor, and every path
is checked to resolve inside it. Draft ids are unguessable (`new_draft_id`), and a draft is
scoped to its owner: `claim_draft` opens it only for the owner tag it was saved with (the
app's is a hash of a per-browser cookie) and moves it to the claiming session's fresh id. Nothing here imports
streamlit: the app and tests call the same functions.
"""

from __future__ import annotations

from components.errors import Refusal

import itertools
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from .io import DesignFileError, dump_design, load_design
from .model import Design

__all__ = ["Workspace", "WorkspaceError", "NameTaken", "workspace_dir", "ENV_VAR", "safe_name", "new_draft_id",
           "write_atomic", "DRAFT_ID"]

ENV_VAR = "SDW_WORKSPACE"
DEFAULT_DIR = "workspace"
# Letters, digits, '_', '-', '.', spaces inside; no separators, no leading dot (hidden files, '..').
# Matched with fullmatch: `$` alone also matches before a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-. ]{0,99}")
DRAFT_ID = re.compile(r"[A-Za-z0-9_-]{32,64}")
"""What a draft id looks like: `secrets.token_urlsafe(24)` (192 random bits)."""
STALE_TEMP_S = 600
"""Temporary files older than this (seconds) are leftovers of a killed save: removed on start."""
_cleaned: set[str] = set()  # roots whose leftovers this process has already removed


class WorkspaceError(Refusal):
    """A workspace operation was refused (bad name, missing design)."""


class NameTaken(WorkspaceError):
    """A design of that name is already saved: ask before overwriting (``overwrite=True``)."""


def new_draft_id() -> str:
    """An unguessable draft id (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


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
        key = str(self.root.resolve())
        if key not in _cleaned:
            _cleaned.add(key)
            self.clean_temp()

    def clean_temp(self, max_age_s: float = STALE_TEMP_S) -> list[Path]:
        """Remove temporary files (``.<name>.*.tmp``) older than `max_age_s`: what saves killed
        mid-write left behind. Younger ones may belong to a save in progress and stay."""
        gone = []
        now = time.time()
        for sub in ("designs", "drafts", "trash"):
            d = self.root / sub
            if not d.is_dir():
                continue
            for p in d.glob(".*.tmp"):
                try:
                    if p.is_file() and not p.is_symlink() and now - p.stat().st_mtime > max_age_s:
                        p.unlink()
                        gone.append(p)
                except OSError:
                    pass
        return gone

    # --- names and paths -------------------------------------------------------------------

    @staticmethod
    def check_name(name: str) -> str:
        """Return `name` stripped, or raise `WorkspaceError` if it could escape the folder."""
        n = (name or "").strip(" \t")
        if n.endswith(".yaml"):
            n = n[: -len(".yaml")]
        if not n:
            raise WorkspaceError("name is empty; give the design a name")
        if "/" in n or "\\" in n or ".." in n or "\x00" in n:
            raise WorkspaceError(f"name '{name}' contains a path separator or '..'; use letters, digits, '_' and '-'")
        if not _NAME.fullmatch(n):
            raise WorkspaceError(f"name '{name}' is not allowed; use letters, digits, '_', '-', '.' and spaces (not first)")
        return n

    def _dir(self, sub: str) -> Path:
        return self.root / sub

    def path_of(self, name: str) -> Path:
        return self._inside(self._dir("designs") / f"{self.check_name(name)}.yaml")

    def _inside(self, path: Path) -> Path:
        """`path`, refused unless it resolves inside the root (a symlinked `designs/` or
        `drafts/` pointing elsewhere would otherwise carry writes out of the workspace)."""
        root = self.root.resolve()
        real = path.resolve()
        if real != root and root not in real.parents:
            raise WorkspaceError(f"'{path}' resolves to {real}, outside the workspace {root}")
        return path

    # --- saved designs ---------------------------------------------------------------------

    def list_designs(self) -> list[tuple[str, Path]]:
        """Saved designs as (name, path), sorted by name."""
        d = self._dir("designs")
        if not d.is_dir():
            return []
        return sorted((p.stem, p) for p in d.glob("*.yaml") if p.is_file())

    def exists(self, name: str) -> bool:
        return self.path_of(name).is_file()

    def save(self, name: str, design: Design, *, overwrite: bool = False) -> Path:
        """Write `design` as `<name>.yaml` atomically.

        An existing design of that name is replaced only with ``overwrite=True`` — ask the user
        first; otherwise `NameTaken`. Two sessions saving one new name: one wins, the other is
        asked (the create is exclusive).
        """
        path = self.path_of(name)
        text = dump_design(design)
        if overwrite:
            _atomic_write(path, text)
        elif not _create_exclusive(path, text):
            raise NameTaken(f"a design named '{self.check_name(name)}' is already saved; "
                            "choose another name or confirm replacing it")
        return path

    def save_new(self, base: str, design: Design) -> tuple[str, Path]:
        """Save under `base`, or `base_2`, `base_3`… — the first name free *at the time of the
        write* (exclusive create, retried), so concurrent duplicates never overwrite each other."""
        stem = self.check_name(safe_name(base))
        text = dump_design(design)
        names = (stem if n == 1 else f"{stem[:95]}_{n}" for n in range(1, 10_000))
        got = _create_first_free(((name, self.path_of(name)) for name in names), text)  # lazily
        if got is None:
            raise WorkspaceError(f"no free name for '{stem}' after 9,999 tries")
        return got

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
        """`base`, or `base_2`, `base_3`… — the first name not yet saved (a suggestion only:
        to save under it without a race, use `save_new`)."""
        stem = self.check_name(safe_name(base))
        if not self.exists(stem):
            return stem
        n = 2
        while self.exists(f"{stem}_{n}"):
            n += 1
        return f"{stem}_{n}"

    # --- drafts (one per browser session) --------------------------------------------------

    def _draft_path(self, draft_id: str) -> Path:
        # Draft ids come from the URL (?draft=…): only the unguessable form is accepted.
        if not isinstance(draft_id, str) or not DRAFT_ID.fullmatch(draft_id):
            raise WorkspaceError("not a draft id")
        return self._inside(self._dir("drafts") / f"{draft_id}.yaml")

    def _owner_path(self, draft_id: str) -> Path:
        return self._draft_path(draft_id).with_suffix(".owner")

    def draft_owner(self, draft_id: str) -> str | None:
        """The owner tag the draft was saved with (None: none, or not a draft id)."""
        try:
            return self._owner_path(draft_id).read_text(encoding="ascii").strip() or None
        except (OSError, UnicodeDecodeError, WorkspaceError):
            return None

    def claim_draft(self, draft_id: str, new_id: str, owner: str | None = None) -> Design | None:
        """Move the draft `draft_id` to `new_id` and return it — only for its owner (None
        otherwise, and when there is none).

        A draft is scoped to the browser session that wrote it: `save_draft` stores an owner
        tag (the app's is a hash of a per-browser cookie, never in the URL) and a claim must
        present the same one, so a ``?draft=`` URL opened anywhere else opens nothing and
        leaves the draft where it is. A draft saved without an owner is never claimed. The
        claiming session continues under its own fresh id (the rename is atomic: two tabs of
        one browser opening one URL get the draft once, and neither overwrites the other)."""
        try:
            src, dst = self._draft_path(draft_id), self._draft_path(new_id)
        except WorkspaceError:
            return None
        stored = self.draft_owner(draft_id)
        if not owner or not stored or not secrets.compare_digest(stored, owner):
            return None
        try:
            os.rename(src, dst)
        except OSError:
            return None
        try:
            os.rename(self._owner_path(draft_id), self._owner_path(new_id))
        except OSError:
            _atomic_write(self._owner_path(new_id), owner)
        try:
            return load_design(dst)
        except DesignFileError:
            return None

    def save_draft(self, draft_id: str, design: Design, owner: str | None = None) -> Path:
        """Autosave `design` as draft `draft_id`; `owner` (a tag only the owning browser session
        can present again) is what `claim_draft` asks for."""
        path = self._draft_path(draft_id)
        _atomic_write(path, dump_design(design))
        if owner and self.draft_owner(draft_id) != owner:
            _atomic_write(self._owner_path(draft_id), owner)
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
            self._owner_path(draft_id).unlink(missing_ok=True)
        except WorkspaceError:
            pass


def _temp_beside(path: Path, data: bytes, mkdir: bool = False) -> str:
    """A fully written, fsynced temporary file next to `path` (same file system)."""
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: str | os.PathLike, data: bytes | str, *, mkdir: bool = False) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half of
    either: a temporary file beside it, fsynced, then renamed over it. A full disk leaves the
    old file as it was. The folder must exist unless `mkdir`."""
    path = Path(path)
    tmp = _temp_beside(path, data.encode("utf-8") if isinstance(data, str) else data, mkdir)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write(path: Path, text: str) -> None:
    write_atomic(path, text, mkdir=True)


def _create_exclusive(path: Path, text: str) -> bool:
    """Create `path` with `text` only if it does not exist (False if it does), atomically."""
    return _create_first_free([(path.stem, path)], text) is not None


def _create_first_free(candidates: Iterable[tuple[str, Path]], text: str) -> tuple[str, Path] | None:
    """Create the first of `candidates` (name, path) that does not exist yet, with `text`.

    The complete temporary file is written once and hard-linked to each name in turn; a link
    fails if the name is taken, so a reader never sees a partial file and two writers never
    get the same name. Without hard links (some network or FAT file systems): O_EXCL."""
    it = iter(candidates)
    first = next(it, None)
    if first is None:
        return None
    data = text.encode("utf-8")
    tmp = _temp_beside(first[1], data, mkdir=True)
    try:
        for name, path in itertools.chain([first], it):
            try:
                os.link(tmp, path)
                return name, path
            except FileExistsError:
                continue
            except OSError:
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    continue
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                return name, path
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)
