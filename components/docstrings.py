"""Attribute docstrings of the project's pydantic models from one parse per module (start-up).

The models use ``use_attribute_docstrings=True``: the docstring under each field becomes its
description (the UI's help text). Pydantic finds each class's source by walking the call
frames, cuts out the class block with the tokenizer and parses it twice — per class, about a
third of the CPU that importing the models costs (0.59 of 1.91 billion instructions for what
`sdw run` imports, 2026-12-02). This reads each of the project's modules once, parses it once,
and runs pydantic's own `DocstringVisitor` over the class's node: the same descriptions
(tests/test_docstrings.py compares every model with pydantic's own extraction). Classes that
are not unique top-level classes of a project module go to pydantic's function unchanged,
and if pydantic's internals ever move, nothing is patched.

Usage: every module that defines models calls `install()` after importing pydantic (idempotent).
"""

from __future__ import annotations

import ast
import inspect
import sys

__all__ = ["install", "extract"]

_PACKAGES = ("components", "designs", "sim", "review", "cli", "app_pages")
_CLASSES: dict[str, dict[str, list]] = {}
_original = None


def _top_level_classes(module: str) -> dict[str, list]:
    found = _CLASSES.get(module)
    if found is None:
        tree = ast.parse(inspect.getsource(sys.modules[module]))
        found = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(node)
        _CLASSES[module] = found
    return found


def extract(cls, use_inspect: bool = False) -> dict[str, str]:
    """``pydantic._internal._docs_extraction.extract_docstrings_from_cls``, from one parse of
    the class's module when the class is a unique top-level class of a project module."""
    module = getattr(cls, "__module__", "") or ""
    if cls.__qualname__ == cls.__name__ and module.split(".")[0] in _PACKAGES and module in sys.modules:
        try:
            nodes = _top_level_classes(module).get(cls.__name__)
        except (OSError, TypeError, SyntaxError):
            nodes = None
        if nodes is not None and len(nodes) == 1:
            from pydantic._internal._docs_extraction import DocstringVisitor

            visitor = DocstringVisitor()
            visitor.generic_visit(nodes[0])
            return visitor.attrs
    return _original(cls, use_inspect)


def install() -> None:
    """Point pydantic's field collection at `extract` (once; a no-op if its internals moved)."""
    global _original
    if _original is not None:
        return
    try:
        from pydantic._internal import _docs_extraction, _fields
    except ImportError:
        return
    fn = getattr(_fields, "extract_docstrings_from_cls", None)
    if fn is None or fn is not getattr(_docs_extraction, "extract_docstrings_from_cls", None) \
            or not hasattr(_docs_extraction, "DocstringVisitor"):
        return
    _original = fn
    _fields.extract_docstrings_from_cls = extract
