"""Errors that name their field, unreadable bodies, and the bounds on one payload."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from opsforge_core.config import Settings
from opsforge_core.errors import IngestError
from opsforge_core.ingest import (
    IngestLimits,
    LimitExceededError,
    UnknownFormatError,
    parse_bytes,
    parse_file,
    parse_payload,
)
from tests.ingest.samples import RECEIVED_AT, opsforge_alert, opsforge_series


def parse(payload, **limits):
    return parse_payload(payload, received_at=RECEIVED_AT, limits=IngestLimits(**limits))


@pytest.mark.parametrize("payload", [{"hello": "world"}, 42, "alerts", None, {"type": 3}])
def test_unknown_format_lists_accepted_formats(payload):
    with pytest.raises(UnknownFormatError) as caught:
        parse(payload)
    assert caught.value.field == "payload"
    for name in ("Alertmanager webhook (version 4)", "PagerDuty Events API v2", "JSON array"):
        assert name in caught.value.problem


def test_invalid_utf8_body_named():
    with pytest.raises(IngestError) as caught:
        parse_bytes(b'{"a": "\xff"}')
    assert caught.value.field == "body"
    assert caught.value.problem.startswith("invalid UTF-8 at byte 7")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"alerts": [}', "invalid JSON at line 1 column 13"),
        (b"   ", "is empty"),
        (b"", "is empty"),
    ],
)
def test_invalid_json_body_named(body, problem):
    with pytest.raises(IngestError) as caught:
        parse_bytes(body)
    assert caught.value.field == "body"
    assert caught.value.problem.startswith(problem)


def test_body_with_byte_order_mark_parses():
    body = b"\xef\xbb\xbf" + json.dumps({"alerts": [opsforge_alert()]}).encode()
    assert len(parse_bytes(body, received_at=RECEIVED_AT).alerts) == 1


def test_deeply_nested_body_raises_ingest_error():
    body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(IngestError) as caught:
        parse_bytes(body)
    assert caught.value.field == "body"


def test_nesting_over_limit_raises():
    payload = {"alerts": [opsforge_alert(labels={"a": {"b": {"c": "d"}}})]}
    with pytest.raises(LimitExceededError) as caught:
        parse(payload, max_depth=4)
    assert "nested more than 4 levels" in caught.value.problem


def test_alert_count_over_limit_raises():
    payload = {"alerts": [opsforge_alert(name=f"A{i}") for i in range(4)]}
    assert len(parse(payload, max_alerts=4).alerts) == 4
    with pytest.raises(LimitExceededError) as caught:
        parse(payload, max_alerts=3)
    assert caught.value.field == "alerts"
    assert "more than 3 alerts" in caught.value.problem


def test_alert_count_summed_over_list_elements():
    element = {"alerts": [opsforge_alert(), opsforge_alert()]}
    with pytest.raises(LimitExceededError):
        parse([element, element], max_alerts=3)


def test_series_count_over_limit_raises():
    payload = {"metrics": [opsforge_series([], metric=f"m{i}") for i in range(3)]}
    with pytest.raises(LimitExceededError) as caught:
        parse(payload, max_series=2)
    assert caught.value.field == "metrics"


def test_points_per_series_over_limit_rejects_series():
    points = [[f"2026-11-20T10:0{i}:00Z", i] for i in range(5)]
    payload = {"metrics": [opsforge_series(points), opsforge_series(points[:2], metric="cpu")]}
    batch = parse(payload, max_points_per_series=4)
    assert [s.key for s in batch.series] == ["payments/cpu"]
    (rejection,) = batch.rejected
    assert rejection.field == "metrics[0].points"
    assert "5 points, more than the limit of 4" in rejection.reason


def test_total_points_over_limit_raises():
    points = [[f"2026-11-20T10:0{i}:00Z", i] for i in range(3)]
    payload = {"metrics": [opsforge_series(points, metric=f"m{i}") for i in range(3)]}
    with pytest.raises(LimitExceededError) as caught:
        parse(payload, max_total_points=8)
    assert caught.value.field == "metrics[2].points"


def test_long_string_rejects_alert():
    payload = {"alerts": [opsforge_alert(summary="x" * 101), opsforge_alert()]}
    batch = parse(payload, max_string_length=100)
    assert len(batch.alerts) == 1
    (rejection,) = batch.rejected
    assert rejection.field == "alerts[0].summary"
    assert "101 characters long" in rejection.reason


def test_fingerprint_over_store_key_limit_rejects_alert():
    payload = {"alerts": [opsforge_alert(fingerprint="\u00e9" * 451), opsforge_alert()]}
    batch = parse(payload)
    assert len(batch.alerts) == 1
    (rejection,) = batch.rejected
    assert rejection.field == "alerts[0].fingerprint"
    assert "is 902 bytes; the limit is 900" in rejection.reason


def test_pagerduty_dedup_key_over_limit_rejects_event():
    event = {"event_action": "resolve", "dedup_key": "k" * 901}
    with pytest.raises(IngestError) as caught:
        parse({"routing_key": "r", **event})
    assert caught.value.field.endswith("dedup_key")


def test_too_many_labels_rejects_alert():
    labels = {f"k{i}": "v" for i in range(5)}
    batch = parse({"alerts": [opsforge_alert(labels=labels)]}, max_labels=4)
    assert batch.alerts == []
    assert batch.rejected[0].field == "alerts[0].labels"


def test_body_over_byte_limit_raises():
    body = json.dumps({"alerts": [opsforge_alert()]}).encode()
    with pytest.raises(LimitExceededError) as caught:
        parse_bytes(body, limits=IngestLimits(max_bytes=len(body) - 1))
    assert caught.value.field == "body"


def test_embedded_payloads_bounded():
    payload = {"alerts": [opsforge_alert()]}
    for _ in range(6):
        payload = [payload]
    with pytest.raises(LimitExceededError) as caught:
        parse(payload, max_embedded_levels=4)
    assert "embedded more than 4 levels" in caught.value.problem


def test_limits_from_settings():
    limits = IngestLimits.from_settings(
        Settings(api_max_body_bytes=2048, api_max_alerts=10, api_max_points=500)
    )
    assert limits.max_bytes == 2048
    assert limits.max_alerts == 10
    assert limits.max_total_points == 500
    assert limits.max_points_per_series == 500


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "absent.json"
    with pytest.raises(IngestError) as caught:
        parse_file(missing)
    assert caught.value.field == str(missing)


def test_jsonl_suffix_forces_lines(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text("{broken\n" + json.dumps({"alerts": [opsforge_alert()]}) + "\n")
    batch = parse_file(path, received_at=RECEIVED_AT)
    assert len(batch.alerts) == 1
    assert [r.field for r in batch.rejected] == ["line 1"]


@pytest.fixture
def apigw_v2(load_event):
    return load_event("apigw_v2_analyze_base64.json")


@pytest.mark.parametrize(
    ("body", "encoded", "problem"),
    [
        (None, False, "is missing"),
        ("not json", False, "invalid JSON at line 1 column 1"),
        ("%%%", True, "not base64"),
        (base64.b64encode(b"\xff\xfe").decode(), True, "invalid UTF-8"),
    ],
)
def test_apigateway_bad_body_named(apigw_v2, body, encoded, problem):
    event = copy.deepcopy(apigw_v2)
    event["body"] = body
    event["isBase64Encoded"] = encoded
    with pytest.raises(IngestError) as caught:
        parse(event)
    assert caught.value.field == "body"
    assert problem in caught.value.problem


def test_apigateway_inner_rejection_path(apigw_v2):
    event = copy.deepcopy(apigw_v2)
    inner = {"alerts": [opsforge_alert(), opsforge_alert(severity="apocalyptic")]}
    event["body"] = base64.b64encode(json.dumps(inner).encode()).decode()
    batch = parse(event)
    assert len(batch.alerts) == 1
    assert [(r.index, r.field) for r in batch.rejected] == [(1, "body.alerts[1].severity")]
