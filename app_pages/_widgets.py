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
import re
import threading
import time
import uuid
from types import ModuleType
from typing import Any, Callable

import streamlit as st

from designs.forms import problem_field
from designs.io import DesignFileError, dump_design, load_design
from designs.model import Design, Problem
from designs.numfmt import fmt, fmt_delta, is_unbounded
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
    "plain",
    "flash",
    "show_flash",
    "design_problems",
    "field_problems",
    "status_badges",
    "passes",
    "short_labels",
    "open_design",
    "unsaved",
    "problem_line",
    "check_line",
    "headline_items",
    "show_headlines",
    "RunJob",
    "CompareJob",
    "browser_owner",
]



# --- session state -------------------------------------------------------------------------

XSRF_COOKIE = "_streamlit_xsrf"
"""Streamlit's XSRF cookie: a random per-browser token (format ``2|mask|masked token|time``;
the server keeps the token and re-masks it on every page load). Never in a URL."""


def browser_owner() -> str | None:
    """A tag of this browser session that a URL cannot carry: the hash of the token in
    Streamlit's XSRF cookie (on by default), or None without it (XSRF protection off, AppTest).

    Drafts are saved with it and opened only for it, so a ``?draft=`` URL copied to another
    browser opens nothing; a refresh, or another tab of the same browser, presents the same tag.
    """
    try:
        raw = st.context.cookies.get(XSRF_COOKIE)
    except Exception:  # no client context (a bare script run)
        return None
    if not raw:
        return None
    value = str(raw).strip("\"'")
    parts = value.split("|")
    try:
        if len(parts) == 4 and parts[0] == "2":  # unmask: token = masked XOR mask (repeated)
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            token = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))
        else:
            token = bytes.fromhex(value)
    except ValueError:
        return None
    if len(token) < 16:
        return None
    import hashlib

    return hashlib.sha256(b"sdw-draft-owner\0" + token).hexdigest()



