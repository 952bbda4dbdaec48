"""The HTTP API under a real uvicorn server with a temporary SQLite store."""

from __future__ import annotations

import concurrent.futures
import copy
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.models import AgentResult
from opsforge_core.orchestrator import Orchestrator
from opsforge_core.store import open_store

from .server import TOKEN, ApiServer, api_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIRING = "c4f1a9d02b7e3f51"
RESOLVED = "9ab2e6c1f0d47733"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(api_settings(tmp_path)) as server:
        yield server


@pytest.fixture
def webhook(events_dir: Path) -> dict[str, Any]:
    return json.loads((events_dir / "alertmanager_webhook_mixed.json").read_text())


def _post(api: ApiServer, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return httpx.post(f"{api.url}{path}", json=body, headers=AUTH if headers is None else headers)


def test_healthz_reports_store(api: ApiServer) -> None:
    response = httpx.get(f"{api.url}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": "sqlite"}
    assert response.headers["x-request-id"]


def test_write_without_token_is_401(api: ApiServer, webhook: dict[str, Any]) -> None:
    missing = _post(api, "/api/v1/alerts/alertmanager", webhook, headers={})
    wrong = _post(
        api, "/api/v1/alerts/alertmanager", webhook, headers={"Authorization": "Bearer nope"}
    )
    basic = _post(
        api, "/api/v1/alerts/alertmanager", webhook, headers={"Authorization": f"Basic {TOKEN}"}
    )

    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["field"] == "Authorization"
    store = open_store(api.app.state.runtime.settings)
    assert store.recent_alerts().items == []


def test_no_token_configured_refuses_writes(tmp_path: Path, webhook: dict[str, Any]) -> None:
    with ApiServer(api_settings(tmp_path, token=None)) as server:
        response = _post(server, "/api/v1/alerts/alertmanager", webhook)

    assert response.status_code == 503
    assert "OPSFORGE_API_TOKEN" in response.json()["fix"]


def test_body_over_limit_is_413(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, OPSFORGE_API_MAX_BODY_BYTES=2048)
    big = json.dumps({"alerts": [], "padding": "x" * 4096}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    with ApiServer(settings) as server:
        declared = httpx.post(f"{server.url}/api/v1/events", content=big, headers=AUTH)
        # A generator body goes out with chunked transfer encoding and no Content-Length.
        streamed = httpx.post(f"{server.url}/api/v1/events", content=chunks(), headers=AUTH)

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert streamed.json()["field"] == "body"


@pytest.mark.parametrize(
    "body", [b"", b"not json", b'{"alerts": [', b"[" * 100_000 + b"]" * 100_000]
)
def test_invalid_json_is_400(api: ApiServer, body: bytes) -> None:
    response = httpx.post(f"{api.url}/api/v1/events", content=body, headers=AUTH)

    assert response.status_code == 400
    payload = response.json()
    assert payload["field"] == "body"
    assert payload["fix"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_type_is_415(api: ApiServer, events_dir: Path, content_type: str) -> None:
    body = (events_dir / "pagerduty_events_v2_trigger.json").read_bytes()
    headers = {**AUTH, "Content-Type": content_type}
    response = httpx.post(f"{api.url}/api/v1/events", content=body, headers=headers)

    assert response.status_code == 415
    assert response.json()["field"] == "Content-Type"


def test_json_content_type_with_charset_accepted(api: ApiServer, events_dir: Path) -> None:
    body = (events_dir / "pagerduty_events_v2_trigger.json").read_bytes()
    headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    response = httpx.post(f"{api.url}/api/v1/events", content=body, headers=headers)

    assert response.status_code == 200


def test_unknown_route_is_json_404(api: ApiServer) -> None:
    response = httpx.get(f"{api.url}/api/v1/nothing", headers=AUTH)

    assert response.status_code == 404
    assert response.json()["error"]


def test_alertmanager_repeat_then_resolve(api: ApiServer, webhook: dict[str, Any]) -> None:
    first = _post(api, "/api/v1/alerts/alertmanager", webhook)
    repeat = _post(api, "/api/v1/alerts/alertmanager", copy.deepcopy(webhook))

    assert first.status_code == 200
    assert sorted(first.json()["new"]) == sorted([FIRING, RESOLVED])
    assert len(first.json()["incidents_opened"]) == 1
    incident_id = first.json()["incidents_opened"][0]
    assert repeat.status_code == 200
    assert sorted(repeat.json()["deduplicated"]) == sorted([FIRING, RESOLVED])
    assert repeat.json()["incidents_opened"] == []

    store = open_store(api.app.state.runtime.settings)
    alerts = {a.fingerprint: a for a in store.recent_alerts().items}
    assert len(alerts) == 2
    assert alerts[FIRING].status == "firing"
    assert alerts[FIRING].ends_at is None
    assert alerts[RESOLVED].status == "resolved"
    assert len(store.list_incidents().items) == 1

    resolution = copy.deepcopy(webhook)
    resolution["status"] = "resolved"
    resolution["alerts"][0]["status"] = "resolved"
    resolution["alerts"][0]["endsAt"] = "2026-11-20T10:32:11.113+02:00"
    closed = _post(api, "/api/v1/alerts/alertmanager", resolution)

    assert closed.status_code == 200
    assert closed.json()["resolved"] == [FIRING]
    assert closed.json()["incidents_closed"] == [incident_id]
    alert = {a.fingerprint: a for a in store.recent_alerts().items}[FIRING]
    assert alert.status == "resolved"
    assert alert.ends_at == datetime(2026, 11, 20, 8, 32, 11, 113000, tzinfo=UTC)
    assert alert.duration_seconds == 1800.0
    report = httpx.get(f"{api.url}/api/v1/incidents/{incident_id}", headers=AUTH).json()
    assert report["status"] == "resolved"
    assert report["alerts"][0]["ends_at"] == "2026-11-20T08:32:11.113000Z"
    assert len(store.list_incidents().items) == 1


def test_concurrent_repeats_open_one_incident(api: ApiServer, webhook: dict[str, Any]) -> None:
    # Alertmanager pairs in high availability both deliver the same notification.
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(
            pool.map(lambda _: _post(api, "/api/v1/alerts/alertmanager", webhook), range(6))
        )

    assert [r.status_code for r in responses] == [200] * 6
    opened = [i for r in responses for i in r.json()["incidents_opened"]]
    assert len(opened) == 1
    store = open_store(api.app.state.runtime.settings)
    assert len(store.recent_alerts().items) == 2
    assert len(store.list_incidents().items) == 1


def test_incident_stays_open_while_one_fires(api: ApiServer, webhook: dict[str, Any]) -> None:
    webhook["alerts"][1]["status"] = "firing"
    webhook["alerts"][1]["endsAt"] = "0001-01-01T00:00:00Z"
    opened = _post(api, "/api/v1/alerts/alertmanager", webhook).json()
    incident_id = opened["incidents_opened"][0]

    webhook["alerts"][0]["status"] = "resolved"
    webhook["alerts"][0]["endsAt"] = "2026-11-20T10:40:00+02:00"
    partial = _post(api, "/api/v1/alerts/alertmanager", webhook).json()

    assert partial["incidents_closed"] == []
    assert any(incident_id in note for note in partial["notes"])
    store = open_store(api.app.state.runtime.settings)
    assert store.get_incident(incident_id).status == "open"


def test_alertmanager_route_rejects_other_formats(api: ApiServer, events_dir: Path) -> None:
    pagerduty = json.loads((events_dir / "pagerduty_events_v2_trigger.json").read_text())

    response = _post(api, "/api/v1/alerts/alertmanager", pagerduty)

    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_events_route_stores_metrics(api: ApiServer, events_dir: Path) -> None:
    event = json.loads((events_dir / "eventbridge_opsforge_metrics.json").read_text())

    response = _post(api, "/api/v1/events", event["detail"])

    assert response.status_code == 200
    assert response.json()["series_stored"] >= 2
    store = open_store(api.app.state.runtime.settings)
    keys = sorted(s.key for s in store.recent_metrics())
    assert keys == ["checkout/http_requests_total", "payments/memory_used_percent"]


def test_analyze_then_get_incident(api: ApiServer, events_dir: Path) -> None:
    event = json.loads((events_dir / "apigw_v1_analyze.json").read_text())

    response = _post(api, "/api/v1/analyze", json.loads(event["body"]))
    incident_id = response.json()["incident"]["incident_id"]
    fetched = httpx.get(f"{api.url}/api/v1/incidents/{incident_id}", headers=AUTH)
    missing = httpx.get(f"{api.url}/api/v1/incidents/inc-000000000000", headers=AUTH)

    assert response.status_code == 200
    assert fetched.status_code == 200
    assert fetched.json()["incident_id"] == incident_id
    assert len(fetched.json()["alerts"]) == 2
    assert missing.status_code == 404
    assert missing.json()["field"] == "incident_id"


def test_analyze_unknown_agent_is_400(api: ApiServer, events_dir: Path) -> None:
    event = json.loads((events_dir / "apigw_v1_analyze.json").read_text())
    payload = json.loads(event["body"]) | {"agents": ["alertops", "astrology"]}

    response = _post(api, "/api/v1/analyze", payload)

    assert response.status_code == 400
    assert response.json()["field"] == "agents"
    assert "astrology" in response.json()["error"]


def test_store_failure_is_503(tmp_path: Path, webhook: dict[str, Any]) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database folder should be")
    settings = api_settings(tmp_path, OPSFORGE_SQLITE_PATH=blocker / "opsforge.db")

    with ApiServer(settings) as server:
        health = httpx.get(f"{server.url}/healthz")
        write = _post(server, "/api/v1/alerts/alertmanager", webhook)

    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert write.status_code == 503
    assert write.json()["error"].startswith("store unavailable")
    assert "Traceback" not in write.text


class _CrashingOrchestrator:
    def handle_incident(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("agent pool exploded")


def test_unexpected_error_is_500_without_trace(tmp_path: Path, events_dir: Path) -> None:
    event = json.loads((events_dir / "apigw_v1_analyze.json").read_text())
    settings = api_settings(tmp_path)

    with ApiServer(settings, orchestrator=_CrashingOrchestrator()) as server:
        response = _post(server, "/api/v1/analyze", json.loads(event["body"]))

    assert response.status_code == 500
    assert response.json()["error"] == "internal error (RuntimeError)"
    assert "exploded" not in response.text
    assert "Traceback" not in response.text


def test_request_log_has_no_token(
    api: ApiServer, webhook: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    def logged() -> bool:
        lines = [r.getMessage() for r in caplog.records if r.name == "opsforge_core.api"]
        return any(
            "POST /api/v1/alerts/alertmanager 200" in line and "request_id=abc-123" in line
            for line in lines
        )

    with caplog.at_level(logging.INFO, logger="opsforge_core.api"):
        _post(
            api, "/api/v1/alerts/alertmanager", webhook, headers={"X-Request-Id": "abc-123"} | AUTH
        )
        # The server thread writes the access line once the response is sent, so on a busy
        # machine it may land just after the client has read the response.
        deadline = time.monotonic() + 10
        while not logged() and time.monotonic() < deadline:
            time.sleep(0.05)

    assert logged()
    assert all(TOKEN not in line for line in caplog.text.splitlines())


class _DynamoNumbersAgent(Agent):
    """Returns findings as boto3 reads them from DynamoDB: every number a Decimal."""

    name = "dynamonumbers"

    def relevance(self, ctx: AnalysisContext) -> tuple[int, str]:
        return 100, "always relevant"

    def run(self, ctx: AnalysisContext) -> AgentResult:
        findings = {"anomaly_score": Decimal("30.40"), "count": Decimal("7"), "tags": {"b", "a"}}
        return AgentResult(agent=self.name, findings=findings, confidence=0.5)


def test_analyze_serializes_decimal(tmp_path: Path, events_dir: Path) -> None:
    event = json.loads((events_dir / "apigw_v1_analyze.json").read_text())
    settings = api_settings(tmp_path)
    orchestrator = Orchestrator(open_store(settings), settings, agents=[_DynamoNumbersAgent()])

    with ApiServer(settings, orchestrator=orchestrator) as server:
        response = _post(server, "/api/v1/analyze", json.loads(event["body"]))

    assert response.status_code == 200
    findings = response.json()["incident"]["results"][0]["findings"]
    assert findings["anomaly_score"] == 30.4
    assert findings["count"] == 7
    assert findings["tags"] == ["a", "b"]


def test_overlong_fingerprint_rejected_alone(api: ApiServer, webhook: dict[str, Any]) -> None:
    # A fingerprint too long for the store's key must reject only its own alert. A 503 for the
    # whole delivery would make Alertmanager retry it forever.
    body = copy.deepcopy(webhook)
    body["alerts"][0]["fingerprint"] = "f" * 901
    response = _post(api, "/api/v1/alerts/alertmanager", body)
    assert response.status_code in (200, 207)
    (rejected,) = response.json()["rejected"]
    assert rejected["field"] == "alerts[0].fingerprint"
    stored = {
        a.fingerprint for a in open_store(api.app.state.runtime.settings).recent_alerts().items
    }
    assert stored == {a["fingerprint"] for a in body["alerts"][1:]}
