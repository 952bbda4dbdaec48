"""The Lambda handler with broken events, store failures and values DynamoDB returns."""

from __future__ import annotations

import io
import json
import logging
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.config import Settings
from opsforge_core.errors import StoreUnavailableError
from opsforge_core.models import AgentResult
from opsforge_core.orchestrator import Orchestrator
from opsforge_core.store import open_store

from .lambda_events import body_of, context, load_event


def _v1(events_dir: Path, body: Any) -> dict[str, Any]:
    event = load_event(events_dir, "apigw_v1_analyze.json")
    event["body"] = body
    return event


def _alerts_event(alerts: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "evt-1",
        "detail-type": "OpsForge Alerts",
        "source": "opsforge.alerts",
        "time": "2026-11-20T10:03:00Z",
        "detail": {"alerts": alerts},
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (None, "body"),
        ("not json", "body"),
        ("", "body"),
        ("[1, 2]", "body"),
        ("[" * 100_000 + "]" * 100_000, "body"),
        ("{}", "payload"),
        ('{"alerts": [], "metrics": []}', "alerts"),
    ],
)
def test_apigw_bad_body_is_400(
    lambda_env: ModuleType, events_dir: Path, body: Any, field: str
) -> None:
    response = lambda_env.lambda_handler(_v1(events_dir, body), context())
    payload = body_of(response)

    assert response["statusCode"] == 400
    assert payload["field"] == field
    assert payload["error"]


def test_apigw_invalid_base64_is_400(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "apigw_v2_analyze_base64.json")
    event["body"] = "%%% not base64 %%%"

    response = lambda_env.lambda_handler(event, context())

    assert response["statusCode"] == 400
    assert body_of(response)["field"] == "body"


def test_apigw_wrong_method_and_path(lambda_env: ModuleType, events_dir: Path) -> None:
    get = _v1(events_dir, "{}")
    get["httpMethod"] = "GET"
    other = _v1(events_dir, "{}")
    other["path"] = "/incidents"

    assert lambda_env.lambda_handler(get, context())["statusCode"] == 405
    assert lambda_env.lambda_handler(other, context())["statusCode"] == 404


