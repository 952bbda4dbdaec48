"""Field checks on OpsForge alert records: the common valid values and every way they fail.

Valid strings, plain label maps and UTC timestamps are accepted by a short check, and anything
else goes through the full check that names the field. These tests pin that both give the
same result and the same messages.
"""

from __future__ import annotations

import pytest

from opsforge_core.errors import IngestError
from opsforge_core.ingest import IngestLimits, LimitExceededError, parse_payload
from opsforge_core.ingest.fields import check_nesting
from opsforge_core.ingest.timestamps import parse_time, quick_time

from .samples import RECEIVED_AT, opsforge_alert

LATEST = parse_time("2026-11-21T12:00:00Z", "t", RECEIVED_AT)


def _parse(*records: dict, **limits: int):
    return parse_payload(
        {"alerts": list(records)}, received_at=RECEIVED_AT, limits=IngestLimits(**limits)
    )


def _only_rejection(record: dict, **limits: int):
    batch = _parse(record, **limits)
    assert batch.alerts == []
    assert len(batch.rejected) == 1
    return batch.rejected[0]


def test_plain_labels_copied_not_shared():
    record = opsforge_alert(labels={"team": "shop", "zone": "eu-1"})
    alert = _parse(record).alerts[0]
    assert alert.labels == {"team": "shop", "zone": "eu-1"}
    assert list(alert.labels) == ["team", "zone"]
    assert alert.labels is not record["labels"]


def test_label_numbers_and_nulls_converted():
    record = opsforge_alert(labels={"port": 8080, "canary": True, "ratio": 0.5, "gone": None})
    alert = _parse(record).alerts[0]
    assert alert.labels == {"port": "8080", "canary": "true", "ratio": "0.5"}


def test_label_key_surrogate_rejected():
    rejection = _only_rejection(opsforge_alert(labels={"te\ud800am": "shop"}))
    assert rejection.field == "alerts[0].labels key 'te\\ud800am'"
    assert rejection.reason == "contains an unpaired surrogate; send valid Unicode"


def test_label_value_surrogate_rejected():
    rejection = _only_rejection(opsforge_alert(labels={"team": "sh\udc00op", "zone": "eu"}))
    assert rejection.field == "alerts[0].labels.team"
    assert rejection.reason == "contains an unpaired surrogate; send valid Unicode"


@pytest.mark.parametrize("key", ["", "   ", "\t"])
def test_blank_label_key_rejected(key: str):
    rejection = _only_rejection(opsforge_alert(labels={"team": "shop", key: "x"}))
    assert rejection.field == f"alerts[0].labels key {key!r}"
    assert rejection.reason == "is empty; send a non-empty string"


def test_long_label_value_rejected():
    record = opsforge_alert(labels={"a": "x" * 30, "b": "y" * 31})
    rejection = _only_rejection(record, max_string_length=30)
    assert rejection.field == "alerts[0].labels.b"
    assert "is 31 characters long, more than the limit of 30" in rejection.reason


def test_long_label_key_rejected():
    record = opsforge_alert(labels={"k" * 31: "v"})
    rejection = _only_rejection(record, max_string_length=30)
    assert rejection.field == f"alerts[0].labels key {'k' * 31!r}"
    assert "is 31 characters long" in rejection.reason


def test_labels_at_max_length_accepted():
    record = opsforge_alert(labels={"k" * 30: "v" * 30, "a": "b"})
    alert = _parse(record, max_string_length=30).alerts[0]
    assert alert.labels == {"k" * 30: "v" * 30, "a": "b"}


def test_non_ascii_text_kept_unchanged():
    record = opsforge_alert(summary="Überlast – Warteschlange 99 %", labels={"zone": "東京"})
    alert = _parse(record).alerts[0]
    assert alert.summary == "Überlast – Warteschlange 99 %"
    assert alert.labels == {"zone": "東京"}


def test_blank_name_rejected():
    rejection = _only_rejection(opsforge_alert(name="  "))
    assert rejection.field == "alerts[0].name"
    assert rejection.reason == "is empty; send a non-empty string"


def test_name_surrogate_rejected():
    rejection = _only_rejection(opsforge_alert(name="High\ud800Latency"))
    assert rejection.field == "alerts[0].name"
    assert rejection.reason == "contains an unpaired surrogate; send valid Unicode"


