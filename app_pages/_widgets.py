"""Streamlit helpers shared by the pages: session state, the current design, guarded engine
access, cached estimates and runs, diagrams and problem lists.

Pages call these and stay thin::

    from app_pages import _widgets as W
    W.init_state()
    design = W.require_design()
    W.show_diagram(design)

The leading underscore keeps this file out of any page discovery. Everything that is not
about Streamlit lives in `designs/` (workspace, forms, diff) or `sim/`.
"""

from __future__ import annotations

import contextvars
import importlib
import threading
import uuid
from types import ModuleType
from typing import Any, Callable

import streamlit as st

from designs.io import DesignFileError, load_design
from designs.model import Design, Problem
from designs.workspace import Workspace, WorkspaceError, new_draft_id, workspace_dir

__all__ = [
    "init_state",
    "sidebar",
    "workspace",
    "current_design",
    "set_design",
    "require_design",
    "optional_module",
    "engine_missing",
    "dot_of",
    "show_diagram",
    "show_problems",
    "library_entries",
    "estimate_cached",
    "simulate_cached",
    "compare_cached",
    "verdict_line",
    "remember_run",
    "progress_updater",
    "sticky",
    "design_token",
    "STICKY_PREFIXES",
    "run_key",
    "metrics_table",
    "sim_settings",
]



# --- session state -------------------------------------------------------------------------


def init_state() -> None:
    """Session defaults; idempotent, so pages also work when AppTest runs them directly."""
    ss = st.session_state
    ss.setdefault("design", None)
    """The current `Design` (always valid)."""
    ss.setdefault("design_origin", "")
    ss.setdefault("design_epoch", 0)  # bumps when a different design is opened: widget keys reset
    ss.setdefault("verdicts", {})  # design name → verdict line of its last run this session
    ss.setdefault("runs", {})  # run key → RunResult, the session's own results (for Export)
    ss.setdefault("last_run_key", None)
    if "draft_id" not in ss:
        # A refresh starts a new session but keeps the URL: ?draft=<id> brings the draft back,
        # moved to this session's own fresh, unguessable id (a draft is claimed once, so a
        # leaked URL stops working). A new tab has no ?draft= and gets its own id.
        qp = st.query_params.get("draft")
        ss.draft_id = new_draft_id()
        if ss.design is None and isinstance(qp, str):
            restored = workspace().claim_draft(qp, ss.draft_id)
            if restored is not None:
                ss.design = restored
                ss.design_origin = "draft (restored)"
    # Widget values of pages not shown are dropped by Streamlit; re-saving them here, before
    # any page runs, keeps settings and what-ifs across page switches.
    for k in [k for k in ss.keys() if isinstance(k, str) and k.startswith(STICKY_PREFIXES)]:
        ss[k] = ss[k]
    if st.query_params.get("draft") != ss.draft_id:
        st.query_params["draft"] = ss.draft_id


STICKY_PREFIXES = ("sim_", "cmp_", "compare_pick", "whatif:", "size:")


def sticky(key: str, default: Any, options: list | None = None) -> dict:
    """Widget kwargs for a value that survives page switches (key must use STICKY_PREFIXES).

    Sets the default through session state instead of `value=`, so Streamlit does not warn
    about a widget with both; a remembered value no longer among `options` is reset.
    """
    ss = st.session_state
    if key not in ss or (options is not None and ss[key] not in options):
        ss[key] = default
    return {"key": key}


