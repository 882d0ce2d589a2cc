"""Builder: edit the current design with generated forms or as YAML; the diagram follows.

Every edit is validated as `sdw validate` validates a file (the model's rules, then the
hardware checks); each problem is shown at the field it belongs to. Undo/redo cover every
edit; Save / Save as / Rename keep the design's name and its file name in step.
"""

import pandas as pd
import streamlit as st

from app_pages import _widgets as W
from components.catalogue import KINDS, TIERS
from designs import forms
from designs.forms import FieldSpec
from designs.io import DesignFileError, dump_design, parse_design
from designs.model import SLO, RequestClass, Workload
from designs.workspace import WorkspaceError, safe_name

W.init_state()
W.sidebar()
W.show_flash()
ss = st.session_state
design = W.require_design()
epoch = ss.design_epoch
problems = W.design_problems(design)
at_field = W.field_problems(design, problems)

st.title(f"Builder — {design.name}")


def _commit(new_design, *, rekey: bool = False) -> None:
    """Make an edit current; the design before it goes on the undo stack.

    `rekey=True` when one edit changes other fields too (a class share rescales the others):
    fresh widget keys make every box show the new values instead of re-sending old ones.
    """
    global design
    ss.history = (ss.get("history") or [])[-49:] + [design.model_dump_json(by_alias=True)]
    ss.future = []
    design = new_design
    W.set_design(new_design, new=rekey)


def _travel(src: str, dst: str) -> None:
    """Undo (history → future) or redo (future → history)."""
    stack = ss.get(src) or []
    if not stack:
        return
    ss[dst] = (ss.get(dst) or []) + [design.model_dump_json(by_alias=True)]
    ss[src] = stack[:-1]
    W.set_design(type(design).model_validate_json(stack[-1]), new=True)  # new keys: widgets show it


u1, u2, u3 = st.columns([1, 1, 6])
if u1.button("Undo", key="undo", disabled=not ss.get("history"), icon=":material/undo:"):
    _travel("history", "future")
    st.rerun()
if u2.button("Redo", key="redo", disabled=not ss.get("future"), icon=":material/redo:"):
    _travel("future", "history")
    st.rerun()
u3.caption(f"{len(ss.get('history') or [])} edit(s) to undo · {len(ss.get('future') or [])} to redo")

if problems:
    W.show_problems(problems, title=f"Does not pass sdw validate: {len(problems)} problem(s) — each is shown at its field below; Save and Capacity wait until they are fixed")

left, right = st.columns([2, 3])


def _show_field_problems(path: str) -> None:
    found = at_field.get(path)
    if found:
        # A keyed container: the browser test finds the error at its field by this key.
        with st.container(key=f"fielderr_{path.replace('.', '_')}"):
            for p in found:
                st.error(W.plain(p.message), icon=":material/error:")


def _field_widget(spec: FieldSpec, key: str):
    """One widget for one field; returns the value in the model's terms (None = default)."""
    label, help_ = spec.label, spec.help or None
    if spec.optional or spec.default is not None:
        # The label says what an empty box means ('default: 20 ms', 'default: none').
        note = forms.default_text(spec)
        label = f"{label} — optional, {note}" if spec.optional else label
        help_ = f"{help_ or ''} ({note})".strip()
    v = spec.value
    if spec.type == "bool":
        return st.checkbox(label, value=bool(v), key=key, help=help_)
    if spec.type == "choice":
        opts = list(spec.choices)
        return st.selectbox(label, opts, index=opts.index(v) if v in opts else 0, key=key, help=help_)
    if spec.type == "str":
        if spec.choices:
            opts = list(spec.choices) + ([v] if v and v not in spec.choices else [])
            return st.selectbox(label, opts, index=opts.index(v) if v in opts else 0, key=key, help=help_)
        text = st.text_area(label, value=v or "", key=key, help=help_, height=68) if spec.name == "notes" else st.text_input(label, value=v or "", key=key, help=help_)
        return text or (None if spec.optional else text)
    if spec.type in ("int", "float"):
        is_int = spec.type == "int"
        cast = int if is_int else float
        lo, hi = spec.widget_min, spec.widget_max
        kw = dict(
            min_value=cast(lo) if lo is not None else None,
            max_value=cast(hi) if hi is not None else None,
            step=1 if is_int else None,
            format=None if is_int else "%g",
            key=key,
            help=help_,
        )
        if spec.optional:
            # Streamlit lets a number box be emptied only when its default is None: the
            # current value goes in through session state, so clearing it means "default".
            if key not in ss:
                ss[key] = cast(v) if v is not None else None
            return st.number_input(label, value=None, **kw)
        return st.number_input(label, value=cast(v) if v is not None else None, **kw)
    if spec.type == "distribution":
        shapes = list(spec.variants)
        options = (["(none)"] if spec.optional else []) + shapes
        current = v.dist if v is not None else "(none)"
        shape = st.selectbox(f"{label} — distribution", options, index=options.index(current), key=f"{key}:dist", help=help_)
        if shape == "(none)":
            return None
        if v is None or v.dist != shape:
            # Switching shape starts from the same mean so the design keeps its load.
            mean = v.expected() if v is not None else 10.0
            return forms.default_distribution(spec.family, shape, mean)
        out = {"dist": shape}
        cols = st.columns(len(spec.variants[shape]) or 1)
        for col, sub in zip(cols, spec.variants[shape]):
            sub_v = getattr(v, sub.name)
            with col:
                if sub.type == "other":  # empirical values: a comma list
                    raw = st.text_input(sub.label, value=", ".join(f"{x:g}" for x in sub_v), key=f"{key}:{shape}:{sub.name}", help=sub.help)
                    try:
                        out[sub.name] = [float(x) for x in raw.replace(";", ",").split(",") if x.strip()]
                    except ValueError:
                        st.error("values must be numbers separated by commas")
                        out[sub.name] = sub_v
                else:
                    out[sub.name] = _field_widget(FieldSpec(**{**sub.__dict__, "value": sub_v, "optional": False, "default": None}), f"{key}:{shape}:{sub.name}")
        return out
    st.caption(W.plain(f"{spec.name}: edit in the YAML tab. {spec.help}"))
    return v


