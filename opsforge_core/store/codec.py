"""Value handling shared by both backends: normalization, DynamoDB numbers, sizes and cursors.

Both backends store the same normalized document, so a record reads back the same from SQLite
and DynamoDB:

- NaN, infinities and None inside a map are dropped, so the attribute is absent. Inside a
  list they become None, because dropping them would shift the other elements.
- Dataclass instances become maps of their fields, in field order.
- Sets, frozensets and tuples become lists (an empty set becomes an empty list, since DynamoDB
  has no empty set). Datetimes become ISO 8601 UTC strings; numpy scalars and arrays become
  Python numbers and lists.
- Numbers are limited to what DynamoDB can hold (38 significant digits, magnitude between
  1e-130 and 1e126). A float smaller in magnitude than 1e-130 is stored as 0.0. A number
  larger than 9.99e125, or an integer with more than 38 digits, is stored as its decimal
  string (``"1e+200"``), so the value stays readable but reads back as a string.

On the way out of DynamoDB, ``Decimal`` values become ``int`` when integral and ``float``
otherwise, so ``json.dumps`` works on everything a backend returns. DynamoDB keeps no
distinction between the two, so a float such as ``30.0`` comes back as the int ``30``. An
integral value above 2**53 with at most 17 significant digits comes back as a float, and that
includes an int such as 12345678901234567.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from typing import Any

import numpy as np

from opsforge_core.errors import ValidationError
from opsforge_core.models import iso, utc

# DynamoDB's number range and precision (Developer Guide, "Supported data types and naming
# rules in Amazon DynamoDB").
MIN_MAGNITUDE = 1e-130
MAX_MAGNITUDE = 1e126  # exclusive
MAX_DIGITS = 38
# DynamoDB's maximum item size, counting attribute names and values.
MAX_ITEM_BYTES = 400 * 1024
# DynamoDB's key attribute limits: a partition key value up to 2048 bytes, a sort key up to 1024.
MAX_HASH_KEY_BYTES = 2048
MAX_RANGE_KEY_BYTES = 1024

_DECIMAL_CONTEXT = Context(prec=MAX_DIGITS, Emin=-128, Emax=126, traps=[Inexact, Rounded])


def normalize(value: Any, path: str = "$") -> Any:
    """Return ``value`` as JSON-safe plain data within DynamoDB's limits (see module doc).

    Raises ``ValidationError`` naming the path of a value of an unsupported type.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, dict):  # before the much slower abstract Mapping check below
        return _normalize_map(value, path)
    if isinstance(value, (int, float, Decimal, np.integer, np.floating)):
        return _normalize_number(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return _normalize_map(value, path)
    if isinstance(value, (list, tuple, np.ndarray)):
        items = value.tolist() if isinstance(value, np.ndarray) else value
        return [
            v if isinstance(v, str) else _none_if_absent(normalize(v, f"{path}[{i}]"))
            for i, v in enumerate(items)
        ]
    if isinstance(value, (set, frozenset)):
        return sorted((normalize(v, path) for v in value), key=repr)
    if is_dataclass(value) and not isinstance(value, type):
        # Field by field, as ``asdict`` would give them, without its deep copy of every list.
        return _normalize_map({f.name: getattr(value, f.name) for f in fields(value)}, path)
    raise ValidationError(f"{path}: values of type {type(value).__name__} cannot be stored")


class _Absent:
    """Marker for a value that is stored as an absent attribute."""


ABSENT = _Absent()


def _none_if_absent(value: Any) -> Any:
    return None if value is ABSENT else value


def _normalize_map(value: Mapping, path: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, str):
            # Most values are strings, and skipping the call and its path string for them
            # is a large share of the time spent storing an alert.
            result[str(key)] = item
            continue
        normalized = normalize(item, f"{path}.{key}")
        if normalized is None or normalized is ABSENT:
            continue
        result[str(key)] = normalized
    return result


def _normalize_number(value: int | float | Decimal | np.number) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, Decimal):
        value = _decimal_to_number(value)
    if isinstance(value, int):
        return value if len(str(abs(value))) <= MAX_DIGITS else str(value)
    if not math.isfinite(value):
        return ABSENT
    if value != 0.0 and abs(value) < MIN_MAGNITUDE:
        return 0.0
    if abs(value) >= MAX_MAGNITUDE:
        return repr(value)
    return value


def _decimal_to_number(value: Decimal) -> int | float:
    # DynamoDB returns 1e20 as "100000000000000000000", so an integral value beyond 2**53 (where
    # floats stop being exact integers) is taken for a float unless it has more significant
    # digits than a float carries.
    if not value.is_finite() or value != value.to_integral_value():
        return float(value)
    if abs(value) <= 2**53 or len(value.normalize().as_tuple().digits) > 17:
        return int(value)
    return float(value)


