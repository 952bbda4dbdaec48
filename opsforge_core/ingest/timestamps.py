"""Timestamp parsing shared by every sender: ISO 8601 strings and, where allowed, epoch numbers.

Every result is an aware UTC datetime. A naive timestamp is taken as UTC. Timestamps before
2000-01-01 or more than one day after the receive time are rejected, because they come from a
broken clock or a unit mistake (milliseconds read as seconds, or the reverse).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.models import iso

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(days=1)
# Epoch numbers at or above this are milliseconds: 1e11 seconds is in the year 5138, while
# 1e11 milliseconds is in 1973, before EARLIEST, so no valid value is ambiguous.
EPOCH_MS_THRESHOLD = 1e11
_EPOCH_TEXT = re.compile(r"^[+-]?\d+(\.\d+)?$")
_ISO_HINT = "use ISO 8601 such as 2026-11-20T08:15:42Z"


def parse_time(
    value: Any,
    path: str,
    received_at: datetime,
    *,
    epoch: bool = False,
    zero_is_none: bool = False,
) -> datetime | None:
    """Parse ``value`` to an aware UTC datetime, or raise ``IngestError`` naming ``path``.

    ``epoch`` also accepts epoch seconds or milliseconds, as numbers or digit strings.
    ``zero_is_none`` returns None for a year-1 date, which Go senders such as Alertmanager
    write for "no time" (``0001-01-01T00:00:00Z``).
    """
    if isinstance(value, str):
        stripped = value.strip()
        if epoch and _EPOCH_TEXT.match(stripped):
            parsed = _from_epoch(float(stripped), path)
        else:
            parsed = _from_iso(stripped, path, epoch)
            if parsed.year <= 1 and zero_is_none:
                return None
            parsed = _to_utc(parsed, path, value)
    elif epoch and isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = _from_epoch(value, path)
    else:
        expected = "an ISO 8601 string or epoch seconds" if epoch else "an ISO 8601 string"
        raise IngestError(path, f"must be {expected}, not {type(value).__name__}")
    _check_range(parsed, path, received_at)
    return parsed


def accepted_range(received_at: datetime) -> tuple[float, float]:
    """Return the accepted timestamps as epoch seconds (first, last) for ``received_at``."""
    return EARLIEST.timestamp(), (received_at + MAX_AHEAD).timestamp()


def quick_epoch_seconds(value: Any, accepted: tuple[float, float]) -> float | None:
    """Parse the common timestamp forms to epoch seconds, or return None for the rest.

    Series carry up to hundreds of thousands of points, so an ISO string or an epoch number
    inside the ``accepted`` range skips ``parse_time``. Every other value, valid or not,
    returns None, and the caller passes it to ``parse_time`` for the result or the error.
    """
    seconds = math.nan
    try:
        if type(value) is str:
            if _EPOCH_TEXT.match(value):
                return None  # digit strings are epoch numbers, which fromisoformat misreads
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
        elif type(value) is int or type(value) is float:
            seconds = float(value)
            if abs(seconds) >= EPOCH_MS_THRESHOLD:
                seconds /= 1000.0
    except (ValueError, OverflowError):
        return None
    # NaN fails both comparisons, so it returns None too.
    return seconds if accepted[0] <= seconds <= accepted[1] else None


def quick_time(value: Any, latest: datetime) -> datetime | None:
    """Parse an ISO 8601 UTC or naive string to an aware UTC datetime, or return None.

    Alerts carry two timestamps each, so this common form skips ``parse_time``'s epoch and
    offset handling. A value it declines (epoch numbers, offsets, surrounding spaces, out of
    range, invalid) returns None, and the caller passes it to ``parse_time`` for the result
    or the error, which is the same as when this succeeds.
    """
    # ISO dates have "-" after the year, and epoch digit strings never have it there.
    if type(value) is not str or value[4:5] != "-":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    elif parsed.tzinfo is not UTC:
        return None
    return parsed if EARLIEST <= parsed <= latest else None


def _from_iso(text: str, path: str, epoch: bool) -> datetime:
    # Python 3.11's fromisoformat reads Z, +02:00 and +0000 offsets and fractions of any
    # length (digits past microseconds are dropped).
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        hint = _ISO_HINT + (" or epoch seconds" if epoch else "")
        raise IngestError(path, f"invalid timestamp {text[:64]!r}; {hint}") from exc


def _to_utc(parsed: datetime, path: str, original: str) -> datetime:
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise IngestError(path, f"timestamp {original[:64]!r} is out of range") from exc


def _from_epoch(number: int | float, path: str) -> datetime:
    try:
        seconds = float(number)
    except OverflowError as exc:  # an integer beyond float range
        raise IngestError(path, "epoch timestamp is out of range") from exc
    if not math.isfinite(seconds):
        raise IngestError(path, f"epoch timestamp {seconds!r} is not a finite number")
    if abs(seconds) >= EPOCH_MS_THRESHOLD:
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise IngestError(path, f"epoch timestamp {number!r} is out of range") from exc


def _check_range(parsed: datetime, path: str, received_at: datetime) -> None:
    if parsed < EARLIEST:
        raise IngestError(
            path,
            f"timestamp {iso(parsed)} is before 2000-01-01; check the sender's clock "
            "and the unit (seconds or milliseconds)",
        )
    if parsed > received_at + MAX_AHEAD:
        raise IngestError(
            path,
            f"timestamp {iso(parsed)} is more than 1 day after the receive time "
            f"{iso(received_at)}; check the sender's clock and time zone",
        )
