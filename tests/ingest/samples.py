"""Constants and payload builders shared by the ingest tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# A receive time shortly after the recorded payloads, so the "not in the future" bound is
# checked against a known clock.
RECEIVED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def opsforge_alert(**fields: Any) -> dict[str, Any]:
    """Return a valid OpsForge alert record with ``fields`` replaced."""
    record: dict[str, Any] = {
        "name": "HighLatency",
        "service": "checkout",
        "severity": "warning",
        "status": "firing",
        "summary": "checkout p99 latency 2.8s",
        "labels": {"namespace": "prod"},
        "starts_at": "2026-11-20T10:02:00Z",
    }
    record.update(fields)
    return record


def opsforge_series(points: list[Any], **fields: Any) -> dict[str, Any]:
    """Return a valid OpsForge series record with ``points`` and ``fields`` replaced."""
    record: dict[str, Any] = {
        "service": "payments",
        "metric": "memory_used_percent",
        "unit": "Percent",
        "kind": "gauge",
        "points": points,
    }
    record.update(fields)
    return record
