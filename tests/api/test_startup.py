"""API startup: the store and orchestrator are ready before the first request."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from .server import ApiServer, api_settings


def _api_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "opsforge_core.api"]


def test_startup_opens_store_and_orchestrator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="opsforge_core.api"):
        with ApiServer(api_settings(tmp_path)) as server:
            before_requests = _api_messages(caplog)
            runtime = server.app.state.runtime
            store_open = runtime._store is not None
            orchestrator_built = runtime._orchestrator is not None
            health = httpx.get(f"{server.url}/healthz")

    assert before_requests == ["ready: sqlite store, analyses on"]
    assert store_open
    assert orchestrator_built
    assert (tmp_path / "opsforge.db").is_file()
    assert health.status_code == 200


def test_startup_skips_orchestrator_without_analysis(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="opsforge_core.api"):
        with ApiServer(api_settings(tmp_path), analyze=False) as server:
            before_requests = _api_messages(caplog)
            orchestrator_built = server.app.state.runtime._orchestrator is not None

    assert before_requests == ["ready: sqlite store, analyses off"]
    assert not orchestrator_built


def test_startup_store_failure_logged_then_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database folder should be")
    settings = api_settings(tmp_path, OPSFORGE_SQLITE_PATH=blocker / "opsforge.db")

    with caplog.at_level(logging.INFO, logger="opsforge_core.api"):
        with ApiServer(settings) as server:
            before_requests = _api_messages(caplog)
            health = httpx.get(f"{server.url}/healthz")

    assert len(before_requests) == 1
    assert before_requests[0].startswith("the store or orchestrator is not ready at startup")
    assert "not-a-directory" in before_requests[0]
    assert health.status_code == 503
