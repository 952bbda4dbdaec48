"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Real payloads and datasets live beside the repository, not in it.
SHARED_DATA = Path(os.environ.get("OPSFORGE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED_DATA}; set OPSFORGE_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def events_dir(shared_data: Path) -> Path:
    return shared_data / "events"
