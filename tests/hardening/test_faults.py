"""Backend faults during requests: a locked SQLite file, a stopped DynamoDB server, a failing LLM.

A store fault gives 503 with a JSON error and a fix, writes nothing, and the same app serves the
next request once the store is back. An LLM fault ends the analysis with the offline synthesis,
marked as a fallback with the reason, and the next run uses the LLM again.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsforge_core.api import create_app
from opsforge_core.config import Settings
from opsforge_core.store.sqlite import SQLiteStore
from tests.api.server import TOKEN, api_settings
from tests.conftest import free_port
from tests.llm import fake_anthropic
from tests.llm.fakeserver import ScriptedServer, Stall
from tests.store.conftest import Dynalite, dynamodb_store

from .conftest import AUTH
from .support import table_counts


def _alert(fingerprint: str, severity: str = "warning") -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "name": "HighErrorRate",
        "service": "checkout",
        "severity": severity,
        "status": "firing",
        "summary": "5xx ratio above 5%",
        "starts_at": "2026-11-20T10:00:00Z",
    }


def _post_alert(client: TestClient, fingerprint: str) -> Any:
    return client.post("/api/v1/events", json={"alerts": [_alert(fingerprint)]}, headers=AUTH)


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert "store unavailable" in body["error"]
    assert body["fix"]
    assert "Traceback" not in response.text


# -- SQLite locked by another connection -------------------------------------------------------


def test_sqlite_locked_503_then_recovers(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    # A short busy timeout keeps the test quick; the server default waits 5 s for the lock.
    store = SQLiteStore(settings.sqlite_path, busy_timeout_ms=300)
    store.init()
    app = create_app(settings, store=store, analyze=False)
    locker = sqlite3.connect(settings.sqlite_path, isolation_level=None)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert _post_alert(client, "before-lock").status_code == 200
        before = table_counts(store)

        locker.execute("BEGIN IMMEDIATE")
        locked = _post_alert(client, "during-lock")
        locker.execute("ROLLBACK")
        after_lock = table_counts(store)
        recovered = _post_alert(client, "after-lock")

    _assert_unavailable(locked)
    assert after_lock == before
    assert recovered.status_code == 200
    stored = {a.fingerprint for a in store.recent_alerts().items}
    assert stored == {"before-lock", "after-lock"}
    locker.close()
    store.close()


# -- dynalite stopped and restarted ------------------------------------------------------------


@pytest.fixture
def dynalite_app(aws_env: None, tmp_path: Path) -> Iterator[tuple[Dynalite, TestClient, Any]]:
    server = Dynalite(free_port(), tmp_path / "dynalite")
    server.start()
    prefix = f"h{uuid.uuid4().hex[:8]}-"
    # One attempt per call, so a stopped server fails the request at once.
    store = dynamodb_store(server.client(max_attempts=1), server.endpoint, prefix)
    store.init()
    settings = Settings(
        store="dynamodb", dynamodb_endpoint=server.endpoint, table_prefix=prefix, api_token=TOKEN
    )
    app = create_app(settings, store=store, analyze=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield server, client, store
    server.stop()


@pytest.mark.server
def test_dynalite_stopped_503_then_recovers(dynalite_app: tuple[Dynalite, TestClient, Any]) -> None:
    server, client, store = dynalite_app
    assert _post_alert(client, "before-stop").status_code == 200

    server.stop(signal.SIGKILL)
    down = _post_alert(client, "while-down")
    health_down = client.get("/healthz")
    server.start()
    recovered = _post_alert(client, "after-restart")
    health_up = client.get("/healthz")

    _assert_unavailable(down)
    assert health_down.status_code == 503
    assert health_down.json()["status"] == "unavailable"
    assert recovered.status_code == 200, recovered.text
    assert health_up.status_code == 200
    stored = {a.fingerprint for a in store.recent_alerts().items}
    assert {"before-stop", "after-restart"} <= stored


# -- LLM provider failing during runs ----------------------------------------------------------


GOOD_ANSWER = {
    "summary": "checkout returns 5xx because its database connections are exhausted.",
    "root_cause": "checkout",
    "confidence": 0.7,
    "severity": "high",
    "actions": ["Check the connection pool of checkout."],
    "evidence": [],
}


@pytest.fixture
def llm_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture
def llm_client(
    tmp_path: Path, llm_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-hardening-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", llm_server.url)
    settings = api_settings(
        tmp_path,
        OPSFORGE_LLM_PROVIDER="anthropic",
        OPSFORGE_MODEL_ID="claude-test",
        OPSFORGE_LLM_MAX_ATTEMPTS=1,
        OPSFORGE_LLM_READ_TIMEOUT=1.0,
        OPSFORGE_LLM_DEADLINE_SECONDS=5.0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _analyze(client: TestClient, fingerprint: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/analyze", json={"alerts": [_alert(fingerprint, "critical")]}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return response.json()["incident"]["synthesis"]


@pytest.mark.parametrize(
    "failure",
    [
        fake_anthropic.error(500, "api_error", "Internal server error"),
        fake_anthropic.error(529, "overloaded_error", "Overloaded"),
        fake_anthropic.message("I cannot help with that."),
        Stall(3.0),
    ],
    ids=["http-500", "overloaded", "not-json", "read-timeout"],
)
def test_llm_failure_falls_back_then_recovers(
    llm_client: TestClient, llm_server: ScriptedServer, failure: Any
) -> None:
    # The unusable answer gets one repair request, so it is scripted twice.
    llm_server.add(failure, failure)
    failed = _analyze(llm_client, "llm-down")
    llm_server.script.clear()
    llm_server.add(fake_anthropic.message(json.dumps(GOOD_ANSWER)))
    recovered = _analyze(llm_client, "llm-back")

    assert failed["fallback"] is True
    assert failed["fallback_reason"]
    assert failed["summary"]
    assert recovered["fallback"] is False
    assert recovered["provider"] == "anthropic"
    assert recovered["root_cause"] == "checkout"


def test_llm_unreachable_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-hardening-test")
    # Nothing listens on this port, so every connection is refused.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{free_port()}")
    settings = api_settings(
        tmp_path, OPSFORGE_LLM_PROVIDER="anthropic", OPSFORGE_LLM_MAX_ATTEMPTS=1
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        synthesis = _analyze(client, "llm-refused")

    assert synthesis["fallback"] is True
    assert synthesis["fallback_reason"]
