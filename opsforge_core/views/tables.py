"""Table rows for the console: alerts, incidents, patterns, knowledge items and tables.

Rows are plain dicts of strings and numbers in display order, ready for ``st.dataframe`` (which
shows every value as text, so untrusted strings need no escaping there).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from opsforge_core.models import SEVERITY_RANK, Alert, IncidentSummary, KnowledgeItem, Pattern
from opsforge_core.views.text import format_duration, mask_secret, shorten

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class AlertFields(Protocol):
    """The alert fields that tables and charts show. ``Alert`` has them all."""

    @property
    def fingerprint(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime | None: ...


def format_time(value: datetime | None) -> str:
    """Format an aware datetime as ``YYYY-MM-DD HH:MM:SS`` in UTC; None gives ``-``."""
    if value is None:
        return "-"
    return value.strftime(TIME_FORMAT)


def sort_alerts(alerts: Sequence[Alert]) -> list[Alert]:
    """Order alerts firing first, then by severity (worst first), then newest start first."""
    return sorted(
        alerts,
        key=lambda a: (
            a.status != "firing",
            -SEVERITY_RANK.get(a.severity, 0),
            -a.starts_at.timestamp(),
        ),
    )


def alert_rows(alerts: Sequence[AlertFields], now: datetime) -> list[dict[str, Any]]:
    """Build one row per alert; ``age`` counts from the start to ``now`` (or to the end)."""
    rows = []
    for alert in alerts:
        end = alert.ends_at or now
        rows.append(
            {
                "severity": alert.severity,
                "service": alert.service,
                "alert": alert.name,
                "status": alert.status,
                "age": format_duration((end - alert.starts_at).total_seconds()),
                "started (UTC)": format_time(alert.starts_at),
                "summary": shorten(alert.summary, 160),
                "fingerprint": alert.fingerprint,
            }
        )
    return rows


def count_by(alerts: Sequence[Alert], attribute: str) -> dict[str, int]:
    """Count alerts by one attribute (``severity``, ``status``, ``service``), largest first."""
    counts: dict[str, int] = {}
    for alert in alerts:
        value = str(getattr(alert, attribute))
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class PageSlice:
    """One page of a client-side paged table; ``number`` is 1-based."""

    rows: list[Any]
    number: int
    count: int
    total: int


def paginate(rows: Sequence[Any], number: int, size: int) -> PageSlice:
    """Return page ``number`` (1-based, clamped to the valid range) of ``rows``."""
    size = max(1, size)
    count = max(1, math.ceil(len(rows) / size))
    number = min(max(1, number), count)
    start = (number - 1) * size
    return PageSlice(list(rows[start : start + size]), number, count, len(rows))


def incident_rows(summaries: Sequence[IncidentSummary], now: datetime) -> list[dict[str, Any]]:
    """Build one row per incident summary, newest first as given."""
    return [
        {
            "created (UTC)": format_time(s.created_at),
            "age": format_duration((now - s.created_at).total_seconds()),
            "severity": s.severity,
            "status": s.status,
            "title": shorten(s.title, 100),
            "root cause": s.root_cause,
            "services": ", ".join(s.services),
            "alerts": s.alert_count,
            "incident": s.incident_id,
        }
        for s in summaries
    ]


def incident_label(summary: IncidentSummary) -> str:
    """Label one incident for a picker: time, severity, status and a shortened title."""
    title = shorten(summary.title or summary.root_cause or summary.incident_id, 60)
    return (
        f"{format_time(summary.created_at)} · {summary.severity} · {summary.status} · {title}"
        f" ({summary.incident_id})"
    )


def pattern_rows(patterns: Sequence[Pattern]) -> list[dict[str, Any]]:
    """Build one row per learned pattern."""
    return [
        {
            "root cause": p.root_cause,
            "fault kind": p.fault_kind,
            "occurrences": p.occurrences,
            "confirmed": p.confirmed,
            "rejected": p.rejected,
            "last seen (UTC)": format_time(p.last_seen),
            "alerts": ", ".join(p.alert_names),
            "services": ", ".join(p.services),
            "pattern": p.pattern_id,
        }
        for p in patterns
    ]


def pattern_matches(pattern: Pattern, text: str) -> bool:
    """Tell whether ``text`` occurs (case-insensitive) in the pattern's names or root cause."""
    needle = text.strip().lower()
    if not needle:
        return True
    haystack = " ".join(
        [pattern.root_cause, pattern.fault_kind, pattern.signature, *pattern.services]
        + list(pattern.alert_names)
    ).lower()
    return needle in haystack


def knowledge_rows(items: Sequence[KnowledgeItem]) -> list[dict[str, Any]]:
    """Build one row per agent knowledge item, with a one-line preview of its value."""
    return [
        {
            "agent": item.agent_name,
            "key": item.knowledge_key,
            "updated (UTC)": format_time(item.updated_at),
            "value": shorten(json.dumps(item.value, default=str, sort_keys=True), 160),
        }
        for item in items
    ]


def table_info_rows(tables: Sequence[Any]) -> list[dict[str, Any]]:
    """Build one row per ``TableInfo``: name, key schema, item count and indexes."""
    rows = []
    for table in tables:
        keys = ", ".join(
            f"{k.get('AttributeName', k.get('name', '?'))} ({k.get('KeyType', k.get('type', '?'))})"
            for k in table.key_schema
        )
        rows.append(
            {
                "table": table.name,
                "key schema": keys,
                "items": table.item_count,
                "indexes": ", ".join(table.indexes) or "-",
            }
        )
    return rows


def settings_rows(settings: dict[str, object]) -> list[dict[str, str]]:
    """Build one row per setting, secrets masked, values shown as text."""
    rows = []
    for name, value in settings.items():
        shown = mask_secret(name, value)
        if isinstance(shown, dict):
            shown = json.dumps(shown, default=str, sort_keys=True)
        rows.append({"setting": name, "value": "-" if shown is None else str(shown)})
    return rows
