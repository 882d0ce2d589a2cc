"""Library: the canonical designs and the user's own — open, duplicate, delete (undo), upload."""

import streamlit as st

from app_pages import _widgets as W
from designs.io import DesignFileError, parse_design
from designs.workspace import WorkspaceError

W.init_state()
W.sidebar()
ss = st.session_state
ws = W.workspace()

st.title("Library")
st.caption("Start from a canonical design or one of your own. Opening a design makes it the current one for every page.")

if ss.get("library_msg"):
    st.success(ss.pop("library_msg"))

# Undo of the last delete stays offered until used or another design is deleted.
if ss.get("last_deleted"):
    c1, c2 = st.columns([4, 1])
    c1.info(f"Deleted **{ss.last_deleted}** (moved to the workspace trash).")
    if c2.button("Undo delete", key="undo_delete"):
        try:
            ws.restore(ss.last_deleted)
            ss.library_msg = f"Restored {ss.last_deleted}."
        except WorkspaceError as e:
            st.error(str(e))
        ss.last_deleted = None
        st.rerun()


def _card(key: str, name: str, problem: str, design, error: str | None, *, own: bool) -> None:
    with st.container(border=True):
        st.subheader(name)
        if problem:
            st.markdown(problem)
        if error:
            st.error(error)
            return
        verdict = ss.verdicts.get(design.name)
        st.caption(verdict or "Not simulated in this session yet.")
        W.show_diagram(design, height=180)
        b1, b2, b3 = st.columns(3)
        if b1.button("Open", key=f"open_{key}", type="primary"):
            W.set_design(design, f"{'workspace' if own else 'library'}: {name}", new=True)
            ss.library_msg = f"Opened {name}. Edit it in the Builder or check it on the Capacity page."
            st.rerun()
        if b2.button("Duplicate as variant", key=f"dup_{key}"):
            try:
                new_name, _ = ws.save_new(f"{name}_variant", design)  # exclusive create: no lost copies
                ss.library_msg = f"Saved a copy as {new_name} in {ws.root}."
            except (WorkspaceError, OSError) as e:
                st.error(f"Could not save the variant: {e}")
            st.rerun()
        if own and b3.button("Delete", key=f"del_{key}"):
            try:
                ws.delete(name)
                ss.last_deleted = name
            except (WorkspaceError, OSError) as e:
                st.error(str(e))
            st.rerun()


st.header("Canonical designs")
if W.optional_module("designs.library") is None:
    st.warning("The canonical library is not available (designs.library could not be imported).")
entries = W.library_entries()
cols = st.columns(2)
for i, (name, _path, problem, design, error) in enumerate(entries):
    with cols[i % 2]:
        _card(f"lib_{name}", name, problem, design, error, own=False)

st.header("Your designs")
st.caption(f"Workspace: `{ws.root}`")
own = ws.list_designs()
if not own:
    st.caption("Nothing saved yet — duplicate a canonical design or save from the Builder.")
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
    try:
        design = parse_design(upload.getvalue().decode("utf-8", errors="replace"), upload.name)
    except DesignFileError as e:
        W.show_problems(e.problems, title=f"{upload.name} is not a valid design")
    else:
        name, _ = ws.save_new(upload.name.rsplit(".", 1)[0], design)
        ss.upload_done = upload.file_id
        W.set_design(design, f"workspace: {name}", new=True)
        ss.library_msg = f"Uploaded {upload.name} as {name} and opened it."
        st.rerun()
