"""Record logic both backends share: incident index fields, alert upserts and metric batches.

The backends differ in how they read and write. What a record means is decided here once:
which fields a listing filters on, when a repeated alert counts as unchanged, and how a series
is cut into feed items.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from opsforge_core.models import Alert, IncidentReport, IncidentSummary, MetricSeries, json_safe
from opsforge_core.store.codec import ABSENT, dumps, normalize, parse_sort_time, sort_time

# A metric batch in the feed contains at most this many points (about 40 bytes each), so an
# item stays far below DynamoDB's 400 KB limit. It spans at most this long, so a window query
# only needs to look back one span for batches that started before the window.
MAX_BATCH_POINTS = 1000
MAX_BATCH_SPAN = timedelta(hours=1)
# Partition of the incidents' newest-first index: every incident carries this constant.
LISTING_PARTITION = "incident"
_TEXT = frozenset((str,))
_TEXT_OR_NONE = frozenset((str, type(None)))

# Columns (SQLite) or top-level attributes (DynamoDB) that listings and filters read without
# loading the whole report.
SUMMARY_FIELDS = (
    "incident_id",
    "created_at",
    "title",
    "severity",
    "status",
    "services",
    "root_cause",
    "alert_count",
)


# -- incidents -------------------------------------------------------------------------------


def incident_index(report: IncidentReport) -> dict[str, Any]:
    """Return the summary and index fields stored beside the full incident document."""
    summary = IncidentSummary.of(report)
    return {
        "incident_id": summary.incident_id,
        "created_at": sort_time(summary.created_at),
        "title": summary.title,
        "severity": summary.severity,
        "status": summary.status,
        "services": list(summary.services),
        "root_cause": summary.root_cause,
        "alert_count": summary.alert_count,
        "listing": LISTING_PARTITION,
        "search_text": search_text(summary.title, summary.root_cause, summary.services),
        "fingerprints": sorted({a.fingerprint for a in report.alerts}),
    }


def search_text(title: str, root_cause: str, services: Iterable[str]) -> str:
    """Lower-cased text that the case-insensitive ``text`` filter searches."""
    return "\n".join([title, root_cause, *services]).lower()


def summary_from_index(attrs: dict[str, Any]) -> IncidentSummary:
    return IncidentSummary(
        incident_id=attrs["incident_id"],
        created_at=parse_sort_time(attrs["created_at"]),
        title=attrs.get("title") or "",
        severity=attrs.get("severity") or "warning",
        status=attrs.get("status") or "open",
        services=list(attrs.get("services") or []),
        root_cause=attrs.get("root_cause") or "",
        alert_count=int(attrs.get("alert_count") or 0),
    )


def incident_document(report: IncidentReport) -> dict[str, Any]:
    """Return ``normalize(report.to_dict())``.

    The alerts are most of a large incident (100,000 in a storm), so each is normalized
    through ``_alert_fields`` instead of the general walk. The agent results are normalized
    from the dataclasses themselves, which skips the deep copy and the NaN pass of
    ``AgentResult.to_dict``: their findings list every fingerprint of a storm's groups.
    """
    rest = normalize(replace(report, alerts=[], results=[]).to_dict())
    parts = {
        "alerts": [_alert_document(alert) for alert in report.alerts],
        "results": normalize(report.results, "$.results"),
    }
    # Rebuilt key by key so that "alerts" and "results" keep their places in the JSON text.
    return {key: parts.get(key, value) for key, value in rest.items()}


def _alert_document(alert: Alert) -> dict[str, Any]:
    """Return ``normalize(alert.to_dict())``, raw payload included."""
    fields = _alert_fields(alert)
    if alert.raw is None:
        return fields
    raw = normalize(json_safe(alert.raw), "$.raw")
    if raw is None or raw is ABSENT:
        return fields
    return {**fields, "raw": raw}


# -- alerts in the event feed ----------------------------------------------------------------


def alert_sort_key(alert: Alert) -> str:
    """Range key of an alert in the feed: start time, then fingerprint."""
    return f"{sort_time(alert.starts_at)}#{alert.fingerprint}"


def alert_digest(alert: Alert) -> str:
    """Hash of everything about an alert except the raw payload.

    Senders repeat the same alert inside envelopes that differ (group keys, receive times), so
    a repeat is recognized by its parsed fields, not by the payload bytes.
    """
    body = dumps(_alert_fields(alert))
    return hashlib.sha256(body.encode()).hexdigest()


def _alert_fields(alert: Alert) -> dict[str, Any]:
    """Return ``normalize(alert.to_dict(include_raw=False))``.

    The parsed fields are nearly always strings (None for a firing alert's end), and for those
    normalizing only drops the None values; checking that is several times cheaper than the
    general walk, which runs for anything else.
    """
    data = alert.to_dict(include_raw=False)
    labels = data["labels"]
    # Sets of types are cheaper to build and compare than all() over a generator.
    fields_plain = {type(v) for k, v in data.items() if k != "labels"} <= _TEXT_OR_NONE
    labels_plain = (
        type(labels) is dict and {*map(type, labels), *map(type, labels.values())} <= _TEXT
    )
    if fields_plain and labels_plain:
        return {k: v for k, v in data.items() if v is not None}
    return normalize(data)


def alert_row(alert: Alert) -> tuple[str, str]:
    """Return ``alert_digest(alert)`` and the JSON text of ``alert_record(alert)[1]``.

    The fields' JSON is written once: it is hashed for the digest and, with the raw payload
    appended as the last key (where ``Alert.to_dict`` puts it), it is the stored text.
    """
    fields = _alert_fields(alert)
    body = dumps(fields)
    digest = hashlib.sha256(body.encode()).hexdigest()
    if _same_plain_map(alert.raw, fields):
        # A payload in this project's own format repeats the fields, so its JSON is the same.
        return digest, f'{body[:-1]},"raw":{body}}}'
    raw = normalize(alert.raw, "$.raw")
    if raw is None or raw is ABSENT:
        return digest, body
    if not fields:
        return digest, dumps({"raw": raw})
    # ``dumps`` is compact JSON, so the object's closing brace is its last character.
    return digest, f'{body[:-1]},"raw":{dumps(raw)}}}'


def _same_plain_map(raw: Any, fields: dict[str, Any]) -> bool:
    """Return True when ``raw`` normalizes and serializes exactly as ``fields`` does.

    ``fields`` holds only strings and maps of strings (``_alert_fields``), and only a string
    equals a string, so equal maps with their keys in the same order give the same JSON once
    the None values ``normalize`` drops are left out.
    """
    if type(raw) is not dict:
        return False
    present = {k: v for k, v in raw.items() if v is not None}
    if present != fields or list(present) != list(fields):
        return False
    for key, value in present.items():
        if type(value) is str:
            continue
        if type(value) is not dict or list(value) != list(fields[key]):
            return False
    return True


def alert_record(alert: Alert) -> tuple[str, dict[str, Any]]:
    """Return ``alert_digest(alert)`` and the alert's normalized document, raw payload included.

    Both come from one ``to_dict`` and one pass of ``normalize`` over the parsed fields, which
    is most of the cost of storing an alert. ``normalize`` alone does what ``json_safe`` then
    ``normalize`` do to the raw payload: NaN and infinities are dropped from maps and None in
    lists either way.
    """
    document = _alert_fields(alert)
    digest = hashlib.sha256(dumps(document).encode()).hexdigest()
    raw = normalize(alert.raw, "$.raw")
    if raw is not None and raw is not ABSENT:
        # "raw" comes last, where Alert.to_dict puts it, so the JSON is the same text.
        document = {**document, "raw": raw}
    return digest, document


@dataclass(slots=True)
class UpsertDecision:
    change: str  # new, unchanged, resolved or updated
    write: bool


def decide_upsert(
    stored: Alert | None,
    stored_digest: str | None,
    incoming: Alert,
    incoming_digest: str | None = None,
) -> UpsertDecision:
    """Decide what one alert delivery changes, given the stored copy.

    A firing delivery of an alert that is already resolved under the same start time is a late
    repeat, so it leaves the resolved record alone. A new firing starts at another time.
    ``incoming_digest`` is ``alert_digest(incoming)`` when the caller has computed it already.
    """
    if stored is None:
        return UpsertDecision("new", True)
    if incoming_digest is None:
        incoming_digest = alert_digest(incoming)
    if stored_digest == incoming_digest:
        return UpsertDecision("unchanged", False)
    if stored.status == "resolved" and incoming.status == "firing":
        return UpsertDecision("unchanged", False)
    if stored.status == "firing" and incoming.status == "resolved":
        return UpsertDecision("resolved", True)
    return UpsertDecision("updated", True)


def expires_at(now: datetime, ttl_hours: int) -> int:
    """Epoch seconds after which a feed item may be deleted (DynamoDB's TTL format)."""
    return int((now + timedelta(hours=ttl_hours)).timestamp())


# -- metric batches in the event feed -------------------------------------------------------


def metric_batches(series: MetricSeries) -> list[tuple[str, dict[str, Any]]]:
    """Cut a series into feed items keyed by the batch's first time and the series key.

    Returns (range key, document) pairs. A batch contains at most ``MAX_BATCH_POINTS`` points
    spanning at most ``MAX_BATCH_SPAN``; NaN values are stored as None.
    """
    order = np.argsort(series.timestamps, kind="stable")
    times = series.timestamps[order].tolist()
    values = series.values[order].tolist()
    batches: list[tuple[str, dict[str, Any]]] = []
    start = 0
    span = MAX_BATCH_SPAN.total_seconds()
    while start < len(times):
        end = start + 1
        while (
            end < len(times) and end - start < MAX_BATCH_POINTS and times[end] - times[start] < span
        ):
            end += 1
        first = datetime.fromtimestamp(times[start], tz=UTC)
        document = {
            "service": series.service,
            "metric": series.metric,
            "unit": series.unit,
            "kind": series.kind,
            "t": times[start:end],
            "v": [v if math.isfinite(v) else None for v in values[start:end]],
        }
        batches.append((f"{sort_time(first)}#{series.key}", document))
        start = end
    return batches


def metric_window_start(since: datetime | None) -> str | None:
    """Lowest range key that can hold a point at or after ``since``."""
    if since is None:
        return None
    return sort_time(since - MAX_BATCH_SPAN)


def merge_metric_batches(
    documents: Iterable[dict[str, Any]], since: datetime | None, until: datetime | None
) -> list[MetricSeries]:
    """Merge feed batches into one series per key, keeping points inside the window.

    Batches are taken in the given order and a later batch's value wins at a duplicate
    timestamp. Series come back sorted by key.
    """
    low = since.timestamp() if since else -math.inf
    high = until.timestamp() if until else math.inf
    merged: dict[str, dict[str, Any]] = {}
    for doc in documents:
        key = f"{doc['service']}/{doc['metric']}"
        entry = merged.setdefault(key, {"doc": doc, "points": {}})
        entry["doc"] = doc
        for t, v in zip(doc.get("t") or [], doc.get("v") or [], strict=False):
            if low <= t <= high:
                entry["points"][float(t)] = math.nan if v is None else float(v)
    result = []
    for key in sorted(merged):
        doc, points = merged[key]["doc"], merged[key]["points"]
        if not points:
            continue
        stamps = sorted(points)
        result.append(
            MetricSeries(
                doc["service"],
                doc["metric"],
                np.array(stamps),
                np.array([points[t] for t in stamps]),
                doc.get("unit") or "",
                doc.get("kind") or "gauge",
            )
        )
    return result


# -- incident changes ------------------------------------------------------------------------

INCIDENT_STATUSES = ("open", "resolved")


def apply_status(
    report: IncidentReport, status: str, notes: str | None, now: datetime
) -> IncidentReport:
    """Set the status, resolution time and (when given) notes of a report in place."""
    report.status = status
    if notes is not None:
        report.resolution_notes = notes
    report.resolved_at = now if status == "resolved" else None
    return report