def to_decimal(value: int | float) -> Decimal:
    """Convert a normalized number to the ``Decimal`` that boto3 sends.

    ``repr`` gives the shortest string that round-trips the float, so the conversion is exact
    for every float that ``normalize`` lets through.
    """
    try:
        return _DECIMAL_CONTEXT.create_decimal(repr(value) if isinstance(value, float) else value)
    except (Inexact, Rounded, InvalidOperation) as exc:
        raise ValidationError(f"number {value!r} does not fit DynamoDB's number type") from exc


def to_dynamo(value: Any) -> Any:
    """Convert normalized plain data to the Python types boto3's serializer accepts."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (int, float)):
        return to_decimal(value)
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_dynamo(v) for v in value]
    raise ValidationError(f"value of type {type(value).__name__} was not normalized")


def from_dynamo(value: Any) -> Any:
    """Convert values from boto3's deserializer back to plain JSON-safe Python data."""
    if isinstance(value, Decimal):
        return _decimal_to_number(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_dynamo(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((from_dynamo(v) for v in value), key=repr)
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), bytes):
        return bytes(value.value)  # boto3's Binary wrapper
    return value


# -- sizes ---------------------------------------------------------------------------------------


def item_size(item: Mapping[str, Any]) -> int:
    """Estimate the DynamoDB size in bytes of a normalized item, erring on the large side.

    The rules follow the Developer Guide's "DynamoDB item sizes and formats" page. Names and
    strings count their UTF-8 bytes, a number about one byte per two significant digits plus
    one, and each list or map 3 bytes plus 1 byte per element. Numbers get one byte more than
    the page gives, to stay on the large side.
    """
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, (int, float, Decimal)):
        digits = len(repr(value).lstrip("-").replace(".", "").split("e")[0].strip("0"))
        return (digits + 1) // 2 + 2
    if isinstance(value, Mapping):
        return 3 + sum(len(k.encode()) + 1 + _value_size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return 3 + sum(1 + _value_size(v) for v in value)
    return len(str(value).encode())


def compress(document: Any) -> bytes:
    """Serialize a normalized document to gzip-compressed JSON."""
    return gzip.compress(dumps(document).encode(), compresslevel=6)


def decompress(data: bytes) -> Any:
    return json.loads(gzip.decompress(data))


# Built once: ``json.dumps`` with options builds a new encoder on every call. The encoder keeps
# no state between calls, so threads can share it.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(document: Any) -> str:
    """Serialize a normalized document to compact JSON (``allow_nan`` off as a guard)."""
    return _ENCODER.encode(document)


# -- keys, times and cursors -----------------------------------------------------------------


def check_key(table: str, name: str, value: str, max_bytes: int = MAX_HASH_KEY_BYTES) -> str:
    """Return ``value`` if it is usable as a key attribute, else raise ``ValidationError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{table}: key {name} must be a non-empty string, got {value!r}")
    if len(value.encode()) > max_bytes:
        raise ValidationError(
            f"{table}: key {name} is {len(value.encode())} bytes; the limit is {max_bytes}"
        )
    return value


def check_limit(limit: int) -> None:
    """Raise ``ValidationError`` unless ``limit`` is a positive page size."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValidationError(f"limit must be a positive integer, got {limit!r}")


def sort_time(value: datetime) -> str:
    """Format a datetime as fixed-width UTC text whose string order is time order.

    ``iso()`` drops zero microseconds, and ``"…:34Z"`` sorts after ``"…:34.5Z"``, so sort
    keys always carry six fractional digits.
    """
    value = utc(value)
    if value.year >= 1000:
        # The same text as strftime below, about twice as fast. strftime's %Y writes years
        # before 1000 without leading zeros on Linux, where isoformat pads them.
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_sort_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def encode_cursor(key: Mapping[str, Any]) -> str:
    """Encode the last key of a page as an opaque URL-safe string."""
    raw = json.dumps(dict(key), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, expected: set[str]) -> dict[str, Any]:
    """Decode a cursor from ``encode_cursor``; raise ``ValidationError`` if it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(
            f"invalid cursor {cursor[:40]!r}: not a cursor from this store; start from the first "
            "page without a cursor"
        ) from exc
    if not isinstance(key, dict) or set(key) != expected:
        raise ValidationError(
            f"invalid cursor {cursor[:40]!r}: it is from another listing; start from the first "
            "page without a cursor"
        )
    return key
