"""CloudWatch alarms (EventBridge and SNS), plain SNS messages and PagerDuty events."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from opsforge_core.errors import IngestError
from opsforge_core.ingest import parse_payload
from tests.ingest.samples import RECEIVED_AT, opsforge_alert


def parse(payload):
    return parse_payload(payload, received_at=RECEIVED_AT)


@pytest.fixture
def state_change(load_event):
    return load_event("cloudwatch_alarm_state_change.json")


@pytest.fixture
def sns_alarm(load_event):
    return load_event("cloudwatch_alarm_sns.json")


def sns_message(event):
    return json.loads(event["Records"][0]["Sns"]["Message"])


def with_sns_message(event, message):
    changed = copy.deepcopy(event)
    changed["Records"][0]["Sns"]["Message"] = (
        message if isinstance(message, str) else json.dumps(message)
    )
    return changed


def test_eventbridge_ok_after_alarm_resolves(state_change):
    (firing,) = parse(state_change).alerts
    event = copy.deepcopy(state_change)
    event["detail"]["previousState"] = copy.deepcopy(event["detail"]["state"])
    event["detail"]["state"] = {
        "value": "OK",
        "reason": "Threshold Crossed: 1 datapoint was not greater than the threshold (90.0).",
        "timestamp": "2026-11-20T08:31:02.000+0000",
    }
    (resolved,) = parse(event).alerts
    assert resolved.status == "resolved"
    assert resolved.fingerprint == firing.fingerprint
    assert resolved.starts_at == firing.starts_at
    assert resolved.ends_at == datetime(2026, 11, 20, 8, 31, 2, tzinfo=UTC)
    assert resolved.duration_seconds == pytest.approx(15 * 60 + 19.485)


def test_eventbridge_insufficient_data_is_info(state_change):
    state_change["detail"]["state"]["value"] = "INSUFFICIENT_DATA"
    (alert,) = parse(state_change).alerts
    assert alert.severity == "info"
    assert alert.status == "firing"


def test_eventbridge_bad_reason_data_tolerated(state_change):
    state_change["detail"]["state"]["reasonData"] = "{truncated"
    del state_change["detail"]["configuration"]["description"]
    (alert,) = parse(state_change).alerts
    assert alert.summary == "orders-db-cpu-high is in state ALARM"


def test_eventbridge_reason_data_in_summary(state_change):
    del state_change["detail"]["configuration"]["description"]
    (alert,) = parse(state_change).alerts
    assert alert.summary == "orders-db-cpu-high is in state ALARM (latest 97.1, threshold 90.0)"


def test_eventbridge_service_from_load_balancer(state_change):
    metric = state_change["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]
    metric["dimensions"] = {"LoadBalancer": "app/checkout-alb/50dc6c495c0c9188"}
    state_change["detail"]["alarmName"] = "checkout-5xx-critical"
    (alert,) = parse(state_change).alerts
    assert alert.service == "checkout-alb"
    assert alert.severity == "critical"


def test_eventbridge_service_from_alarm_name(state_change):
    del state_change["detail"]["configuration"]["metrics"]
    (alert,) = parse(state_change).alerts
    assert alert.service == "orders-db-cpu-high"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("detail-type",), "CloudWatch Alarm Configuration Change", "detail-type"),
        (("detail", "state", "value"), "BROKEN", "detail.state.value"),
        (("detail", "alarmName"), None, "detail.alarmName"),
        (("detail", "state", "timestamp"), "2026-13-40T00:00:00Z", "detail.state.timestamp"),
    ],
)
def test_eventbridge_invalid_field_named(state_change, path, value, field):
    target = state_change
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(IngestError) as caught:
        parse(state_change)
    assert caught.value.field == field


def test_sns_ok_resolves_with_region_from_arn(sns_alarm):
    message = sns_message(sns_alarm)
    message.update(
        NewStateValue="OK",
        OldStateValue="ALARM",
        StateChangeTime="2026-11-20T08:31:02.000+0000",
        AlarmArn="arn:aws:cloudwatch:eu-west-1:123456789012:alarm:orders-db-cpu-high",
    )
    (alert,) = parse(with_sns_message(sns_alarm, message)).alerts
    assert alert.status == "resolved"
    assert alert.labels["region"] == "eu-west-1"
    assert alert.ends_at == datetime(2026, 11, 20, 8, 31, 2, tzinfo=UTC)


def test_sns_decoded_message_accepted_directly(sns_alarm):
    (alert,) = parse(sns_message(sns_alarm)).alerts
    assert alert.name == "orders-db-cpu-high"
    assert alert.service == "orders-db"


def test_sns_plain_text_becomes_generic_alert(sns_alarm):
    event = with_sns_message(sns_alarm, "Backup job failed on orders-db\nexit code 2")
    event["Records"][0]["Sns"]["Subject"] = "Nightly backup failed"
    (alert,) = parse(event).alerts
    assert alert.source == "sns"
    assert alert.name == "Nightly backup failed"
    assert alert.service == "ops-alarms"
    assert alert.severity == "warning"
    assert alert.summary == "Backup job failed on orders-db"
    assert alert.description == "Backup job failed on orders-db\nexit code 2"
    assert alert.starts_at == datetime(2026, 11, 20, 8, 15, 43, 1000, tzinfo=UTC)


def test_sns_embedded_opsforge_payload(sns_alarm):
    event = with_sns_message(sns_alarm, {"alerts": [opsforge_alert()]})
    (alert,) = parse(event).alerts
    assert alert.name == "HighLatency"
    assert alert.source == "api"


def test_sns_bad_record_rejected_others_kept(sns_alarm):
    event = copy.deepcopy(sns_alarm)
    broken = copy.deepcopy(event["Records"][0])
    message = sns_message(sns_alarm)
    message["NewStateValue"] = "PANIC"
    broken["Sns"]["Message"] = json.dumps(message)
    event["Records"].append(broken)
    batch = parse(event)
    assert len(batch.alerts) == 1
    (rejection,) = batch.rejected
    assert rejection.index == 1
    assert rejection.field == "Records[1].Sns.Message.NewStateValue"


def pagerduty(action, **fields):
    event = {"routing_key": "R0123456789ABCDEF0123456789ABCDE", "event_action": action}
    event.update(fields)
    return event


def test_pagerduty_resolve_without_payload():
    (alert,) = parse(pagerduty("resolve", dedup_key="orders-db/cpu")).alerts
    assert alert.fingerprint == "orders-db/cpu"
    assert alert.status == "resolved"
    assert alert.ends_at == RECEIVED_AT


def test_pagerduty_trigger_without_dedup_key_hashed(load_event):
    event = load_event("pagerduty_events_v2_trigger.json")
    del event["dedup_key"]
    event["payload"]["severity"] = "error"
    (first,) = parse(event).alerts
    event["payload"]["timestamp"] = "2026-11-20T09:00:00Z"
    (second,) = parse(event).alerts
    assert first.severity == "high"
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint != "orders-db/cpu"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_action": "escalate"}, "event_action"),
        ({"payload": {"summary": "x", "source": "db", "severity": "urgent"}}, "payload.severity"),
        ({"payload": {"source": "db", "severity": "info"}}, "payload.summary"),
        ({"payload": {"summary": "x", "severity": "info"}}, "payload.source"),
        ({"payload": "cpu high"}, "payload"),
    ],
)
def test_pagerduty_invalid_field_named(load_event, change, field):
    event = load_event("pagerduty_events_v2_trigger.json")
    event.update(change)
    with pytest.raises(IngestError) as caught:
        parse(event)
    assert caught.value.field == field


def test_pagerduty_acknowledge_requires_dedup_key():
    with pytest.raises(IngestError) as caught:
        parse(pagerduty("acknowledge"))
    assert caught.value.field == "dedup_key"
