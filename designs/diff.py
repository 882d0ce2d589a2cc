"""What differs between two designs, as short readable lines.

Usage::

    from designs.diff import diff_designs
    diff_designs(a, b)
    # ['llm.replicas: 4 → 6', 'workload.requests_per_day: 1e+07 → 2e+07', '+ component cache (cache)']

Components are matched by id and edges by (from, to), so reordering a file is not a change.
Long free text (problem, notes, assumptions) is reported as 'differs', not printed.
"""

from __future__ import annotations

from typing import Any

from .io import design_to_data
from .model import Design

__all__ = ["diff_designs", "format_value"]

_LONG_TEXT = {"problem", "notes", "assumptions"}


def format_value(v: Any) -> str:
    """Compact text for one value: numbers with up to 6 significant digits, dists inline."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {format_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(format_value(x) for x in v[:6]) + (", …" if len(v) > 6 else "") + "]"
    return str(v)


def _walk(prefix: str, a: Any, b: Any, out: list[str]) -> None:
    if a == b:
        return
    # A distribution (or any small record) that changed shape reads best as one line.
    if isinstance(a, dict) and isinstance(b, dict) and a.get("dist") == b.get("dist"):
        for k in list(a) + [k for k in b if k not in a]:
            _walk(f"{prefix}.{k}" if prefix else k, a.get(k), b.get(k), out)
        return
    # Named records (request classes) are matched by name, like components by id.
    if _named(a) and _named(b):
        na, nb = {x["name"]: x for x in a}, {x["name"]: x for x in b}
        for n in na:
            if n not in nb:
                out.append(f"- {prefix} {n}")
        for n in nb:
            if n not in na:
                out.append(f"+ {prefix} {n}")
        for n in [n for n in na if n in nb]:
            _walk(f"{prefix}.{n}", na[n], nb[n], out)
        return
    out.append(f"{prefix}: {format_value(a)} → {format_value(b)}")


def _named(v: Any) -> bool:
    if not isinstance(v, list) or not all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in v):
        return False
    names = [x["name"] for x in v]
    return len(set(names)) == len(names)


def diff_designs(a: Design, b: Design) -> list[str]:
    """Readable differences from `a` to `b`; empty when they are equivalent."""
    da, db = design_to_data(a), design_to_data(b)
    out: list[str] = []
    for key in ("name", "entry"):
        if da.get(key) != db.get(key):
            out.append(f"{key}: {format_value(da.get(key))} → {format_value(db.get(key))}")
    for key in ("workload", "slo"):
        _walk(key, da.get(key, {}), db.get(key, {}), out)

    ca = {c["id"]: c for c in da["components"]}
    cb = {c["id"]: c for c in db["components"]}
    for cid, c in ca.items():
        if cid not in cb:
            out.append(f"- component {cid} ({c['kind']})")
    for cid, c in cb.items():
        if cid not in ca:
            out.append(f"+ component {cid} ({c['kind']})")
    for cid in [i for i in ca if i in cb]:  # file order of `a`
        x, y = ca[cid], cb[cid]
        if x["kind"] != y["kind"]:
            out.append(f"{cid}.kind: {x['kind']} → {y['kind']}")
            continue
        for k in list(x) + [k for k in y if k not in x]:
            if k in ("id", "kind"):
                continue
            _walk(f"{cid}.{k}", x.get(k), y.get(k), out)

    ea = {(e["from"], e["to"]): e for e in da.get("flow", [])}
    eb = {(e["from"], e["to"]): e for e in db.get("flow", [])}
    for (s, t), e in ea.items():
        if (s, t) not in eb:
            out.append(f"- edge {s} → {t}")
    for (s, t), e in eb.items():
        if (s, t) not in ea:
            out.append(f"+ edge {s} → {t} (p {format_value(e.get('p', 1.0))})")
    for key in [k for k in ea if k in eb]:
        x, y = ea[key], eb[key]
        for k in list(x) + [k for k in y if k not in x]:
            if k in ("from", "to"):
                continue
            if x.get(k) != y.get(k):
                out.append(f"edge {key[0]} → {key[1]}: {k} {format_value(x.get(k))} → {format_value(y.get(k))}")

    for key in sorted(_LONG_TEXT):
        if da.get(key) != db.get(key):
            out.append(f"{key}: text differs")
    return out