def design_token(design: Design) -> str:
    """A short id of the design's content (what-if widgets reset when the design changes)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, design.model_dump_json(by_alias=True)).hex[:12]


def workspace() -> Workspace:
    # The root is the server's configuration ($SDW_WORKSPACE, default ./workspace), never a
    # visitor's choice: a sidebar field let anyone make the server write and list anywhere.
    return Workspace()


def sidebar() -> None:
    """The current design and the workspace folder, on every page."""
    with st.sidebar:
        d = current_design()
        if d is not None:
            st.caption(f"Current design: **{d.name}** — {st.session_state.design_origin}")
        else:
            st.caption("No design open — pick one in the Library.")
        st.caption(f"Workspace: `{workspace_dir()}` (set by the server: $SDW_WORKSPACE)")


def current_design() -> Design | None:
    return st.session_state.get("design")


def set_design(design: Design, origin: str | None = None, *, new: bool = False) -> None:
    """Make `design` current and autosave it as this session's draft.

    `new=True` (a different design was opened) resets the Builder's widget keys.
    """
    ss = st.session_state
    ss.design = design
    if origin is not None:
        ss.design_origin = origin
    if new:
        ss.design_epoch = ss.get("design_epoch", 0) + 1
    try:
        workspace().save_draft(ss.draft_id, design)
    except (OSError, WorkspaceError) as e:  # never lose the edit because the disk said no
        st.warning(f"Could not autosave the draft: {e}")


def require_design() -> Design:
    """The current design, or an explanation and a stop."""
    d = current_design()
    if d is None:
        st.info("No design is open. Open one in the **Library** page first.")
        st.page_link("app_pages/library.py", label="Go to the Library", icon=":material/library_books:")
        st.stop()
    return d


# --- colleagues' modules, guarded ----------------------------------------------------------


def optional_module(name: str) -> ModuleType | None:
    """Import a module that may not be built yet; None (and a note in state) if missing."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        st.session_state.setdefault("_missing", {})[name] = str(e)
        return None


def engine_missing(*names: str) -> bool:
    """Show a clear message and return True when any of `names` cannot be imported."""
    missing = [n for n in names if optional_module(n) is None]
    if missing:
        detail = "; ".join(f"{n}: {st.session_state['_missing'][n]}" for n in missing)
        st.warning(f"Engine not available: {', '.join(missing)} could not be imported ({detail}).")
    return bool(missing)


# --- diagrams and problems -----------------------------------------------------------------


def dot_of(design: Design, annotate: Any = None) -> str | None:
    diagram = optional_module("designs.diagram")
    if diagram is None:
        return None
    return diagram.to_dot(design, annotate=annotate) if annotate is not None else diagram.to_dot(design)


def show_diagram(design: Design, annotate: Any = None, *, height: int | None = None) -> str | None:
    """Render the design's diagram; returns the DOT (None when the diagram module is missing)."""
    try:
        dot = dot_of(design, annotate)
    except Exception as e:  # a diagram bug must not take the page down with it
        st.warning(f"The diagram could not be drawn: {e}")
        return None
    if dot is None:
        st.caption("Diagram not available (designs.diagram is not installed yet).")
        return None
    if height:
        st.graphviz_chart(dot, height=height, width="stretch")
    else:
        st.graphviz_chart(dot, width="stretch")
    return dot


def show_problems(problems: list[Problem], *, title: str = "The design is not valid") -> None:
    lines = []
    for p in problems:
        where = f"line {p.line} · " if p.line else ""
        path = f"`{p.path}`: " if p.path else ""
        hint = f" (did you mean `{p.suggestion}`?)" if p.suggestion else ""
        lines.append(f"- {where}{path}{p.message}{hint}")
    st.error(f"**{title}**\n\n" + "\n".join(lines))


# --- the library of canonical designs ------------------------------------------------------


@st.cache_data(max_entries=4, show_spinner=False)
def _library_cached(stamp: tuple) -> list[tuple[str, str, str, str | None, str | None]]:
    lib = importlib.import_module("designs.library")
    out = []
    for name, path, problem in lib.list_library():
        try:
            out.append((name, str(path), problem, load_design(path).model_dump_json(by_alias=True), None))
        except DesignFileError as e:
            out.append((name, str(path), problem, None, str(e)))
    return out


