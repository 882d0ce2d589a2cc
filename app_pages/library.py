"""Library: start a new design, or open a canonical one or your own — duplicate, delete (undo), upload."""

import streamlit as st

from app_pages import _widgets as W
from designs import forms
from designs.io import DesignFileError, parse_design
from designs.workspace import WorkspaceError

W.init_state()
W.sidebar()
ss = st.session_state
ws = W.workspace()

st.title("Library")
st.caption("Start a new design, or from a canonical design or one of your own. Opening a design makes it the current one for every page.")

if ss.get("library_msg"):
    st.success(W.plain(ss.pop("library_msg")))
W.show_flash()

# Undo of the last delete stays offered until used or another design is deleted.
if ss.get("last_deleted"):
    c1, c2 = st.columns([4, 1])
    c1.info(W.plain(f"Deleted {ss.last_deleted} (moved to the workspace trash)."))
    if c2.button("Undo delete", key="undo_delete"):
        try:
            ws.restore(ss.last_deleted)
            ss.library_msg = f"Restored {ss.last_deleted}."
        except WorkspaceError as e:
            W.flash("error", str(e))
        ss.last_deleted = None
        st.rerun()

entries = W.library_entries()

with st.container(border=True, key="new_design_box"):
    st.subheader("New design")
    n1, n2, n3 = st.columns([2, 2, 1])
    templates = ["(blank: one service)"] + [name for name, _p, _prob, d, _e in entries if d is not None]
    template = n1.selectbox("Start from", templates, key="new_template")
    new_name = n2.text_input("Name", value="", placeholder="new_design", key="new_name")
    if n3.button("New design", key="new_design", type="primary"):
        base = None if template == templates[0] else next(d for name, _p, _prob, d, _e in entries if name == template)
        name = new_name.strip() or (f"{template}_copy" if base is not None else "new_design")
        try:
            d = forms.blank_design(name) if base is None else forms.rename_design(base, name)
        except DesignFileError as e:
            W.show_problems(e.problems, title="Not created")
        else:
            W.open_design(d, "new design" + (f" from {template}" if base is not None else ""), None)
            ss.library_msg = f"Opened a new design {name}. Build it in the Builder; Save gives it a file."
            st.rerun()


def _card(key: str, name: str, problem: str, design, error: str | None, *, own: bool) -> None:
    with st.container(border=True):
        st.subheader(name)
        if problem:
            st.markdown(W.plain(problem))
        if error:
            st.error(W.plain(error))
            if own and st.button("Delete", key=f"del_{key}"):
                _delete(name)
            return
        if own and design.name != name:
            st.caption(W.plain(f"The design inside this file is named {design.name}."))
        found = W.design_problems(design)
        if found:
            st.badge(f"invalid: {len(found)} problem(s)", color="red")
            st.caption(W.plain("; ".join(W.problem_line(p) for p in found))[:400])
        else:
            # Verdicts are keyed by the design's content: another design of the same name
            # never lends its verdict.
            verdict = ss.verdicts.get(W.design_token(design))
            st.caption(W.plain(verdict) if verdict else "Not simulated in this session yet.")
        W.show_diagram(design, height=180, thumbnail=True)
        b1, b2, b3 = st.columns(3)
        if b1.button("Open", key=f"open_{key}", type="primary"):
            W.open_design(design, f"{'workspace' if own else 'library'}: {name}", name if own else None)
            ss.library_msg = f"Opened {name}. Edit it in the Builder or check it on the Capacity page."
            st.rerun()
        if b2.button("Duplicate as variant", key=f"dup_{key}"):
            try:
                new_name, _ = ws.save_new(f"{name}_variant", design)  # exclusive create: no lost copies
                ws.save(new_name, forms.rename_design(design, new_name), overwrite=True)  # name = file name
                ss.library_msg = f"Saved a copy as {new_name} in {ws.root}."
            except (WorkspaceError, DesignFileError, OSError) as e:
                W.flash("error", f"Could not save the variant: {e}")
            st.rerun()
        if own and b3.button("Delete", key=f"del_{key}"):
            _delete(name)


def _delete(name: str) -> None:
    try:
        ws.delete(name)
        ss.last_deleted = name
        if ss.get("design_file") == name:
            ss.design_file = None  # the open design stays open, now without a file
    except (WorkspaceError, OSError) as e:
        W.flash("error", f"Could not delete {name}: {e}")
    st.rerun()


st.header("Canonical designs")
cols = st.columns(2)
for i, (name, _path, problem, design, error) in enumerate(entries):
    with cols[i % 2]:
        _card(f"lib_{name}", name, problem, design, error, own=False)

st.header("Your designs")
st.caption(W.plain(f"Workspace: {ws.root}"))
own = ws.list_designs()
if not own:
    st.caption("Nothing saved yet — start a new design, duplicate a canonical one or save from the Builder.")
cols = st.columns(2)
for i, (name, path) in enumerate(own):
    try:
        design, error = ws.load(name), None
    except (DesignFileError, WorkspaceError) as e:
        design, error = None, str(e)
    with cols[i % 2]:
        _card(f"ws_{name}", name, design.problem.split("\n")[0] if design else "", design, error, own=True)

st.header("Upload a design")
upload = st.file_uploader("A design YAML file", type=["yaml", "yml"], key="upload")
if upload is not None and ss.get("upload_done") != upload.file_id:
    text = upload.getvalue().decode("utf-8", errors="replace")
    try:
        design = parse_design(text, upload.name)
        # What `sdw validate` runs after parsing: a file it refuses is refused here too.
        import sim

        found = sim.validation_problems(design, text)
        if found:
            raise DesignFileError(upload.name, found)
    except DesignFileError as e:
        W.show_problems(e.problems, title=f"{upload.name} is not a valid design (sdw validate refuses it)")
    else:
        try:
            name, _ = ws.save_new(upload.name.rsplit(".", 1)[0], design)
        except (WorkspaceError, OSError) as e:
            W.show_problems([], title=f"{upload.name} not saved: {e}")
        else:
            ss.upload_done = upload.file_id
            W.open_design(design, f"workspace: {name}", name)
            ss.library_msg = f"Uploaded {upload.name} as {name} and opened it."
            st.rerun()
