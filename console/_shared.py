"""Clients and helpers shared by the console pages.

The store, the orchestrator and the live simulator are built once per process with
``st.cache_resource`` and keyed on the environment, so a changed setting builds new ones. Each
accessor raises on failure. Pages call it inside ``failure_shown``, so a broken backend shows an
error with the next step on the page that needs it while the other pages keep working.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import streamlit as st

from opsforge_core.config import Settings
from opsforge_core.errors import ConfigError, LLMError, OpsForgeError, StoreError
from opsforge_core.views import escape_markdown

if TYPE_CHECKING:
    from opsforge_core.orchestrator import Orchestrator
    from opsforge_core.store.base import Store

logger = logging.getLogger(__name__)

# Set OPSFORGE_LIVE_SIMULATOR=off to run the console on stored and uploaded data only.
SIMULATOR_ENV = "OPSFORGE_LIVE_SIMULATOR"
SIMULATOR_SPEED_ENV = "OPSFORGE_LIVE_SPEED"
DEFAULT_SPEED = 60.0  # simulated seconds per real second: one simulated minute per second
_ENV_PREFIXES = ("OPSFORGE_", "AWS_", "ANTHROPIC_")


def env_key() -> tuple[tuple[str, str], ...]:
    """Return the settings-relevant environment, the cache key of every shared client."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)))


def current_settings() -> Settings:
    """Read the settings from the environment; raises ``ConfigError`` naming a bad variable."""
    return Settings.from_env()


@st.cache_resource(show_spinner=False)
def _open_store(key: tuple[tuple[str, str], ...]) -> Store:
    from opsforge_core.store import open_store

    # open_store creates missing SQLite tables. DynamoDB tables are created by
    # `python -m opsforge_core store init`, so the console needs no CreateTable permission.
    settings = Settings.from_env()
    store = open_store(settings)
    logger.info("store %s opened", settings.store)
    return store


def get_store() -> Store:
    """Return the process-wide store for the current settings, opening it on first use."""
    return _open_store(env_key())


@st.cache_resource(show_spinner=False)
def _build_orchestrator(key: tuple[tuple[str, str], ...]) -> Orchestrator:
    from opsforge_core.orchestrator import Orchestrator

    return Orchestrator(store=_open_store(key), settings=Settings.from_env())


def get_orchestrator() -> Orchestrator:
    """Return the process-wide orchestrator bound to the shared store."""
    return _build_orchestrator(env_key())


def simulator_enabled() -> bool:
    """Tell whether the live simulator runs in this process (on unless turned off)."""
    return os.environ.get(SIMULATOR_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def _simulator_speed() -> float:
    raw = os.environ.get(SIMULATOR_SPEED_ENV)
    if not raw:
        return DEFAULT_SPEED
    try:
        speed = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{SIMULATOR_SPEED_ENV}={raw!r} is not a number") from exc
    if speed <= 0:
        raise ConfigError(f"{SIMULATOR_SPEED_ENV}={speed} must be above 0")
    return speed


@st.cache_resource(show_spinner=False)
def _start_simulator(key: tuple[tuple[str, str], ...]) -> Any:
    from simulator.live import LiveSimulator

    simulator = LiveSimulator(_open_store(key), speed=_simulator_speed())
    simulator.start()
    logger.info("live simulator started at speed %s", simulator.status().get("speed"))
    return simulator


def get_simulator() -> Any | None:
    """Return the live simulator writing into the shared store, or None when it is turned off.

    It starts on first use, so the console shows live data within seconds of ``make run``.
    """
    if not simulator_enabled():
        return None
    return _start_simulator(env_key())


def fix_for(exc: BaseException) -> str:
    """Return the next step an operator can take after ``exc``."""
    if isinstance(exc, ConfigError):
        return "Correct the environment variable named above and restart the console."
    if isinstance(exc, StoreError):
        return (
            "Check the store settings on the Settings page; for SQLite the folder of "
            "OPSFORGE_SQLITE_PATH must be writable, for DynamoDB run "
            "`python -m opsforge_core store init` and check the endpoint and credentials."
        )
    if isinstance(exc, LLMError):
        return "Check the LLM provider on the Settings page, or set OPSFORGE_LLM_PROVIDER=offline."
    if isinstance(exc, ImportError):
        return "A part of OpsForge failed to import; reinstall with `make install` and restart."
    if isinstance(exc, OpsForgeError):
        return "Correct the input named above and try again."
    return "See the console log for details; the other pages keep working."


def show_error(what: str, exc: BaseException) -> None:
    """Show ``what`` failed with the error and its fix, without a stack trace."""
    logger.error("%s failed: %s: %s", what, type(exc).__name__, exc, exc_info=exc)
    st.error(
        f"**{escape_markdown(what)} failed:** {escape_markdown(exc)}\n\n"
        f"{escape_markdown(fix_for(exc))}",
        icon="🚨",
    )


@contextmanager
def failure_shown(what: str) -> Iterator[None]:
    """Run a block; on any error show it with ``show_error`` and go on with the page."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the page must stay up whatever a backend does
        show_error(what, exc)


def init_state(defaults: dict[str, Any]) -> None:
    """Set each session-state key once, at the top of a page."""
    for key, value in defaults.items():
        if key not in st.session_state:
            st.session_state[key] = value