def test_empty_optional_summary_read_as_empty():
    alert = _parse(opsforge_alert(summary="")).alerts[0]
    assert alert.summary == ""


def test_known_fields_raw_kept_as_sent():
    record = opsforge_alert()
    alert = _parse(record).alerts[0]
    assert alert.raw is record


def test_unknown_field_surrogate_repaired():
    record = opsforge_alert(note="runbook \ud800")
    alert = _parse(record).alerts[0]
    assert alert.raw["note"] == "runbook \ufffd"
    assert alert.raw["name"] == "HighLatency"


def test_nested_unknown_field_surrogate_repaired():
    record = opsforge_alert(extra={"links": ["ok", {"url": "\udfff"}]})
    alert = _parse(record).alerts[0]
    assert alert.raw["extra"] == {"links": ["ok", {"url": "\ufffd"}]}


def test_timestamp_separator_surrogate_repaired():
    # fromisoformat takes any one character between date and time, a lone surrogate too.
    record = opsforge_alert(starts_at="2026-11-20\ud80010:02:00Z")
    alert = _parse(record).alerts[0]
    assert alert.starts_at == parse_time("2026-11-20T10:02:00Z", "t", RECEIVED_AT)
    assert alert.raw["starts_at"] == "2026-11-20\ufffd10:02:00Z"


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-20T10:02:00Z",
        "2026-11-20T10:02:00.123456Z",
        "2026-11-20T10:02:00",
        "2026-11-20 10:02:00+00:00",
        "2000-01-01T00:00:00Z",
    ],
)
def test_quick_time_matches_parse_time(value: str):
    assert quick_time(value, LATEST) == parse_time(value, "t", RECEIVED_AT, epoch=True)
    assert quick_time(value, LATEST).tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-20T12:02:00+02:00",  # an offset other than UTC
        " 2026-11-20T10:02:00Z",
        "1795168800",  # epoch seconds as text
        1795168800,
        "1999-12-31T23:59:59Z",  # before the earliest accepted time
        "2026-11-22T12:00:00Z",  # more than a day after the receive time
        "0001-01-01T00:00:00Z",
        "2026-13-01T00:00:00Z",
        None,
    ],
)
def test_quick_time_declines_other_forms(value):
    assert quick_time(value, LATEST) is None


def test_offset_timestamp_converted_to_utc():
    alert = _parse(opsforge_alert(starts_at="2026-11-20T12:02:00+02:00")).alerts[0]
    assert alert.starts_at == parse_time("2026-11-20T10:02:00Z", "t", RECEIVED_AT)


def test_timestamp_after_limit_rejected():
    rejection = _only_rejection(opsforge_alert(starts_at="2026-11-22T12:00:00Z"))
    assert rejection.field == "alerts[0].starts_at"
    assert "more than 1 day after the receive time" in rejection.reason


def test_zero_end_time_read_as_none():
    record = opsforge_alert(status="resolved", ends_at="0001-01-01T00:00:00Z")
    alert = _parse(record).alerts[0]
    assert alert.ends_at == RECEIVED_AT


@pytest.mark.parametrize("container", [dict, list, tuple])
def test_nesting_at_limit_accepted(container):
    value: object = "leaf"
    for _ in range(4):
        value = {"k": value} if container is dict else container([value])
    check_nesting(value, "", IngestLimits(max_depth=4))


@pytest.mark.parametrize("container", [dict, list, tuple])
def test_nesting_over_limit_raises(container):
    value: object = "leaf"
    for _ in range(5):
        value = {"k": value} if container is dict else container([value])
    with pytest.raises(LimitExceededError) as caught:
        check_nesting(value, "alerts", IngestLimits(max_depth=4))
    assert caught.value.field == "alerts"
    assert caught.value.problem == "is nested more than 4 levels deep"


def test_nesting_of_scalar_accepted():
    check_nesting("text", "", IngestLimits(max_depth=1))


def test_whole_payload_rejected_is_ingest_error():
    with pytest.raises(IngestError):
        parse_payload({"alerts": "not a list"}, received_at=RECEIVED_AT)
