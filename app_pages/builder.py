"""Builder: edit the current design with generated forms or as YAML; the diagram follows."""

import pandas as pd
import streamlit as st

from app_pages import _widgets as W
from components.catalogue import KINDS, TIERS
from designs import forms
from designs.forms import FieldSpec
from designs.io import DesignFileError, dump_design, parse_design
from designs.model import SLO, Workload
from designs.workspace import WorkspaceError

W.init_state()
W.sidebar()
ss = st.session_state
design = W.require_design()
epoch = ss.design_epoch

st.title(f"Builder — {design.name}")
left, right = st.columns([2, 3])


def _commit(new_design) -> None:
    global design
    design = new_design
    W.set_design(new_design)


def _field_widget(spec: FieldSpec, key: str):
    """One widget for one field; returns the value in the model's terms (None = default)."""
    label, help_ = spec.label, spec.help or None
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
        return st.number_input(
            label + (" — empty: default" if spec.optional else ""),
            min_value=cast(lo) if lo is not None else None,
            max_value=cast(hi) if hi is not None else None,
            value=cast(v) if v is not None else None,
            step=1 if is_int else None,
            format=None if is_int else "%g",
            key=key,
            help=help_,
        )
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
                    out[sub.name] = _field_widget(FieldSpec(**{**sub.__dict__, "value": sub_v}), f"{key}:{shape}:{sub.name}")
        return out
    st.caption(f"`{spec.name}`: edit in the YAML tab. {spec.help}")
    return v


def _same(spec: FieldSpec, new) -> bool:
    old = spec.value
    if spec.type == "distribution":
        return (old.model_dump() if old is not None else None) == new
    if spec.type == "str" and spec.optional:
        return (old or None) == (new or None)
    return old == new


def _edit_fields(specs: list[FieldSpec], key_prefix: str, path_prefix: str) -> None:
    """Render `specs`; apply each changed value through `forms.apply_path`."""
    for spec in specs:
        if spec.type == "other":
            st.caption(f"`{spec.name}` — edit in the YAML tab. {spec.help}")
            continue
        new = _field_widget(spec, f"{key_prefix}:{spec.name}")
        if _same(spec, new):
            continue
        try:
            _commit(forms.apply_path(design, f"{path_prefix}.{spec.name}", new))
        except DesignFileError as e:
            W.show_problems(e.problems, title=f"{spec.name} not changed")


with left:
    tab_comp, tab_flow, tab_load, tab_yaml = st.tabs(["Components", "Flow", "Workload & SLOs", "YAML"])

    with tab_comp:
        ids = [c.id for c in design.components]
        cid = st.selectbox("Component", ids, key=f"b{epoch}:component", format_func=lambda i: f"{i} ({design.component(i).kind})")
        if cid in ids:
            comp = design.component(cid)
            st.caption(type(comp).description)
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
            new_id = st.text_input("Id", value="", placeholder=forms.new_component_id(design, kind), key="add_id")
            if st.button("Add component", key="add_component"):
                try:
                    _commit(forms.add_component(design, kind, new_id.strip() or None))
                    st.rerun()
                except DesignFileError as e:
                    W.show_problems(e.problems, title="Component not added")

    with tab_flow:
        ids = [c.id for c in design.components]
        entry = st.selectbox("Entry (where a request starts)", ids, index=ids.index(design.entry), key=f"b{epoch}:entry")
        if entry != design.entry:
            try:
                _commit(forms.apply_path(design, "entry", entry))
            except DesignFileError as e:
                W.show_problems(e.problems, title="Entry not changed")
        rows = [
            {"#": i, "from": e.from_, "to": e.to, "p": e.p, "parallel": e.parallel, "back edge (max repeats)": e.max_repeats, "label": e.label or ""}
            for i, e in enumerate(design.flow)
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        if design.flow:
            c1, c2 = st.columns([3, 1])
            idx = c1.selectbox("Edge to remove", range(len(design.flow)), format_func=lambda i: f"#{i}: {design.flow[i].from_} → {design.flow[i].to}", key="edge_remove_pick")
            if c2.button("Remove edge", key="remove_edge"):
                try:
                    _commit(forms.remove_edge(design, int(idx)))
                    st.rerun()
                except DesignFileError as e:
                    W.show_problems(e.problems, title="Edge not removed")
        with st.form("add_edge_form"):
            st.markdown("**Add an edge**")
            c1, c2, c3 = st.columns(3)
            src = c1.selectbox("From", ids, key="edge_from")
            dst = c2.selectbox("To", ids, key="edge_to")
            p = c3.number_input("Probability p", min_value=0.0, max_value=1.0, value=1.0, key="edge_p", help="Branch probability; fan-out (parallel) edges must have p = 1.")
            c4, c5 = st.columns(2)
            parallel = c4.checkbox("Parallel (fan-out, joins later)", key="edge_parallel")
            back = c5.number_input("Back edge: max repeats (0 = plain edge)", min_value=0, max_value=1000, value=0, key="edge_repeats", help="An agent loop: returns to an earlier step with probability p, at most this many times.")
            if st.form_submit_button("Add edge"):
                try:
                    _commit(forms.add_edge(design, src, dst, p, parallel=parallel, max_repeats=int(back) or None))
                    st.rerun()
                except DesignFileError as e:
                    W.show_problems(e.problems, title="Edge not added")
        for w in design.warnings():
            st.warning(f"`{w.path}`: {w.message}")

    with tab_load:
        st.subheader("Workload")
        _edit_fields(forms.describe_model(Workload, design.workload), f"b{epoch}:workload", "workload")
        st.subheader("SLOs")
        _edit_fields(forms.describe_model(SLO, design.slo), f"b{epoch}:slo", "slo")

    with tab_yaml:
        st.caption("Edit the file directly; it is applied when valid. Invalid text keeps the last valid design (the diagram shows it).")
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
                W.set_design(parsed, new=True)  # new widget keys: the form shows the YAML's values
                st.rerun()

    st.divider()
    c1, c2 = st.columns([3, 1])
    save_name = c1.text_input("Save to workspace as", value=design.name, key="save_name")
    ws = W.workspace()
    try:
        taken = ws.exists(save_name)
    except WorkspaceError:
        taken = False
    replace = taken and st.checkbox(f"Replace the saved design '{save_name.strip()}'", key="save_replace")
    if c2.button("Save", key="save_design"):
        try:
            path = ws.save(save_name, design, overwrite=bool(replace))
            ss.design_origin = f"workspace: {ws.check_name(save_name)}"
            st.success(f"Saved to {path}")
        except WorkspaceError as e:
            st.error(f"Not saved: {e}")
        except OSError as e:
            st.error(f"Not saved: {e.strerror or e}")

with right:
    st.subheader("Diagram")
    W.show_diagram(design)
    st.caption(f"{len(design.components)} components, {len(design.flow)} edges; draft autosaved for this tab.")
