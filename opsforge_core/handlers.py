"""Inbound event handling shared by the HTTP API and the Lambda handler.

    handle_alerts(payload)    parse, record in the event feed (deduplicated by fingerprint),
                              start one analysis for new serious alerts, and close incidents
                              whose alerts are all resolved
    handle_metrics(payload)   parse and append metric batches to the event feed
    handle_events(payload)    alerts, metrics or both, whatever the payload contains
    handle_incident(payload)  analyze the given alerts and metrics now

The first three store every valid record of the payload, so metric series that arrive with
alerts (or alerts with metrics) are kept as well. ``handle_incident`` records only the alerts,
because a repeated analysis request would append its metric batches to the feed again.

Each returns a ``HandlerResult`` that lists what was accepted, what was rejected (with the
field and the reason), what was a repeat, and which incidents were opened or closed. Records
that fail validation never drop the valid ones beside them.

A payload that cannot be read at all raises ``IngestError`` (the sender must fix it). A store
failure raises ``StoreError``: every write made before it is idempotent (alerts are keyed by
fingerprint and start time), so the sender may retry the same delivery.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsforge_core import analysis_claims
from opsforge_core.config import Settings
from opsforge_core.errors import (
    ConfigError,
    ConflictError,
    IngestError,
    OpsForgeError,
    StoreError,
)
from opsforge_core.ingest import IngestLimits, LimitExceededError, parse_payload
from opsforge_core.models import Alert, IngestBatch, MetricSeries, iso, json_safe
from opsforge_core.store.base import AlertUpsert, Store
from opsforge_core.topology import ServiceGraph

if TYPE_CHECKING:
    from opsforge_core.orchestrator import Orchestrator

logger = logging.getLogger(__name__)

# Raised for a payload over the configured size limits; the HTTP API returns 413 for it.
PayloadTooLargeError = LimitExceededError

# New firing alerts of these severities start an analysis on their own; lower ones only join
# one that a serious alert starts.
ANALYZE_SEVERITIES = frozenset({"high", "critical"})
# Keys of an analysis request that select how to analyze, not what.
_ANALYSIS_OPTIONS = ("agents", "symptom")
# Upper bound of feed pages read to learn the current state of an incident's alerts.
_FEED_PAGES = 20


@dataclass
class HandlerResult:
    """Outcome of one inbound payload; ``to_dict()`` is the JSON body returned to the sender."""

    kind: str
    source: str = ""
    accepted: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    deduplicated: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    series_stored: int = 0
    incidents_opened: list[str] = field(default_factory=list)
    incidents_closed: list[str] = field(default_factory=list)
    incident: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def status_code(self) -> int:
        """400 when every record was rejected, else 200 (rejections are listed in the body)."""
        if self.rejected and not self.accepted:
            return 400
        return 200

    def to_dict(self) -> dict[str, Any]:
        body = {
            "kind": self.kind,
            "source": self.source,
            "accepted": len(self.accepted),
            "accepted_ids": list(self.accepted),
            "rejected": list(self.rejected),
            "new": list(self.new),
            "deduplicated": list(self.deduplicated),
            "resolved": list(self.resolved),
            "updated": list(self.updated),
            "series_stored": self.series_stored,
            "incidents_opened": list(self.incidents_opened),
            "incidents_closed": list(self.incidents_closed),
            "notes": list(self.notes),
        }
        if self.incident is not None:
            body["incident"] = self.incident
        if self.status_code == 400:
            body["error"] = f"all {len(self.rejected)} records were rejected; see 'rejected'"
            body["field"] = self.rejected[0]["field"]
            body["fix"] = "correct the listed fields and send the payload again"
        return json_safe(body)


def auto_analyze_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Read OPSFORGE_AUTO_ANALYZE (default true): whether new serious alerts start analyses."""
    env = os.environ if env is None else env
    raw = (env.get("OPSFORGE_AUTO_ANALYZE") or "true").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"OPSFORGE_AUTO_ANALYZE={raw!r} is invalid; use true or false")


# -- entry points ------------------------------------------------------------------------------