def init_state() -> None:
    """Session defaults; idempotent, so pages also work when AppTest runs them directly."""
    ss = st.session_state
    ss.setdefault("design", None)
    """The current `Design` (always valid)."""
    ss.setdefault("design_origin", "")
    ss.setdefault("design_file", None)  # workspace name the design was opened from / saved to
    ss.setdefault("saved_token", None)  # content token of what that file holds
    ss.setdefault("design_epoch", 0)  # bumps when a different design is opened: widget keys reset
    ss.setdefault("history", [])  # Builder undo: earlier designs as JSON, newest last
    ss.setdefault("future", [])  # Builder redo
    ss.setdefault("flash", [])  # (kind, text) messages that survive the next rerun
    ss.setdefault("verdicts", {})  # design content token → verdict line of its last run this session
    ss.setdefault("runs", {})  # run key → RunResult, the session's own results (for Export)
    ss.setdefault("last_run_key", None)
    if "draft_id" not in ss:
        # A refresh starts a new session but keeps the URL: ?draft=<id> brings the draft back,
        # moved to this session's own fresh, unguessable id — for the browser that wrote it
        # only (its owner tag comes from a cookie, not the URL). A new tab gets its own id.
        qp = st.query_params.get("draft")
        ss.draft_id = new_draft_id()
        ss.draft_owner = browser_owner()
        if ss.design is None and isinstance(qp, str) and ss.draft_owner:
            # Only the browser that wrote the draft opens it (see `browser_owner`).
            restored = workspace().claim_draft(qp, ss.draft_id, owner=ss.draft_owner)
            if restored is not None:
                ss.design = restored
                ss.design_origin = "draft (restored)"
    # Widget values of pages not shown are dropped by Streamlit; re-saving them here, before
    # any page runs, keeps settings and what-ifs across page switches.
    for k in [k for k in ss.keys() if isinstance(k, str) and k.startswith(STICKY_PREFIXES)]:
        ss[k] = ss[k]
    if not ss.get("draft_owner"):  # a draft no browser can claim: nothing for the URL to carry
        st.query_params.pop("draft", None)
    elif st.query_params.get("draft") != ss.draft_id:
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
    """A short id of the design's content: verdicts, runs and caches are keyed by it, never by
    the design's name (two designs can share a name; one name can hold many contents)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, design.model_dump_json(by_alias=True)).hex[:12]


def unsaved() -> bool:
    """True when the current design differs from the file it was opened from (or has none)."""
    d = current_design()
    return d is not None and st.session_state.get("saved_token") != design_token(d)


def plain(text: object) -> str:
    """`text` with Markdown's special characters escaped: shown exactly as written.

    st.error/st.warning/st.caption interpret Markdown, which ate the underscores in
    "letters, digits, '_' and '-'"; every user-facing message goes through this.
    """
    s = re.sub(r"([\\`*_\[\]<>$~|:])", r"\\\1", str(text))
    # Line starts that would make a heading, a list or a quote.
    s = re.sub(r"(?m)^(\s*)([#>+\-])", r"\1\\\2", s)
    return re.sub(r"(?m)^(\s*\d+)\.", r"\1\\.", s)


def flash(kind: str, text: str) -> None:
    """A message that stays: shown now as a toast and on the page after the next rerun(s)
    until `show_flash` has displayed it once on a full run."""
    st.session_state.setdefault("flash", []).append((kind, str(text)))
    try:
        st.toast(str(text)[:200], icon={"error": "🚫", "warning": "⚠️"}.get(kind, "✅"))
    except Exception:  # a toast is a courtesy; the message itself is kept above
        pass


def show_flash() -> None:
    """Show (and clear) the messages `flash` kept across the rerun, as plain text."""
    msgs = st.session_state.get("flash") or []
    st.session_state.flash = []
    for kind, text in msgs:
        {"error": st.error, "warning": st.warning, "info": st.info}.get(kind, st.success)(plain(text))


def workspace() -> Workspace:
    # The root is the server's configuration ($SDW_WORKSPACE, default ./workspace), never a
    # visitor's choice: a sidebar field let anyone make the server write and list anywhere.
    return Workspace()


def sidebar() -> None:
    """The current design and the workspace folder, on every page."""
    with st.sidebar:
        d = current_design()
        if d is not None:
            f = st.session_state.get("design_file")
            where = f"file {f}.yaml" if f else "not saved to a file yet"
            if f and f != d.name:
                where += f" (the design inside is named {d.name})"
            st.caption(plain(f"Current design: {d.name} — {where}" + (" · unsaved changes" if f and unsaved() else "")))
            st.caption(plain(f"Opened from {st.session_state.design_origin}") if st.session_state.design_origin else "")
        else:
            st.caption("No design open — pick one in the Library.")
        st.caption(f"Workspace: `{workspace_dir()}` (set by the server: `sdw app --workspace` or $SDW_WORKSPACE)")


def current_design() -> Design | None:
    return st.session_state.get("design")


def set_design(design: Design, origin: str | None = None, *, new: bool = False) -> None:
    """Make `design` current and autosave it as this session's draft.

    `new=True` (the form must show new values: YAML applied, undo) resets the Builder's
    widget keys; opening another design is `open_design`.
    """
    ss = st.session_state
    ss.design = design
    if origin is not None:
        ss.design_origin = origin
    if new:
        ss.design_epoch = ss.get("design_epoch", 0) + 1
    try:
        workspace().save_draft(ss.draft_id, design, owner=ss.get("draft_owner"))
    except (OSError, WorkspaceError) as e:  # never lose the edit because the disk said no
        st.warning(f"Could not autosave the draft: {e}")


def open_design(design: Design, origin: str, file: str | None) -> None:
    """Open another design: new widget keys, what-ifs and undo history reset, and `file`
    (a workspace name, or None for a library design / a new one) becomes Save's default."""
    ss = st.session_state
    for k in [k for k in ss.keys() if isinstance(k, str) and k.startswith(("whatif:", "save_name"))]:
        del ss[k]
    ss.history, ss.future = [], []
    ss.design_file = file
    ss.saved_token = design_token(design) if file else None
    set_design(design, origin, new=True)


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


def dot_of(design: Design, annotate: Any = None, *, thumbnail: bool = False) -> str:
    from designs import diagram

    return diagram.to_dot(design, annotate, thumbnail=thumbnail)


def show_diagram(design: Design, annotate: Any = None, *, height: int | None = None, thumbnail: bool = False) -> str | None:
    """Render the design's diagram; returns the DOT (None when it could not be drawn)."""
    try:
        dot = dot_of(design, annotate, thumbnail=thumbnail)
    except Exception as e:  # a diagram bug must not take the page down with it
        st.warning(plain(f"The diagram could not be drawn: {e}"))
        return None
    if height:
        st.graphviz_chart(dot, height=height, width="stretch")
    else:
        st.graphviz_chart(dot, width="stretch")
    return dot


