"""Builders of realistic records for the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from opsforge_core.models import (
    AgentChoice,
    AgentResult,
    Alert,
    IncidentReport,
    KnowledgeItem,
    MetricSeries,
    Pattern,
    ReasoningStep,
    Synthesis,
)

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_alert(
    fingerprint: str = "fp-1",
    *,
    service: str = "checkout",
    status: str = "firing",
    minutes: int = 0,
    raw: dict | None = None,
    summary: str = "p99 latency above 2 s",
) -> Alert:
    starts = BASE_TIME + timedelta(minutes=minutes)
    return Alert(
        fingerprint=fingerprint,
        source="alertmanager",
        name="HighLatency",
        service=service,
        severity="critical",
        status=status,
        summary=summary,
        starts_at=starts,
        labels={"service": service, "env": "prod"},
        ends_at=starts + timedelta(minutes=7) if status == "resolved" else None,
        raw=raw if raw is not None else {"labels": {"alertname": "HighLatency"}},
    )


def make_report(
    incident_id: str = "inc-0001",
    *,
    minutes: int = 0,
    status: str = "open",
    services: tuple[str, ...] = ("checkout", "payments"),
    severity: str = "critical",
    title: str = "Checkout latency spike",
    root_cause: str = "payments",
    alerts: list[Alert] | None = None,
    findings: dict | None = None,
    summary: str = "payments slowed checkout",
) -> IncidentReport:
    created = BASE_TIME + timedelta(minutes=minutes)
    alerts = alerts if alerts is not None else [make_alert(f"fp-{incident_id}", minutes=minutes)]
    result = AgentResult(
        agent="rootcause",
        score=80,
        reason="dependency graph available",
        steps=[ReasoningStep("rank", "walked the call graph", {"series": ["payments/latency"]})],
        findings=findings if findings is not None else {"ranking": [{"service": root_cause}]},
        confidence=0.7,
        duration_ms=12.5,
    )
    synthesis = Synthesis(
        provider="offline",
        model_id="rules",
        summary=summary,
        root_cause=root_cause,
        confidence=0.7,
        severity=severity,
        actions=["roll back payments"],
    )
    return IncidentReport(
        incident_id=incident_id,
        created_at=created,
        window_start=created - timedelta(minutes=30),
        window_end=created,
        alerts=alerts,
        series_keys=["payments/latency"],
        agents=[AgentChoice("rootcause", 80, "graph", True)],
        results=[result],
        synthesis=synthesis,
        title=title,
        severity=severity,
        services=list(services),
        status=status,
    )


def make_pattern(pattern_id: str = "pat-1", signature: str = "HighLatency@checkout") -> Pattern:
    return Pattern(
        pattern_id=pattern_id,
        signature=signature,
        root_cause="payments",
        fault_kind="latency",
        fix="roll back payments",
        alert_names=["HighLatency"],
        services=["checkout"],
    )


def make_knowledge(agent: str = "rootcause", key: str = "stats", value: dict | None = None):
    return KnowledgeItem(agent, key, value or {"runs": 3, "mean_ms": 12.5}, BASE_TIME)


def make_series(
    service: str = "payments", metric: str = "latency_ms", points: int = 30, start_minute: int = 0
) -> MetricSeries:
    start = (BASE_TIME + timedelta(minutes=start_minute)).timestamp()
    timestamps = start + 60.0 * np.arange(points)
    values = 100.0 + np.arange(points, dtype=float)
    return MetricSeries(service, metric, timestamps, values, unit="ms")
