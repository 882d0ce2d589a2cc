"""Practice: a timed 45-minute design round against the simulator, then a review.

Flow: pick or draw a prompt → Start (the timer runs; pause any time) → write your estimates
(locked before any figure is shown) → build the design from the skeleton → Submit → review
(SLOs and budget, graded estimates with the arithmetic, lint findings with fixes, rubric,
the reference for the Compare page) → the attempt is stored in the workspace's
attempts.sqlite and listed below with a progress chart.
"""

import random
import time

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import _widgets as W
from designs.forms import add_component, add_edge, apply_edit, remove_edge
from designs.io import DesignFileError, dump_design, parse_design
from designs.numfmt import fmt
from designs.workspace import WorkspaceError
from components.catalogue import KINDS
from review.grading import ESTIMATE_FIELDS, Review, review_attempt
from review.lint import slo_checks
from review.history import HistoryError, list_attempts, load_round, progress_series, save_attempt, save_round
from review.prompts import get_prompt, load_prompts, reference_design, skeleton_design

W.init_state()
W.sidebar()
ss = st.session_state

# Phases of a 45-minute round (minutes), from the system-design round's usual shape.
PHASES = (("Requirements", 5), ("Estimates", 10), ("High-level design", 15), ("Deep dive", 10), ("Wrap-up", 5))
ROUND_S = sum(m for _, m in PHASES) * 60
SIM = {"precision": 0.05, "max_requests": 20_000, "max_seconds": 10.0}  # a short run: the review is interactive

for key, default in (("px_prompt_id", None), ("px_started_at", None), ("px_paused_at", None), ("px_paused_s", 0.0),
                     ("px_estimates", None), ("px_design", None), ("px_yaml_error", None), ("px_review", None),
                     ("px_attempt_id", None), ("px_finished_at", None), ("px_draws", 0), ("px_rev", 0),
                     ("px_round_id", None), ("px_round_saved", None), ("px_unsaved", None)):
    ss.setdefault(key, default)

# --- the round survives a refresh: its state lives in the attempts database -----------------
_ROUND = ("px_prompt_id", "px_started_at", "px_paused_at", "px_paused_s", "px_estimates", "px_finished_at", "px_attempt_id",
          "px_unsaved")


def _round_state() -> dict:
    state = {k[3:]: ss[k] for k in _ROUND}
    state["design_yaml"] = dump_design(ss.px_design) if ss.px_design is not None else None
    state["review_json"] = ss.px_review.model_dump_json() if ss.px_review is not None else None
    state["owner"] = ss.get("draft_owner")  # the browser's tag (W.browser_owner): only it reopens the round
    return state


def _persist() -> None:
    """Write the round to attempts.sqlite when it changed; the URL (?round=) finds it again."""
    if ss.px_prompt_id is None:
        return
    state = _round_state()
    if state != ss.px_round_saved:
        try:
            ss.px_round_id = save_round(W.workspace().root, state, ss.px_round_id)
        except (OSError, ValueError) as e:  # the round goes on in memory; say it is not saved
            st.warning(W.plain(f"The round could not be saved (a refresh would lose it): {e}"))
            return
        ss.px_round_saved = state
    if not ss.get("draft_owner"):  # no browser tag: a refresh could not reopen it, so no id in the URL
        return
    if st.query_params.get("round") != str(ss.px_round_id):  # page switches drop the URL's params
        st.query_params["round"] = str(ss.px_round_id)


_qp = st.query_params.get("round")
if ss.px_prompt_id is None and ss.px_round_id is None and isinstance(_qp, str) and _qp.isdigit():
    try:
        _state = load_round(W.workspace().root, int(_qp))
    except HistoryError as e:
        _state = None
        st.warning(W.plain(f"The round in the URL could not be restored: {e}"))
    # Round ids are small integers: a round opens only for the browser that played it.
    if _state and _state.get("prompt_id") and ss.get("draft_owner") and _state.get("owner") == ss.draft_owner:
        for k in _ROUND:
            ss[k] = _state.get(k[3:], ss.get(k))
        try:
            ss.px_design = parse_design(_state["design_yaml"], "practice.yaml") if _state.get("design_yaml") else None
            ss.px_review = Review.model_validate_json(_state["review_json"]) if _state.get("review_json") else None
        except (DesignFileError, ValueError):
            ss.px_design = ss.px_design or None
        ss.px_round_id, ss.px_round_saved = int(_qp), _round_state()
        ss.px_rev += 1