def problem_line(p: Problem) -> str:
    where = f"line {p.line} · " if p.line else ""
    path = f"{p.path}: " if p.path else ""
    hint = f" (did you mean '{p.suggestion}'?)" if p.suggestion else ""
    return f"{where}{path}{p.message}{hint}"


def show_problems(problems: list[Problem], *, title: str = "The design is not valid") -> None:
    """Every problem as plain text (no Markdown: paths and messages show as written)."""
    lines = [f"- {plain(problem_line(p))}" for p in problems]
    st.error(f"**{plain(title)}**\n\n" + "\n".join(lines))


@st.cache_data(max_entries=64, show_spinner=False)
def _problems(design_json: str) -> list[Problem]:
    import sim
    from designs.io import locate

    design = Design.model_validate_json(design_json)
    # The call `sdw validate` makes after parsing, located in the YAML the YAML tab shows.
    return locate(sim.validation_problems(design), dump_design(design))


def design_problems(design: Design) -> list[Problem]:
    """What `sdw validate` reports for this design (after parsing): `sim.validation_problems`,
    located at the lines of the design's YAML as the YAML tab shows it."""
    return list(_problems(design.model_dump_json(by_alias=True)))


def field_problems(design: Design, problems: list[Problem]) -> dict[str, list[Problem]]:
    """Problems grouped by the form field they belong to (`forms.problem_field`); '' = design."""
    out: dict[str, list[Problem]] = {}
    for p in problems:
        out.setdefault(problem_field(design, p) or "", []).append(p)
    return out


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
    import sim

    return sim.estimate(Design.model_validate_json(design_json))


class _Unfinished(Exception):
    """Carries a cancelled (partial) result out of the cached function, so it is not cached."""

    def __init__(self, result):
        self.result = result


