"""Every recorded payload in the shared events folder, parsed with its values checked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from opsforge_core.ingest import detect_format, parse_file
from opsforge_core.models import Alert, IngestBatch
from tests.ingest.samples import RECEIVED_AT

EXPECTED_FORMATS = {
    "alertmanager_webhook_mixed.json": "alertmanager",
    "apigw_v1_analyze.json": "apigateway",
    "apigw_v2_analyze_base64.json": "apigateway",
    "cloudwatch_alarm_sns.json": "sns",
    "cloudwatch_alarm_state_change.json": "cloudwatch",
    "eventbridge_opsforge_alerts.json": "eventbridge-opsforge",
    "eventbridge_opsforge_metrics.json": "eventbridge-opsforge",
    "pagerduty_events_v2_trigger.json": "pagerduty",
}


def parse(events_dir: Path, name: str) -> IngestBatch:
    return parse_file(events_dir / name, received_at=RECEIVED_AT)


def by_name(alerts: list[Alert]) -> dict[str, Alert]:
    return {a.name: a for a in alerts}


def test_every_event_file_parses_without_rejections(events_dir, load_event):
    names = sorted(p.name for p in events_dir.glob("*.json"))
    assert names == sorted(EXPECTED_FORMATS)
    for name in names:
        assert detect_format(load_event(name)) == EXPECTED_FORMATS[name], name
        batch = parse(events_dir, name)
        assert batch.rejected == [], name
        assert batch.alerts or batch.series, name
        for alert in batch.alerts:
            assert alert.starts_at.tzinfo is UTC, name
            assert alert.raw is not None, name


def test_alertmanager_file_values(events_dir):
    batch = parse(events_dir, "alertmanager_webhook_mixed.json")
    assert batch.source == "alertmanager"
    firing, resolved = batch.alerts
    assert firing.fingerprint == "c4f1a9d02b7e3f51"
    assert firing.source == "alertmanager"
    assert firing.name == "HighErrorRate"
    assert firing.service == "checkout"
    assert firing.severity == "critical"
    assert firing.status == "firing"
    assert firing.summary == "checkout 5xx ratio above 5% for 5m"
    assert firing.description == "5xx ratio is 12.4% (threshold 5%)"
    assert firing.labels["team"] == "payments"
    assert firing.starts_at == datetime(2026, 11, 20, 8, 2, 11, 113000, tzinfo=UTC)
    assert firing.ends_at is None
    assert resolved.fingerprint == "9ab2e6c1f0d47733"
    assert resolved.severity == "warning"
    assert resolved.status == "resolved"
    assert resolved.starts_at == datetime(2026, 11, 20, 9, 41, tzinfo=UTC)
    assert resolved.ends_at == datetime(2026, 11, 20, 9, 58, 30, tzinfo=UTC)
    assert resolved.duration_seconds == 17 * 60 + 30


@pytest.mark.parametrize(
    "name",
    ["apigw_v1_analyze.json", "apigw_v2_analyze_base64.json", "eventbridge_opsforge_alerts.json"],
)
def test_opsforge_alert_files_values(events_dir, name):
    alerts = by_name(parse(events_dir, name).alerts)
    assert sorted(alerts) == ["HighLatency", "PodCrashLooping"]
    crash = alerts["PodCrashLooping"]
    assert crash.source == "api"
    assert crash.service == "payments"
    assert crash.severity == "high"
    assert crash.status == "firing"
    assert crash.labels == {"namespace": "prod", "pod": "payments-6c5d4-xk2lp"}
    assert crash.starts_at == datetime(2026, 11, 20, 10, 1, 30, tzinfo=UTC)
    assert crash.ends_at is None
    latency = alerts["HighLatency"]
    assert latency.service == "checkout"
    assert latency.severity == "warning"
    assert latency.starts_at == datetime(2026, 11, 20, 10, 2, tzinfo=UTC)


def test_opsforge_fingerprints_match_across_envelopes(events_dir):
    fingerprints = [
        sorted(a.fingerprint for a in parse(events_dir, name).alerts)
        for name in (
            "apigw_v1_analyze.json",
            "apigw_v2_analyze_base64.json",
            "eventbridge_opsforge_alerts.json",
        )
    ]
    assert fingerprints[0] == fingerprints[1] == fingerprints[2]
    assert len(set(fingerprints[0])) == 2


@pytest.mark.parametrize(
    "name",
    ["apigw_v1_analyze.json", "apigw_v2_analyze_base64.json", "eventbridge_opsforge_metrics.json"],
)
def test_opsforge_metric_files_values(events_dir, name):
    series = {s.key: s for s in parse(events_dir, name).series}
    assert sorted(series) == ["checkout/http_requests_total", "payments/memory_used_percent"]
    memory = series["payments/memory_used_percent"]
    assert memory.kind == "gauge"
    assert memory.unit == "Percent"
    assert memory.values.tolist() == [71.2, 74.9, 78.3, 82.0, 85.6, 89.1]
    assert memory.times()[0] == datetime(2026, 11, 20, 9, 55, tzinfo=UTC)
    assert np.all(np.diff(memory.timestamps) == 60.0)
    requests = series["checkout/http_requests_total"]
    assert requests.kind == "counter"
    # The counter reset stays raw; the detector handles it.
    assert requests.values.tolist() == [182340.0, 183012.0, 412.0, 1190.0]


def test_cloudwatch_eventbridge_file_values(events_dir):
    batch = parse(events_dir, "cloudwatch_alarm_state_change.json")
    (alert,) = batch.alerts
    assert alert.source == "cloudwatch"
    assert alert.name == "orders-db-cpu-high"
    assert alert.service == "orders-db"
    assert alert.severity == "high"
    assert alert.status == "firing"
    assert alert.summary == "RDS orders database CPU above 90% for 3 minutes"
    assert alert.description.startswith("Threshold Crossed: 3 out of the last 3 datapoints")
    assert alert.starts_at == datetime(2026, 11, 20, 8, 15, 42, 515000, tzinfo=UTC)
    assert alert.ends_at is None
    assert alert.labels == {
        "namespace": "AWS/RDS",
        "metric_name": "CPUUtilization",
        "DBInstanceIdentifier": "orders-db",
        "account": "123456789012",
        "region": "us-east-1",
    }


def test_cloudwatch_sns_file_values(events_dir):
    batch = parse(events_dir, "cloudwatch_alarm_sns.json")
    (alert,) = batch.alerts
    assert alert.source == "cloudwatch"
    assert alert.name == "orders-db-cpu-high"
    assert alert.service == "orders-db"
    assert alert.severity == "high"
    assert alert.status == "firing"
    # AlarmDescription is null, so the summary is built from the state and threshold.
    assert alert.summary == "orders-db-cpu-high is in state ALARM (threshold 90.0)"
    assert alert.description == (
        "Threshold Crossed: 3 datapoints were greater than the threshold (90.0)."
    )
    assert alert.starts_at == datetime(2026, 11, 20, 8, 15, 42, 515000, tzinfo=UTC)
    assert alert.labels["region"] == "us-east-1"


def test_cloudwatch_routes_share_fingerprint(events_dir):
    (from_eventbridge,) = parse(events_dir, "cloudwatch_alarm_state_change.json").alerts
    (from_sns,) = parse(events_dir, "cloudwatch_alarm_sns.json").alerts
    assert from_eventbridge.fingerprint == from_sns.fingerprint
    assert from_eventbridge.labels == from_sns.labels


def test_pagerduty_file_values(events_dir):
    (alert,) = parse(events_dir, "pagerduty_events_v2_trigger.json").alerts
    assert alert.fingerprint == "orders-db/cpu"
    assert alert.source == "pagerduty"
    assert alert.name == "cpu"
    assert alert.service == "orders-db"
    assert alert.severity == "critical"
    assert alert.status == "firing"
    assert alert.summary == "orders-db CPU at 97% for 3 minutes"
    assert alert.description == "cpu_percent=97.1, threshold=90"
    assert alert.labels == {
        "source": "orders-db.prod",
        "component": "orders-db",
        "group": "orders",
        "class": "cpu",
    }
    assert alert.starts_at == datetime(2026, 11, 20, 8, 15, 42, 515000, tzinfo=UTC)