def library_entries() -> list[tuple[str, str, str, Design | None, str | None]]:
    """(name, path, problem, design or None, error) for each canonical design."""
    lib = optional_module("designs.library")
    if lib is None:
        return []
    folder = lib.library_dir()
    # Files are read again when any of them changes (mtime in the cache key).
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.yaml")))
    return [
        (n, p, prob, Design.model_validate_json(j) if j else None, err)
        for n, p, prob, j, err in _library_cached(stamp)
    ]


# --- estimates and runs, cached on plain values --------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def estimate_cached(design_json: str):
    """The analytic estimate of a design given as JSON (the cache key)."""
    analytic = importlib.import_module("sim.twin.analytic")
    return analytic.estimate(Design.model_validate_json(design_json))


class _Unfinished(Exception):
    """Carries a cancelled (partial) result out of the cached function, so it is not cached."""

    def __init__(self, result):
        self.result = result


@st.cache_data(max_entries=16, show_spinner=False)
def _simulate(design_json: str, seed: int, precision: float, max_requests: int, max_seconds: float, _progress=None, _cancel=None):
    engine = importlib.import_module("sim.des.engine")
    result = engine.simulate(
        Design.model_validate_json(design_json),
        seed=seed,
        precision=precision,
        max_requests=max_requests,
        max_seconds=max_seconds,
        progress=_progress,
        cancel=_cancel,
    )
    if getattr(result, "partial", False):
        raise _Unfinished(result)
    return result


def simulate_cached(design: Design, settings: dict, progress: Callable[[float, str], None] | None = None, cancel: threading.Event | None = None):
    """Run (or fetch) a simulation; a cancelled run is returned but never cached."""
    try:
        return _simulate(
            design.model_dump_json(by_alias=True),
            int(settings["seed"]),
            float(settings["precision"]),
            int(settings["max_requests"]),
            float(settings["max_seconds"]),
            _progress=progress,
            _cancel=cancel,
        )
    except _Unfinished as u:
        return u.result


@st.cache_data(max_entries=8, show_spinner=False)
def _compare(design_jsons: tuple[str, ...], seed: int, precision: float, max_requests: int, max_seconds: float):
    engine = importlib.import_module("sim.des.engine")
    designs = [Design.model_validate_json(j) for j in design_jsons]
    return engine.compare(designs, seed=seed, precision=precision, max_requests=max_requests, max_seconds=max_seconds)


def compare_cached(designs: list[Design], settings: dict):
    return _compare(
        tuple(d.model_dump_json(by_alias=True) for d in designs),
        int(settings["seed"]),
        float(settings["precision"]),
        int(settings["max_requests"]),
        float(settings["max_seconds"]),
    )


def progress_updater(bar) -> Callable[[float, str], None]:
    """A progress callback for the engine that moves `bar`.

    The run happens inside a cached function; Streamlit records elements touched there for
    replay, and replaying an update of a bar made outside the function fails. Updating the
    bar in a copy of the context with Streamlit's "inside a cached function" flag cleared
    keeps the update out of that recording (the flag is a ContextVar; the rest of the
    context, such as the fragment state, must stay).
    """
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import in_cached_function
    except ImportError:  # a Streamlit without the flag: update directly
        in_cached_function = None

    def _move(f: float, text: str) -> None:
        if in_cached_function is not None:
            in_cached_function.set(False)
        bar.progress(f, text=text)

    def update(fraction: float, message: str = "") -> None:
        f = min(1.0, max(0.0, float(fraction)))
        contextvars.copy_context().run(_move, f, message or f"{f:.0%}")

    return update


def verdict_line(result) -> tuple[bool | None, str]:
    """(all met?, 'Verdict: PASS — 3 of 3 SLOs met') from a run's SLO checks."""
    checks = list(getattr(result, "slo", []) or [])
    if not checks:
        return None, "Verdict: no SLOs set — nothing to check"
    failed = [c.metric for c in checks if c.met is False]
    unknown = [c.metric for c in checks if c.met is None]
    met = len(checks) - len(failed) - len(unknown)
    if failed:
        return False, f"Verdict: FAIL — {', '.join(failed)} not met ({met} of {len(checks)} SLOs met)"
    if unknown:
        return None, f"Verdict: PASS on {met} of {len(checks)} SLOs; unknown: {', '.join(unknown)}"
    return True, f"Verdict: PASS — {met} of {len(checks)} SLOs met"


