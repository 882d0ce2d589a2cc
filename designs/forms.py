"""Edit forms without a UI: describe a model's editable fields, apply one edit, validate.

The Builder page renders what `describe_component` returns and sends every change through
`apply_edit`, which returns a *new*, validated `Design` or raises `DesignFileError` with
located problems — so the page never holds an invalid design and never parses YAML itself.

Usage::

    from designs.forms import describe_component, apply_edit
    spec = {f.name: f for f in describe_component(design.component("llm"))}
    spec["replicas"].min, spec["replicas"].max, spec["replicas"].help   # 1, 10000, 'Number of model replicas.'
    design2 = apply_edit(design, "llm", "replicas", 6)   # a validated copy; `design` is unchanged
    apply_edit(design, "llm", "replicas", 0)             # raises DesignFileError: components[2].replicas …

Bounds come from each field's ``Field(ge=…, gt=…, le=…, lt=…)``, units from the suffix of
the field name (``_ms``, ``_usd``, ``_per_s`` …), help from the docstring under the field.
"""

from __future__ import annotations

import copy
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel, ValidationError

from components.catalogue import KINDS
from components.distributions import FixedCount

from .io import DesignFileError, design_to_data, problems_from_validation
from .model import Design, Problem

__all__ = [
    "FieldSpec",
    "describe_model",
    "describe_component",
    "unit_of",
    "apply_edit",
    "apply_path",
    "add_component",
    "remove_component",
    "add_edge",
    "remove_edge",
    "new_component_id",
    "default_distribution",
    "EDIT_SOURCE",
    "problem_field",
    "default_text",
    "blank_design",
    "rename_design",
    "add_request_class",
    "remove_request_class",
    "edge_defaults",
    "set_class_share",
]

EDIT_SOURCE = "<edit>"

FieldType = Literal["int", "float", "bool", "str", "choice", "distribution", "other"]


@dataclass(frozen=True)
class FieldSpec:
    """One editable field, everything a widget needs."""

    name: str
    type: FieldType
    value: Any
    default: Any = None
    required: bool = False
    optional: bool = False
    """None is allowed: empty means 'take the default / the catalogue value'."""
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    unit: str = ""
    help: str = ""
    choices: tuple = ()
    family: Literal["ms", "count"] | None = None
    """For distributions: durations in ms, or unit-free counts."""
    variants: dict[str, list["FieldSpec"]] = field(default_factory=dict)
    """For distributions: the sub-fields of each shape (`fixed`, `exponential` …)."""

    @property
    def label(self) -> str:
        name = self.name
        for suffix in _PLAIN_SUFFIXES:  # 'timeout_ms' reads 'timeout (ms)', not 'timeout ms (ms)'
            if name.endswith(suffix) and self.unit:
                name = name[: -len(suffix)]
                break
        words = name.replace("_", " ")
        return f"{words} ({self.unit})" if self.unit else words

    @property
    def widget_min(self) -> float | None:
        """Lower bound for a number widget: an exclusive bound moves one step inside."""
        if self.min is None:
            return None
        if self.min_exclusive:
            return self.min + (1 if self.type == "int" else 1e-3)
        return self.min

    @property
    def widget_max(self) -> float | None:
        if self.max is None:
            return None
        if self.max_exclusive:
            return self.max - (1 if self.type == "int" else 1e-3)
        return self.max


# Checked in order: the first matching suffix names the unit.
_UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("hourly_usd", "USD/h"),
    ("monthly_usd", "USD/month"),
    ("usd_per_gb_month", "USD per GB-month"),
    ("usd_per_1m_input_tokens", "USD per 1M input tokens"),
    ("usd_per_1m_output_tokens", "USD per 1M output tokens"),
    ("usd_per_million_requests", "USD per 1M requests"),
    ("daily_budget_usd", "USD/day"),
    ("tokens_per_s_per_replica", "tokens/s per replica"),
    ("pairs_per_s_per_replica", "pairs/s per replica"),
    ("items_per_s_per_worker", "items/s per worker"),
    ("output_tokens_per_s", "tokens/s"),
    ("requests_per_day", "requests/day"),
    ("_rps", "req/s"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_usd", "USD"),
    ("_gb", "GB"),
    ("_hours", "h"),
    ("_h", "h"),
    ("_tokens", "tokens"),
    ("ratio", "fraction 0–1"),
    ("utilization", "fraction 0–1"),
    ("availability", "fraction 0–1"),
)


