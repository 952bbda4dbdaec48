"""The Lambda handler with every recorded event the senders produce."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from opsforge_core.config import Settings
from opsforge_core.store import open_store

from .lambda_events import body_of, context, load_event


def _store() -> object:
    return open_store(Settings.from_env())


def test_apigw_v1_analyze_returns_report(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "apigw_v1_analyze.json")

    response = lambda_env.lambda_handler(event, context())
    body = body_of(response)

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert body["kind"] == "incident"
    assert body["accepted"] == 4  # two alerts and two series
    assert body["rejected"] == []
    incident = body["incident"]
    assert body["incidents_opened"] == [incident["incident_id"]]
    assert sorted(a["name"] for a in incident["alerts"]) == ["HighLatency", "PodCrashLooping"]
    assert sorted(incident["series_keys"]) == [
        "checkout/http_requests_total",
        "payments/memory_used_percent",
    ]
    stored = _store().get_incident(incident["incident_id"])
    assert stored is not None
    assert stored.synthesis.root_cause == incident["synthesis"]["root_cause"]


def test_apigw_v2_base64_matches_v1(lambda_env: ModuleType, events_dir: Path) -> None:
    v1 = body_of(
        lambda_env.lambda_handler(load_event(events_dir, "apigw_v1_analyze.json"), context())
    )
    response = lambda_env.lambda_handler(
        load_event(events_dir, "apigw_v2_analyze_base64.json"), context()
    )
    v2 = body_of(response)

    assert response["statusCode"] == 200
    assert response["headers"]["X-Request-Id"] == "JKJaXmPLvHcESHA="
    assert v2["incident"]["incident_id"] != v1["incident"]["incident_id"]
    for key in ("root_cause", "severity", "summary"):
        assert v2["incident"]["synthesis"][key] == v1["incident"]["synthesis"][key]
    fingerprints_v1 = sorted(a["fingerprint"] for a in v1["incident"]["alerts"])
    fingerprints_v2 = sorted(a["fingerprint"] for a in v2["incident"]["alerts"])
    assert fingerprints_v2 == fingerprints_v1
    # The second request repeats the same alerts, so the feed counts them as repeats.
    assert sorted(v2["deduplicated"]) == fingerprints_v1


def test_eventbridge_alerts_open_one_incident(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "eventbridge_opsforge_alerts.json")

    body = body_of(lambda_env.lambda_handler(event, context()))

    assert body["accepted"] == 2
    assert len(body["new"]) == 2
    # PodCrashLooping is high severity, so the delivery starts one analysis.
    assert len(body["incidents_opened"]) == 1
    report = _store().get_incident(body["incidents_opened"][0])
    assert sorted(a.name for a in report.alerts) == ["HighLatency", "PodCrashLooping"]


def test_eventbridge_retry_creates_no_duplicate(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "eventbridge_opsforge_alerts.json")
    first = body_of(lambda_env.lambda_handler(event, context("first")))

    repeat = body_of(lambda_env.lambda_handler(copy.deepcopy(event), context("retry")))

    assert repeat["new"] == []
    assert sorted(repeat["deduplicated"]) == sorted(first["new"])
    assert repeat["incidents_opened"] == []
    store = _store()
    assert len(store.recent_alerts().items) == 2
    assert len(store.list_incidents().items) == 1


def test_eventbridge_metrics_stored(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "eventbridge_opsforge_metrics.json")

    response = lambda_env.lambda_handler(event, context())
    body = body_of(response)

    assert response["statusCode"] == 200
    assert body["kind"] == "metrics"
    assert sorted(body["accepted_ids"]) == [
        "checkout/http_requests_total",
        "payments/memory_used_percent",
    ]
    assert body["series_stored"] >= 2
    series = {s.key: s for s in _store().recent_metrics()}
    assert len(series["payments/memory_used_percent"]) == 6
    assert len(series["checkout/http_requests_total"]) == 4


def test_cloudwatch_alarm_event_stored(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "cloudwatch_alarm_state_change.json")

    response = lambda_env.lambda_handler(event, context())
    body = body_of(response)

    assert response["statusCode"] == 200
    assert body["source"] == "cloudwatch"
    assert body["accepted"] == 1
    alert = _store().recent_alerts().items[0]
    assert alert.status == "firing"
    assert alert.starts_at == datetime(2026, 11, 20, 8, 15, 42, 515000, tzinfo=UTC)


def test_cloudwatch_alarm_sns_stored(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "cloudwatch_alarm_sns.json")

    response = lambda_env.lambda_handler(event, context())
    body = body_of(response)

    assert response["statusCode"] == 200
    assert body["accepted"] == 1
    assert body["rejected"] == []
    alert = _store().recent_alerts().items[0]
    assert "orders-db" in alert.service or "orders-db" in alert.name


def test_alertmanager_webhook_direct(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "alertmanager_webhook_mixed.json")

    body = body_of(lambda_env.lambda_handler(event, context()))

    assert body["source"] == "alertmanager"
    assert body["accepted"] == 2
    alerts = {a.fingerprint: a for a in _store().recent_alerts().items}
    firing = alerts["c4f1a9d02b7e3f51"]
    assert firing.status == "firing"
    assert firing.ends_at is None
    assert firing.starts_at == datetime(2026, 11, 20, 8, 2, 11, 113000, tzinfo=UTC)
    resolved = alerts["9ab2e6c1f0d47733"]
    assert resolved.status == "resolved"
    assert resolved.duration_seconds == 17 * 60 + 30
    assert len(body["incidents_opened"]) == 1


def test_pagerduty_event_direct(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "pagerduty_events_v2_trigger.json")

    response = lambda_env.lambda_handler(event, context())
    body = body_of(response)

    assert response["statusCode"] == 200
    assert body["accepted"] == 1
    alert = _store().recent_alerts().items[0]
    assert alert.severity == "critical"
    assert alert.summary == "orders-db CPU at 97% for 3 minutes"


def test_direct_typed_events(lambda_env: ModuleType, events_dir: Path) -> None:
    alerts = load_event(events_dir, "eventbridge_opsforge_alerts.json")["detail"]["alerts"]
    metrics = load_event(events_dir, "eventbridge_opsforge_metrics.json")["detail"]["metrics"]

    stored_alerts = body_of(lambda_env.lambda_handler({"type": "alerts", "alerts": alerts}, None))
    stored_metrics = body_of(
        lambda_env.lambda_handler({"type": "metrics", "metrics": metrics}, None)
    )
    analysis = body_of(
        lambda_env.lambda_handler(
            {"type": "incident", "alerts": alerts, "metrics": metrics, "agents": ["alertops"]},
            context(),
        )
    )

    assert stored_alerts["kind"] == "alerts"
    assert len(stored_alerts["new"]) == 2
    assert stored_metrics["kind"] == "metrics"
    assert stored_metrics["series_stored"] >= 2
    assert analysis["kind"] == "incident"
    selected = [c["name"] for c in analysis["incident"]["agents"] if c["selected"]]
    assert selected == ["alertops"]
    assert sorted(analysis["deduplicated"]) == sorted(stored_alerts["new"])


def test_cloudwatch_ok_closes_incident(lambda_env: ModuleType, events_dir: Path) -> None:
    alarm = load_event(events_dir, "cloudwatch_alarm_state_change.json")
    recovery = copy.deepcopy(alarm)
    recovery["id"] = "9b6e4d1c-0000-4000-8000-000000000001"
    recovery["time"] = "2026-11-20T08:40:00Z"
    recovery["detail"]["previousState"] = alarm["detail"]["state"]
    recovery["detail"]["state"] = {
        "value": "OK",
        "reason": "Threshold Crossed: 3 datapoints were not greater than the threshold (90.0).",
        "timestamp": "2026-11-20T08:40:00.000+0000",
    }

    opened = body_of(lambda_env.lambda_handler(alarm, context()))
    closed = body_of(lambda_env.lambda_handler(recovery, context()))

    assert len(opened["incidents_opened"]) == 1
    assert closed["resolved"] == opened["new"]
    assert closed["incidents_closed"] == opened["incidents_opened"]
    store = _store()
    alert = store.recent_alerts().items[0]
    assert alert.status == "resolved"
    assert alert.duration_seconds == 1457.485
    assert store.get_incident(opened["incidents_opened"][0]).status == "resolved"


def test_separate_resolutions_close_once(lambda_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "eventbridge_opsforge_alerts.json")
    opened = body_of(lambda_env.lambda_handler(event, context()))
    incident_id = opened["incidents_opened"][0]
    crash, latency = event["detail"]["alerts"]

    def resolution(alert: dict, ends_at: str) -> dict:
        resolved = copy.deepcopy(event)
        resolved["id"] = f"resolve-{alert['name']}"
        resolved["detail"]["alerts"] = [alert | {"status": "resolved", "ends_at": ends_at}]
        return resolved

    first = body_of(lambda_env.lambda_handler(resolution(crash, "2026-11-20T10:20:00Z"), None))
    second = body_of(lambda_env.lambda_handler(resolution(latency, "2026-11-20T10:30:00Z"), None))

    # The second delivery contains only HighLatency, so the feed supplies PodCrashLooping's state.
    assert first["incidents_closed"] == []
    assert any(incident_id in note for note in first["notes"])
    assert second["incidents_closed"] == [incident_id]
    report = _store().get_incident(incident_id)
    assert report.status == "resolved"
    assert "2026-11-20T10:30:00Z" in report.resolution_notes
    ends = sorted(a.ends_at.isoformat() for a in report.alerts)
    assert ends == ["2026-11-20T10:20:00+00:00", "2026-11-20T10:30:00+00:00"]
