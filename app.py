"""OpsForge console entry point: page navigation and the shared sidebar.

Run with ``make run`` (or ``streamlit run app.py``). Each page lives in ``console/``. The folder
is not named ``pages/`` because Streamlit (1.67) also discovers that folder by itself, and its
discovered pages take over when a page URL is the first request after a restart.
"""

from __future__ import annotations

import logging

import streamlit as st

from console._sidebar import render_sidebar

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="OpsForge", page_icon=":material/troubleshoot:", layout="wide")

PAGES = [
    st.Page("console/live.py", title="Live", icon=":material/monitoring:", default=True),
    st.Page("console/analyze.py", title="Analyze", icon=":material/troubleshoot:"),
    st.Page("console/incidents.py", title="Incidents", icon=":material/history:"),
    st.Page("console/patterns.py", title="Patterns and Knowledge", icon=":material/database:"),
    st.Page("console/settings.py", title="Settings", icon=":material/settings:"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
