"""PagerDuty Events API v2 events: ``trigger``, ``acknowledge`` and ``resolve``.

A trigger carries ``payload`` with ``summary``, ``source`` and ``severity`` (critical, error,
warning or info). ``dedup_key`` identifies the alert across its events, so it is the
fingerprint. Acknowledge and resolve events usually carry only the ``dedup_key``.
"""

from __future__ import annotations

import json
from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.ingest.fields import (
    ParseContext,
    check_text,
    fingerprint_for,
    fingerprint_text,
    join,
    labels_of,
    optional_dict,
    preview,
    text,
)
from opsforge_core.ingest.timestamps import parse_time
from opsforge_core.models import Alert, IngestBatch

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = {"critical": "critical", "error": "high", "warning": "warning", "info": "info"}
LABEL_FIELDS = ("source", "component", "group", "class")


def matches(obj: dict[str, Any]) -> bool:
    return "event_action" in obj and ("routing_key" in obj or "payload" in obj)


def parse(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse one event into one alert. A resolve event gives a resolved alert."""
    action = obj.get("event_action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise IngestError(
            join(path, "event_action"),
            f"invalid event action {preview(action)}; use one of {', '.join(ACTIONS)}",
        )
    dedup_key = fingerprint_text(obj, "dedup_key", path, ctx.limits, required=action != "trigger")
    payload = optional_dict(obj, "payload", path)
    ctx.count_alerts(1, path)
    batch = IngestBatch(source="pagerduty")
    if action == "trigger" or payload:
        alert = _from_payload(obj, payload, dedup_key, action, path, ctx)
    else:
        alert = _from_key(obj, dedup_key, action, ctx)
    batch.alerts.append(alert)
    return batch


def _from_payload(
    obj: dict[str, Any],
    payload: dict[str, Any],
    dedup_key: str,
    action: str,
    path: str,
    ctx: ParseContext,
) -> Alert:
    payload_path = join(path, "payload")
    limits = ctx.limits
    summary = text(payload, "summary", payload_path, limits)
    severity = _severity(payload.get("severity"), join(payload_path, "severity"))
    text(payload, "source", payload_path, limits)  # required by the Events API

    fields = {key: payload.get(key) for key in LABEL_FIELDS if payload.get(key) is not None}
    labels = labels_of(fields, payload_path, limits)
    service = labels.get("component") or labels["source"]
    name = labels.get("class") or summary
    moment = payload.get("timestamp")
    starts_at = ctx.received_at
    if moment is not None:
        starts_at = parse_time(moment, join(payload_path, "timestamp"), ctx.received_at)

    resolved = action == "resolve"
    return Alert(
        fingerprint=dedup_key or fingerprint_for(name, service, labels),
        source="pagerduty",
        name=name,
        service=service,
        severity=severity,
        status="resolved" if resolved else "firing",
        summary=summary,
        description=_details(payload.get("custom_details"), payload_path, ctx),
        labels=labels,
        starts_at=starts_at,
        ends_at=max(ctx.received_at, starts_at) if resolved else None,
        raw=obj,
    )


def _severity(word: Any, path: str) -> str:
    if word is None:
        raise IngestError(path, f"is missing; use one of {', '.join(SEVERITIES)}")
    if not isinstance(word, str) or word.strip().lower() not in SEVERITIES:
        raise IngestError(
            path, f"invalid severity {preview(word)}; use one of {', '.join(SEVERITIES)}"
        )
    return SEVERITIES[word.strip().lower()]


def _from_key(obj: dict[str, Any], dedup_key: str, action: str, ctx: ParseContext) -> Alert:
    # NOTE: an acknowledge or resolve event without a payload names only the dedup key.
    # The alert's name, service and start time are unknown here, so only the fingerprint
    # links it to the trigger.
    return Alert(
        fingerprint=dedup_key,
        source="pagerduty",
        name=dedup_key,
        service="unknown",
        severity="info",
        status="resolved" if action == "resolve" else "firing",
        summary=f"PagerDuty {action} for {dedup_key}",
        labels={"event_action": action},
        starts_at=ctx.received_at,
        ends_at=ctx.received_at if action == "resolve" else None,
        raw=obj,
    )


def _details(details: Any, path: str, ctx: ParseContext) -> str:
    """Render ``custom_details`` as ``key=value`` pairs for display."""
    if details is None:
        return ""
    try:
        if isinstance(details, dict):
            rendered = ", ".join(
                f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                for key, value in details.items()
            )
        else:
            rendered = json.dumps(details)
    except (TypeError, ValueError) as exc:  # a non-JSON value, or an integer too long
        raise IngestError(join(path, "custom_details"), f"cannot be rendered: {exc}") from exc
    return check_text(rendered, join(path, "custom_details"), ctx.limits, required=False)