@st.cache_data(max_entries=16, show_spinner=False)
def _simulate(design_json: str, seed: int, precision: float, max_requests: int, max_seconds: float, _progress=None, _cancel=None):
    import sim

    result = sim.simulate(
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
    import sim

    designs = [Design.model_validate_json(j) for j in design_jsons]
    return sim.compare(designs, seed=seed, precision=precision, max_requests=max_requests, max_seconds=max_seconds)


def compare_cached(designs: list[Design], settings: dict):
    return _compare(
        tuple(d.model_dump_json(by_alias=True) for d in designs),
        int(settings["seed"]),
        float(settings["precision"]),
        int(settings["max_requests"]),
        float(settings["max_seconds"]),
    )


@st.cache_data(max_entries=32, show_spinner=False)
def render_cached(dot: str, fmt: str):
    """The diagram rendered by Graphviz (a subprocess per call; a page switch re-runs the
    page, so the bytes are kept per DOT text and format). A failure is raised, not cached."""
    return importlib.import_module("designs.render").render(dot, fmt)


@st.cache_data(max_entries=16, show_spinner=False)
def _doc_files(design_json: str, run_key: str | None, stem: str, _result=None) -> tuple[str, str]:
    from review.doc import render_doc, render_html
    from review.lint import lint

    design = Design.model_validate_json(design_json)
    est = estimate_cached(design_json)
    findings = lint(design, est, _result)  # the N−1 checks re-estimate a copy per component
    return render_html(design, est, _result, findings), render_doc(design, est, _result, findings, diagram=f"{stem}.svg")


def design_doc_files(design: Design, stem: str, result=None, run_key: str | None = None) -> tuple[str, str]:
    """(HTML, Markdown) of the design doc, kept per design content and run (`run_key`)."""
    # A cancelled (partial) run and the full run after it share a run key: tell them apart.
    key = None if result is None else f"{run_key}:{getattr(result, 'simulated_requests', '')}:{getattr(result, 'partial', '')}"
    return _doc_files(design.model_dump_json(by_alias=True), key, stem, _result=result)


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
    failed = [_SLO_METRIC.get(c.metric, (c.metric,))[0] for c in checks if c.met is False]
    unknown = [_SLO_METRIC.get(c.metric, (c.metric,))[0] for c in checks if c.met is None]
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
    ss.setdefault("run_tokens", {})[key] = design_token(design)
    ss.verdicts[design_token(design)] = verdict_line(result)[1]


def run_key(design: Design, settings: dict) -> str:
    return f"{uuid.uuid5(uuid.NAMESPACE_URL, design.model_dump_json(by_alias=True))}:{sorted(settings.items())}"



# (label, unit, getter) for the comparison table; missing values read "—".
_METRICS = (
    ("TTFT p95", "ms", lambda r: r.ttft_ms.p95 if r.ttft_ms else None),
    ("TPOT p95", "ms", lambda r: r.tpot_ms.p95 if r.tpot_ms else None),
    ("latency p50", "ms", lambda r: r.latency_ms.p50),
    ("latency p95", "ms", lambda r: r.latency_ms.p95),
    ("latency p99", "ms", lambda r: r.latency_ms.p99),
    ("cost per day", "USD", lambda r: r.cost_per_day_usd),
    ("cost per 1k requests", "USD per 1k requests", lambda r: r.cost_per_1k_requests_usd),
    ("dropped requests", "", lambda r: r.dropped_requests),
)
# The SLO field each metric answers: the metric an SLO is about is shown first.
_SLO_OF = {"TTFT p95": "ttft_p95_ms", "TPOT p95": "tpot_p95_ms", "latency p95": "latency_p95_ms",
           "latency p99": "latency_p99_ms", "cost per day": "daily_budget_usd"}


def passes(result) -> bool:
    """True when a run may be called best at anything: stable, complete, no SLO failed."""
    if result is None or not getattr(result, "stable", True) or getattr(result, "partial", False):
        return False
    return not any(c.met is False for c in getattr(result, "slo", []) or [])


def status_badges(result) -> list[tuple[str, str]]:
    """(text, colour) badges for one run: unstable / fails SLOs / partial / passes."""
    out = []
    if not result.stable:
        out.append(("unstable: the backlog grows", "red"))
    failed = [_SLO_METRIC.get(c.metric, (c.metric,))[0] for c in result.slo if c.met is False]
    if failed:
        out.append((f"fails {', '.join(failed)}", "red"))
    if result.partial:
        out.append(("partial (cancelled)", "orange"))
    if result.completed_requests == 0:
        out.append(("no request completed", "red"))
    if not out:
        out.append(("meets its SLOs" if result.slo else "stable (no SLOs set)", "green"))
    return out


def short_labels(labels: list[str]) -> list[str]:
    """Distinct labels a legend can show whole: 'A · name', 'B · name' (the letter keeps two
    designs with the same name apart; the source stays in the table's header)."""
    out = []
    for i, label in enumerate(labels):
        name = label.split(": ", 1)[-1]
        out.append(f"{chr(65 + i)} · {name[:40]}")
    return out


def metrics_table(labels: list[str], results: list, slo=None) -> list[dict]:
    """One row per metric: each design's value, its change against the first, the best.

    Values use the app's one number format (`designs.numfmt`). "best" is only awarded among
    designs that pass (stable, complete, no SLO failed): a cheap design that misses its
    SLOs wins nothing. Metrics an SLO is about come first.
    """
    rows = []
    eligible = [passes(r) for r in results]
    order = sorted(_METRICS, key=lambda m: (0 if slo is not None and getattr(slo, _SLO_OF.get(m[0], ""), None) is not None else 1))
    for metric, unit, get in order:
        values = [get(r) for r in results]
        if all(v is None for v in values):
            continue
        row: dict = {"metric": metric}  # each cell carries its unit (ms turn to s past 10,000)
        base = values[0]
        for label, v in zip(labels, values):
            row[label] = fmt(v, unit)
        for label, v in zip(labels[1:], values[1:]):
            row[f"Δ {label}"] = fmt_delta(base, v, unit)
        known = [(float(v), label) for label, v, ok in zip(labels, values, eligible) if ok and not is_unbounded(v)]
        if not known:
            row["best"] = "— (no design passes)"
        else:
            best = min(v for v, _ in known)
            winners = [label for v, label in known if v == best]
            row["best"] = "tie" if len(winners) == len(known) > 1 else ", ".join(winners)
        rows.append(row)
    verdicts = {"metric": "verdict"} | {label: verdict_line(r)[1].removeprefix("Verdict: ") for label, r in zip(labels, results)}
    status = {"metric": "status"} | {label: "; ".join(t for t, _ in status_badges(r)) for label, r in zip(labels, results)}
    bottlenecks = {"metric": "bottleneck"} | {label: r.bottleneck or "—" for label, r in zip(labels, results)}
    return rows + [status, verdicts, bottlenecks]


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


# --- headlines and SLO lines ------------------------------------------------------------------

# SLO metric → (label, unit of its value)
_SLO_METRIC = {
    "latency_p95_ms": ("latency p95", "ms"),
    "latency_p99_ms": ("latency p99", "ms"),
    "ttft_p95_ms": ("TTFT p95", "ms"),
    "tpot_p95_ms": ("TPOT p95", "ms"),
    "availability": ("availability", "%"),
    "cost_per_day_usd": ("cost per day", "USD/day"),
    "pipeline_hours": ("pipeline run", "h"),
}


def _slo_value(metric: str, v):
    return None if v is None else v * 100 if metric == "availability" else v


def check_line(check) -> str:
    """One SLO check in the app's number format; never 'None' or 'inf'."""
    label, unit = _SLO_METRIC.get(check.metric, (check.metric, ""))
    target = fmt(_slo_value(check.metric, check.target), unit)
    if check.value is None or is_unbounded(check.value):
        if check.met is False:
            return f"{label}: unbounded — a component cannot keep up, so no figure holds (target {target})"
        return f"{label}: unknown — {check.detail or 'not measured'} (target {target})"
    value = fmt(_slo_value(check.metric, check.value), unit)
    better = "≥" if check.metric == "availability" else "≤"
    worse = "<" if check.metric == "availability" else ">"
    line = f"{label}: {value} {better if check.met else worse} target {target}"
    if "straddles" in (check.detail or ""):
        line += " — the interval straddles the target; run longer or read it as a tie"
    return line


def headline_items(design: Design, rec, *, analytic: bool) -> list[dict]:
    """The figures a page leads with, in order: each SLO's own metric first (in SLO order),
    then TTFT/TPOT p95 for designs with an LLM, end-to-end p95 and cost per day.

    Each item: label, value (formatted), target (formatted or None), met (True/False/None).
    `rec` is an `Estimate` (analytic=True) or a `RunResult`.
    """
    checks = {c.metric: c for c in getattr(rec, "slo", []) or []}
    vals: dict[str, float | None] = {}
    if analytic:
        llm = list(getattr(rec, "llm", {}).values())
        if llm:
            vals["ttft_p95_ms"] = max((e.ttft_ms_p95_estimate or e.ttft_ms_estimate) for e in llm)
            vals["tpot_p95_ms"] = max((e.tpot_ms_p95_estimate or e.tpot_ms_estimate) for e in llm)
        vals["latency_p95_ms"] = rec.latency_ms_p95_approx if rec.arrival_rps else None
    else:
        if rec.ttft_ms is not None:
            vals["ttft_p95_ms"] = rec.ttft_ms.p95
        if rec.tpot_ms is not None:
            vals["tpot_p95_ms"] = rec.tpot_ms.p95
        vals["latency_p95_ms"] = rec.latency_ms.p95 if rec.completed_requests else None
        if design.slo.latency_p99_ms is not None:
            vals["latency_p99_ms"] = rec.latency_ms.p99 if rec.completed_requests else None
    vals["cost_per_day_usd"] = rec.cost_per_day_usd
    for m, c in checks.items():  # the check's own value wins (the twin's includes stuck time)
        if c.value is not None or m not in vals:
            vals[m] = c.value
    order = [c.metric for c in checks.values()] + ["ttft_p95_ms", "tpot_p95_ms", "latency_p95_ms", "cost_per_day_usd"]
    items, seen = [], set()
    approx = " (approx.)" if analytic else ""
    for m in order:
        if m in seen or m not in vals or m == "pipeline_hours":
            continue
        seen.add(m)
        label, unit = _SLO_METRIC[m]
        c = checks.get(m)
        v = vals[m]
        unbounded = is_unbounded(v) and (c is not None and c.met is False or analytic and m == "latency_p95_ms" and rec.arrival_rps and not rec.stable)
        items.append({
            "metric": m,
            "label": label + (approx if unit == "ms" else ""),
            "value": "unbounded" if unbounded else fmt(_slo_value(m, v), unit),
            "target": fmt(_slo_value(m, c.target), unit) if c is not None else None,
            "met": c.met if c is not None else None,
        })
    return items


def show_headlines(items: list[dict], per_row: int = 4) -> None:
    """st.metric per headline; the target and whether it is met go in the delta line."""
    for start in range(0, len(items), per_row):
        cols = st.columns(per_row)
        for col, it in zip(cols, items[start:start + per_row]):
            if it["target"] is None:
                col.metric(it["label"], it["value"], delta="no target set", delta_color="off", delta_arrow="off")
            else:
                word = {True: "meets", False: "misses", None: "unknown vs"}[it["met"]]
                col.metric(it["label"], it["value"], delta=f"{word} target {it['target']}",
                           delta_color={True: "normal", False: "inverse", None: "off"}[it["met"]], delta_arrow="off")


# --- simulations in the background -----------------------------------------------------------


class RunJob:
    """A simulation on a background thread, so the page stays live: progress, ETA, Cancel.

    Cancel sets the engine's cancel event; the engine returns what it measured so far
    (`partial=True`), which the page shows marked partial, as the CLI does. The thread makes
    no Streamlit calls; the page polls `fraction`, `report`, `done` from a fragment.
    """

    def __init__(self, design: Design, settings: dict, key: str):
        self.design, self.settings, self.key = design, dict(settings), key
        self.cancel = threading.Event()
        self.started = time.monotonic()
        self.fraction = 0.0
        self.report = None  # the engine's last `sim.Progress` message
        self.result = None
        self.error: str | None = None
        self.stored = False
        self.thread = threading.Thread(target=self._run, name=f"sdw-run-{key[:8]}", daemon=True)
        self.thread.start()

    def _progress(self, fraction: float, message: str = "") -> None:
        self.fraction = min(1.0, max(0.0, float(fraction)))
        self.report = message

    def _run(self) -> None:
        import sim

        try:
            s = self.settings
            self.result = sim.simulate(self.design, seed=int(s["seed"]), precision=float(s["precision"]),
                                       max_requests=int(s["max_requests"]), max_seconds=float(s["max_seconds"]),
                                       progress=self._progress, cancel=self.cancel)
        except Exception as e:  # the engine refuses with a message; the page shows it as text
            self.error = str(e)

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def eta_s(self) -> float | None:
        """Seconds left, from the pace so far (None until there is a pace to go by)."""
        f = self.fraction
        if f < 0.02 or f >= 1:
            return None
        return self.elapsed_s() * (1 - f) / f

    def text(self) -> str:
        """'measuring · 12,345 requests · p95 1,215.3 ms ± 100.2 ms · 42 s elapsed, about 1 min left'."""
        r = self.report
        phase = getattr(r, "phase", None) or "starting"
        parts = [phase]
        if getattr(r, "requests", 0):
            parts.append(f"{r.requests:,} requests simulated")
        if phase == "warm-up":
            parts.append("reaching steady state, nothing measured yet")
        if getattr(r, "p95_ms", None):
            hw = r.half_width_ms
            parts.append(f"p95 {fmt(r.p95_ms, 'ms')}" + (f" ± {fmt(hw, 'ms')}" if hw is not None else " (interval after 2 batches)"))
        t = f"{self.elapsed_s():,.0f} s elapsed"
        eta = self.eta_s()
        if eta is not None:
            t += f", about {_duration(eta)} left"
        parts.append(t)
        return " · ".join(parts)


class CompareJob(RunJob):
    """A comparison on a background thread: the designs one after another on the same seed
    (`sim.compare`), with "design 2 of 3" progress, an overall ETA and Cancel. Cancel keeps
    what was measured: the design running returns partial, the ones after it nothing."""

    def __init__(self, designs: list[Design], settings: dict, key: str, labels: list[str]):
        self.designs, self.labels = list(designs), list(labels)
        self.index = 0
        super().__init__(self.designs[0], settings, key)

    def _on_design(self, i: int) -> None:
        self.index, self.fraction, self.report = i, 0.0, None

    def _run(self) -> None:
        import sim

        try:
            s = self.settings
            self.result = sim.compare(self.designs, seed=int(s["seed"]), precision=float(s["precision"]),
                                      max_requests=int(s["max_requests"]), max_seconds=float(s["max_seconds"]),
                                      progress=self._progress, cancel=self.cancel, on_design=self._on_design)
        except Exception as e:  # the engine refuses with a message; the page shows it as text
            self.error = str(e)

    def overall(self) -> float:
        """Share of the whole comparison done (each design an equal part)."""
        return min(1.0, (self.index + self.fraction) / len(self.designs))

    def eta_s(self) -> float | None:
        f = self.overall()
        if f < 0.02 or f >= 1:
            return None
        return self.elapsed_s() * (1 - f) / f

    def text(self) -> str:
        """'design 2 of 3 (B · name) · measuring · 12,345 requests simulated · … about 1 min left'."""
        label = self.labels[self.index] if self.index < len(self.labels) else ""
        return f"design {self.index + 1} of {len(self.designs)} ({label}) · " + super().text()


def _duration(s: float) -> str:
    if s < 120:
        return f"{max(1, round(s))} s"
    return f"{s / 60:,.0f} min"
