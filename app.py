"""OpsForge console entry point: page navigation and the shared sidebar.

Run with ``make run`` (or ``streamlit run app.py``). Each page lives in ``pages/``.
"""

from __future__ import annotations

import logging

import streamlit as st

from pages._sidebar import render_sidebar

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="OpsForge", page_icon=":material/troubleshoot:", layout="wide")

PAGES = [
    st.Page("pages/live.py", title="Live", icon=":material/monitoring:", default=True),
    st.Page("pages/analyze.py", title="Analyze", icon=":material/troubleshoot:"),
    st.Page("pages/incidents.py", title="Incidents", icon=":material/history:"),
    st.Page("pages/patterns.py", title="Patterns and Knowledge", icon=":material/database:"),
    st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
