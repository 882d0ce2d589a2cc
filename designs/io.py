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
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from components.catalogue import KINDS
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
    "MAX_FILE_BYTES",
]

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ALIASES = 100  # anchors are handy; thousands of them are a billion-laughs bomb
# A few aliases nested ten deep still expand to 10^10 values (billion laughs); cap what the
# aliases add when expanded, counted on the node graph before anything is constructed.
MAX_ALIAS_EXPANSION = 100_000


class DesignFileError(Exception):
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


def parse_yaml(text: str, source: str = "<text>") -> tuple[Any, yaml.Node | None]:
    """Parse YAML safely; returns the data and its node tree (for line numbers)."""
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        raise DesignFileError(source, [Problem("", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; a design file is a few KB")])
    try:
        aliases = 0
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(tok, yaml.TagToken):
                raise DesignFileError(source, [Problem("", f"YAML tags such as '{tok.value[0]}{tok.value[1]}' are not allowed in design files; use plain values", line=tok.start_mark.line + 1)])
            if isinstance(tok, yaml.AliasToken):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise DesignFileError(source, [Problem("", f"more than {MAX_ALIASES} YAML aliases; refusing (possible alias bomb)", line=tok.start_mark.line + 1)])
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if aliases and _expanded_size(node) > MAX_ALIAS_EXPANSION:
            raise DesignFileError(source, [Problem("", f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION:,} values or refer to themselves; refusing (alias bomb)")])
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        msg = f"YAML syntax error{col}: {e.problem or e.context}"
        raise DesignFileError(source, [Problem("", msg, line=line)]) from None
    except yaml.YAMLError as e:
        raise DesignFileError(source, [Problem("", f"YAML error: {e}")]) from None
    except RecursionError:  # PyYAML composes recursively: `[[[[…]]]]` thousands deep
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


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Line number (1-based) of the deepest YAML node along `loc` that exists."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for k, v in node.value:
                if getattr(k, "value", None) == part:
                    node, line = v, k.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


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
    """Turn a pydantic error into located problems (one per error), plus graph findings."""
    problems: list[Problem] = []
    graph_seen = False
    for e in err.errors(include_url=False):
        raw_loc = tuple(e["loc"])
        loc = _clean_loc(raw_loc)
        ctx = e.get("ctx") or {}
        if isinstance(ctx.get("error"), GraphError):
            graph_seen = True
            for p in ctx["error"].problems:
                problems.append(_with_line(p, node))
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
            msg = f"unknown field '{key}'; expected {expected}"
        elif typ == "union_tag_invalid":
            tag = ctx.get("tag")
            tags = ctx.get("expected_tags", "")
            names = [t.strip().strip("'") for t in str(tags).split(",")]
            match = difflib.get_close_matches(str(tag), names, n=1, cutoff=0.5)
            suggestion = match[0] if match else None
            field = "kind" if any(t in KINDS for t in names) else "dist"
            path = f"{path}.{field}" if path else field
            msg = f"unknown {field} '{tag}'; expected one of: {', '.join(names)}"
        elif typ == "union_tag_not_found":
            field = "kind" if loc and loc[0] == "components" else "dist"
            path = f"{path}.{field}"
            msg = f"missing '{field}'"
        elif typ == "missing":
            msg = "required field is missing"
        elif typ == "value_error":
            msg = _expected(e)
        else:
            found = f"found {_short(e.get('input'))}; " if "input" in e and typ not in ("model_type", "dict_type") else ""
            msg = f"{found}expected {_expected(e)}"
        problems.append(Problem(path, msg, suggestion=suggestion, line=_line_of(node, loc)))

    if not graph_seen and isinstance(data, dict):
        comps = data.get("components") if isinstance(data.get("components"), list) else []
        ids = [c.get("id") if isinstance(c, dict) else None for c in comps]
        kinds = {c.get("id"): c.get("kind") for c in comps if isinstance(c, dict) and isinstance(c.get("id"), str)}
        edges = data.get("flow") if isinstance(data.get("flow"), list) else []
        for p in graph_problems(ids, data.get("entry"), edges, kinds):
            if p.severity == "error":
                problems.append(_with_line(p, node))
    return problems


def _expected(e: dict) -> str:
    if e["type"] == "string_pattern_mismatch":  # only ids have a pattern
        return f"letters, digits, '_' and '-', starting with a letter or '_' (pattern {e['ctx']['pattern']})"
    msg = e["msg"]
    # pydantic says "Input should be greater than 0" → "a value greater than 0"
    for prefix in ("Input should be ", "Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def _with_line(p: Problem, node: yaml.Node | None) -> Problem:
    if node is None or p.line is not None:
        return p
    loc: list = []
    for part in p.path.replace("]", "").replace("[", ".").split("."):
        if part:
            loc.append(int(part) if part.isdigit() else part)
    return Problem(p.path, p.message, p.severity, p.suggestion, _line_of(node, tuple(loc)))


def locate(problems: list[Problem], text: str) -> list[Problem]:
    """The same problems with line numbers looked up in the YAML `text` they refer to
    (for findings made after loading, such as hardware checks)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return problems
    return [_with_line(p, node) for p in problems]


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


def load_design(path: str | Path) -> Design:
    """Read and validate a design file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DesignFileError(str(p), [Problem("", f"file is {size / 1e6:.1f} MB, larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; a design file is a few KB")])
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DesignFileError(str(p), [Problem("", "no such file")]) from None
    except IsADirectoryError:
        raise DesignFileError(str(p), [Problem("", "is a directory, expected a YAML file")]) from None
    except UnicodeDecodeError as e:
        raise DesignFileError(str(p), [Problem("", f"not UTF-8 text ({e.reason} at byte {e.start})")]) from None
    except OSError as e:
        raise DesignFileError(str(p), [Problem("", e.strerror or str(e))]) from None
    return parse_design(text, str(p))


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


def _represent_str(dumper: yaml.SafeDumper, data: str):
    style = "|" if "\n" in data else None
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
