"""Alertmanager webhook quirks: zero end times, offsets, per-alert status, repeats."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from opsforge_core.errors import IngestError
from opsforge_core.ingest import parse_payload
from tests.ingest.samples import RECEIVED_AT

FIRING_START = datetime(2026, 11, 20, 8, 2, 11, 113000, tzinfo=UTC)


@pytest.fixture
def webhook(load_event):
    return load_event("alertmanager_webhook_mixed.json")


def parse(payload):
    return parse_payload(payload, received_at=RECEIVED_AT)


def test_zero_ends_at_is_none_for_firing_alert(webhook):
    firing = parse(webhook).alerts[0]
    assert firing.status == "firing"
    assert firing.ends_at is None
    assert firing.duration_seconds is None


def test_firing_future_ends_at_ignored(webhook):
    # Alertmanager sets a firing alert's endsAt to its resolve timeout, possibly days ahead.
    webhook["alerts"][0]["endsAt"] = "2027-03-01T00:00:00Z"
    batch = parse(webhook)
    assert batch.rejected == []
    assert batch.alerts[0].status == "firing"
    assert batch.alerts[0].ends_at is None


def test_offset_start_converted_to_utc(webhook):
    firing = parse(webhook).alerts[0]
    assert firing.starts_at == FIRING_START
    assert firing.starts_at.utcoffset().total_seconds() == 0
    assert firing.to_dict()["starts_at"] == "2026-11-20T08:02:11.113000Z"


def test_resolved_alert_wins_over_group_status(webhook):
    assert webhook["status"] == "firing"
    resolved = parse(webhook).alerts[1]
    assert resolved.status == "resolved"
    assert resolved.ends_at == datetime(2026, 11, 20, 9, 58, 30, tzinfo=UTC)


def test_group_status_used_when_alert_has_none(webhook):
    payload = copy.deepcopy(webhook)
    del payload["alerts"][0]["status"]
    payload["status"] = "resolved"
    payload["alerts"][0]["endsAt"] = "2026-11-20T10:30:00+02:00"
    alert = parse(payload).alerts[0]
    assert alert.status == "resolved"
    assert alert.ends_at == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def test_repeat_delivery_gives_identical_alerts(webhook):
    first = parse(webhook).alerts
    second = parse(copy.deepcopy(webhook)).alerts
    assert [a.to_dict() for a in first] == [a.to_dict() for a in second]
    assert [(a.fingerprint, a.starts_at) for a in first] == [
        ("c4f1a9d02b7e3f51", FIRING_START),
        ("9ab2e6c1f0d47733", datetime(2026, 11, 20, 9, 41, tzinfo=UTC)),
    ]


def test_later_resolved_delivery_gives_duration(webhook):
    payload = copy.deepcopy(webhook)
    payload["status"] = "resolved"
    payload["alerts"][0]["status"] = "resolved"
    payload["alerts"][0]["endsAt"] = "2026-11-20T10:20:00.000+02:00"
    alert = parse(payload).alerts[0]
    assert alert.fingerprint == "c4f1a9d02b7e3f51"
    assert alert.status == "resolved"
    assert alert.starts_at == FIRING_START
    assert alert.ends_at == datetime(2026, 11, 20, 8, 20, tzinfo=UTC)
    assert alert.duration_seconds == pytest.approx(17 * 60 + 48.887)


def test_resolved_with_zero_end_uses_receive_time(webhook):
    payload = copy.deepcopy(webhook)
    payload["alerts"][0]["status"] = "resolved"
    alert = parse(payload).alerts[0]
    assert alert.ends_at == RECEIVED_AT
    assert alert.duration_seconds > 0


def test_year_one_with_offset_is_none(webhook):
    payload = copy.deepcopy(webhook)
    payload["alerts"][0]["endsAt"] = "0001-01-01T00:00:00+02:00"
    assert parse(payload).alerts[0].ends_at is None


def test_end_before_start_rejected(webhook):
    payload = copy.deepcopy(webhook)
    payload["alerts"][1]["endsAt"] = "2026-11-20T09:00:00Z"
    batch = parse(payload)
    assert [a.fingerprint for a in batch.alerts] == ["c4f1a9d02b7e3f51"]
    (rejection,) = batch.rejected
    assert rejection.index == 1
    assert rejection.field == "alerts[1].endsAt"
    assert "before the start time" in rejection.reason


def test_missing_fingerprint_hashed_stably(webhook):
    payload = copy.deepcopy(webhook)
    del payload["alerts"][0]["fingerprint"]
    first = parse(payload).alerts[0]
    payload["alerts"][0]["startsAt"] = "2026-11-20T11:00:00Z"
    restamped = parse(payload).alerts[0]
    payload["alerts"][0]["labels"]["instance"] = "checkout-other:8080"
    other_instance = parse(payload).alerts[0]
    assert len(first.fingerprint) == 16
    assert first.fingerprint == restamped.fingerprint
    assert first.fingerprint != other_instance.fingerprint


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("error", "high"),
        ("warn", "warning"),
        ("info", "info"),
        ("none", "info"),
        ("something-else", "warning"),
    ],
)
def test_severity_label_mapped(webhook, label, expected):
    payload = copy.deepcopy(webhook)
    payload["alerts"][0]["labels"]["severity"] = label
    assert parse(payload).alerts[0].severity == expected


def test_service_falls_back_to_job_then_instance(webhook):
    payload = copy.deepcopy(webhook)
    labels = payload["alerts"][0]["labels"]
    del labels["service"]
    assert parse(payload).alerts[0].service == "checkout"  # from job
    del labels["job"]
    assert parse(payload).alerts[0].service == "checkout-7d9f8-abcde"  # instance host


def test_missing_alertname_rejected(webhook):
    payload = copy.deepcopy(webhook)
    del payload["alerts"][1]["labels"]["alertname"]
    batch = parse(payload)
    assert len(batch.alerts) == 1
    assert batch.rejected[0].field == "alerts[1].labels.alertname"


def test_unsupported_version_raises(webhook):
    payload = copy.deepcopy(webhook)
    payload["version"] = "3"
    with pytest.raises(IngestError) as caught:
        parse(payload)
    assert caught.value.field == "version"
    assert "version 4" in caught.value.problem


def test_lone_surrogate_in_unread_field_repaired(webhook):
    webhook["alerts"][0]["generatorURL"] = "http://prometheus/graph?g0=\ud800"
    batch = parse(webhook)
    assert batch.rejected == []
    kept = batch.alerts[0].raw["generatorURL"]
    assert kept == "http://prometheus/graph?g0=\ufffd"
    kept.encode("utf-8")
