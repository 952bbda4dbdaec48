"""OpsForge console entry point (placeholder until the pages land)."""

import streamlit as st

st.set_page_config(page_title="OpsForge", layout="wide")
st.title("OpsForge")
st.write("Incident-analysis console.")
