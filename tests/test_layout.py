"""The shape of `sim/`: the face is the only door, and no import circles inside.

Reads the source with `ast` (nothing is imported), so it checks function-local imports too.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _imports(path: pathlib.Path) -> list[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    pkg = parts if path.name == "__init__.py" else parts[:-1]
    if path.name == "__init__.py":
        pkg = parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            out.extend(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def _sim_modules() -> dict[str, pathlib.Path]:
    mods = {}
    for p in (ROOT / "sim").rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


@pytest.mark.parametrize("folder", ["cli", "review", "app_pages"])
def test_outside_code_imports_only_the_face(folder):
    # `from sim import estimate` yields "sim" and "sim.estimate"; only names of real submodules
    # ("sim.twin", "sim.des.engine", "sim.cost", …) mean the face was bypassed.
    submodules = _sim_modules_top()
    bad = []
    for p in sorted((ROOT / folder).rglob("*.py")):
        for mod in _imports(p):
            if mod.startswith("sim.") and mod.split(".")[1] in submodules:
                bad.append(f"{p.relative_to(ROOT)} imports {mod}")
    assert not bad, "import from the face (`from sim import …`): " + "; ".join(bad)


def _sim_modules_top() -> set[str]:
    return {n.split(".")[1] for n in _sim_modules() if n.count(".") >= 1}


def _graph() -> dict[str, set[str]]:
    mods = _sim_modules()
    g: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        if p.name == "__init__.py":
            continue  # package faces re-export lazily; they are not part of a module circle
        for mod in _imports(p):
            if mod in mods and mod != m and mods[mod].name != "__init__.py":
                g[m].add(mod)
    return g


def test_no_import_circles_in_sim():
    g = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(v: str, path: list[str]) -> None:
        state[v] = 1
        for w in sorted(g[v]):
            if state.get(w) == 1:
                cycles.append(path[path.index(w):] + [w] if w in path else [v, w])
            elif w not in state:
                visit(w, path + [w])
        state[v] = 2

    for v in sorted(g):
        if v not in state:
            visit(v, [v])
    assert not cycles, "import circles: " + "; ".join(" → ".join(c) for c in cycles)


def test_twin_never_imports_the_engine_or_simpy():
    for name, p in _sim_modules().items():
        if name.startswith("sim.twin"):
            mods = _imports(p)
            assert not any(m.startswith(("sim.des", "simpy")) for m in mods), name


def test_a_circle_would_be_found(tmp_path, monkeypatch):
    """The detector itself: two modules importing each other are reported."""
    g = {"a": {"b"}, "b": {"a"}}
    monkeypatch.setattr(__import__(__name__), "_graph", lambda: g)
    with pytest.raises(AssertionError, match="import circles"):
        test_no_import_circles_in_sim()