_PLAIN_SUFFIXES = ("_ms", "_s", "_rps", "_usd", "_gb", "_hours", "_h")


def unit_of(name: str) -> str:
    """The unit a field name carries ('latency_p95_ms' → 'ms'); '' when it carries none."""
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return ""


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, optional?) — strips `X | None` and `Annotated`."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            annotation = args[0]
        else:
            annotation = typing.Union[tuple(args)]  # type: ignore[assignment]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation, optional


def _dist_family(annotation: Any) -> tuple[str, list[type[BaseModel]]] | None:
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    classes = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel) and "dist" in a.model_fields]
    if not classes or len(classes) != len(args):
        return None
    family = "count" if any(issubclass(c, FixedCount) for c in classes) else "ms"
    return family, classes


def _bounds(metadata: list) -> dict:
    out: dict = {}
    for m in metadata:
        if isinstance(m, at.Ge):
            out["min"] = m.ge
        elif isinstance(m, at.Gt):
            out["min"], out["min_exclusive"] = m.gt, True
        elif isinstance(m, at.Le):
            out["max"] = m.le
        elif isinstance(m, at.Lt):
            out["max"], out["max_exclusive"] = m.lt, True
    return out


def _catalogue_names(name: str) -> tuple[str, ...]:
    """Known values for `model` / `gpu` fields (suggestions; aliases are still accepted)."""
    try:
        from components import hardware
    except ImportError:  # the hardware catalogue is optional for forms
        return ()
    if name == "model":
        return tuple(hardware.model_names())
    if name == "gpu":
        return tuple(hardware.gpu_names())
    return ()


def describe_model(model: type[BaseModel], instance: BaseModel | None = None, *, skip: set[str] = frozenset()) -> list[FieldSpec]:
    """Every field of `model` as a `FieldSpec`, in declaration order, valued from `instance`."""
    specs: list[FieldSpec] = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        inner, optional = _unwrap(info.annotation)
        value = getattr(instance, name, None) if instance is not None else None
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        common = dict(
            name=name,
            value=value,
            default=default,
            required=info.is_required(),
            optional=optional,
            unit=unit_of(name),
            help=(info.description or "").strip(),
        )
        fam = _dist_family(inner)
        if fam is not None:
            family, classes = fam
            variants = {c.model_fields["dist"].default: describe_model(c, None, skip={"dist"}) for c in classes}
            specs.append(FieldSpec(type="distribution", family=family, variants=variants, **{**common, "unit": "ms" if family == "ms" else ""}))
        elif typing.get_origin(inner) is Literal:
            specs.append(FieldSpec(type="choice", choices=typing.get_args(inner), **common))
        elif inner is bool:
            specs.append(FieldSpec(type="bool", **common))
        elif inner is int:
            specs.append(FieldSpec(type="int", **common, **_bounds(info.metadata)))
        elif inner is float:
            specs.append(FieldSpec(type="float", **common, **_bounds(info.metadata)))
        elif inner is str:
            specs.append(FieldSpec(type="str", choices=_catalogue_names(name), **common))
        else:  # lists, nested records: edited in the YAML tab
            specs.append(FieldSpec(type="other", **common))
    return specs


def describe_component(component: BaseModel) -> list[FieldSpec]:
    """The editable fields of one component (`id` and `kind` are fixed once created)."""
    return describe_model(type(component), component, skip={"id", "kind"})


# --- edits ---------------------------------------------------------------------------------


def _validated(data: dict) -> Design:
    try:
        return Design.model_validate(data)
    except ValidationError as err:
        raise DesignFileError(EDIT_SOURCE, problems_from_validation(err, data, None)) from None