def handle_alerts(
    payload: Any,
    *,
    store: Store,
    orchestrator: Orchestrator | None,
    settings: Settings,
    analyze: bool = True,
    expected_source: str | None = None,
) -> HandlerResult:
    """Record the alerts of ``payload``, start an analysis for new serious ones, close resolved.

    Without an orchestrator, or with ``analyze`` False, no analysis starts. With
    ``expected_source``, a payload of another format raises ``IngestError``.
    """
    batch = _parse(payload, settings)
    if expected_source is not None and batch.source != expected_source:
        raise IngestError(
            "body",
            f"expected a {expected_source} payload but got {batch.source or 'another format'}",
        )
    result = _new_result("alerts", batch)
    # Series that arrive with the alerts are stored too, so nothing accepted is dropped.
    _record_metrics(batch, result, store)
    _record_alerts(batch, result, store, orchestrator if analyze else None)
    return result


def handle_metrics(
    payload: Any,
    *,
    store: Store,
    orchestrator: Orchestrator | None = None,
    settings: Settings,
) -> HandlerResult:
    """Append the metric series of ``payload`` to the event feed.

    Alerts in the same payload are recorded as well, and start an analysis only when an
    orchestrator is given.
    """
    batch = _parse(payload, settings)
    result = _new_result("metrics", batch)
    _record_metrics(batch, result, store)
    _record_alerts(batch, result, store, orchestrator)
    return result


def handle_events(
    payload: Any,
    *,
    store: Store,
    orchestrator: Orchestrator | None,
    settings: Settings,
    analyze: bool = True,
) -> HandlerResult:
    """Record whatever ``payload`` holds: alerts as ``handle_alerts`` does, and metrics."""
    batch = _parse(payload, settings)
    result = _new_result("events", batch)
    _record_metrics(batch, result, store)
    _record_alerts(batch, result, store, orchestrator if analyze else None)
    return result


def handle_incident(
    payload: Any,
    *,
    store: Store,
    orchestrator: Orchestrator,
    settings: Settings,
    agents: Sequence[str] | None = None,
) -> HandlerResult:
    """Analyze the alerts and metrics of ``payload`` now and return the stored report.

    ``agents`` (or an ``agents`` list in the payload) overrides the selector's choice;
    ``symptom`` in the payload names the service an operator reported. The alerts are also
    recorded in the feed, so a later resolution closes the incident.
    """
    options, data = _split_options(payload)
    agents = agents if agents is not None else options.get("agents")
    batch = _parse(data, settings)
    result = _new_result("incident", batch)
    if not batch.alerts and not batch.series:
        if batch.rejected:
            first = batch.rejected[0]
            raise IngestError(
                first.field, f"{first.reason} ({len(batch.rejected)} records rejected)"
            )
        raise IngestError(
            "alerts",
            "nothing to analyze; send at least one alert in 'alerts' or one series in 'metrics'",
        )
    _check_agents(agents, orchestrator)
    if batch.alerts:
        _classify(store.upsert_alerts(batch.alerts), result)
    result.accepted.extend(s.key for s in batch.series)
    graph = ServiceGraph.from_pairs(batch.topology) if batch.topology else None
    try:
        report = orchestrator.handle_incident(
            batch.alerts,
            batch.series or None,
            agents,
            graph=graph,
            symptom=options.get("symptom"),
        )
    except (IngestError, StoreError):
        raise
    except OpsForgeError as exc:
        # The orchestrator raises its base error only for an invalid request (an unknown agent).
        raise IngestError("agents", str(exc)) from exc
    result.incidents_opened.append(report.incident_id)
    result.notes.extend(report.notes)
    result.incident = report.to_dict()
    logger.info(
        "analysis %s: %d alerts, %d series",
        report.incident_id,
        len(batch.alerts),
        len(batch.series),
    )
    return result


def _check_agents(agents: Any, orchestrator: Orchestrator) -> None:
    """Reject an invalid agent list before anything is stored."""
    if agents is None:
        return
    if not isinstance(agents, (list, tuple)) or not all(isinstance(a, str) for a in agents):
        raise IngestError("agents", "expected a list of agent names")
    unknown = sorted(set(agents) - set(orchestrator.agent_names))
    if unknown:
        raise IngestError(
            "agents",
            f"unknown agent(s): {', '.join(unknown)}; "
            f"choose from: {', '.join(orchestrator.agent_names)}",
        )


# -- parsing -----------------------------------------------------------------------------------


def _parse(payload: Any, settings: Settings) -> IngestBatch:
    if payload is None:
        raise IngestError("body", "missing; send a JSON object")
    # Over-limit payloads raise LimitExceededError (HTTP 413): they are never truncated.
    return parse_payload(payload, limits=IngestLimits.from_settings(settings))


