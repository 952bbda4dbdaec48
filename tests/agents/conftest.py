"""Builders of alerts and series for the agent tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from opsforge_core.models import Alert, MetricSeries

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def make_alert(
    fingerprint: str,
    service: str,
    minute: float,
    *,
    name: str = "HighLatency",
    severity: str = "critical",
    resolved_after: float | None = None,
    labels: dict[str, str] | None = None,
) -> Alert:
    """Return an alert starting ``minute`` minutes after T0, resolved when a duration is given."""
    start = T0 + timedelta(minutes=minute)
    ends = None if resolved_after is None else start + timedelta(minutes=resolved_after)
    return Alert(
        fingerprint=fingerprint,
        source="api",
        name=name,
        service=service,
        severity=severity,
        status="firing" if ends is None else "resolved",
        summary=f"{name} on {service}",
        starts_at=start,
        ends_at=ends,
        labels=dict(labels or {}),
    )


def make_series(
    service: str,
    metric: str,
    points: int = 240,
    *,
    base: float = 100.0,
    noise: float = 2.0,
    fault_at: int | None = None,
    jump: float = 0.0,
    seed: int = 0,
) -> MetricSeries:
    """Return a one-minute series from T0 with Gaussian noise and an optional step at a point."""
    rng = np.random.default_rng(seed)
    values = base + rng.normal(0.0, noise, points)
    if fault_at is not None:
        values[fault_at:] += jump
    stamps = T0.timestamp() + 60.0 * np.arange(points)
    return MetricSeries(service, metric, stamps, values)