def _refuse(path: str, message: str) -> DesignFileError:
    return DesignFileError(EDIT_SOURCE, [Problem(path, message)])


def apply_path(design: Design, path: str, value: Any) -> Design:
    """Set one value by dotted path and return the validated copy.

    Paths: ``workload.requests_per_day``, ``slo.latency_p95_ms``, ``entry``,
    ``components.<id>.<field>[.<sub>]``. A value of None removes the key (the default applies).
    """
    data = copy.deepcopy(design_to_data(design))
    parts = path.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit():  # request classes: by position
            if int(part) >= len(node):
                raise _refuse(".".join(parts[: i + 1]), f"no item number {part}; the list has {len(node)}")
            node = node[int(part)]
        elif isinstance(node, list):  # components are addressed by id, not index
            match = [c for c in node if isinstance(c, dict) and c.get("id") == part]
            if not match:
                raise _refuse(".".join(parts[: i + 1]), f"no component '{part}'")
            node = match[0]
        else:
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
    last = parts[-1]
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return _validated(data)


def apply_edit(design: Design, component_id: str, field: str, value: Any) -> Design:
    """Set `field` (or `field.sub`) of one component; returns a validated copy."""
    if field in ("id", "kind"):
        raise _refuse(f"components.{component_id}.{field}", f"'{field}' cannot be edited in place; add a new component instead")
    return apply_path(design, f"components.{component_id}.{field}", value)


# Fields a kind requires that have no default: a new component starts from these.
# Placeholders the user is expected to change; the model is the smallest one in
# components/data/models.csv, and 1e8 tokens is ~50k examples × 2k tokens.
_REQUIRED_STARTERS: dict[str, dict] = {
    "llm_server": {"model": "llama-3.1-8b"},
    "training_job": {"model": "llama-3.1-8b", "tokens": 1e8},
}


def new_component_id(design: Design, kind: str) -> str:
    taken = {c.id for c in design.components}
    if kind not in taken:
        return kind
    n = 2
    while f"{kind}_{n}" in taken:
        n += 1
    return f"{kind}_{n}"


def add_component(design: Design, kind: str, component_id: str | None = None) -> Design:
    """Append a new component of `kind` with default fields (unconnected until you add edges)."""
    if kind not in KINDS:
        raise _refuse("components", f"unknown kind '{kind}'; expected one of: {', '.join(KINDS)}")
    cid = component_id or new_component_id(design, kind)
    data = copy.deepcopy(design_to_data(design))
    data["components"].append({"id": cid, "kind": kind, **_REQUIRED_STARTERS.get(kind, {})})
    return _validated(data)


def remove_component(design: Design, component_id: str) -> Design:
    """Remove a component and every edge touching it."""
    if component_id == design.entry:
        raise _refuse("entry", f"'{component_id}' is the entry point; make another component the entry first")
    data = copy.deepcopy(design_to_data(design))
    before = len(data["components"])
    data["components"] = [c for c in data["components"] if c["id"] != component_id]
    if len(data["components"]) == before:
        raise _refuse("components", f"no component '{component_id}'")
    data["flow"] = [e for e in data.get("flow", []) if component_id not in (e["from"], e["to"])]
    return _validated(data)


def add_edge(design: Design, src: str, dst: str, p: float = 1.0, *, parallel: bool = False, max_repeats: int | None = None, label: str | None = None) -> Design:
    """Append a flow edge `src → dst`; graph rules (sums, cycles, fan-outs) are checked."""
    data = copy.deepcopy(design_to_data(design))
    edge: dict = {"from": src, "to": dst, "p": p}
    if parallel:
        edge["parallel"] = True
    if max_repeats is not None:
        edge["max_repeats"] = max_repeats
    if label:
        edge["label"] = label
    data.setdefault("flow", []).append(edge)
    return _validated(data)


def remove_edge(design: Design, index: int) -> Design:
    """Remove the flow edge at `index` (file order)."""
    data = copy.deepcopy(design_to_data(design))
    flow = data.get("flow", [])
    if not 0 <= index < len(flow):
        raise _refuse("flow", f"no edge number {index}; the flow has {len(flow)}")
    del flow[index]
    return _validated(data)


