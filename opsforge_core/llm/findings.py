"""Read the agents' findings in the shapes the agents write them, tolerating missing parts.

The rootcause agent writes ``findings["root_cause"]`` and ``findings["ranking"]`` (a list of
dicts with ``service`` and ``score``, or of ``[service, score]`` pairs); PredictiveOps writes
``findings["anomalies"]`` (dicts naming ``service`` and a start time). A failed or skipped
agent contributes nothing. Evidence references name a finding as ``agent.key[index]``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from opsforge_core.models import AgentResult, Alert, parse_iso, utc

_TIME_KEYS = ("start", "started_at", "starts_at", "first_at", "at", "timestamp", "time", "ts")
_SERVICE_KEYS = ("service", "node", "component", "name")


def ok_result(results: list[AgentResult], agent: str) -> AgentResult | None:
    """Return the named agent's result when it ran successfully."""
    for result in results:
        if result.agent == agent and result.status == "ok":
            return result
    return None


def entry_service(entry: Any) -> str | None:
    """Return the service an entry of a ranking or anomaly list names."""
    if isinstance(entry, str):
        return entry or None
    if isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str):
        return entry[0] or None
    if isinstance(entry, dict):
        for key in _SERVICE_KEYS:
            value = entry.get(key)
            if isinstance(value, str) and value:
                return value
        series = entry.get("series") or entry.get("key")
        if isinstance(series, str) and "/" in series:
            return series.split("/", 1)[0]
    return None


def entry_time(entry: Any) -> float:
    """Return an anomaly's start as epoch seconds; infinity when it has none."""
    if not isinstance(entry, dict):
        return math.inf
    for key in _TIME_KEYS:
        value = entry.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        if isinstance(value, datetime):
            return utc(value).timestamp()
        if isinstance(value, str):
            try:
                return parse_iso(value).timestamp()
            except ValueError:
                continue
    return math.inf


def ranking(results: list[AgentResult]) -> list[Any]:
    result = ok_result(results, "rootcause")
    value = result.findings.get("ranking") if result else None
    return list(value) if isinstance(value, list) else []


def anomalies(results: list[AgentResult]) -> list[Any]:
    result = ok_result(results, "predictiveops")
    value = result.findings.get("anomalies") if result else None
    return list(value) if isinstance(value, list) else []


def earliest_anomalies(results: list[AgentResult], limit: int = 3) -> list[tuple[int, Any]]:
    """Return up to ``limit`` (index, anomaly) pairs, earliest first, index into the findings."""
    indexed = [(i, a) for i, a in enumerate(anomalies(results)) if entry_service(a)]
    indexed.sort(key=lambda pair: (entry_time(pair[1]), pair[0]))
    return indexed[:limit]


def earliest_alert(alerts: list[Alert]) -> Alert | None:
    return min(alerts, key=lambda a: (a.starts_at, a.fingerprint), default=None)


def describe_anomaly(entry: Any) -> str:
    """Return a short label ``service/metric at time`` for an anomaly."""
    service = entry_service(entry) or "?"
    label = service
    if isinstance(entry, dict):
        metric = entry.get("metric")
        series = entry.get("series") or entry.get("key")
        if isinstance(metric, str) and metric:
            label = f"{service}/{metric}"
        elif isinstance(series, str) and series:
            label = series
    when = entry_time(entry)
    if math.isfinite(when):
        stamp = datetime.fromtimestamp(when, tz=UTC)
        label += f" at {stamp.strftime('%H:%M:%S')}Z"
    return label


def evidence_references(results: list[AgentResult]) -> set[str]:
    """Return every reference an answer may cite: ``agent.key`` and ``agent.key[index]``."""
    references: set[str] = set()
    for result in results:
        if result.status != "ok":
            continue
        for key, value in result.findings.items():
            references.add(f"{result.agent}.{key}")
            if isinstance(value, list):
                references.update(f"{result.agent}.{key}[{i}]" for i in range(len(value)))
    return references