_persist()


def _active_s(now: float) -> float:
    if ss.px_started_at is None:
        return 0.0
    end = ss.px_finished_at or (ss.px_paused_at if ss.px_paused_at is not None else now)
    return max(0.0, end - ss.px_started_at - ss.px_paused_s)


def _phase(active_s: float) -> tuple[str, float]:
    t = 0.0
    for name, minutes in PHASES:
        t += minutes * 60
        if active_s < t:
            return name, t - active_s
    return "Over time", 0.0


def _mmss(s: float) -> str:
    s = int(round(max(0.0, s)))
    return f"{s // 60:02d}:{s % 60:02d}"


def _start(prompt_id: str) -> None:
    ss.px_prompt_id = prompt_id
    ss.px_started_at = time.time()
    ss.px_paused_at = None
    ss.px_paused_s = 0.0
    ss.px_estimates = None
    ss.px_design = skeleton_design(get_prompt(prompt_id))
    ss.px_yaml_error = None
    ss.px_review = None
    ss.px_attempt_id = None
    ss.px_finished_at = None
    ss.pop("px_yaml", None)
    ss.pop("px_doc_html", None)
    ss.pop("practice_reference", None)
    ss.px_rev += 1
    ss.px_round_id, ss.px_round_saved = None, None  # a new round, a new row
    _persist()


def _save_attempt() -> None:
    """Store the submitted attempt (`ss.px_unsaved`); on failure it stays in the session with the reason."""
    try:
        ss.px_attempt_id = save_attempt(W.workspace().root, **{k: v for k, v in ss.px_unsaved.items() if k != "error"})
        ss.px_unsaved = None
    except (HistoryError, OSError) as e:
        ss.px_unsaved = {**ss.px_unsaved, "error": str(e)}


def _unsaved_attempt_box() -> None:
    """The attempt the database refused: the reason, Retry, and the attempt as a JSON download."""
    import json

    u = ss.px_unsaved
    st.error(W.plain(f"This attempt is not saved yet: {u.get('error')}. It is kept in this session — make the "
                     "workspace writable and retry, or download it."))
    r1, r2 = st.columns(2)
    if r1.button("Retry saving the attempt", key="px_retry_save"):
        _save_attempt()
        st.rerun()
    r2.download_button("Download the attempt (JSON)", json.dumps({k: v for k, v in u.items() if k != "error"}, indent=2, sort_keys=True),
                       file_name=f"{u['prompt_id']}-attempt.json", mime="application/json", key="px_unsaved_dl")


st.title("Practice a design round")
prompts = load_prompts()
by_id = {p.id: p for p in prompts}

# --- 1. pick or draw ------------------------------------------------------------------------
c1, c2, c3 = st.columns([3, 1, 1])
choice = c1.selectbox("Prompt", [p.id for p in prompts], format_func=lambda i: f"{by_id[i].title} ({i})", key="px_choice")
if c2.button("Draw at random", key="px_draw"):
    ss.px_draws += 1
    # An explicit generator per draw (never the global RNG); time-seeded so each draw differs.
    pick = random.Random(time.time_ns() + ss.px_draws).choice(prompts)
    _start(pick.id)
if c3.button("Start this prompt", key="px_start", type="primary"):
    _start(choice)

if ss.px_prompt_id is None:
    st.info("Pick a prompt and press **Start this prompt** (or draw one). The 45-minute timer starts then.")
    prompt = None
else:
    prompt = by_id[ss.px_prompt_id]