def default_distribution(family: str, tag: str, mean: float) -> dict:
    """A starting value when the user switches a distribution's shape (keeps the mean)."""
    ms = family == "ms"
    m = max(mean, 1e-3)
    if tag == "fixed":
        return {"dist": "fixed", ("value_ms" if ms else "value"): m}
    if tag == "exponential":
        return {"dist": "exponential", ("mean_ms" if ms else "mean"): m}
    if tag == "uniform":
        return {"dist": "uniform", ("low_ms" if ms else "low"): 0.5 * m, ("high_ms" if ms else "high"): 1.5 * m}
    if tag == "lognormal":
        # p95 = 2 × mean is a moderate right skew, well inside the lognormal's limit (3.87×).
        return {"dist": "lognormal", ("mean_ms" if ms else "mean"): m, ("p95_ms" if ms else "p95"): 2 * m}
    return {"dist": "empirical", ("values_ms" if ms else "values"): [m]}



# --- problems at their fields ----------------------------------------------------------------

# A hardware-configuration problem is reported for the whole component (`components[2]`);
# the form shows it at the first of these fields its message names, else at the first one.
_HARDWARE_FIELDS: dict[str, tuple[str, ...]] = {
    "llm_server": ("gpus_per_replica", "gpu", "precision", "model", "kv_cache_precision", "gpu_memory_utilization"),
    "training_job": ("gpus", "gpu", "method", "model", "tokens"),
}
_INDEX = re.compile(r"\[(\d+)\]")


def problem_field(design: Design, problem: Problem) -> str | None:
    """The edit path a problem belongs to, in `apply_path` terms, or None for the whole design.

    >>> from designs.model import Problem
    >>> d = Design.model_validate({"name": "x", "workload": {}, "entry": "llm", "components": [
    ...     {"id": "llm", "kind": "llm_server", "model": "llama-3.1-8b"}]})
    >>> problem_field(d, Problem("components[0]", "llm: … needs 141 GB …; try gpus_per_replica ≥ 2"))
    'components.llm.gpus_per_replica'
    >>> problem_field(d, Problem("workload.classes[1].share", "…"))
    'workload.classes.1.share'
    """
    parts = [p for p in _INDEX.sub(r".\1", problem.path or "").split(".") if p]
    if not parts:
        return None
    if parts[0] == "components" and len(parts) >= 2 and parts[1].isdigit():
        i = int(parts[1])
        if i >= len(design.components):
            return None
        comp = design.components[i]
        parts[1] = comp.id
        if len(parts) == 2:
            fields = _HARDWARE_FIELDS.get(comp.kind)  # type: ignore[attr-defined]
            if not fields:
                return ".".join(parts)
            named = [f for f in fields if re.search(rf"\b{f}\b", problem.message)]
            parts.append((named or fields)[0])
        else:
            parts = parts[:3]  # a distribution's sub-field is shown at the distribution
    return ".".join(parts)


def default_text(spec: FieldSpec) -> str:
    """What an empty optional field means, for its label: 'default: 20 ms', 'default: none'."""
    d = spec.default
    if d is None:
        return "default: none"
    if isinstance(d, BaseModel) and hasattr(d, "expected"):
        d = d.expected()  # type: ignore[attr-defined]
    if isinstance(d, bool):
        return f"default: {'yes' if d else 'no'}"
    if isinstance(d, (int, float)):
        from .numfmt import fmt

        text = fmt(d, spec.unit) if spec.unit in ("ms", "USD", "USD/day", "req/s", "GB") else f"{d:,g}" + (f" {spec.unit}" if spec.unit else "")
        return f"default: {text}"
    return f"default: {d}"


# --- whole designs -----------------------------------------------------------------------------


def blank_design(name: str = "new_design") -> Design:
    """The smallest valid design: one service at 1M requests/day, no SLOs — a page to start on."""
    return Design.model_validate({
        "name": name or "new_design",
        "workload": {"requests_per_day": 1_000_000},
        "components": [{"id": "app", "kind": "service"}],
        "entry": "app",
        "flow": [],
    })


