"""The sidebar every page shares: the store and LLM provider in use and whether they work."""

from __future__ import annotations

import logging

import streamlit as st

from console._shared import current_settings, get_simulator, get_store

logger = logging.getLogger(__name__)

STATUS_TTL_SECONDS = 30


@st.cache_data(ttl=STATUS_TTL_SECONDS, show_spinner=False)
def _store_status(key: tuple[tuple[str, str], ...]) -> tuple[bool, str]:
    try:
        get_store().check()
    except Exception as exc:  # noqa: BLE001 - shown as a status line, never raised
        logger.warning("store check failed: %s", exc)
        return False, str(exc)
    return True, "answers"


@st.cache_data(ttl=STATUS_TTL_SECONDS, show_spinner=False)
def _provider_status(key: tuple[tuple[str, str], ...]) -> tuple[bool, str]:
    try:
        from opsforge_core.llm import provider_status

        return provider_status(current_settings())
    except Exception as exc:  # noqa: BLE001 - shown as a status line, never raised
        logger.warning("provider status failed: %s", exc)
        return False, str(exc)


def _line(label: str, ok: bool, detail: str) -> None:
    # Plain text with a word for the state: no links, and no glyph a font may lack.
    state = "ok" if ok else "PROBLEM"
    st.sidebar.text(f"[{state}] {label}: {detail}")


def render_sidebar() -> None:
    """Draw the status lines as plain text (no links), checked at most every 30 seconds."""
    from console._shared import env_key

    st.sidebar.markdown("**OpsForge**")
    try:
        settings = current_settings()
    except Exception as exc:  # noqa: BLE001 - a bad setting must not take the sidebar down
        st.sidebar.error("Settings are invalid; see the Settings page.")
        logger.warning("settings invalid: %s", exc)
        return
    key = env_key()
    where = settings.sqlite_path if settings.store == "sqlite" else settings.region
    ok, detail = _store_status(key)
    _line(f"store {settings.store} ({where})", ok, "answers" if ok else "unavailable")
    ok, detail = _provider_status(key)
    provider = settings.llm_provider
    _line(f"LLM {provider}", ok, "ready" if ok else "not ready, falls back to offline")
    _simulator_line()


def _simulator_line() -> None:
    try:
        simulator = get_simulator()
    except Exception as exc:  # noqa: BLE001 - the other pages keep working without it
        logger.warning("live simulator unavailable: %s", exc)
        _line("simulator", False, "unavailable")
        return
    if simulator is None:
        st.sidebar.text("simulator: off")
        return
    status = simulator.status()
    state = "running" if status.get("running") and not status.get("paused") else "paused"
    _line("simulator", True, f"{state}, speed {status.get('speed', '?'):g}x")
