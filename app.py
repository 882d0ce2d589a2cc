"""System Design Workbench — the Streamlit app (router only).

Run::

    uv run streamlit run app.py

Each page is a thin file in `app_pages/`; shared Streamlit helpers are in
`app_pages/_widgets.py`; everything else (workspace, forms, diff, engine) is plain Python.
"""

import sys

# Cache bytecode even where PYTHONDONTWRITEBYTECODE=1 is set: uv does not compile the whole
# environment up front (see pyproject.toml), so this process caches what the app loads.
if sys.dont_write_bytecode:
    sys.dont_write_bytecode = False
    print("sdw app: caching the bytecode of the modules the app loads (first start is the slow one)", file=sys.stderr)

import streamlit as st  # noqa: E402

from app_pages import _widgets  # noqa: E402

st.set_page_config(page_title="System Design Workbench", page_icon=":material/hub:", layout="wide")
_widgets.init_state()

page = st.navigation(
    [
        st.Page("app_pages/library.py", title="Library", icon=":material/library_books:", default=True),
        st.Page("app_pages/builder.py", title="Builder", icon=":material/build:"),
        st.Page("app_pages/capacity.py", title="Capacity", icon=":material/speed:"),
        st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("app_pages/size.py", title="Size", icon=":material/tune:"),
        st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
        st.Page("app_pages/practice.py", title="Practice", icon=":material/school:"),
    ]
)
page.run()
