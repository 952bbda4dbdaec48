"""Property tests: any input either parses into whole, valid records or raises IngestError."""

from __future__ import annotations

import base64
import json
import math
from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsforge_core.errors import IngestError
from opsforge_core.ingest import parse_bytes, parse_payload
from opsforge_core.ingest.fields import ALERT_SOURCES, ALERT_STATUSES
from opsforge_core.ingest.timestamps import accepted_range, parse_time, quick_epoch_seconds
from opsforge_core.models import SEVERITIES, Alert, IngestBatch, MetricSeries, Rejection
from tests.ingest.samples import RECEIVED_AT

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# Field values: a valid one or noise, so the parsers' deeper branches run and not only the
# format detection.
good_times = st.sampled_from(
    ["2026-11-20T10:02:11.113+02:00", "2026-11-20T08:15:42.515+0000", "2026-11-20T09:00:00Z"]
) | st.integers(min_value=1_700_000_000, max_value=1_790_000_000)
bad_times = (
    st.sampled_from(
        ["0001-01-01T00:00:00Z", "1999-01-01T00:00:00Z", "2030-01-01T00:00:00Z", "not a time", ""]
    )
    | st.integers(min_value=0, max_value=2 * 10**12)
    | st.floats()
)
times = st.integers(min_value=0, max_value=4).flatmap(lambda i: good_times if i else bad_times)
words = st.sampled_from(
    ["critical", "warning", "ERROR", "info", "firing", "resolved", "ALARM", "OK", "", " "]
)
noise = bad_times | words | json_values