def _split_options(payload: Any) -> tuple[dict[str, Any], Any]:
    """Separate the analysis options (agents, symptom) from the data to parse."""
    if not isinstance(payload, dict):
        return {}, payload
    options = {key: payload[key] for key in _ANALYSIS_OPTIONS if payload.get(key) is not None}
    agents = options.get("agents")
    if agents is not None and (
        not isinstance(agents, list) or not all(isinstance(a, str) for a in agents)
    ):
        raise IngestError("agents", 'expected a list of agent names, e.g. ["alertops"]')
    symptom = options.get("symptom")
    if symptom is not None and not isinstance(symptom, dict):
        raise IngestError("symptom", 'expected an object such as {"service": "checkout"}')
    data = {key: value for key, value in payload.items() if key not in _ANALYSIS_OPTIONS}
    return options, data


def _new_result(kind: str, batch: IngestBatch) -> HandlerResult:
    result = HandlerResult(kind=kind, source=batch.source)
    result.rejected = [
        {"index": r.index, "field": r.field, "reason": r.reason} for r in batch.rejected
    ]
    return result


# -- metrics -----------------------------------------------------------------------------------


def _record_metrics(batch: IngestBatch, result: HandlerResult, store: Store) -> None:
    if not batch.series:
        return
    result.series_stored = store.append_metrics(batch.series)
    result.accepted.extend(series.key for series in batch.series)
    logger.debug("stored %d metric series from %s", result.series_stored, batch.source)


# -- alerts ------------------------------------------------------------------------------------


def _record_alerts(
    batch: IngestBatch,
    result: HandlerResult,
    store: Store,
    orchestrator: Orchestrator | None,
) -> None:
    if not batch.alerts:
        return
    upserts = store.upsert_alerts(batch.alerts)
    _classify(upserts, result)
    if orchestrator is not None:
        _start_analysis(upserts, batch.series, result, store, orchestrator)
    _close_resolved(upserts, result, store)


def _classify(upserts: list[AlertUpsert], result: HandlerResult) -> None:
    buckets = {
        "new": result.new,
        "unchanged": result.deduplicated,
        "resolved": result.resolved,
        "updated": result.updated,
    }
    for upsert in upserts:
        result.accepted.append(upsert.alert.fingerprint)
        buckets.get(upsert.change, result.updated).append(upsert.alert.fingerprint)


def _start_analysis(
    upserts: list[AlertUpsert],
    series: list[MetricSeries],
    result: HandlerResult,
    store: Store,
    orchestrator: Orchestrator,
) -> None:
    """Analyze the delivery's firing alerts once, if a new serious alert is not yet in one.

    A repeated delivery reports every alert as unchanged, so it starts no second run, unless
    the first run failed before its incident was stored (see ``analysis_claims``).
    """
    serious = [
        u for u in upserts if u.alert.status == "firing" and u.alert.severity in ANALYZE_SEVERITIES
    ]
    triggers = [u.alert for u in serious if u.change == "new"]
    repeated = [u.alert for u in serious if u.change == "unchanged"]
    stale_after = timedelta(seconds=orchestrator.settings.llm_deadline_seconds + 120)
    triggers += analysis_claims.unfinished(store, repeated, stale_after) if repeated else []
    if not triggers:
        return
    held = _held_by_open_incidents(store, [a.fingerprint for a in triggers])
    if all(a.fingerprint in held for a in triggers):
        result.notes.append(f"no analysis: alerts already in {', '.join(sorted(held.values()))}")
        return
    firing = _unique([u.alert for u in upserts if u.alert.status == "firing"])
    alerts = [a for a in firing if a.fingerprint not in held]
    analysis_claims.mark(store, triggers, analysis_claims.PENDING)
    try:
        report = orchestrator.handle_incident(alerts, series or None, require_stored=True)
    except Exception as exc:
        logger.error("analysis of %d alerts failed: %s", len(alerts), exc)
        analysis_claims.mark_failed(store, triggers, f"{type(exc).__name__}: {exc}")
        raise
    analysis_claims.release(store, triggers)
    result.incidents_opened.append(report.incident_id)
    result.notes.extend(report.notes)
    logger.info(
        "opened incident %s for %d alerts (%s)",
        report.incident_id,
        len(alerts),
        ", ".join(a.fingerprint for a in triggers),
    )


