"""Builders of synthesis requests shared by the LLM tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsforge_core.llm.base import SynthesisRequest
from opsforge_core.models import AgentResult, Alert

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_alert(
    service: str,
    name: str = "HighLatency",
    severity: str = "warning",
    minutes: int = 0,
    summary: str = "",
    description: str | None = "",
) -> Alert:
    return Alert(
        fingerprint=f"{service}-{name}-{minutes}",
        source="simulator",
        name=name,
        service=service,
        severity=severity,
        status="firing",
        summary=summary or f"{name} on {service}",
        description=description,  # type: ignore[arg-type]
        starts_at=T0 + timedelta(minutes=minutes),
    )


def rootcause_result(root: str = "db", confidence: float = 0.9) -> AgentResult:
    return AgentResult(
        agent="rootcause",
        confidence=confidence,
        findings={
            "root_cause": root,
            "ranking": [{"service": root, "score": 0.9}, {"service": "api", "score": 0.4}],
            "fault_kind": "db_connection_pool_exhaustion",
            "blast_radius": ["api", "web"],
        },
    )


def predictive_result() -> AgentResult:
    return AgentResult(
        agent="predictiveops",
        confidence=0.7,
        findings={
            "anomalies": [
                {"service": "web", "metric": "latency_p99", "start": "2026-03-01T12:06:00Z"},
                {"service": "db", "metric": "connections", "start": "2026-03-01T12:01:00Z"},
                {"service": "api", "metric": "errors", "start": "2026-03-01T12:03:00Z"},
            ]
        },
    )


def make_request(results: list[AgentResult] | None = None, **kwargs) -> SynthesisRequest:
    alerts = kwargs.pop(
        "alerts",
        [
            make_alert("web", "HighLatency", "warning", 5),
            make_alert("api", "ErrorRate", "high", 3),
            make_alert("db", "ConnectionPoolSaturated", "critical", 1),
        ],
    )
    return SynthesisRequest(
        incident_id="inc-test",
        alerts=alerts,
        results=results if results is not None else [rootcause_result(), predictive_result()],
        rule_severity=kwargs.pop("rule_severity", "critical"),
        **kwargs,
    )