def _same(spec: FieldSpec, new) -> bool:
    old = spec.value
    if spec.type == "distribution":
        return (old.model_dump() if old is not None else None) == new
    if spec.type == "str" and spec.optional:
        return (old or None) == (new or None)
    return old == new


def _edit_fields(specs: list[FieldSpec], key_prefix: str, path_prefix: str, *, skip: tuple = ()) -> None:
    """Render `specs`; apply each changed value through `forms.apply_path`."""
    for spec in specs:
        if spec.name in skip:
            continue
        path = f"{path_prefix}.{spec.name}"
        if spec.type == "other":
            st.caption(W.plain(f"{spec.name} — edit in the YAML tab. {spec.help}"))
            _show_field_problems(path)
            continue
        new = _field_widget(spec, f"{key_prefix}:{spec.name}")
        _show_field_problems(path)
        if _same(spec, new):
            continue
        try:
            _commit(forms.apply_path(design, path, new))
        except DesignFileError as e:
            W.show_problems(e.problems, title=f"{spec.name} not changed")
        else:
            st.rerun()  # the form, the problems and the diagram follow the new design


def _request_classes() -> None:
    """The request mix: each class's share and token lengths (what every LLM figure rests on)."""
    st.subheader("Request classes")
    classes = design.workload.classes
    if not classes:
        st.caption("One implicit class (prompt 500 tokens, output 200 tokens, fixed). Add a class to set lengths.")
    for i, rc in enumerate(classes):
        with st.expander(f"{rc.name} — share {rc.share:.0%}", expanded=len(classes) <= 2):
            specs = {s.name: s for s in forms.describe_model(RequestClass, rc)}
            share = st.number_input("share (fraction 0–1)", min_value=0.001, max_value=1.0, value=float(rc.share), step=0.05,
                                    format="%g", key=f"b{epoch}:class:{i}:share", help="The other classes are rescaled so the shares sum to 1.")
            if share != rc.share:
                try:
                    _commit(forms.set_class_share(design, i, float(share)), rekey=True)
                    st.rerun()
                except DesignFileError as e:
                    W.show_problems(e.problems, title="Share not changed")
            _edit_fields([specs["name"], specs["prompt_tokens"], specs["output_tokens"]], f"b{epoch}:class:{i}", f"workload.classes.{i}")
            if len(classes) > 1 and st.button(f"Remove class {rc.name}", key=f"b{epoch}:class:{i}:remove"):
                try:
                    _commit(forms.remove_request_class(design, i), rekey=True)
                    st.rerun()
                except DesignFileError as e:
                    W.show_problems(e.problems, title="Class not removed")
    if st.button("Add a request class", key=f"b{epoch}:class:add"):
        _commit(forms.add_request_class(design), rekey=True)
        st.rerun()