def rename_design(design: Design, name: str) -> Design:
    """The same design under another name (validated: names have bounds too)."""
    return apply_path(design, "name", name)


def add_request_class(design: Design, name: str | None = None) -> Design:
    """Append a request class; the shares are rescaled so they still sum to 1.

    The new class takes an equal share (1/n) and the others keep their proportions; a
    design with no classes first gets its implicit default class written out.
    """
    data = copy.deepcopy(design_to_data(design))
    classes = data["workload"].get("classes") or [{"name": "default", "share": 1.0}]
    n = len(classes) + 1
    taken = {c["name"] for c in classes}
    new = name or next(f"class_{i}" for i in range(n, n + 100) if f"class_{i}" not in taken)
    for c in classes:
        c["share"] = c.get("share", 1.0) * (n - 1) / n
    classes.append({"name": new, "share": 1.0 / n})
    _fix_shares(classes)
    data["workload"]["classes"] = classes
    return _validated(data)


def remove_request_class(design: Design, index: int) -> Design:
    """Remove a request class; the others are rescaled to sum to 1."""
    data = copy.deepcopy(design_to_data(design))
    classes = data["workload"].get("classes") or []
    if not 0 <= index < len(classes):
        raise _refuse("workload.classes", f"no class number {index}; the workload has {len(classes)}")
    del classes[index]
    total = sum(c.get("share", 1.0) for c in classes)
    for c in classes:
        c["share"] = c.get("share", 1.0) / total
    _fix_shares(classes)
    data["workload"]["classes"] = classes
    return _validated(data)


def _fix_shares(classes: list[dict]) -> None:
    # Rounded shares that still sum to exactly 1: the last one absorbs the rounding.
    for c in classes:
        c["share"] = round(c["share"], 6)
    if classes:
        classes[-1]["share"] = round(1.0 - sum(c["share"] for c in classes[:-1]), 6)


def edge_defaults(design: Design) -> tuple[str, str]:
    """(from, to) for a new edge: a component nothing reaches yet, fed from the last reached one.

    A just-added component is the usual target; its source is the last component (in file
    order) that the flow already reaches. Never from = to when there are two components.
    """
    ids = [c.id for c in design.components]
    reached = design.reachable()
    targets = {e.to for e in design.flow}
    loose = [i for i in ids if i != design.entry and i not in targets and design.component(i).kind != "monitoring"]
    dst = loose[-1] if loose else (ids[1] if len(ids) > 1 else ids[0])
    sources = [i for i in ids if i in reached and i != dst]
    src = sources[-1] if sources else design.entry
    if src == dst and len(ids) > 1:
        src = next(i for i in ids if i != dst)
    return src, dst


def set_class_share(design: Design, index: int, share: float) -> Design:
    """Give class `index` this share and rescale the others so the shares still sum to 1."""
    data = copy.deepcopy(design_to_data(design))
    classes = data["workload"].get("classes") or []
    if not 0 <= index < len(classes):
        raise _refuse("workload.classes", f"no class number {index}; the workload has {len(classes)}")
    if len(classes) == 1:
        raise _refuse(f"workload.classes[{index}].share", "the only class has share 1; add another class first")
    if not 0 < share < 1:
        raise _refuse(f"workload.classes[{index}].share", f"share {share:g} must be between 0 and 1 (exclusive) with other classes present")
    rest = sum(c.get("share", 1.0) for j, c in enumerate(classes) if j != index)
    for j, c in enumerate(classes):
        c["share"] = share if j == index else c.get("share", 1.0) * (1 - share) / rest
    # The edited class keeps exactly its value; another absorbs the rounding.
    for c in classes:
        c["share"] = round(c["share"], 6)
    k = next(j for j in reversed(range(len(classes))) if j != index)
    classes[k]["share"] = round(1.0 - sum(c["share"] for j, c in enumerate(classes) if j != k), 6)
    return _validated(data)