def mostly(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Draw from ``valid`` about nine times in ten and from ``noise`` otherwise."""
    # one_of would flatten noise's own branches and give each the same weight as valid.
    return st.integers(min_value=0, max_value=9).flatmap(lambda i: valid if i else noise)


def field(*valid) -> st.SearchStrategy:
    return mostly(st.sampled_from(valid))


def record(keys: dict[str, st.SearchStrategy]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional=keys)


labels = st.dictionaries(
    st.sampled_from(["alertname", "service", "severity", "job", "instance"]),
    field("HighLatency", "checkout", "critical", "web:8080"),
    max_size=5,
)
opsforge_alerts = st.fixed_dictionaries(
    {
        "name": field("HighLatency", "DiskFull"),
        "service": field("checkout", "payments"),
        "starts_at": times,
    },
    optional={
        "severity": field("critical", "warning", "error"),
        "status": field("firing", "resolved"),
        "summary": field("p99 latency high"),
        "labels": mostly(labels),
        "ends_at": times,
        "fingerprint": field("fp-1"),
        "source": field("api", "simulator"),
    },
)
opsforge_series = st.fixed_dictionaries(
    {
        "service": field("payments"),
        "metric": field("cpu"),
        "points": mostly(
            st.lists(st.tuples(times, field(1.5, 2, None, "3.5")).map(list), max_size=5)
        ),
    },
    optional={"unit": field("Percent"), "kind": field("gauge", "counter")},
)
opsforge_payloads = st.fixed_dictionaries(
    {},
    optional={
        "alerts": mostly(st.lists(opsforge_alerts, max_size=4)),
        "metrics": mostly(st.lists(opsforge_series, max_size=3)),
        "topology": mostly(st.lists(st.lists(field("web", "db"), max_size=3), max_size=3)),
        "type": st.sampled_from(["alerts", "metrics", "incident", "scenario", "other"]),
        "name": field("memory_leak"),
    },
)
alertmanager_payloads = st.fixed_dictionaries(
    {
        "groupKey": field("{}:{alertname=x}"),
        "alerts": mostly(
            st.lists(
                st.fixed_dictionaries(
                    {"labels": mostly(labels), "startsAt": times},
                    optional={
                        "status": field("firing", "resolved"),
                        "endsAt": times,
                        "fingerprint": field("c4f1a9d02b7e3f51"),
                        "annotations": record({"summary": field("x"), "description": field("y")}),
                    },
                ),
                max_size=4,
            )
        ),
    },
    optional={"version": field("4"), "status": field("firing", "resolved")},
)
cloudwatch_metrics = st.lists(
    st.fixed_dictionaries(
        {
            "metricStat": st.fixed_dictionaries(
                {
                    "metric": record(
                        {
                            "namespace": field("AWS/RDS"),
                            "name": field("CPUUtilization"),
                            "dimensions": st.dictionaries(
                                field("DBInstanceIdentifier", "LoadBalancer"),
                                field("orders-db", "app/alb/1"),
                                max_size=2,
                            ),
                        }
                    )
                }
            )
        }
    ),
    max_size=2,
)
cloudwatch_states = st.fixed_dictionaries(
    {"value": field("ALARM", "OK", "INSUFFICIENT_DATA"), "timestamp": times},
    optional={"reason": field("Threshold Crossed"), "reasonData": field('{"threshold": 90.0}')},
)
cloudwatch_events = st.fixed_dictionaries(
    {
        "source": st.just("aws.cloudwatch"),
        "detail-type": field("CloudWatch Alarm State Change"),
        "detail": mostly(
            st.fixed_dictionaries(
                {"alarmName": field("orders-db-cpu-high"), "state": cloudwatch_states},
                optional={
                    "previousState": cloudwatch_states,
                    "configuration": record(
                        {"description": field("CPU above 90%"), "metrics": cloudwatch_metrics}
                    ),
                },
            )
        ),
    },
    optional={"time": times, "account": field("123456789012"), "region": field("us-east-1")},
)
sns_messages = st.fixed_dictionaries(
    {
        "AlarmName": field("orders-db-cpu-high"),
        "NewStateValue": field("ALARM", "OK", "INSUFFICIENT_DATA"),
        "StateChangeTime": times,
    },
    optional={
        "OldStateValue": field("ALARM", "OK"),
        "Trigger": record(
            {
                "Namespace": field("AWS/RDS"),
                "Dimensions": st.lists(
                    record({"name": field("DBInstanceIdentifier"), "value": field("orders-db")}),
                    max_size=2,
                ),
                "Threshold": field(90.0),
            }
        ),
        "AlarmArn": field("arn:aws:cloudwatch:eu-west-1:1:alarm:x"),
        "Region": field("US East (N. Virginia)"),
    },
)
sns_events = st.fixed_dictionaries(
    {
        "Records": st.lists(
            st.fixed_dictionaries(
                {
                    "Sns": st.fixed_dictionaries(
                        {
                            "Message": sns_messages.map(json.dumps)
                            | opsforge_payloads.map(lambda p: json.dumps(p, default=str))
                            | st.text(max_size=30)
                            | noise
                        },
                        optional={
                            "Subject": field("Backup failed"),
                            "TopicArn": field("arn:aws:sns:us-east-1:1:ops"),
                            "Timestamp": times,
                        },
                    )
                }
            ),
            min_size=1,
            max_size=3,
        )
    }
)
pagerduty_events = st.fixed_dictionaries(
    {"event_action": field("trigger", "acknowledge", "resolve")},
    optional={
        "routing_key": field("R0"),
        "dedup_key": field("orders-db/cpu"),
        "payload": mostly(
            st.fixed_dictionaries(
                {
                    "summary": field("CPU at 97%"),
                    "source": field("orders-db.prod"),
                    "severity": field("critical", "error", "warning", "info"),
                },
                optional={
                    "timestamp": times,
                    "component": field("orders-db"),
                    "class": field("cpu"),
                    "custom_details": noise,
                },
            )
        ),
    },
)
apigateway_events = st.fixed_dictionaries(
    {
        "requestContext": st.just({}),
        "httpMethod": st.just("POST"),
        "body": mostly(
            opsforge_payloads.map(lambda p: json.dumps(p, default=str))
            | st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode())
        ),
    },
    optional={"isBase64Encoded": mostly(st.booleans())},
)
any_payload = (
    json_values
    | opsforge_payloads
    | alertmanager_payloads
    | cloudwatch_events
    | sns_events
    | sns_messages
    | pagerduty_events
    | apigateway_events
)


def check_alert(alert: Alert) -> None:
    assert isinstance(alert, Alert)
    for value in (alert.fingerprint, alert.name, alert.service):
        assert isinstance(value, str)
        assert value.strip()
    assert alert.source in ALERT_SOURCES
    assert alert.severity in SEVERITIES
    assert alert.status in ALERT_STATUSES
    assert isinstance(alert.summary, str)
    assert isinstance(alert.description, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())
    assert alert.starts_at.utcoffset() == timedelta(0)
    if alert.status == "firing":
        assert alert.ends_at is None
    else:
        assert alert.ends_at is not None
        assert alert.ends_at.utcoffset() == timedelta(0)
        assert alert.ends_at >= alert.starts_at
    assert isinstance(alert.raw, dict)
    json.dumps(alert.to_dict(include_raw=False), allow_nan=False)


def check_series(series: MetricSeries) -> None:
    assert isinstance(series, MetricSeries)
    assert series.service.strip()
    assert series.metric.strip()
    assert series.kind in ("gauge", "counter")
    assert series.timestamps.dtype == np.float64
    assert series.values.dtype == np.float64
    assert series.timestamps.shape == series.values.shape
    assert np.isfinite(series.timestamps).all()
    assert (np.diff(series.timestamps) >= 0).all()


def check_batch(batch: IngestBatch) -> None:
    assert isinstance(batch, IngestBatch)
    for alert in batch.alerts:
        check_alert(alert)
    for series in batch.series:
        check_series(series)
    for rejection in batch.rejected:
        assert isinstance(rejection, Rejection)
        assert isinstance(rejection.index, int)
        assert rejection.field
        assert rejection.reason
    for caller, callee in batch.topology:
        assert isinstance(caller, str)
        assert isinstance(callee, str)


@PROPERTY_SETTINGS
@given(any_payload)
def test_parse_payload_whole_records_or_ingest_error(payload):
    try:
        batch = parse_payload(payload, received_at=RECEIVED_AT)
    except IngestError as exc:
        assert isinstance(exc.field, str)
        assert exc.problem
        return
    check_batch(batch)


@PROPERTY_SETTINGS
@given(st.lists(any_payload, max_size=3))
def test_parse_payload_list_whole_records_or_ingest_error(payloads):
    try:
        batch = parse_payload(payloads, received_at=RECEIVED_AT)
    except IngestError:
        return
    check_batch(batch)


def encode(payload) -> bytes:
    return json.dumps(payload, default=str).encode()


@PROPERTY_SETTINGS
@given(
    st.binary(max_size=200)
    | any_payload.map(encode)
    | st.lists(any_payload.map(encode), max_size=4).map(b"\n".join)
)
def test_parse_bytes_whole_records_or_ingest_error(data):
    try:
        batch = parse_bytes(data, received_at=RECEIVED_AT)
    except IngestError:
        return
    check_batch(batch)


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(times, field(1.5, None, "NaN", "2")).map(list), max_size=8))
def test_series_values_finite_or_nan(points):
    payload = {"metrics": [{"service": "s", "metric": "m", "points": points}]}
    batch = parse_payload(payload, received_at=RECEIVED_AT)
    assert len(batch.series) + len(batch.rejected) == 1
    for series in batch.series:
        check_series(series)
        assert all(math.isnan(v) or math.isfinite(v) for v in series.values.tolist())


timestamp_inputs = (
    times
    | st.datetimes().map(lambda d: d.isoformat())
    | st.integers(min_value=10**7, max_value=10**13).map(str)
    | st.text(alphabet="0123456789-:T.Z+ ", max_size=30)
)


@PROPERTY_SETTINGS
@given(timestamp_inputs)
def test_quick_epoch_seconds_agrees_with_parse_time(value):
    accepted = accepted_range(RECEIVED_AT)
    quick = quick_epoch_seconds(value, accepted)
    try:
        full = parse_time(value, "t", RECEIVED_AT, epoch=True).timestamp()
    except IngestError:
        assert quick is None
        return
    assert quick is None or quick == full
