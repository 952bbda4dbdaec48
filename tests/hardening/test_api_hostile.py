"""Hostile requests to the HTTP API: a clear 4xx or a listed rejection, never a 500.

A request answered with 4xx must leave every table as it was, and one answered with 200 must
store no more than it reports as accepted. The work one request can cause is bounded by the
body size, the alert count and the points per request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from opsforge_core.api import create_app
from opsforge_core.store import open_store
from opsforge_core.store.base import Store
from tests.api.server import api_settings

from .conftest import AUTH
from .support import HOSTILE_SETTINGS, hostile_values, mutated, nested, table_counts

ROUTES = ["/api/v1/events", "/api/v1/alerts/alertmanager"]


def _check_response(response: httpx.Response, before: dict, after: dict) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    body = response.json()
    if response.status_code >= 400:
        assert body["error"]
        assert "field" in body
        assert after == before, "a rejected request changed the store"
        return
    assert response.status_code == 200
    added = sum(after.values()) - sum(before.values())
    assert added <= body["accepted"] + body["series_stored"]
    for rejection in body["rejected"]:
        assert rejection["field"]
        assert rejection["reason"]


def _post(client: TestClient, store: Store, route: str, content: bytes) -> None:
    before = table_counts(store)
    response = client.post(
        route, content=content, headers={**AUTH, "Content-Type": "application/json"}
    )
    _check_response(response, before, table_counts(store))


def _encoded(document: Any) -> bytes:
    return json.dumps(document, allow_nan=True).encode("utf-8", "surrogatepass")


@HOSTILE_SETTINGS
@given(data=st.data())
def test_api_mutated_sender_payloads(
    data: st.DataObject, client: TestClient, store: Store, recorded_events: dict[str, Any]
) -> None:
    document = data.draw(st.sampled_from(list(recorded_events.values())))
    route = data.draw(st.sampled_from(ROUTES))
    _post(client, store, route, _encoded(data.draw(mutated(document))))


@pytest.mark.server
@HOSTILE_SETTINGS
@given(data=st.data())
def test_api_dynamodb_mutated_payloads(
    data: st.DataObject,
    dynamodb_client: tuple[TestClient, Store],
    recorded_events: dict[str, Any],
) -> None:
    # DynamoDB adds its own rules (item size, empty keys, nesting depth) behind the same API.
    client, store = dynamodb_client
    document = data.draw(st.sampled_from(list(recorded_events.values())))
    _post(client, store, "/api/v1/events", _encoded(data.draw(mutated(document))))


@HOSTILE_SETTINGS
@given(value=hostile_values, route=st.sampled_from(ROUTES))
def test_api_arbitrary_json(value: Any, route: str, client: TestClient, store: Store) -> None:
    _post(client, store, route, _encoded(value))
    _post(client, store, route, _encoded({"alerts": [value]}))
    _post(
        client,
        store,
        route,
        _encoded({"metrics": [{"service": "a", "metric": "b", "points": value}]}),
    )


@HOSTILE_SETTINGS
@given(body=st.binary(max_size=3000))
def test_api_arbitrary_bytes(body: bytes, client: TestClient, store: Store) -> None:
    _post(client, store, "/api/v1/events", body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"alerts": [{"name": "\xc3\x28", "service": "a", "starts_at": "2026-11-20T10:00:00Z"}]}',
        b'{"alerts": "\xed\xa0\x80"}',
        b'{"alerts": [{"name": "x", "service": "\\ud800", "severity": "critical"}]}',
        b'{"metrics": [{"service": "a", "metric": "b", "points": [[1795168800, NaN]]}]}',
        b'{"metrics": [{"service": "a", "metric": "b", "points": [[1795168800, Infinity]]}]}',
        b'{"metrics": [{"service": "a", "metric": "b", "points": [[1e400, 1]]}]}',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        json.dumps({"alerts": nested(200)}).encode(),
        b"null",
        b"12",
        b'"alerts"',
    ],
)
def test_api_hostile_body(body: bytes, client: TestClient, store: Store) -> None:
    _post(client, store, "/api/v1/events", body)


def test_api_lone_surrogate_never_stored(client: TestClient, store: Store) -> None:
    body = (
        b'{"alerts": [{"name": "Disk\\ud800", "service": "db\\udfff", "severity": "critical",'
        b' "status": "firing", "starts_at": "2026-11-20T10:00:00Z"}]}'
    )
    before = table_counts(store)

    response = client.post("/api/v1/events", content=body, headers=AUTH)

    assert response.status_code in (200, 400), response.text
    for alert in store.recent_alerts().items:
        alert.name.encode("utf-8")
        alert.service.encode("utf-8")
    if response.status_code == 400:
        assert table_counts(store) == before


@pytest.fixture
def small_limits(tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    settings = api_settings(
        tmp_path,
        OPSFORGE_API_MAX_BODY_BYTES=64 * 1024,
        OPSFORGE_API_MAX_ALERTS=20,
        OPSFORGE_API_MAX_POINTS=500,
    )
    store = open_store(settings)
    app = create_app(settings, store=store, analyze=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, store
    store.close()


def _alert(index: int) -> dict[str, Any]:
    return {
        "name": "HighLatency",
        "service": f"svc-{index}",
        "severity": "warning",
        "status": "firing",
        "starts_at": "2026-11-20T10:00:00Z",
    }


def test_api_body_over_limit_413(small_limits: tuple[TestClient, Store]) -> None:
    client, store = small_limits
    before = table_counts(store)
    body = json.dumps({"alerts": [_alert(1)], "padding": "x" * 70_000}).encode()

    response = client.post("/api/v1/events", content=body, headers=AUTH)

    assert response.status_code == 413
    assert response.json()["field"] == "body"
    assert table_counts(store) == before


def test_api_too_many_alerts_413(small_limits: tuple[TestClient, Store]) -> None:
    client, store = small_limits
    before = table_counts(store)

    response = client.post(
        "/api/v1/events", json={"alerts": [_alert(i) for i in range(21)]}, headers=AUTH
    )

    assert response.status_code == 413
    assert response.json()["fix"]
    assert table_counts(store) == before


def test_api_alert_count_at_limit_accepted(small_limits: tuple[TestClient, Store]) -> None:
    client, store = small_limits

    response = client.post(
        "/api/v1/events", json={"alerts": [_alert(i) for i in range(20)]}, headers=AUTH
    )

    assert response.status_code == 200
    assert response.json()["accepted"] == 20


def test_api_series_too_long_bounded(small_limits: tuple[TestClient, Store]) -> None:
    client, store = small_limits
    before = table_counts(store)
    points = [[1795168800 + 60 * i, float(i)] for i in range(501)]

    response = client.post(
        "/api/v1/events",
        json={"metrics": [{"service": "a", "metric": "b", "points": points}]},
        headers=AUTH,
    )

    assert response.status_code in (400, 413)
    assert table_counts(store) == before


def test_api_points_spread_over_series_bounded(small_limits: tuple[TestClient, Store]) -> None:
    client, store = small_limits
    before = table_counts(store)
    series = [
        {"service": f"s{n}", "metric": "b", "points": [[1795168800 + i, 1.0] for i in range(100)]}
        for n in range(6)
    ]

    response = client.post("/api/v1/events", json={"metrics": series}, headers=AUTH)

    assert response.status_code == 413
    assert table_counts(store) == before


def test_api_analyze_hostile_options(client: TestClient, store: Store) -> None:
    alert = _alert(1)
    cases = [
        {"alerts": [alert], "agents": "alertops"},
        {"alerts": [alert], "agents": [1, 2]},
        {"alerts": [alert], "symptom": "checkout"},
        {"alerts": []},
        {"metrics": []},
    ]
    for case in cases:
        before = table_counts(store)
        response = client.post("/api/v1/analyze", json=case, headers=AUTH)

        assert response.status_code == 400, (case, response.text)
        assert response.json()["error"]
        assert table_counts(store) == before, case


def test_api_analyze_unknown_agent_stores_nothing(client: TestClient, store: Store) -> None:
    before = table_counts(store)

    response = client.post(
        "/api/v1/analyze", json={"alerts": [_alert(1)], "agents": ["no-such-agent"]}, headers=AUTH
    )

    assert response.status_code == 400
    assert response.json()["field"] == "agents"
    assert table_counts(store) == before
