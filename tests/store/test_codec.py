"""The shared codec: normalization, DynamoDB numbers, cursors and sort keys."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from opsforge_core.errors import ValidationError
from opsforge_core.store.codec import (
    check_key,
    decode_cursor,
    encode_cursor,
    from_dynamo,
    normalize,
    sort_time,
    to_decimal,
    to_dynamo,
)


def test_normalize_drops_nan_in_maps_keeps_list_positions():
    value = {"a": math.nan, "b": None, "c": [1.0, math.nan, math.inf, None], "d": -math.inf}
    assert normalize(value) == {"c": [1.0, None, None, None]}


def test_normalize_number_range():
    assert normalize(1e-200) == 0.0
    assert normalize(-1e-131) == 0.0
    assert normalize(1e-129) == 1e-129
    assert normalize(9.9e125) == 9.9e125
    assert normalize(1e126) == "1e+126"
    assert normalize(-3e300) == "-3e+300"
    assert normalize(10**40) == str(10**40)
    assert normalize(10**37) == 10**37


def test_normalize_sets_numpy_datetimes_decimals():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    value = {
        "empty": set(),
        "names": frozenset({"b", "a"}),
        "array": np.array([1.5, np.nan]),
        "scalar": np.float32(0.5),
        "count": np.int64(3),
        "when": moment,
        "decimal": Decimal("2.50"),
        "tuple": (1, 2),
        "flag": True,
    }
    assert normalize(value) == {
        "empty": [],
        "names": ["a", "b"],
        "array": [1.5, None],
        "scalar": 0.5,
        "count": 3,
        "when": "2026-01-02T01:04:05Z",
        "decimal": 2.5,
        "tuple": [1, 2],
        "flag": True,
    }


def test_normalize_rejects_unknown_types():
    with pytest.raises(ValidationError, match=r"\$\.payload: values of type object"):
        normalize({"payload": object()})


@pytest.mark.parametrize(
    "value", [30.40, 0.1, 1 / 3, 1e-129, 9.87654321e125, -2.5, 2**53, 1733323456789012345]
)
def test_to_decimal_round_trips(value):
    decimal = to_decimal(value)
    TypeSerializer().serialize(decimal)  # boto3's own context accepts it
    assert from_dynamo(decimal) == value


def test_from_dynamo_integral_and_nested():
    value = {
        "n": Decimal("30"),
        "f": Decimal("30.4"),
        "l": [Decimal("1E+2"), {"x": Decimal("0.1")}],
    }
    plain = from_dynamo(value)
    assert plain == {"n": 30, "f": 30.4, "l": [100, {"x": 0.1}]}
    assert type(plain["n"]) is int
    assert type(plain["f"]) is float
    json.dumps(plain)


def test_to_dynamo_round_trip():
    document = normalize({"a": [0.1, {"b": 2}], "s": "", "t": True})
    assert from_dynamo(to_dynamo(document)) == document


def test_cursor_round_trip_and_rejection():
    key = {"feed_id": "alerts", "ts": "2026-01-01T00:00:00.000000Z#fp-1"}
    cursor = encode_cursor(key)
    assert "=" not in cursor
    assert decode_cursor(cursor, {"feed_id", "ts"}) == key
    with pytest.raises(ValidationError, match="another listing"):
        decode_cursor(cursor, {"pattern_id"})
    with pytest.raises(ValidationError, match="invalid cursor"):
        decode_cursor("%%%", {"pattern_id"})


def test_sort_time_orders_like_time():
    whole = datetime(2026, 1, 1, 0, 0, 34, tzinfo=UTC)
    half = whole + timedelta(microseconds=500_000)
    assert sort_time(whole) == "2026-01-01T00:00:34.000000Z"
    assert sort_time(whole) < sort_time(half)
    assert sort_time(datetime(2026, 1, 1, 2, 0, 34, tzinfo=timezone(timedelta(hours=2)))) == (
        sort_time(whole)
    )


@pytest.mark.parametrize("value", ["", "   ", None])
def test_check_key_rejects_empty(value):
    with pytest.raises(ValidationError, match="incident_id must be a non-empty string"):
        check_key("t", "incident_id", value)


def test_check_key_rejects_oversized():
    with pytest.raises(ValidationError, match="limit is 1024"):
        check_key("t", "knowledge_key", "k" * 1025, 1024)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_survives_dynamodb_numbers(value):
    normalized = normalize(value)
    if isinstance(normalized, str):
        assert abs(value) >= 1e126
        assert float(normalized) == value
        return
    decimal = to_decimal(normalized)
    TypeSerializer().serialize(decimal)
    assert from_dynamo(Decimal(str(decimal))) == normalized
    if normalized != value:
        assert normalized == 0.0
        assert abs(value) < 1e-130