def test_apigw_body_over_limit_is_413(
    lambda_env: ModuleType, events_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFORGE_API_MAX_BODY_BYTES", "1024")
    lambda_env.set_runtime()
    event = load_event(events_dir, "apigw_v2_analyze_base64.json")  # decodes to ~1.3 KB

    response = lambda_env.lambda_handler(event, context())

    assert response["statusCode"] == 413
    assert body_of(response)["field"] == "body"


@pytest.mark.parametrize(
    "event",
    [
        None,
        [1, 2, 3],
        "alerts",
        {"hello": "world"},
        {"version": "0", "detail-type": "Something", "source": "acme.billing", "detail": {}},
    ],
)
def test_unknown_event_is_400(lambda_env: ModuleType, event: Any) -> None:
    response = lambda_env.lambda_handler(event, context())

    assert response["statusCode"] == 400
    assert body_of(response)["error"]


def test_unknown_type_names_field(lambda_env: ModuleType) -> None:
    response = lambda_env.lambda_handler({"type": "deploys", "deploys": []}, context())

    assert response["statusCode"] == 400
    assert body_of(response)["field"] == "type"


def test_eventbridge_detail_not_object(lambda_env: ModuleType) -> None:
    event = _alerts_event([])
    event["detail"] = "alerts"

    response = lambda_env.lambda_handler(event, context())

    assert response["statusCode"] == 400
    assert body_of(response)["field"] == "detail"


def test_invalid_alerts_rejected_valid_kept(lambda_env: ModuleType) -> None:
    good = {
        "name": "DiskFull",
        "service": "search",
        "severity": "warning",
        "status": "firing",
        "summary": "disk 97% full",
        "starts_at": "2026-11-20T10:00:00Z",
    }
    missing_service = {k: v for k, v in good.items() if k != "service"} | {"name": "NoService"}
    bad_time = good | {"name": "BadTime", "starts_at": "yesterday"}
    bad_severity = good | {"name": "BadSeverity", "severity": 5}

    response = lambda_env.lambda_handler(
        _alerts_event([good, missing_service, bad_time, bad_severity]), context()
    )
    body = body_of(response)

    assert response["statusCode"] == 200
    assert body["accepted"] == 1
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [1, 2, 3]
    assert "service" in rejected[1]["field"]
    assert "starts_at" in rejected[2]["field"]
    assert "severity" in rejected[3]["field"]
    stored = open_store(Settings.from_env()).recent_alerts().items
    assert [a.name for a in stored] == ["DiskFull"]


def test_all_alerts_rejected_is_400(lambda_env: ModuleType) -> None:
    response = lambda_env.lambda_handler(_alerts_event([{"name": 3}]), context())
    body = body_of(response)

    assert response["statusCode"] == 400
    assert body["accepted"] == 0
    assert body["field"].startswith("alerts[0]")
    assert "rejected" in body["error"]


def test_analyze_all_invalid_names_field(lambda_env: ModuleType, events_dir: Path) -> None:
    alert = {"name": "NoService", "severity": "high", "status": "firing"}
    alert["starts_at"] = "2026-11-20T10:00:00Z"

    response = lambda_env.lambda_handler(
        _v1(events_dir, json.dumps({"alerts": [alert]})), context()
    )
    body = body_of(response)

    assert response["statusCode"] == 400
    assert body["field"] == "alerts[0].service"
    assert "1 records rejected" in body["error"]


class _FlakyStore:
    """A real store whose first ``failures`` alert writes fail as if the table were down."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def upsert_alerts(self, alerts: list) -> list:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("table opsforge-event-feed is unavailable")
        return self.inner.upsert_alerts(alerts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_eventbridge_store_failure_raises_then_retry(
    lambda_env: ModuleType, events_dir: Path
) -> None:
    settings = Settings.from_env()
    real = open_store(settings)
    lambda_env.set_runtime(settings, _FlakyStore(real, failures=1))
    event = load_event(events_dir, "eventbridge_opsforge_alerts.json")

    with pytest.raises(lambda_env.EventRetryError):
        lambda_env.lambda_handler(event, context("attempt-1"))
    retried = body_of(lambda_env.lambda_handler(event, context("attempt-2")))
    repeated = body_of(lambda_env.lambda_handler(event, context("attempt-3")))

    assert len(retried["new"]) == 2
    assert len(retried["incidents_opened"]) == 1
    assert len(repeated["deduplicated"]) == 2
    assert repeated["incidents_opened"] == []
    assert len(real.recent_alerts().items) == 2
    assert len(real.list_incidents().items) == 1


def test_apigw_store_failure_is_503(lambda_env: ModuleType, events_dir: Path) -> None:
    settings = Settings.from_env()
    lambda_env.set_runtime(settings, _FlakyStore(open_store(settings), failures=1))

    response = lambda_env.lambda_handler(load_event(events_dir, "apigw_v1_analyze.json"), context())

    assert response["statusCode"] == 503
    assert "unavailable" in body_of(response)["error"]


class _BrokenStore(_FlakyStore):
    def upsert_alerts(self, alerts: list) -> list:
        raise RuntimeError("driver bug")


def test_unexpected_exception_is_500_json(lambda_env: ModuleType, events_dir: Path) -> None:
    settings = Settings.from_env()
    lambda_env.set_runtime(settings, _BrokenStore(open_store(settings), failures=0))

    response = lambda_env.lambda_handler(load_event(events_dir, "apigw_v1_analyze.json"), context())
    body = body_of(response)

    assert response["statusCode"] == 500
    assert body["error"] == "internal error (RuntimeError)"
    assert "Traceback" not in response["body"]


class _DynamoNumbersAgent(Agent):
    """Returns findings as boto3 reads them from DynamoDB: every number a Decimal."""

    name = "dynamonumbers"

    def relevance(self, ctx: AnalysisContext) -> tuple[int, str]:
        return 100, "always relevant"

    def run(self, ctx: AnalysisContext) -> AgentResult:
        findings = {
            "anomaly_score": Decimal("30.40"),
            "count": Decimal("7"),
            "p_value": Decimal("1E-130"),
            "bands": [[Decimal("0.1"), Decimal("2.5")], [Decimal("3")]],
            "labels": {"zone", "region"},
        }
        return AgentResult(agent=self.name, findings=findings, confidence=0.5)


def test_decimal_values_serialize(lambda_env: ModuleType, events_dir: Path) -> None:
    settings = Settings.from_env()
    store = open_store(settings)
    orchestrator = Orchestrator(store=store, settings=settings, agents=[_DynamoNumbersAgent()])
    lambda_env.set_runtime(settings, store, orchestrator)

    response = lambda_env.lambda_handler(load_event(events_dir, "apigw_v1_analyze.json"), context())
    body = body_of(response)

    assert response["statusCode"] == 200
    findings = body["incident"]["results"][0]["findings"]
    assert findings["anomaly_score"] == 30.4
    assert findings["count"] == 7
    assert isinstance(findings["count"], int)
    assert findings["p_value"] == 1e-130
    assert findings["bands"] == [[0.1, 2.5], [3]]
    assert findings["labels"] == ["region", "zone"]


def test_to_jsonable_edge_values(handler_module: ModuleType) -> None:
    convert = handler_module.to_jsonable

    assert convert(Decimal("NaN")) is None
    assert convert(Decimal("Infinity")) is None
    assert convert(float("nan")) is None
    assert convert(Decimal("1E+2")) == 100
    assert convert({1: Decimal("0.5")}) == {"1": 0.5}
    assert json.loads(handler_module.response(200, {"x": Decimal("2.25")})["body"]) == {"x": 2.25}


def test_logs_are_json_with_request_ids(lambda_env: ModuleType, events_dir: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(lambda_env.JsonLogFormatter())
    log = logging.getLogger("opsforge.lambda")
    log.addHandler(handler)
    previous = log.level
    log.setLevel(logging.INFO)
    try:
        event = load_event(events_dir, "apigw_v1_analyze.json")
        lambda_env.lambda_handler(event, context("lambda-abc"))
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines
    for line in lines:
        assert line["aws_request_id"] == "lambda-abc"
        assert line["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
        assert line["level"] in ("INFO", "WARNING", "ERROR")


def test_alert_count_over_limit_is_413(
    lambda_env: ModuleType, events_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFORGE_API_MAX_ALERTS", "1")
    lambda_env.set_runtime()
    event = load_event(events_dir, "apigw_v1_analyze.json")  # two alerts

    response = lambda_env.lambda_handler(event, context())

    assert response["statusCode"] == 413
    assert body_of(response)["field"]
    assert open_store(Settings.from_env()).recent_alerts().items == []


def test_eventbridge_config_error_is_retried(
    lambda_env: ModuleType, events_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFORGE_AUTO_ANALYZE", "maybe")
    lambda_env.set_runtime()
    event = load_event(events_dir, "eventbridge_opsforge_alerts.json")

    with pytest.raises(lambda_env.EventRetryError, match="OPSFORGE_AUTO_ANALYZE"):
        lambda_env.lambda_handler(event, context())


def test_apigw_config_error_is_500(
    lambda_env: ModuleType, events_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFORGE_AUTO_ANALYZE", "maybe")
    lambda_env.set_runtime()

    response = lambda_env.lambda_handler(load_event(events_dir, "apigw_v1_analyze.json"), context())

    assert response["statusCode"] == 500
    assert "OPSFORGE_AUTO_ANALYZE" in body_of(response)["error"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"requestContext": "prod"}, "requestContext"),
        ({"requestContext": {"http": ["POST"]}}, "requestContext.http"),
        ({"isBase64Encoded": "false"}, "isBase64Encoded"),
    ],
)
def test_apigw_wrong_envelope_types_are_400(
    lambda_env: ModuleType, events_dir: Path, change: dict[str, Any], field: str
) -> None:
    event = {**load_event(events_dir, "apigw_v1_analyze.json"), **change}

    response = lambda_env.lambda_handler(event, context())

    assert response["statusCode"] == 400
    assert body_of(response)["field"] == field