def _held_by_open_incidents(store: Store, fingerprints: list[str]) -> dict[str, str]:
    """Map each of ``fingerprints`` that an open incident contains to that incident's id."""
    wanted = set(fingerprints)
    held: dict[str, str] = {}
    for summary in store.find_open_incidents_for(fingerprints):
        report = store.get_incident(summary.incident_id)
        if report is None:
            continue
        for alert in report.alerts:
            if alert.fingerprint in wanted:
                held.setdefault(alert.fingerprint, report.incident_id)
    return held


def _unique(alerts: list[Alert]) -> list[Alert]:
    """Keep the last delivery of each fingerprint, in first-seen order."""
    by_fingerprint: dict[str, Alert] = {}
    for alert in alerts:
        by_fingerprint[alert.fingerprint] = alert
    return list(by_fingerprint.values())


# -- closing incidents -------------------------------------------------------------------------


def _close_resolved(upserts: list[AlertUpsert], result: HandlerResult, store: Store) -> None:
    """Close each open incident that contains a resolved alert once all its alerts are resolved.

    Every resolved delivery is checked, repeats included, so a retry finishes a close that a
    store failure interrupted. Closing twice is harmless: the write expects status open.
    """
    delivered = {u.alert.fingerprint: u.alert for u in upserts if u.alert.status == "resolved"}
    if not delivered:
        return
    for summary in store.find_open_incidents_for(list(delivered)):
        report = store.get_incident(summary.incident_id)
        if report is None or report.status != "open":
            continue
        current = _current_alerts(store, report.alerts, delivered)
        firing = [a for a in current if a.status != "resolved"]
        if firing:
            result.notes.append(
                f"incident {report.incident_id} stays open: "
                f"{len(firing)} of {len(current)} alerts still firing"
            )
            continue
        _close_incident(store, report.incident_id, current, result)


def _current_alerts(store: Store, alerts: list[Alert], delivered: dict[str, Alert]) -> list[Alert]:
    """Return the latest known state of ``alerts``: this delivery first, then the feed."""
    missing = [a for a in alerts if a.fingerprint not in delivered]
    known = _feed_state(store, missing) if missing else {}
    current = []
    for alert in alerts:
        latest = delivered.get(alert.fingerprint)
        if latest is None:
            latest = known.get((alert.fingerprint, alert.starts_at)) or known.get(
                (alert.fingerprint, None), alert
            )
        current.append(latest)
    return current


def _feed_state(store: Store, alerts: list[Alert]) -> dict[tuple[str, Any], Alert]:
    """Index the feed's copies of ``alerts`` by (fingerprint, start) and (fingerprint, None).

    The feed returns newest start first, so the (fingerprint, None) entry is the latest
    occurrence of that fingerprint.
    """
    wanted = {a.fingerprint for a in alerts}
    since = min(a.starts_at for a in alerts)
    found: dict[tuple[str, Any], Alert] = {}
    cursor = None
    for _ in range(_FEED_PAGES):
        page = store.recent_alerts(since=since, cursor=cursor)
        for alert in page.items:
            if alert.fingerprint in wanted:
                found.setdefault((alert.fingerprint, alert.starts_at), alert)
                found.setdefault((alert.fingerprint, None), alert)
        cursor = page.cursor
        if cursor is None:
            return found
    logger.warning("feed scan stopped after %d pages since %s", _FEED_PAGES, iso(since))
    return found


def _close_incident(
    store: Store, incident_id: str, alerts: list[Alert], result: HandlerResult
) -> None:
    last_end = max((a.ends_at for a in alerts if a.ends_at is not None), default=None)
    notes = f"Closed automatically: all {len(alerts)} alerts resolved"
    if last_end is not None:
        notes += f", the last at {iso(last_end)}"
    try:
        closed = store.update_incident_status(
            incident_id, "resolved", notes=notes + ".", expected_status="open"
        )
    except ConflictError:
        logger.info("incident %s was closed by another request", incident_id)
        return
    # Keep the incident's copy of its alerts in step with the feed so the report shows the end
    # times. NOTE: this replaces the whole report, so an operator edit made between the two
    # writes is lost.
    closed.alerts = alerts
    store.put_incident(closed)
    result.incidents_closed.append(incident_id)
    logger.info("closed incident %s: all %d alerts resolved", incident_id, len(alerts))
