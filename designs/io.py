"""Design files: YAML in, `Design` out, every problem located; and lossless YAML back out.

Usage::

    >>> from designs.io import load_design, dump_design, DesignFileError
    >>> try:
    ...     design = load_design("designs/library/llm_serving.yaml")
    ... except DesignFileError as err:
    ...     print(err)            # every problem, one per line, with file:line and field path
    >>> text = dump_design(design)  # YAML that loads back to an equal Design

Nothing here prints or exits: callers (CLI, app) decide how to show `DesignFileError`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from components.catalogue import KINDS
from components.errors import Refusal
from components.distributions import DIST_TAGS

from .model import Design, GraphError, Problem, graph_problems

__all__ = [
    "DesignFileError",
    "load_design",
    "parse_design",
    "parse_yaml",
    "dump_design",
    "design_to_data",
    "problems_from_validation",
    "locate",
    "json_schema",
    "read_text_limited",
    "MAX_FILE_BYTES",
    "MAX_TOKENS",
    "MAX_DEPTH",
    "MAX_PROBLEMS",
]

# The C parser (libyaml) where PyYAML was built with it; the pure-Python one is ~10× slower,
# so the caps below are scaled to keep the worst case — a file dense in tokens — near a
# second or two either way (bench/bench_hostile.py measures parse time per MB).
_FAST = bool(getattr(yaml, "__with_libyaml__", False))
_ScanLoader = yaml.CSafeLoader if _FAST else yaml.SafeLoader
MAX_FILE_BYTES = (5 if _FAST else 1) * 1024 * 1024
"""Bytes a design file may have (a design is a few KB; the library's largest is under 10 KB)."""
MAX_TOKENS = 200_000 if _FAST else 50_000
"""YAML tokens a design file may have: composing costs ~5 µs a token in C, so this caps the
parse near a second (500 components with every field set are ~40,000 tokens)."""
MAX_DEPTH = 64
"""Nesting levels a design file may have (a design is about six deep)."""
MAX_PROBLEMS = 50
"""Problems reported per file; the rest are counted ('… and 15,950 more')."""
MAX_ALIASES = 100  # anchors are handy; thousands of them are a billion-laughs bomb
# A few aliases nested ten deep still expand to 10^10 values (billion laughs); cap what the
# aliases add when expanded, counted on the node graph before anything is constructed.
MAX_ALIAS_EXPANSION = 100_000
# Thousands of openers in a row (`[[[[…`) are refused before any scanning at all.
_OPENERS = re.compile(r"(?:[\[{]\s*){%d}" % (MAX_DEPTH + 1))
_OPEN_TOKENS = (yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken, yaml.FlowSequenceStartToken,
                yaml.FlowMappingStartToken)
_CLOSE_TOKENS = (yaml.BlockEndToken, yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)


class DesignFileError(Refusal):
    """A design file could not be loaded; `problems` holds every located finding."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.format(source) for p in problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first on line {seen[key]})", key_node.start_mark
            )
        if isinstance(key, (str, int, float, bool)):
            seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _too_big(source: str, size: int) -> DesignFileError:
    return DesignFileError(source, [Problem("", f"file is {size / 1e6:.1f} MB, larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; "
                                            "a design file is a few KB")])


def _screen(text: str, source: str) -> int:
    """Refuse what the parser should never see: over-deep nesting, tags, alias bombs, too many
    tokens. One pass over the (C) scanner's tokens, stopped at the first refusal; returns
    the number of aliases."""
    m = _OPENERS.search(text)
    if m:
        raise DesignFileError(source, [Problem("", f"YAML nested too deeply (more than {MAX_DEPTH} levels); a design file is a few levels deep",
                                               line=text.count("\n", 0, m.start()) + 1)])
    aliases = depth = n = 0
    for tok in yaml.scan(text, Loader=_ScanLoader):
        n += 1
        cls = tok.__class__
        if cls in _OPEN_TOKENS:
            depth += 1
            if depth > MAX_DEPTH:
                raise DesignFileError(source, [Problem("", f"YAML nested too deeply (more than {MAX_DEPTH} levels); a design file is a few levels deep",
                                                       line=tok.start_mark.line + 1)])
        elif cls in _CLOSE_TOKENS:
            depth -= 1
        elif cls is yaml.TagToken:
            raise DesignFileError(source, [Problem("", f"YAML tags such as '{tok.value[0]}{tok.value[1]}' are not allowed in design files; use plain values", line=tok.start_mark.line + 1)])
        elif cls is yaml.AliasToken:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise DesignFileError(source, [Problem("", f"more than {MAX_ALIASES} YAML aliases; refusing (possible alias bomb)", line=tok.start_mark.line + 1)])
        if n > MAX_TOKENS:
            raise DesignFileError(source, [Problem("", f"more than {MAX_TOKENS:,} YAML tokens (values, keys, brackets); "
                                                   "a design file has a few thousand", line=tok.start_mark.line + 1)])
    return aliases


def _compose(text: str) -> yaml.Node | None:
    return yaml.compose(text, Loader=_ScanLoader)


def parse_yaml(text: str, source: str = "<text>") -> tuple[Any, yaml.Node | None]:
    """Parse YAML safely; returns the data and its node tree (for line numbers).

    Linear in the text and bounded: the size, token and depth caps are checked while
    scanning (C scanner where available), the text is composed once and the data built
    from that node tree (no second parse).
    """
    size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
    if size > MAX_FILE_BYTES:
        raise _too_big(source, size)
    try:
        aliases = _screen(text, source)
        node = _compose(text)
        if aliases and _expanded_size(node) > MAX_ALIAS_EXPANSION:
            raise DesignFileError(source, [Problem("", f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION:,} values or refer to themselves; refusing (alias bomb)")])
        data = _UniqueKeyLoader("").construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        msg = f"YAML syntax error{col}: {e.problem or e.context}"
        raise DesignFileError(source, [Problem("", msg, line=line)]) from None
    except yaml.YAMLError as e:
        raise DesignFileError(source, [Problem("", f"YAML error: {e}")]) from None
    except RecursionError:  # belt and braces: the depth cap above should make this unreachable
        raise DesignFileError(source, [Problem("", "YAML nested too deeply; a design file is a few levels deep")]) from None
    return data, node


def _expanded_size(root: yaml.Node | None) -> float:
    """Values the node graph holds once every alias is expanded (iterative, memoised).

    A recursive alias (`a: &a [*a]`) expands forever: infinity.
    """
    if root is None:
        return 0
    size: dict[int, int] = {}
    open_: set[int] = set()  # on the current path: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        n, done = stack.pop()
        kids = [] if isinstance(n, yaml.ScalarNode) else (
            [x for kv in n.value for x in kv] if isinstance(n, yaml.MappingNode) else list(n.value)
        )
        if done:
            size[id(n)] = 1 + sum(size[id(k)] for k in kids)
            open_.discard(id(n))
            continue
        if id(n) in size:
            continue
        if id(n) in open_:
            return float("inf")
        open_.add(id(n))
        stack.append((n, True))
        stack.extend((k, False) for k in kids if id(k) not in size)
    return size[id(root)]


class _Lines:
    """Line numbers of paths in a YAML node tree; each mapping is indexed once, when first asked,
    so locating thousands of problems stays linear (no scan of a mapping per problem)."""

    def __init__(self, root: yaml.Node | None):
        self.root = root
        self.index: dict[int, dict[Any, tuple[int, yaml.Node]]] = {}

    def _keys(self, node: yaml.MappingNode) -> dict[Any, tuple[int, yaml.Node]]:
        got = self.index.get(id(node))
        if got is None:
            got = {}
            for k, v in node.value:
                got.setdefault(getattr(k, "value", None), (k.start_mark.line + 1, v))
            self.index[id(node)] = got
        return got

    def line(self, loc: tuple) -> int | None:
        """Line number (1-based) of the deepest YAML node along `loc` that exists."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                hit = self._keys(node).get(part)
                if hit is None:
                    return line
                line, node = hit
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Line number (1-based) of the deepest YAML node along `loc` that exists."""
    return _Lines(node).line(loc)


def _field_names(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic class that owns the last field of `loc` (for key suggestions)."""
    from components import catalogue, distributions
    from designs import model as dm

    cur: Any = Design
    for part in loc:
        if isinstance(part, int):
            continue
        if cur is Design and part == "components":
            cur = "component"
            continue
        if cur == "component":
            cur = KINDS.get(part, None)
            continue
        if isinstance(cur, type) and issubclass(cur, BaseModel) and part in cur.model_fields:
            ann = cur.model_fields[part].annotation
            cur = _first_model(ann)
            continue
        if isinstance(part, str) and part in DIST_TAGS:
            cur = "dist"
            continue
    _ = (catalogue, distributions, dm)
    return cur if isinstance(cur, type) else None


def _first_model(ann: Any) -> Any:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in typing.get_args(ann):
        m = _first_model(a)
        if m is not None:
            return m
    return None


def _clean_loc(loc: tuple) -> tuple:
    """Drop the union-tag steps pydantic inserts (`components.2.service.…` → `components.2.…`)."""
    out: list = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if isinstance(part, str) and (part in KINDS and isinstance(prev, int) or part in DIST_TAGS):
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def _path(loc: tuple) -> str:
    s = ""
    for part in loc:
        s += f"[{part}]" if isinstance(part, int) else (f".{part}" if s else str(part))
    return s


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def problems_from_validation(err: ValidationError, data: Any, node: yaml.Node | None = None) -> list[Problem]:
    """Turn a pydantic error into located problems (one per error), plus graph findings.

    At most `MAX_PROBLEMS` are worded and located; beyond that one last problem says how many
    more there are, so a file with 16,000 unknown keys is reported in milliseconds.
    """
    problems: list[Problem] = []
    lines = _Lines(node)
    graph_seen = False
    errors = err.errors(include_url=False)
    hidden = 0
    for e in errors:
        if len(problems) >= MAX_PROBLEMS:
            hidden += 1
            continue
        raw_loc = tuple(e["loc"])
        loc = _clean_loc(raw_loc)
        ctx = e.get("ctx") or {}
        if isinstance(ctx.get("error"), GraphError):
            graph_seen = True
            for p in ctx["error"].problems:
                if len(problems) >= MAX_PROBLEMS:
                    hidden += 1
                else:
                    problems.append(_with_line(p, lines))
            continue
        typ = e["type"]
        path = _path(loc)
        suggestion = None
        if typ == "extra_forbidden":
            key = loc[-1]
            owner = _model_at(raw_loc[:-1])
            match = difflib.get_close_matches(str(key), _field_names(owner), n=1, cutoff=0.5)
            suggestion = match[0] if match else None
            expected = f"one of: {', '.join(_field_names(owner))}" if owner else "a known field"
            msg = f"unknown field '{_clip(key)}'; expected {expected}"
        elif typ == "union_tag_invalid":
            tag = ctx.get("tag")
            tags = ctx.get("expected_tags", "")
            names = [t.strip().strip("'") for t in str(tags).split(",")]
            match = difflib.get_close_matches(str(tag), names, n=1, cutoff=0.5)
            suggestion = match[0] if match else None
            field = "kind" if any(t in KINDS for t in names) else "dist"
            path = f"{path}.{field}" if path else field
            msg = f"unknown {field} '{_clip(tag)}'; expected one of: {', '.join(names)}"
        elif typ == "union_tag_not_found":
            field = "kind" if loc and loc[0] == "components" else "dist"
            path = f"{path}.{field}"
            msg = f"missing '{field}'"
        elif typ == "missing":
            msg = "required field is missing"
        elif typ == "value_error":
            msg = _expected(e)
        elif typ == "too_long" and "max_length" in ctx:
            msg = f"{ctx.get('actual_length', 'too many'):,} items; expected at most {ctx['max_length']:,}"
        else:
            found = f"found {_short(e.get('input'))}; " if "input" in e and typ not in ("model_type", "dict_type") else ""
            msg = f"{found}expected {_expected(e)}"
        problems.append(Problem(path, msg, suggestion=suggestion, line=lines.line(loc)))

    if not graph_seen and isinstance(data, dict) and len(problems) < MAX_PROBLEMS:
        comps = data.get("components") if isinstance(data.get("components"), list) else []
        ids = [c.get("id") if isinstance(c, dict) else None for c in comps]
        kinds = {c.get("id"): c.get("kind") for c in comps if isinstance(c, dict) and isinstance(c.get("id"), str)}
        edges = data.get("flow") if isinstance(data.get("flow"), list) else []
        for p in graph_problems(ids, data.get("entry"), edges, kinds):
            if p.severity != "error":
                continue
            if len(problems) >= MAX_PROBLEMS:
                hidden += 1
            else:
                problems.append(_with_line(p, lines))
    if hidden:
        problems.append(Problem("", f"… and {hidden:,} more problem{'s' if hidden != 1 else ''} not shown; fix these first"))
    return problems


def _clip(x: Any, n: int = 60) -> str:
    t = str(x)
    return t if len(t) <= n else t[: n - 3] + "..."


def _expected(e: dict) -> str:
    if e["type"] == "string_pattern_mismatch":  # only ids have a pattern
        return f"letters, digits, '_' and '-', starting with a letter or '_' (pattern {e['ctx']['pattern']})"
    msg = e["msg"]
    # pydantic says "Input should be greater than 0" → "a value greater than 0"
    for prefix in ("Input should be ", "Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def _with_line(p: Problem, node: "yaml.Node | _Lines | None") -> Problem:
    lines = node if isinstance(node, _Lines) else _Lines(node)
    if lines.root is None or p.line is not None:
        return p
    loc: list = []
    for part in p.path.replace("]", "").replace("[", ".").split("."):
        if part:
            loc.append(int(part) if part.isdigit() else part)
    return Problem(p.path, p.message, p.severity, p.suggestion, lines.line(tuple(loc)))


def locate(problems: list[Problem], text: str) -> list[Problem]:
    """The same problems with line numbers looked up in the YAML `text` they refer to
    (for findings made after loading, such as hardware checks)."""
    try:
        lines = _Lines(_compose(text))
    except yaml.YAMLError:
        return problems
    return [_with_line(p, lines) for p in problems]


def parse_design(text: str, source: str = "<text>") -> Design:
    """Parse and validate design YAML; raises `DesignFileError` with every problem."""
    data, node = parse_yaml(text, source)
    if data is None:
        raise DesignFileError(source, [Problem("", "the file is empty; expected a design mapping with name, workload, components, entry")])
    if not isinstance(data, dict):
        raise DesignFileError(source, [Problem("", f"expected a mapping (name: …, components: …) at the top level, found a {type(data).__name__}", line=1)])
    try:
        return Design.model_validate(data)
    except ValidationError as err:
        raise DesignFileError(source, problems_from_validation(err, data, node)) from None


def read_text_limited(path: str | Path, limit: int | None = None) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes (default `MAX_FILE_BYTES`).

    Refuses (`DesignFileError`) anything else without blocking or reading it whole: a FIFO is
    opened non-blocking and refused, ``/dev/zero`` is refused as a device, and the limit is
    enforced on the bytes actually read, not on what ``st_size`` claims.
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DesignFileError(str(p), [Problem("", "no such file")]) from None
    except IsADirectoryError:
        raise DesignFileError(str(p), [Problem("", "is a directory, expected a YAML file")]) from None
    except OSError as e:
        raise DesignFileError(str(p), [Problem("", e.strerror or str(e))]) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise DesignFileError(str(p), [Problem("", "is a directory, expected a YAML file")])
        if not stat.S_ISREG(st.st_mode):
            what = "a FIFO" if stat.S_ISFIFO(st.st_mode) else ("a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
            raise DesignFileError(str(p), [Problem("", f"is {what}; expected a regular YAML file")])
        if st.st_size > limit:
            raise _too_big(str(p), st.st_size)
        chunks, got = [], 0
        while got <= limit:  # st_size can lie (procfs, a file growing under us): count what is read
            b = os.read(fd, min(1 << 20, limit + 1 - got))
            if not b:
                break
            chunks.append(b)
            got += len(b)
        if got > limit:
            raise _too_big(str(p), got)
        raw = b"".join(chunks)
    except OSError as e:
        raise DesignFileError(str(p), [Problem("", e.strerror or str(e))]) from None
    finally:
        os.close(fd)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DesignFileError(str(p), [Problem("", f"not UTF-8 text ({e.reason} at byte {e.start})")]) from None


def load_design(path: str | Path) -> Design:
    """Read and validate a design file (a regular file, read with a real byte limit)."""
    return parse_design(read_text_limited(path), str(path))


# --- saving --------------------------------------------------------------------------------

_KEY_ORDER = ("id", "kind", "name", "label")


def design_to_data(design: Design) -> dict:
    """Plain JSON-compatible data; never `exclude_defaults`, which would drop `kind` tags."""
    data = design.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["components"] = [_ordered(c) for c in data["components"]]
    return data


def _ordered(d: dict) -> dict:
    head = {k: d[k] for k in _KEY_ORDER if k in d}
    return head | {k: v for k, v in d.items() if k not in head}


class _Dumper(yaml.SafeDumper):
    pass


def _represent_dict(dumper: yaml.SafeDumper, data: dict):
    # Small mappings of scalars (distributions, edges) read best on one line.
    flow = len(data) <= 6 and all(isinstance(v, (str, int, float, bool)) or v is None for v in data.values()) and all(
        not isinstance(v, str) or ("\n" not in v and len(v) < 60) for v in data.values()
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


# YAML reads NEL (U+0085), LS and PS as line breaks and folds CR: written raw (allow_unicode)
# they come back changed, so such strings are written double-quoted, where they are escaped.
_BREAKS = re.compile("[\r\x85\u2028\u2029\ufeff]")


def _represent_str(dumper: yaml.SafeDumper, data: str):
    style = '"' if _BREAKS.search(data) else ("|" if "\n" in data else None)
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(str, _represent_str)


def dump_design(design: Design) -> str:
    """YAML text that `parse_design` reads back to an equal `Design`."""
    return yaml.dump(design_to_data(design), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def json_schema() -> dict:
    """JSON Schema of a design file (for editors: yaml-language-server, VS Code)."""
    schema = Design.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "System Design Workbench design"
    return schema