with left:
    tab_comp, tab_flow, tab_load, tab_yaml = st.tabs(["Components", "Flow", "Workload & SLOs", "YAML"])

    with tab_comp:
        ids = [c.id for c in design.components]
        bad = {p.split(".")[1] for p in at_field if p.startswith("components.")}
        pick_key = f"b{epoch}:component"
        pending = ss.pop("_select_component", None)
        if pending in ids:
            ss[pick_key] = pending  # a component just added is the one shown
        elif ss.get(pick_key) not in ids and bad:
            ss[pick_key] = next(i for i in ids if i in bad)  # open on the component with a problem
        # Labels must not depend on the problems: a selectbox whose option labels change is a
        # new widget to Streamlit, and it would jump back to the first component on a fix.
        cid = st.selectbox("Component", ids, key=pick_key, format_func=lambda i: f"{i} ({design.component(i).kind})")
        if bad:
            st.caption(W.plain(f"⚠ Problems in: {', '.join(i for i in ids if i in bad)}"))
        if cid in ids:
            comp = design.component(cid)
            st.caption(W.plain(type(comp).description))
            _edit_fields(forms.describe_component(comp), f"b{epoch}:{cid}", f"components.{cid}")
            if st.button(f"Remove {cid}", key=f"b{epoch}:remove:{cid}"):
                try:
                    _commit(forms.remove_component(design, cid))
                    st.rerun()
                except DesignFileError as e:
                    W.show_problems(e.problems, title=f"{cid} not removed")

        with st.expander("Add a component", expanded=False):
            tier_names = list(TIERS)
            tier = st.selectbox("Tier", tier_names, format_func=lambda t: TIERS[t], key="add_tier")
            kinds = [k for k, cls in KINDS.items() if cls.tier == tier]
            kind = st.selectbox("Kind", kinds, format_func=lambda k: f"{k} — {KINDS[k].description}", key="add_kind")
            new_id = st.text_input("Id", value="", placeholder=forms.new_component_id(design, kind), key="add_id",
                                   help="Empty: the placeholder shown (the kind, numbered if taken).")
            if st.button("Add component", key="add_component"):
                try:
                    added = forms.add_component(design, kind, new_id.strip() or None)
                    _commit(added)
                    ss["_select_component"] = added.components[-1].id
                    del ss["add_id"]  # the next Add starts from an empty box, not the last id
                    st.rerun()
                except DesignFileError as e:
                    W.show_problems(e.problems, title="Component not added")

    with tab_flow:
        ids = [c.id for c in design.components]
        entry = st.selectbox("Entry (where a request starts)", ids, index=ids.index(design.entry), key=f"b{epoch}:entry")
        if entry != design.entry:
            try:
                _commit(forms.apply_path(design, "entry", entry))
                st.rerun()
            except DesignFileError as e:
                W.show_problems(e.problems, title="Entry not changed")
        rows = [
            {"#": i, "from": e.from_, "to": e.to, "p": e.p, "parallel": e.parallel, "back edge (max repeats)": e.max_repeats or "", "label": e.label or ""}
            for i, e in enumerate(design.flow)
        ]
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        else:
            st.caption("No edges yet: requests end at the entry. Add one below.")
        if design.flow:
            c1, c2 = st.columns([3, 1])
            idx = c1.selectbox("Edge to remove", range(len(design.flow)), format_func=lambda i: f"#{i}: {design.flow[i].from_} → {design.flow[i].to}", key="edge_remove_pick")
            if c2.button("Remove edge", key="remove_edge"):
                try:
                    _commit(forms.remove_edge(design, int(idx)))
                    st.rerun()
                except DesignFileError as e:
                    W.show_problems(e.problems, title="Edge not removed")
        src0, dst0 = forms.edge_defaults(design)
        token = W.design_token(design)  # the defaults follow the design (a new component is the usual target)
        with st.form(f"add_edge_form"):
            st.markdown("**Add an edge**")
            c1, c2, c3 = st.columns(3)
            src = c1.selectbox("From", ids, index=ids.index(src0), key=f"edge_from:{token}")
            dst = c2.selectbox("To", ids, index=ids.index(dst0), key=f"edge_to:{token}")
            p = c3.number_input("Probability p", min_value=0.0, max_value=1.0, value=1.0, key=f"edge_p:{token}", help="Branch probability; fan-out (parallel) edges must have p = 1.")
            c4, c5 = st.columns(2)
            parallel = c4.checkbox("Parallel (fan-out, joins later)", key=f"edge_parallel:{token}")
            back = c5.number_input("Back edge: max repeats (0 = plain edge)", min_value=0, max_value=1000, value=0, key=f"edge_repeats:{token}", help="An agent loop: returns to an earlier step with probability p, at most this many times.")
            if st.form_submit_button("Add edge"):
                try:
                    _commit(forms.add_edge(design, src, dst, p, parallel=parallel, max_repeats=int(back) or None))
                    st.rerun()
                except DesignFileError as e:
                    W.show_problems(e.problems, title="Edge not added")
        for w in design.warnings():
            st.warning(W.plain(f"{w.path}: {w.message}"))

    with tab_load:
        st.subheader("Workload")
        _edit_fields(forms.describe_model(Workload, design.workload), f"b{epoch}:workload", "workload", skip=("classes",))
        _request_classes()
        st.subheader("SLOs")
        _edit_fields(forms.describe_model(SLO, design.slo), f"b{epoch}:slo", "slo")

    with tab_yaml:
        st.caption("Edit the file directly; it is applied when it parses. Text that does not parse keeps the last design (the diagram shows it); hardware problems are listed with their lines, as sdw validate lists them.")
        current_text = dump_design(design)
        # Keyed on the YAML itself: a form edit shows fresh text, an invalid edit stays put.
        yaml_key = f"yaml:{epoch}:{hash(current_text)}"
        text = st.text_area("Design YAML", value=current_text, height=480, key=yaml_key)
        if text != current_text:
            try:
                parsed = parse_design(text, "design.yaml")
            except DesignFileError as e:
                ss.yaml_problems = e.problems
                W.show_problems(e.problems, title="YAML not applied — the last valid design is kept")
            else:
                ss.yaml_problems = []
                ss.history = (ss.get("history") or [])[-49:] + [design.model_dump_json(by_alias=True)]
                ss.future = []
                W.set_design(parsed, new=True)  # new widget keys: the form shows the YAML's values
                st.rerun()
        elif problems:
            W.show_problems(problems, title="sdw validate would refuse this file")

    st.divider()
    st.markdown("**Save to the workspace**")
    default_name = ss.get("design_file") or safe_name(design.name)
    if "save_name" not in ss:
        ss.save_name = default_name
    c1, c2, c3 = st.columns([3, 1, 1])
    save_name = c1.text_input("File name", key="save_name", help="The design's name follows the file name, so the two never disagree.")
    ws = W.workspace()
    opened = ss.get("design_file")
    try:
        target = ws.check_name(save_name)
    except WorkspaceError:
        target = None
    is_same = target is not None and target == opened
    overwrite = False
    if target and not is_same and ws.exists(target):
        overwrite = st.checkbox(f"Overwrite the existing {target}.yaml", key="save_overwrite")
    c1.caption(W.plain(f"Opened file: {opened}.yaml" if opened else "Not saved to a file yet"))

    def _save(rename_from: str | None = None) -> None:
        if problems:
            st.error(W.plain(f"Not saved: the design has {len(problems)} problem(s) that sdw validate refuses (listed above); your work is kept in this tab's draft."))
            return
        try:
            name = ws.check_name(save_name)
            if ws.exists(name) and name != opened and not overwrite:
                st.error(W.plain(f"Not saved: {name}.yaml exists in the workspace; tick Overwrite or pick another name."))
                return
            named = design if design.name == name else forms.rename_design(design, name)
            path = ws.save(name, named, overwrite=name == opened or overwrite)
            if rename_from and rename_from != name:
                ws.delete(rename_from)
        except (WorkspaceError, DesignFileError) as e:
            st.error(W.plain(f"Not saved: {e}"))
            return
        except OSError as e:
            st.error(W.plain(f"Not saved: {e.strerror or e}"))
            return
        if named is not design:
            _commit(named)
        ss.design_file = name
        ss.saved_token = W.design_token(named)
        ss.design_origin = f"workspace: {name}"
        verb = "Renamed to" if rename_from else "Saved to"
        W.flash("success", f"{verb} {path}" + (f" (the design is now named {name})" if named is not design else ""))
        st.rerun()

    if c2.button("Save" if is_same or not opened else "Save as", key="save_design", type="primary"):
        _save()
    if opened and not is_same and c3.button(f"Rename {opened}", key="rename_design", help=f"Save under the new name and remove {opened}.yaml (it goes to the trash)."):
        _save(rename_from=opened)

with right:
    st.subheader("Diagram")
    W.show_diagram(design)
    st.caption(f"{len(design.components)} components, {len(design.flow)} edges; draft autosaved for this tab.")