def remember_run(design: Design, key: str, result) -> None:
    ss = st.session_state
    ss.runs[key] = result
    ss.last_run_key = key
    ss.verdicts[design.name] = verdict_line(result)[1]


def run_key(design: Design, settings: dict) -> str:
    return f"{uuid.uuid5(uuid.NAMESPACE_URL, design.model_dump_json(by_alias=True))}:{sorted(settings.items())}"



# (label, getter, lower is better) for the comparison table; None values are left blank.
_METRICS = (
    ("latency p50 (ms)", lambda r: r.latency_ms.p50),
    ("latency p95 (ms)", lambda r: r.latency_ms.p95),
    ("latency p99 (ms)", lambda r: r.latency_ms.p99),
    ("TTFT p95 (ms)", lambda r: r.ttft_ms.p95 if r.ttft_ms else None),
    ("TPOT p95 (ms)", lambda r: r.tpot_ms.p95 if r.tpot_ms else None),
    ("cost (USD/day)", lambda r: r.cost_per_day_usd),
    ("cost per 1k requests (USD)", lambda r: r.cost_per_1k_requests_usd),
    ("dropped requests", lambda r: r.dropped_requests),
)


def _fmt(v) -> str:
    return "—" if v is None else f"{v:,.4g}" if isinstance(v, float) else f"{v:,}"


def _delta(base, v) -> str:
    if v is None or base is None:
        return "—"
    rel = f" ({(v - base) / base:+.0%})" if base else ""
    return f"{v - base:+,.4g}{rel}"


def metrics_table(labels: list[str], results: list) -> list[dict]:
    """One row per metric: each design's value, its change against the first, the winner."""
    rows = []
    for metric, get in _METRICS:
        values = [get(r) for r in results]
        if all(v is None for v in values):
            continue
        row: dict = {"metric": metric}
        base = values[0]
        for label, v in zip(labels, values):
            row[label] = _fmt(v)
        for label, v in zip(labels[1:], values[1:]):
            row[f"Δ {label}"] = _delta(base, v)
        known = [(v, label) for label, v in zip(labels, values) if v is not None]
        best = min(v for v, _ in known)
        winners = [label for v, label in known if v == best]
        row["winner"] = "tie" if len(winners) == len(known) > 1 else ", ".join(winners)
        rows.append(row)
    verdicts = {"metric": "verdict"} | {label: verdict_line(r)[1].removeprefix("Verdict: ") for label, r in zip(labels, results)}
    bottlenecks = {"metric": "bottleneck"} | {label: r.bottleneck or "—" for label, r in zip(labels, results)}
    return rows + [verdicts, bottlenecks]


def sim_settings(prefix: str, *, precision: float, max_requests: int, max_seconds: float, per: str = "") -> dict:
    """The simulation-settings expander (seed, precision, budgets), remembered under `prefix`.

    Returns plain values for `simulate(...)`/`compare(...)` and for cache keys.
    """
    with st.expander("Simulation settings", expanded=False):
        s1, s2, s3, s4 = st.columns(4)
        seed = s1.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, **sticky(f"{prefix}seed", 0))
        prec = s2.select_slider("Target precision of p95 (±)", options=[0.01, 0.02, 0.05, 0.1, 0.2], format_func=lambda x: f"{x:.0%}", **sticky(f"{prefix}precision", precision))
        n = s3.number_input(f"Max requests{per}", min_value=100, max_value=50_000_000, step=10_000, **sticky(f"{prefix}max_requests", max_requests))
        secs = s4.number_input(f"Max wall seconds{per}", min_value=1.0, max_value=3600.0, **sticky(f"{prefix}max_seconds", max_seconds))
    return {"seed": int(seed), "precision": float(prec), "max_requests": int(n), "max_seconds": float(secs)}
