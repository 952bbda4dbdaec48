"""Settings: the store and LLM provider in use, whether each works, and the settings in effect."""

from __future__ import annotations

import logging
import os

import streamlit as st

from console._shared import current_settings, failure_shown, fix_for, get_store
from opsforge_core.views import escape_markdown, settings_rows

logger = logging.getLogger(__name__)

# Variables read by the SDKs themselves, shown only as set or unset.
SDK_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
)


def store_section() -> None:
    settings = current_settings()
    st.markdown("#### Store")
    where = (
        f"SQLite file {settings.sqlite_path}"
        if settings.store == "sqlite"
        else f"DynamoDB in {settings.region}, endpoint {settings.dynamodb_endpoint or 'AWS'}"
    )
    st.text(f"{where}; table prefix {settings.table_prefix!r}")
    try:
        store = get_store()
        store.check()
    except Exception as exc:  # noqa: BLE001 - the page reports it with the fix
        logger.warning("store check failed: %s", exc)
        st.error(f"**The store does not answer:** {escape_markdown(exc)}")
        st.info(escape_markdown(fix_for(exc)))
        return
    st.success("The store answers and every table exists.")


def provider_section() -> None:
    from opsforge_core.llm import provider_status

    settings = current_settings()
    st.markdown("#### LLM provider")
    ok, message = provider_status(settings)
    if ok:
        st.success(escape_markdown(message))
    else:
        st.error(escape_markdown(message))
        st.info(
            "Analyses still complete with the offline synthesis, marked as a fallback. To use "
            "a model, set OPSFORGE_LLM_PROVIDER=bedrock with AWS credentials and model access "
            "in the region, or OPSFORGE_LLM_PROVIDER=anthropic with ANTHROPIC_API_KEY; then "
            "restart the console."
        )


def settings_section() -> None:
    st.markdown("#### Settings in effect")
    rows = settings_rows(current_settings().describe())
    rows += [
        {"setting": name, "value": "set" if os.environ.get(name) else "unset"}
        for name in SDK_VARIABLES
    ]
    st.dataframe(rows, hide_index=True, key="settings-table")
    st.caption("Secrets show only as set or unset. Settings come from OPSFORGE_* variables.")


st.title("Settings")
with failure_shown("Checking the store"):
    store_section()
with failure_shown("Checking the LLM provider"):
    provider_section()
with failure_shown("Reading the settings"):
    settings_section()
