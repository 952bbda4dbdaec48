"""Fixtures for the console tests: a temporary SQLite store chosen through the environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from opsforge_core.config import Settings
from opsforge_core.store import open_store
from opsforge_core.store.base import Store
from tests.conftest import REPO_ROOT

APP = str(REPO_ROOT / "app.py")
RUN_TIMEOUT = 120  # seconds for one script run; an analysis on a 2-core machine takes a few


@pytest.fixture
def console_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the console at a fresh SQLite file, offline synthesis and no live simulator.

    The shared clients are cached per environment, so each test gets its own store.
    """
    path = tmp_path / "opsforge.db"
    for name in ("OPSFORGE_DYNAMODB_ENDPOINT", "OPSFORGE_API_TOKEN", "OPSFORGE_LIVE_SPEED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPSFORGE_STORE", "sqlite")
    monkeypatch.setenv("OPSFORGE_SQLITE_PATH", str(path))
    monkeypatch.setenv("OPSFORGE_LLM_PROVIDER", "offline")
    monkeypatch.setenv("OPSFORGE_LIVE_SIMULATOR", "off")
    return path


@pytest.fixture
def store(console_env: Path) -> Iterator[Store]:
    """The same store the console opens, for seeding data and checking what pages wrote."""
    opened = open_store(Settings.from_env())
    opened.init()
    yield opened
    opened.close()


@pytest.fixture
def app(console_env: Path) -> AppTest:
    """The console, run once so that its pages are registered."""
    return AppTest.from_file(APP, default_timeout=RUN_TIMEOUT).run()


def open_page(app: AppTest, page: str) -> AppTest:
    """Switch to ``console/<page>.py`` and run it with fresh query results.

    Query results are cached for a few seconds; a test that writes and then reads at once
    drops them, as if the cache had expired.
    """
    st.cache_data.clear()
    return app.switch_page(f"console/{page}.py").run()


def texts(app: AppTest) -> list[str]:
    """Every text the page shows in markdown, captions, alerts, metrics and JSON."""
    values: list[str] = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "text"):
        values += [str(element.value) for element in app.get(kind)]
    values += [f"{m.label}: {m.value}" for m in app.metric]
    values += [str(element.value) for element in app.json]
    return values
