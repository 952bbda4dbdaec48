"""Fixtures for the ingest tests: recorded sender payloads from the shared events folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def load_event(events_dir: Path) -> Callable[[str], dict[str, Any]]:
    """Return a loader of one recorded payload from the shared events folder, by file name."""

    def load(name: str) -> dict[str, Any]:
        return json.loads((events_dir / name).read_text(encoding="utf-8"))

    return load
