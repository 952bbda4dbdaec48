"""OpsForge's own alert and metric-series records, as ``Alert.to_dict()`` and
``MetricSeries.to_dict()`` write them.

Alert: ``name``, ``service`` and ``starts_at`` are required; ``severity`` (default warning),
``status`` (default firing), ``summary``, ``description``, ``labels``, ``ends_at``,
``fingerprint`` and ``source`` are optional. Series: ``service``, ``metric`` and ``points``
(``[[timestamp, value], ...]``) are required; ``unit`` and ``kind`` (gauge or counter) are
optional. Timestamps are ISO 8601 strings or epoch seconds or milliseconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from opsforge_core.errors import IngestError
from opsforge_core.ingest.fields import (
    ALERT_SOURCES,
    ParseContext,
    check_text,
    fingerprint_for,
    fingerprint_text,
    finish_alert,
    index,
    join,
    labels_of,
    require_dict,
    require_list,
    severity_of,
    status_of,
    text,
)
from opsforge_core.ingest.timestamps import (
    accepted_range,
    parse_time,
    quick_epoch_seconds,
    quick_time,
)
from opsforge_core.models import Alert, MetricSeries

SERIES_KINDS = ("gauge", "counter")
# Fields of an alert record that ``parse_alert`` reads and validates.
_ALERT_FIELDS = frozenset(
    (
        "fingerprint",
        "source",
        "name",
        "service",
        "severity",
        "status",
        "summary",
        "description",
        "labels",
        "starts_at",
        "ends_at",
    )
)


def parse_alert(record: Any, path: str, ctx: ParseContext, default_source: str = "api") -> Alert:
    """Build an ``Alert`` from one OpsForge alert record, or raise ``IngestError``."""
    rec = require_dict(record, path)
    limits = ctx.limits
    name = text(rec, "name", path, limits)
    service = text(rec, "service", path, limits)
    labels = labels_of(rec.get("labels"), join(path, "labels"), limits)
    status = status_of(rec.get("status"), join(path, "status"))
    starts_at = _time(rec, "starts_at", path, ctx, required=True)
    ends_at = _time(rec, "ends_at", path, ctx, required=False)
    if status == "resolved" and ends_at is None:
        # A resolved record without an end time is taken to end when it was received, which
        # overstates the duration by the delivery delay.
        ends_at = max(ctx.received_at, starts_at)

    alert = Alert(
        fingerprint=fingerprint_text(rec, "fingerprint", path, limits)
        or fingerprint_for(name, service, labels),
        source=_source(rec, path, ctx, default_source),
        name=name,
        service=service,
        severity=severity_of(
            rec.get("severity"), join(path, "severity"), default="warning", strict=True
        ),
        status=status,
        summary=text(rec, "summary", path, limits, required=False),
        description=text(rec, "description", path, limits, required=False),
        labels=labels,
        starts_at=starts_at,
        ends_at=ends_at,
        raw=rec,
    )
    finish_alert(alert, join(path, "ends_at"))
    if _all_fields_checked(rec):
        ctx.mark_unicode_checked(rec)
    return alert


def _all_fields_checked(rec: dict[str, Any]) -> bool:
    """Return whether ``parse_alert`` has checked every string of ``rec`` for surrogates.

    Every field it reads is checked, but for the timestamps: ``fromisoformat`` accepts any
    character between date and time, so a timestamp counts only when it is ASCII.
    """
    if not rec.keys() <= _ALERT_FIELDS:
        return False
    starts_at, ends_at = rec.get("starts_at"), rec.get("ends_at")
    return (type(starts_at) is not str or starts_at.isascii()) and (
        type(ends_at) is not str or ends_at.isascii()
    )


def _time(rec: dict[str, Any], key: str, path: str, ctx: ParseContext, *, required: bool):
    value = rec.get(key)
    if value is None:
        if required:
            raise IngestError(join(path, key), "is missing; send an ISO 8601 timestamp")
        return None
    parsed = quick_time(value, ctx.latest_time)
    if parsed is not None:
        return parsed
    # A zero (year-1) end time means "no end", but a zero start time is invalid.
    return parse_time(
        value, join(path, key), ctx.received_at, epoch=True, zero_is_none=not required
    )


def _source(rec: dict[str, Any], path: str, ctx: ParseContext, default: str) -> str:
    source = text(rec, "source", path, ctx.limits, required=False) or default
    if source not in ALERT_SOURCES:
        raise IngestError(
            join(path, "source"),
            f"unknown source {source[:64]!r}; use one of {', '.join(ALERT_SOURCES)}",
        )
    return source


def parse_series(record: Any, path: str, ctx: ParseContext) -> MetricSeries:
    """Build a ``MetricSeries`` from one OpsForge series record, or raise ``IngestError``.

    Points may come in any order and are sorted by time. Duplicate timestamps are kept, and
    counters are kept raw (resets included), because the detector merges and differences
    them. Null and non-finite values become NaN, meaning a missing sample.
    """
    rec = require_dict(record, path)
    limits = ctx.limits
    service = text(rec, "service", path, limits)
    metric = text(rec, "metric", path, limits)
    unit = text(rec, "unit", path, limits, required=False)
    kind = (text(rec, "kind", path, limits, required=False) or "gauge").strip().lower()
    if kind not in SERIES_KINDS:
        raise IngestError(
            join(path, "kind"), f"unknown kind {kind[:64]!r}; use one of {', '.join(SERIES_KINDS)}"
        )
    points_path = join(path, "points")
    if rec.get("points") is None:
        raise IngestError(points_path, "is missing; send [[timestamp, value], ...]")
    points = require_list(rec["points"], points_path)
    if len(points) > limits.max_points_per_series:
        raise IngestError(
            points_path,
            f"has {len(points)} points, more than the limit of {limits.max_points_per_series}"
            "; send the series in several payloads",
        )
    ctx.count_points(len(points), points_path)
    timestamps, values = _points(points, points_path, ctx)
    order = np.argsort(timestamps, kind="stable")
    return MetricSeries(service, metric, timestamps[order], values[order], unit, kind)


def _points(points: list[Any], path: str, ctx: ParseContext) -> tuple[np.ndarray, np.ndarray]:
    timestamps = np.empty(len(points), dtype=np.float64)
    values = np.empty(len(points), dtype=np.float64)
    accepted = accepted_range(ctx.received_at)
    for position, point in enumerate(points):
        if type(point) is not list or len(point) != 2:
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                raise IngestError(index(path, position), "must be a [timestamp, value] pair")
        moment, value = point
        seconds = quick_epoch_seconds(moment, accepted)
        if seconds is None:
            moment_path = index(index(path, position), 0)
            seconds = parse_time(moment, moment_path, ctx.received_at, epoch=True).timestamp()
        timestamps[position] = seconds
        if type(value) is float and math.isfinite(value):
            values[position] = value  # the common case, without building the field path
        else:
            values[position] = _sample(value, index(index(path, position), 1), ctx)
    return timestamps, values


def _sample(value: Any, path: str, ctx: ParseContext) -> float:
    """Convert one sample to float. Null and non-finite values become NaN, a missing sample."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise IngestError(path, "must be a number, not a boolean")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return math.nan  # an integer beyond float range is as unusable as infinity
    elif isinstance(value, str):
        # Prometheus and some exporters send sample values as strings ("97.1", "NaN").
        check_text(value, path, ctx.limits)
        try:
            number = float(value)
        except ValueError as exc:
            raise IngestError(path, f"{value[:64]!r} is not a number") from exc
    else:
        raise IngestError(path, "must be a number or null")
    return number if math.isfinite(number) else math.nan
