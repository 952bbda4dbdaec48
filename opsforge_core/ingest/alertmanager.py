"""Prometheus Alertmanager webhook payloads, version 4.

Each alert carries its own ``status``, which wins over the group's: a group reported as
``firing`` can hold resolved alerts. Alertmanager is written in Go and sends the zero time
``0001-01-01T00:00:00Z`` as ``endsAt`` when an alert has no end yet.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.ingest.fields import (
    ParseContext,
    check_text,
    collect,
    fingerprint_for,
    fingerprint_text,
    finish_alert,
    join,
    labels_of,
    optional_dict,
    preview,
    require_dict,
    require_list,
    severity_of,
    status_of,
)
from opsforge_core.ingest.timestamps import parse_time
from opsforge_core.models import Alert, IngestBatch

logger = logging.getLogger(__name__)

# Labels that name the service, most specific first. Prometheus rule authors use all of them.
SERVICE_LABELS = (
    "service",
    "app",
    "app_kubernetes_io_name",
    "application",
    "job",
    "container",
    "deployment",
    "namespace",
)


def matches(obj: dict[str, Any]) -> bool:
    return "alerts" in obj and ("groupKey" in obj or "receiver" in obj)


def parse(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse one webhook. An invalid alert becomes a rejection, and the others are kept."""
    version = obj.get("version")
    if version is not None and version not in ("4", 4):
        raise IngestError(
            join(path, "version"),
            f"unsupported Alertmanager webhook version {preview(version)}; "
            "only version 4 is supported",
        )
    group_status = None
    if obj.get("status") is not None:
        group_status = status_of(obj["status"], join(path, "status"))
    alerts_path = join(path, "alerts")
    records = require_list(obj.get("alerts"), alerts_path)
    ctx.count_alerts(len(records), alerts_path)
    truncated = obj.get("truncatedAlerts")
    if isinstance(truncated, int) and truncated > 0:
        # Alertmanager dropped these itself (the receiver's max_alerts), so the payload lacks them.
        logger.warning(
            "Alertmanager left %d alerts out of group %r", truncated, obj.get("groupKey")
        )
    batch = IngestBatch(source="alertmanager")
    collect(
        batch,
        records,
        alerts_path,
        lambda rec, p: parse_alert(rec, p, ctx, group_status),
        batch.alerts,
    )
    return batch


def parse_alert(
    record: Any, path: str, ctx: ParseContext, group_status: str | None = None
) -> Alert:
    """Build an ``Alert`` from one webhook alert, or raise ``IngestError``."""
    rec = require_dict(record, path)
    limits = ctx.limits
    labels = labels_of(rec.get("labels"), join(path, "labels"), limits)
    name = labels.get("alertname", "")
    if not name.strip():
        raise IngestError(join(path, "labels.alertname"), "is missing; every alert needs one")
    annotations = _annotations(rec, path, ctx)
    status = status_of(rec.get("status"), join(path, "status"), default=group_status)
    starts_at, ends_at = _times(rec, path, ctx, status)

    service = _service(labels)
    alert = Alert(
        fingerprint=fingerprint_text(rec, "fingerprint", path, limits)
        or fingerprint_for(name, service, labels),
        source="alertmanager",
        name=name,
        service=service,
        severity=severity_of(
            labels.get("severity"), join(path, "labels.severity"), default="warning", strict=False
        ),
        status=status,
        summary=annotations.get("summary") or annotations.get("message") or "",
        description=annotations.get("description", ""),
        labels=labels,
        starts_at=starts_at,
        ends_at=ends_at,
        raw=rec,
    )
    return finish_alert(alert, join(path, "endsAt"))


def _times(
    rec: dict[str, Any], path: str, ctx: ParseContext, status: str
) -> tuple[datetime, datetime | None]:
    starts_path = join(path, "startsAt")
    if rec.get("startsAt") is None:
        raise IngestError(starts_path, "is missing; send the alert's start time")
    starts_at = parse_time(rec["startsAt"], starts_path, ctx.received_at)
    ends_at = None
    # A firing alert's endsAt is Alertmanager's resolve timeout, often in the future; it is
    # not an end time and is dropped, so only a resolved alert's endsAt is checked.
    if status == "resolved" and rec.get("endsAt") is not None:
        ends_at = parse_time(
            rec["endsAt"], join(path, "endsAt"), ctx.received_at, zero_is_none=True
        )
    if status == "resolved" and ends_at is None:
        # NOTE: a resolved alert with the zero end time is taken to end when it was received.
        ends_at = max(ctx.received_at, starts_at)
    return starts_at, ends_at


def _annotations(rec: dict[str, Any], path: str, ctx: ParseContext) -> dict[str, str]:
    annotations_path = join(path, "annotations")
    annotations = optional_dict(rec, "annotations", path)
    return {
        key: check_text(value, join(annotations_path, key), ctx.limits, required=False)
        for key, value in annotations.items()
        if key in ("summary", "message", "description") and value is not None
    }


def _service(labels: dict[str, str]) -> str:
    for key in SERVICE_LABELS:
        value = labels.get(key, "").strip()
        if value:
            return value
    instance = labels.get("instance", "").strip()
    if instance:
        return instance.rsplit(":", 1)[0]  # host without the scrape port
    return "unknown"
