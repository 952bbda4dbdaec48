"""Hostile input to ingestion: every recorded sender format, mutated, and raw bytes.

Each payload either raises ``IngestError`` (the whole payload is unreadable or over a bound) or
yields records that are whole, UTC, finite and within the limits, with a reason for each
rejected one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsforge_core.errors import IngestError
from opsforge_core.ingest import IngestLimits, parse_bytes, parse_payload

from .support import HOSTILE_SETTINGS, check_batch, hostile_values, mutated, nested

RECEIVED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LIMITS = IngestLimits()
SCENARIO_LINES = [
    {
        "type": "scenario",
        "name": "db-pool",
        "seed": 1,
        "ground_truth": {
            "root_cause": "db",
            "fault_kind": "saturation",
            "start": "2026-11-20T10:00:00Z",
        },
        "topology": [["api", "db"]],
    },
    {
        "type": "metrics",
        "metrics": [
            {
                "service": "db",
                "metric": "connections",
                "unit": "count",
                "kind": "gauge",
                "timestamps": [1795168800.0, 1795168860.0],
                "values": [10.0, 95.0],
            }
        ],
    },
]
PLAIN = {
    "alerts": [
        {
            "name": "HighLatency",
            "service": "checkout",
            "severity": "critical",
            "status": "firing",
            "summary": "p99 above 2 s",
            "labels": {"team": "shop"},
            "starts_at": "2026-11-20T10:00:00Z",
        }
    ],
    "metrics": [
        {"service": "checkout", "metric": "latency_p99", "points": [["2026-11-20T10:00:00Z", 2.5]]}
    ],
}


def _parse_checked(document: Any) -> None:
    try:
        batch = parse_payload(document, received_at=RECEIVED_AT, limits=LIMITS)
    except IngestError as exc:
        assert exc.field is not None
        assert exc.problem
        return
    check_batch(batch, RECEIVED_AT, LIMITS)


def _encoded(document: Any) -> bytes:
    # allow_nan writes NaN and Infinity literals, which Python's json module reads back.
    return json.dumps(document, allow_nan=True).encode("utf-8", "surrogatepass")


@pytest.fixture(params=["recorded", "plain", "scenario"])
def sender_documents(request: pytest.FixtureRequest, recorded_events: dict[str, Any]) -> list:
    if request.param == "recorded":
        return list(recorded_events.values())
    if request.param == "plain":
        return [PLAIN]
    return SCENARIO_LINES


def test_recorded_formats_all_parse(recorded_events: dict[str, Any]) -> None:
    # The mutation tests below mean something only if the unmutated payloads parse.
    assert len(recorded_events) >= 8
    for name, document in recorded_events.items():
        batch = parse_payload(document, received_at=RECEIVED_AT, limits=LIMITS)
        assert batch.alerts or batch.series, name
        assert batch.rejected == [], name


@HOSTILE_SETTINGS
@given(data=st.data())
def test_parse_payload_mutated_formats(data: st.DataObject, sender_documents: list) -> None:
    document = data.draw(st.sampled_from(sender_documents))
    _parse_checked(data.draw(mutated(document)))


@HOSTILE_SETTINGS
@given(data=st.data())
def test_parse_bytes_mutated_formats(data: st.DataObject, sender_documents: list) -> None:
    document = data.draw(mutated(data.draw(st.sampled_from(sender_documents))))
    try:
        batch = parse_bytes(_encoded(document), received_at=RECEIVED_AT, limits=LIMITS)
    except IngestError as exc:
        assert exc.problem
        return
    check_batch(batch, RECEIVED_AT, LIMITS)


@HOSTILE_SETTINGS
@given(value=hostile_values)
def test_parse_payload_arbitrary_top_level(value: Any) -> None:
    _parse_checked(value)
    _parse_checked({"alerts": value})
    _parse_checked({"metrics": [{"service": "a", "metric": "b", "points": value}]})


@HOSTILE_SETTINGS
@given(data=st.binary(max_size=2000), cut=st.integers(min_value=0, max_value=400))
def test_parse_bytes_invalid_utf8(data: bytes, cut: int) -> None:
    text = _encoded(PLAIN)
    # Splice raw bytes, often invalid UTF-8, into a valid document.
    spliced = text[:cut] + data + text[cut:]
    try:
        batch = parse_bytes(spliced, received_at=RECEIVED_AT, limits=LIMITS)
    except IngestError as exc:
        assert exc.problem
        return
    check_batch(batch, RECEIVED_AT, LIMITS)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{}",
        b'{"alerts": [{"name": "\xc3\x28"}]}',
        b'{"alerts": "\xed\xa0\x80"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
    ],
)
def test_parse_bytes_unreadable_raises(body: bytes) -> None:
    with pytest.raises(IngestError) as caught:
        parse_bytes(body, received_at=RECEIVED_AT, limits=LIMITS)

    assert caught.value.field
    assert caught.value.problem


def test_parse_payload_deep_nesting_raises() -> None:
    with pytest.raises(IngestError):
        parse_payload({"alerts": nested(LIMITS.max_depth + 5)}, limits=LIMITS)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_metric_special_values_not_stored_as_infinite(value: float) -> None:
    document = {"metrics": [{"service": "a", "metric": "b", "points": [[1795168800, value]]}]}

    batch = parse_payload(document, received_at=RECEIVED_AT, limits=LIMITS)

    check_batch(batch, RECEIVED_AT, LIMITS)
    if batch.series:
        assert not any(v in (float("inf"), float("-inf")) for v in batch.series[0].values)
    else:
        assert batch.rejected[0].field.startswith("metrics")


@pytest.mark.parametrize(
    "starts_at", ["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", 1e300]
)
def test_alert_far_timestamp_rejected(starts_at: Any) -> None:
    alert = dict(PLAIN["alerts"][0], starts_at=starts_at)

    batch = parse_payload({"alerts": [alert]}, received_at=RECEIVED_AT, limits=LIMITS)

    assert batch.alerts == []
    assert len(batch.rejected) == 1
    assert "starts_at" in batch.rejected[0].field
