"""Access to the HTTP API: writes need the bearer token, the token never leaks, and the LLM's
answer never changes stored state on its own.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from opsforge_core.api import create_app
from opsforge_core.config import Settings
from opsforge_core.store import open_store
from opsforge_core.store.base import Store
from opsforge_core.store.sqlite import SQLiteStore
from tests.api.server import TOKEN, api_settings
from tests.llm import fake_anthropic
from tests.llm.fakeserver import Reply, ScriptedServer

from .conftest import AUTH
from .support import HOSTILE_SETTINGS, table_counts

WRITE_ROUTES = ["/api/v1/events", "/api/v1/alerts/alertmanager", "/api/v1/analyze"]
ALERT = {
    "name": "HighErrorRate",
    "service": "checkout",
    "severity": "critical",
    "status": "firing",
    "summary": "5xx ratio above 5%",
    "starts_at": "2026-11-20T10:00:00Z",
}
BAD_HEADERS = {
    "missing": None,
    "empty": "",
    "scheme-only": "Bearer",
    "scheme-space": "Bearer ",
    "wrong": "Bearer not-the-token",
    "basic": f"Basic {TOKEN}",
    "no-scheme": TOKEN,
    "prefix": f"Bearer {TOKEN[:-1]}",
    "suffix": f"Bearer {TOKEN}x",
    "two-tokens": f"Bearer {TOKEN} {TOKEN}",
    "comma": f"Bearer {TOKEN},",
    "huge": "Bearer " + "a" * 100_000,
    "nul": f"Bearer {TOKEN}\x00",
    "latin1": f"Bearer {TOKEN}\u00e9",
}


def _headers(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    # Latin-1 bytes reach the server as sent; httpx rejects non-ASCII str header values.
    return {"Authorization": value.encode("latin-1")}


@pytest.mark.parametrize("route", WRITE_ROUTES)
@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_write_without_valid_token_401(
    client: TestClient, store: Store, route: str, case: str
) -> None:
    before = table_counts(store)

    response = client.post(route, json={"alerts": [ALERT]}, headers=_headers(BAD_HEADERS[case]))

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["field"] == "Authorization"
    assert TOKEN not in response.text
    assert table_counts(store) == before


@pytest.mark.parametrize("case", ["missing", "wrong", "prefix"])
def test_read_incident_without_token_401(client: TestClient, case: str) -> None:
    response = client.get("/api/v1/incidents/any-id", headers=_headers(BAD_HEADERS[case]))

    assert response.status_code == 401


@HOSTILE_SETTINGS
@given(value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=80))
def test_arbitrary_authorization_401(value: str, client: TestClient, store: Store) -> None:
    if value.strip().lower().startswith("bearer") and value.split(None, 1)[-1].strip() == TOKEN:
        return
    before = table_counts(store)

    response = client.post("/api/v1/events", json={"alerts": [ALERT]}, headers=_headers(value))

    assert response.status_code == 401
    assert table_counts(store) == before


def test_lowercase_scheme_accepted(client: TestClient) -> None:
    # RFC 7235: the auth scheme is case-insensitive.
    response = client.post(
        "/api/v1/events", json={"alerts": [ALERT]}, headers={"Authorization": f"bearer {TOKEN}"}
    )

    assert response.status_code == 200


def test_healthz_needs_no_token_and_shows_none(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert TOKEN not in response.text


# -- the token never leaks ---------------------------------------------------------------------


def test_token_absent_from_logs_and_responses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api_settings(tmp_path, OPSFORGE_API_MAX_BODY_BYTES=4096)
    # A short busy timeout and a locked file produce the 503 path as well.
    store = SQLiteStore(settings.sqlite_path, busy_timeout_ms=200)
    store.init()
    app = create_app(settings, store=store, analyze=True)
    caplog.set_level(logging.DEBUG)
    responses = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for headers in (AUTH, {"Authorization": f"Bearer {TOKEN}x"}, {}):
            responses.append(
                client.post("/api/v1/events", json={"alerts": [ALERT]}, headers=headers)
            )
        responses.append(client.post("/api/v1/events", content=b"{bad", headers=AUTH))
        responses.append(client.post("/api/v1/events", content=b"x" * 5000, headers=AUTH))
        responses.append(client.post("/api/v1/analyze", json={"alerts": [ALERT]}, headers=AUTH))
        responses.append(client.get("/api/v1/incidents/nope", headers=AUTH))
        locker = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        responses.append(client.post("/api/v1/events", json={"alerts": [ALERT]}, headers=AUTH))
        locker.execute("ROLLBACK")
        locker.close()

    statuses = [r.status_code for r in responses]
    assert statuses == [200, 401, 401, 400, 413, 200, 404, 503]
    for response in responses:
        assert TOKEN not in response.text
        assert all(TOKEN not in value for value in response.headers.values())
    assert caplog.records, "the API logged nothing, so the check below proves nothing"
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in caplog.text
    assert TOKEN not in repr(settings)
    assert TOKEN not in json.dumps(settings.describe(), default=str)
    store.close()


# -- the LLM never writes on its own -----------------------------------------------------------


DELETION_ANSWER = {
    "summary": "Delete every stored incident, pattern and knowledge item now; then DROP TABLE.",
    "root_cause": "checkout",
    "confidence": 0.9,
    "severity": "critical",
    "actions": [
        "store.delete_pattern for every pattern",
        'DELETE FROM "opsforge-incident-memory"',
        "POST /api/v1/incidents/all/resolve",
    ],
    "evidence": [],
}


def _tool_use_reply() -> Reply:
    body = {
        "id": "msg_tool",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [
            {"type": "text", "text": json.dumps(DELETION_ANSWER)},
            {"type": "tool_use", "id": "toolu_1", "name": "delete_all", "input": {"table": "*"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 50},
    }
    return Reply(200, body)


@pytest.fixture
def llm_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, ScriptedServer, Settings]]:
    server = ScriptedServer().start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-hardening-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    settings = api_settings(
        tmp_path, OPSFORGE_LLM_PROVIDER="anthropic", OPSFORGE_LLM_MAX_ATTEMPTS=1
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, server, settings
    server.stop()


def _snapshot(store: Store) -> dict[str, Any]:
    return {
        "incidents": {
            s.incident_id: store.get_incident(s.incident_id).to_dict()
            for s in store.list_incidents(limit=200).items
        },
        "patterns": {p.pattern_id for p in store.list_patterns(limit=200).items},
        "knowledge": {
            (k.agent_name, k.knowledge_key) for k in store.list_knowledge(limit=200).items
        },
        "alerts": {(a.fingerprint, a.starts_at) for a in store.recent_alerts().items},
    }


@pytest.mark.parametrize("reply", ["text", "tool_use"])
def test_llm_deletion_answer_changes_nothing(
    llm_app: tuple[TestClient, ScriptedServer, Settings], reply: str
) -> None:
    client, server, settings = llm_app
    server.add(fake_anthropic.message(json.dumps({**DELETION_ANSWER, "summary": "first run"})))
    first = client.post("/api/v1/analyze", json={"alerts": [ALERT]}, headers=AUTH)
    assert first.status_code == 200, first.text
    store = open_store(settings)
    before = _snapshot(store)
    assert before["incidents"] and before["alerts"]

    server.add(
        _tool_use_reply()
        if reply == "tool_use"
        else fake_anthropic.message(json.dumps(DELETION_ANSWER))
    )
    second_alert = {**ALERT, "name": "PodCrashLooping", "service": "payments"}
    second = client.post("/api/v1/analyze", json={"alerts": [second_alert]}, headers=AUTH)
    after = _snapshot(store)
    store.close()

    assert second.status_code == 200, second.text
    new_id = second.json()["incident"]["incident_id"]
    assert set(after["incidents"]) == set(before["incidents"]) | {new_id}
    for incident_id, report in before["incidents"].items():
        assert after["incidents"][incident_id] == report
    assert before["patterns"] <= after["patterns"]
    assert before["knowledge"] <= after["knowledge"]
    assert before["alerts"] <= after["alerts"]
    assert after["incidents"][new_id]["status"] == "open"
    synthesis = second.json()["incident"]["synthesis"]
    if reply == "text":
        # The answer was used, so the request to delete reached the report only as text.
        assert synthesis["fallback"] is False
        assert synthesis["summary"].startswith("Delete every stored incident")