if prompt is not None:
    # --- 2. timer: a fragment that reruns itself every second while the clock runs -----------
    @st.fragment(run_every=1.0 if ss.px_finished_at is None and ss.px_paused_at is None else None)
    def _timer() -> None:
        active = _active_s(time.time())
        phase, left_in_phase = _phase(active)
        t1, t2, t3, t4 = st.columns([2, 1, 1, 1])
        paused = ss.px_paused_at is not None
        state = "finished" if ss.px_finished_at else ("paused" if paused else "running")
        t1.markdown(f"**Phase: {phase}** — {_mmss(left_in_phase)} left in this phase ({state})")
        t2.metric("Elapsed", _mmss(active))
        t3.metric("Round left", _mmss(ROUND_S - active))
        if ss.px_finished_at is None:
            if paused:
                if t4.button("Resume", key="px_resume"):
                    ss.px_paused_s += time.time() - ss.px_paused_at
                    ss.px_paused_at = None
                    st.rerun()  # the whole page: the fragment starts ticking again
            elif t4.button("Pause", key="px_pause"):
                ss.px_paused_at = time.time()
                st.rerun()
        st.progress(min(1.0, active / ROUND_S), text=" · ".join(f"{n} {m} min" for n, m in PHASES))

    _timer()

    # --- 3. the prompt -----------------------------------------------------------------------
    st.subheader(prompt.title)
    st.markdown(prompt.statement)
    req = {k: v for k, v in prompt.requirements.model_dump().items() if v is not None}
    st.dataframe(pd.DataFrame([{"requirement": k, "value": str(v)} for k, v in req.items()]), hide_index=True)
    with st.expander("Hints"):
        for h in prompt.hints:
            st.markdown(f"- {h}")

    # --- 4. estimates, before any figure -------------------------------------------------------
    st.subheader("Your back-of-envelope estimates")
    if ss.px_estimates is None:
        with st.form("px_estimates_form"):
            cols = st.columns(len(ESTIMATE_FIELDS))
            vals = {}
            for col, (key, (label, unit)) in zip(cols, ESTIMATE_FIELDS.items()):
                # Empty means "no estimate" (graded as missing); 0 is an estimate (no GPUs, say).
                vals[key] = col.number_input(f"{label} ({unit})", min_value=0.0, value=None, step=1.0, key=f"px_est_{key}")
            if st.form_submit_button("Lock in estimates"):
                ss.px_estimates = {k: (None if v is None else float(v)) for k, v in vals.items()}
                st.rerun()
        st.caption("The design and its simulation open once your estimates are locked in.")
        st.stop()
    st.write(", ".join(f"{ESTIMATE_FIELDS[k][0]}: {fmt(v, ESTIMATE_FIELDS[k][1])}" if v is not None else f"{ESTIMATE_FIELDS[k][0]}: —"
                       for k, v in ss.px_estimates.items()))

    # --- 5. build from the skeleton -------------------------------------------------------------
    st.subheader("Your design")
    design = ss.px_design
    W.show_diagram(design)
    if ss.px_review is None:
        ids = [c.id for c in design.components]
        e1, e2, e3, e4 = st.columns([2, 2, 1, 1])
        src = e1.selectbox("Edge from", ids, key="px_edge_from")
        dst = e2.selectbox("to", ids, index=min(1, len(ids) - 1), key="px_edge_to")
        prob = e3.number_input("p", min_value=0.0, max_value=1.0, value=1.0, step=0.05, key="px_edge_p")
        if e4.button("Add edge", key="px_add_edge"):
            try:
                ss.px_design = add_edge(design, src, dst, float(prob))
                ss.pop("px_yaml", None)
                ss.px_rev += 1
                st.rerun()
            except DesignFileError as e:
                W.show_problems(e.problems, title="Edge not added")
        k1, k2, k3 = st.columns([2, 2, 1])
        kind = k1.selectbox("Add a component", list(KINDS), key="px_kind", format_func=lambda k: f"{k} — {KINDS[k].description[:60]}")
        if k3.button("Add component", key="px_add_comp"):
            try:
                ss.px_design = add_component(design, kind)
                ss.pop("px_yaml", None)
                ss.px_rev += 1
                st.rerun()
            except DesignFileError as e:
                W.show_problems(e.problems, title="Component not added")
        if design.flow:
            drop = k2.selectbox("Remove edge", range(len(design.flow)), key="px_edge_drop",
                                format_func=lambda i: f"{design.flow[i].from_} → {design.flow[i].to}")
            if k2.button("Remove edge", key="px_remove_edge"):
                ss.px_design = remove_edge(design, int(drop))
                ss.pop("px_yaml", None)
                ss.px_rev += 1
                st.rerun()
        pools = [c for c in design.components if "replicas" in type(c).model_fields]
        if pools:
            with st.expander("Replicas", expanded=False):
                cols = st.columns(min(4, len(pools)))
                wanted = {}
                for i, c in enumerate(pools):
                    # The key carries the design's revision so the inputs follow every other edit.
                    wanted[c.id] = cols[i % len(cols)].number_input(
                        f"{c.id} ({c.kind})", min_value=1, max_value=100_000, value=int(c.replicas), step=1,
                        key=f"px_rep_{c.id}_{ss.px_rev}")
                if st.button("Apply replicas", key="px_apply_replicas"):
                    try:
                        new = design
                        for cid, n in wanted.items():
                            if int(n) != new.component(cid).replicas:
                                new = apply_edit(new, cid, "replicas", int(n))
                        ss.px_design = new
                        ss.px_rev += 1
                        ss.pop("px_yaml", None)
                        st.rerun()
                    except DesignFileError as e:
                        W.show_problems(e.problems, title="Replicas not applied")
        with st.expander("Edit as YAML (replicas, models, SLOs, everything)", expanded=False):
            ss.setdefault("px_yaml", dump_design(design))
            st.text_area("Design YAML", key="px_yaml", height=360)
            if st.button("Apply YAML", key="px_apply_yaml"):
                try:
                    ss.px_design = parse_design(ss.px_yaml, "practice.yaml")
                    ss.px_yaml_error = None
                    ss.px_rev += 1
                    st.rerun()
                except DesignFileError as e:
                    ss.px_yaml_error = e.problems
            if ss.px_yaml_error:
                W.show_problems(ss.px_yaml_error, title="YAML not applied (the previous design is kept)")
        b1, b2 = st.columns(2)
        if b1.button("Open in the Builder", key="px_to_builder", help="Edit with the full builder; come back and take it over."):
            W.set_design(design, "practice attempt", new=True)
            st.switch_page("app_pages/builder.py")
        cur = W.current_design()
        if cur is not None and cur is not design and b2.button(f"Take over the Builder's design ({cur.name})", key="px_from_builder"):
            ss.px_design = cur
            ss.pop("px_yaml", None)
            ss.px_rev += 1
            st.rerun()
        for w in design.warnings():
            st.caption(f"⚠ {w.path}: {w.message}")

        # --- 6. submit ----------------------------------------------------------------------------
        if st.button("Submit for review", key="px_submit", type="primary"):
            with st.spinner("Estimating and simulating your design…"):
                try:
                    review = review_attempt(design, prompt, ss.px_estimates, seed=0, **SIM)
                except Exception as e:  # noqa: BLE001 - the attempt stays editable
                    st.error(f"The review failed: {e}")
                    st.stop()
            ss.px_finished_at = time.time()
            ss.px_review = review
            # The attempt is kept in the session first; the database write may fail (an
            # unwritable workspace) and is then offered again, with a download beside it.
            ss.px_unsaved = dict(prompt_id=prompt.id, started_at=ss.px_started_at, finished_at=ss.px_finished_at,
                                 time_taken_s=_active_s(ss.px_finished_at), estimates=ss.px_estimates,
                                 design_yaml=dump_design(design), scores=review.scores)
            _save_attempt()
            # The reference and the attempt go to the workspace (Compare lists workspace designs)
            # and into session state, pre-selected for the Compare page.
            try:
                ref = reference_design(prompt)
                ws = W.workspace()
                ws.save(f"{prompt.id}-attempt", design.model_copy(update={"name": f"{prompt.id}-attempt"}),
                        overwrite=True)  # the practice's own files: each attempt replaces the last
                ws.save(f"{prompt.id}-reference", ref, overwrite=True)
                ss.practice_reference = ref
                ss.compare_pick = [f"workspace: {prompt.id}-attempt", f"workspace: {prompt.id}-reference"]
            except (DesignFileError, WorkspaceError, OSError) as e:
                st.caption(f"Reference not prepared for Compare: {e}")
            st.rerun()
        st.stop()

    # --- 7. review ----------------------------------------------------------------------------------
    review = ss.px_review
    st.subheader(f"Review — {review.total:.0f} / 100")
    if ss.px_unsaved is not None:
        _unsaved_attempt_box()
    else:
        st.caption(f"Attempt #{ss.px_attempt_id} saved · time taken {_mmss(_active_s(ss.px_finished_at))}")
    if review.estimate_error:
        st.error(f"**Verdict: FAIL** — the analytic model refused the design: {review.estimate_error}")
    if review.sim_error:
        st.warning(review.sim_error)
    checks, _src = slo_checks(review.estimate, review.result)
    if checks:
        failed = [c for c in checks if c.met is False]
        text = " · ".join(f"{c.metric}: {'✅' if c.met else '❌' if c.met is False else '❔'} {c.detail or c.value}" for c in checks)
        (st.error if failed else st.success)(f"**Verdict: {'FAIL' if failed else 'PASS'}** — {text}")
    rec = review.result or review.estimate
    if rec is not None:
        m1, m2, m3 = st.columns(3)
        if review.result is not None:
            p95 = review.result.latency_ms.p95
            m1.metric("p95 latency (simulated)", fmt(p95, "ms") if p95 is not None else "not measured")
        else:
            m1.metric("p95 latency (analytic)", fmt(review.estimate.latency_ms_p95_approx, "ms") if review.estimate.stable else "unbounded")
        m2.metric("Cost per day", fmt(rec.cost_per_day_usd, "USD/day"))
        m3.metric("Bottleneck", rec.bottleneck or "—")

    st.markdown("#### Your estimates against the model")
    st.dataframe(pd.DataFrame([{
        "estimate": g.label, "yours": fmt(g.user, g.unit), "model": fmt(g.model, g.unit), "unit": g.unit, "verdict": g.verdict,
        "within 2×": g.within_2x, "safe side": g.direction_ok, "comment": g.comment} for g in review.grades]),
        hide_index=True, width="stretch")
    for g in review.grades:
        st.markdown(f"- **{g.label}**: {g.arithmetic}")

    st.markdown("#### Design lint")
    if not review.findings:
        st.success("No findings.")
    for f in review.findings:
        box = {"error": st.error, "warning": st.warning, "info": st.info}[f.severity]
        box(f"**{f.rule}**{' · ' + f.component if f.component else ''}: {f.message}\n\n*Fix:* {f.fix}")

    st.markdown("#### Rubric")
    st.dataframe(pd.DataFrame([{"area": r.area, "score": r.score, "of": r.max_score, "why": "; ".join(r.reasons)[:300],
                                "an interviewer would probe next": r.probe} for r in review.rubric]), hide_index=True, width="stretch")
    with st.expander("Interviewer's probes for this prompt"):
        for q in prompt.probes:
            st.markdown(f"- {q}")
    from app_pages._drills import drills_section  # the interviewer's follow-ups, stored with the attempt (issue 13)
    from review.grading import DRILLS_AREA, with_drills
    from review.history import list_drills, save_drill, update_attempt_scores

    _ws = W.workspace().root

    def _record_drill(r):
        # Each drill is stored with the attempt, then the review is re-graded with all of them
        # (the rubric's `drills` area, review.grading.DRILLS_AREA) and the attempt's scores updated.
        # An unwritable workspace (HistoryError) loses only the record: the drill is graded and shown.
        try:
            save_drill(_ws, ss.px_attempt_id, r)
            stored = list_drills(_ws, ss.px_attempt_id) if ss.px_attempt_id is not None else [r]
        except HistoryError as e:
            st.warning(W.plain(f"The drill was not stored: {e}"))
            stored = [r]
        base = ss.px_review.model_copy(update={"drills": []})
        ss.px_review = with_drills(base, ss.px_design, stored)
        if ss.px_attempt_id is not None:
            try:
                update_attempt_scores(_ws, ss.px_attempt_id, ss.px_review.scores)
            except HistoryError as e:
                st.warning(W.plain(f"The attempt's new scores were not stored: {e}"))
        area = next(a for a in ss.px_review.rubric if a.area == DRILLS_AREA)
        return f"Drills {area.score:g} / 5 over {len(ss.px_review.drills)} drill(s) → review total {ss.px_review.total:.0f} / 100"

    try:
        _past = list_drills(_ws, ss.px_attempt_id) if ss.px_attempt_id is not None else []
    except HistoryError as e:
        _past = []
        st.caption(W.plain(f"Stored drills not shown: {e}"))
    drills_section(ss.px_design, key="px_drill", record=_record_drill, past=_past)

    st.markdown("#### Compare with the reference")
    if ss.get("practice_reference") is not None:
        st.write(f"The reference **{prompt.id}-reference** and your **{prompt.id}-attempt** are saved in the workspace "
                 "and pre-selected on the Compare page.")
        st.page_link("app_pages/compare.py", label="Open Compare", icon="⚖️")

    from review.doc import Variant, render_doc

    if review.estimate is not None:
        variants = []
        ref = ss.get("practice_reference")
        if ref is not None:
            try:
                from sim import estimate as _est

                variants.append(Variant(f"{prompt.id}-reference (analytic)", ref, _est(ref)))
            except Exception:  # noqa: BLE001 - the doc is still useful without the comparison
                pass
        doc = render_doc(ss.px_design, review.estimate, review.result, review.findings, variants, diagram=f"{prompt.id}-attempt.svg")
        d1, d2 = st.columns(2)
        d1.download_button("Download design doc (Markdown)", doc, file_name=f"{prompt.id}-attempt.md", mime="text/markdown", key="px_doc")
        if d2.button("Prepare the HTML version (diagram inline)", key="px_doc_html_make"):
            from review.doc import render_html

            ss.px_doc_html = render_html(ss.px_design, review.estimate, review.result, review.findings, variants)
        if ss.get("px_doc_html"):
            d2.download_button("Download design doc (HTML)", ss.px_doc_html, file_name=f"{prompt.id}-attempt.html", mime="text/html", key="px_doc_html")
        st.caption("The Markdown refers to the diagram as an SVG beside it; export the SVG from the Export page, or use the HTML.")
    if st.button("New attempt" if ss.px_unsaved is None else "New attempt (drops the unsaved attempt above)", key="px_new"):
        for k in ("px_prompt_id", "px_started_at", "px_estimates", "px_design", "px_review", "px_attempt_id", "px_finished_at",
                  "px_round_id", "px_round_saved", "px_unsaved"):
            ss[k] = None
        st.query_params.pop("round", None)
        st.rerun()

# --- 8. history ---------------------------------------------------------------------------------
st.divider()
st.subheader("History")
root = W.workspace().root
try:
    attempts = list_attempts(root)
except HistoryError as e:
    attempts = None
    st.warning(W.plain(f"The history cannot be read: {e}"))
if attempts is None:
    pass
elif not attempts:
    st.caption("No attempts yet. They are stored in attempts.sqlite in the workspace folder.")
else:
    st.dataframe(pd.DataFrame([{
        "#": a.id, "prompt": a.prompt_id, "finished": a.finished_iso, "minutes": round(a.time_taken_s / 60, 1),
        "score": a.total} for a in attempts]), hide_index=True, width="stretch", key="px_history")
    series = pd.DataFrame(progress_series(root))
    if len(series) >= 1:
        chart = (alt.Chart(series).mark_line(point=True)
                 .encode(x=alt.X("n:Q", title="attempt"), y=alt.Y("total:Q", title="score (0–100)", scale=alt.Scale(domain=[0, 100])),
                         color="prompt_id:N", tooltip=["prompt_id", "finished_at", "total", "time_taken_min"])
                 .properties(title="Progress", height=260))
        st.altair_chart(chart, width="stretch")
