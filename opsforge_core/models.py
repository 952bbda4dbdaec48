"""Data model shared by every layer: alerts, metric series, agent results and incident reports.

Every datetime in these models is timezone-aware UTC; ``utc()`` is the one place that turns a
naive or offset datetime into one. Each model converts to and from plain JSON-safe dicts with
``to_dict()`` / ``from_dict()``; the store, the HTTP API and the CLI use those shapes.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

Severity = Literal["critical", "high", "warning", "info"]
AlertStatus = Literal["firing", "resolved"]
AlertSource = Literal["simulator", "alertmanager", "cloudwatch", "api", "pagerduty", "sns"]
AgentStatus = Literal["ok", "skipped", "failed"]
IncidentStatus = Literal["open", "resolved"]

SEVERITIES: tuple[str, ...] = ("critical", "high", "warning", "info")
# Higher is worse; used to compare and to take the maximum severity of a group.
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "high": 2, "critical": 3}
# The longest fingerprint, in UTF-8 bytes, that every store can key an alert by (DynamoDB's
# sort key contains the start time as well, within its 1,024 bytes).
MAX_FINGERPRINT_BYTES = 900


def utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """Format an aware datetime as ISO 8601 UTC with a ``Z`` suffix (None stays None)."""
    if value is None:
        return None
    return utc(value).isoformat().replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    """Parse the ISO 8601 strings this module writes (and any offset form) to aware UTC."""
    if value is None:
        return None
    return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def max_severity(severities: list[str]) -> str:
    """Return the worst of ``severities``; ``info`` for an empty list."""
    return max(severities, key=lambda s: SEVERITY_RANK.get(s, 0), default="info")


def new_incident_id() -> str:
    return "inc-" + uuid.uuid4().hex[:12]


def json_safe(value: Any) -> Any:
    """Return ``value`` with NaN and infinities replaced by None, recursively.

    JSON has no NaN; storing None keeps records valid for every backend and serializer.
    """
    if value is None or isinstance(value, str):  # most leaves; checked first for speed
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer)):
        return json_safe(value.item())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, datetime):
        return iso(value)
    return value


@dataclass(slots=True)
class Alert:
    """One alert in OpsForge's normalized form, whatever sender it came from."""

    fingerprint: str
    source: str
    name: str
    service: str
    severity: str
    status: str
    summary: str
    starts_at: datetime
    labels: dict[str, str] = field(default_factory=dict)
    ends_at: datetime | None = None
    description: str = ""
    raw: dict[str, Any] | None = None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to end, or None while the alert is firing."""
        if self.ends_at is None:
            return None
        return max(0.0, (self.ends_at - self.starts_at).total_seconds())

    def to_dict(self, include_raw: bool = True) -> dict[str, Any]:
        data = {
            "fingerprint": self.fingerprint,
            "source": self.source,
            "name": self.name,
            "service": self.service,
            "severity": self.severity,
            "status": self.status,
            "summary": self.summary,
            "description": self.description,
            "labels": dict(self.labels),
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
        }
        if include_raw:
            data["raw"] = json_safe(self.raw)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(
            fingerprint=data["fingerprint"],
            source=data.get("source", "api"),
            name=data["name"],
            service=data["service"],
            severity=data["severity"],
            status=data["status"],
            summary=data.get("summary") or "",
            description=data.get("description") or "",
            labels=dict(data.get("labels") or {}),
            starts_at=parse_iso(data["starts_at"]),
            ends_at=parse_iso(data.get("ends_at")),
            raw=data.get("raw"),
        )


@dataclass(slots=True, eq=False)
class MetricSeries:
    """One metric of one service.

    ``timestamps`` are float seconds since the Unix epoch (UTC) and ``values`` float64, both
    numpy arrays of equal length sorted by time; NaN marks a missing sample. Arrays keep
    thousands of series cheap; use ``times()`` for datetimes.
    """

    service: str
    metric: str
    timestamps: np.ndarray
    values: np.ndarray
    unit: str = ""
    kind: str = "gauge"  # "gauge" or "counter"

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.timestamps.shape != self.values.shape:
            raise ValueError(
                f"series {self.key}: {self.timestamps.size} timestamps "
                f"but {self.values.size} values"
            )

    @property
    def key(self) -> str:
        """Identifier ``service/metric``, unique within one analysis."""
        return f"{self.service}/{self.metric}"

    def __len__(self) -> int:
        return int(self.values.size)

    def times(self) -> list[datetime]:
        return [datetime.fromtimestamp(t, tz=UTC) for t in self.timestamps.tolist()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "metric": self.metric,
            "unit": self.unit,
            "kind": self.kind,
            "points": [
                [iso(datetime.fromtimestamp(t, tz=UTC)), json_safe(v)]
                for t, v in zip(self.timestamps.tolist(), self.values.tolist(), strict=True)
            ],
        }

    @classmethod
    def from_points(
        cls,
        service: str,
        metric: str,
        points: list[tuple[datetime, float | None]],
        unit: str = "",
        kind: str = "gauge",
    ) -> MetricSeries:
        """Build a series from (datetime, value) pairs in any order; None becomes NaN."""
        ordered = sorted(points, key=lambda p: p[0])
        timestamps = [utc(t).timestamp() for t, _ in ordered]
        values = [math.nan if v is None else float(v) for _, v in ordered]
        return cls(service, metric, np.array(timestamps), np.array(values), unit, kind)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricSeries:
        points = [(parse_iso(t), v) for t, v in data.get("points", [])]
        return cls.from_points(
            data["service"], data["metric"], points, data.get("unit", ""), data.get("kind", "gauge")
        )


@dataclass(slots=True)
class ReasoningStep:
    """One step of an agent's reasoning, with evidence (fingerprints, series keys, numbers)."""

    title: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class AgentResult:
    """The outcome of one agent in one run, whose ``status`` is ok, skipped or failed."""

    agent: str
    status: str = "ok"
    score: int = 0
    reason: str = ""
    steps: list[ReasoningStep] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.0
    duration_ms: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentResult:
        steps = [ReasoningStep(**s) for s in data.get("steps", [])]
        return cls(**{**data, "steps": steps})


@dataclass(slots=True)
class AgentChoice:
    """The selector's verdict on one agent: its relevance score, why, and whether it runs."""

    name: str
    score: int
    reason: str
    selected: bool


@dataclass(slots=True)
class Synthesis:
    """The single answer built from the agents' findings, by an LLM or the offline rules."""

    provider: str
    model_id: str
    summary: str
    root_cause: str
    confidence: float
    severity: str = "warning"
    actions: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    fallback: bool = False
    fallback_reason: str | None = None
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Synthesis:
        return cls(**data)


@dataclass(slots=True)
class IncidentReport:
    """Everything about one analysis run; stored whole in the incident memory."""

    incident_id: str
    created_at: datetime
    window_start: datetime
    window_end: datetime
    alerts: list[Alert]
    series_keys: list[str]
    agents: list[AgentChoice]
    results: list[AgentResult]
    synthesis: Synthesis
    title: str = ""
    severity: str = "warning"
    services: list[str] = field(default_factory=list)
    status: str = "open"
    resolution_notes: str = ""
    resolved_at: datetime | None = None
    feedback: dict[str, Any] | None = None
    similar_incidents: list[dict[str, Any]] = field(default_factory=list)
    pattern_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def result(self, agent: str) -> AgentResult | None:
        return next((r for r in self.results if r.agent == agent), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "created_at": iso(self.created_at),
            "window_start": iso(self.window_start),
            "window_end": iso(self.window_end),
            "alerts": [a.to_dict() for a in self.alerts],
            "series_keys": list(self.series_keys),
            "agents": [asdict(c) for c in self.agents],
            "results": [r.to_dict() for r in self.results],
            "synthesis": self.synthesis.to_dict(),
            "title": self.title,
            "severity": self.severity,
            "services": list(self.services),
            "status": self.status,
            "resolution_notes": self.resolution_notes,
            "resolved_at": iso(self.resolved_at),
            "feedback": json_safe(self.feedback),
            "similar_incidents": json_safe(self.similar_incidents),
            "pattern_id": self.pattern_id,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncidentReport:
        return cls(
            incident_id=data["incident_id"],
            created_at=parse_iso(data["created_at"]),
            window_start=parse_iso(data["window_start"]),
            window_end=parse_iso(data["window_end"]),
            alerts=[Alert.from_dict(a) for a in data.get("alerts") or []],
            series_keys=list(data.get("series_keys") or []),
            agents=[AgentChoice(**c) for c in data.get("agents") or []],
            results=[AgentResult.from_dict(r) for r in data.get("results") or []],
            synthesis=Synthesis.from_dict(data["synthesis"]),
            title=data.get("title") or "",
            severity=data.get("severity") or "warning",
            services=list(data.get("services") or []),
            status=data.get("status") or "open",
            resolution_notes=data.get("resolution_notes") or "",
            resolved_at=parse_iso(data.get("resolved_at")),
            feedback=data.get("feedback"),
            similar_incidents=list(data.get("similar_incidents") or []),
            pattern_id=data.get("pattern_id"),
            notes=list(data.get("notes") or []),
        )


@dataclass(slots=True)
class IncidentSummary:
    """The fields of an incident that lists and filters need, without the full report."""

    incident_id: str
    created_at: datetime
    title: str
    severity: str
    status: str
    services: list[str]
    root_cause: str
    alert_count: int

    @classmethod
    def of(cls, report: IncidentReport) -> IncidentSummary:
        return cls(
            incident_id=report.incident_id,
            created_at=report.created_at,
            title=report.title,
            severity=report.severity,
            status=report.status,
            services=list(report.services),
            root_cause=report.synthesis.root_cause,
            alert_count=len(report.alerts),
        )


@dataclass(slots=True)
class Pattern:
    """A learned pattern: an alert signature, the root cause it pointed to, and its record.

    ``signature`` is a stable string built from the sorted alert names and services of an
    incident (see ``agents.alertops.signature_of``); ``occurrences`` counts incidents that
    matched it, ``confirmed`` and ``rejected`` count operator feedback.
    """

    pattern_id: str
    signature: str
    root_cause: str
    fault_kind: str = ""
    fix: str = ""
    alert_names: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    occurrences: int = 0
    confirmed: int = 0
    rejected: int = 0
    last_seen: datetime | None = None
    last_incident_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_seen"] = iso(self.last_seen)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pattern:
        return cls(**{**data, "last_seen": parse_iso(data.get("last_seen"))})


@dataclass(slots=True)
class KnowledgeItem:
    """One fact an agent learned, keyed by agent name and a key of the agent's choosing."""

    agent_name: str
    knowledge_key: str
    value: dict[str, Any]
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_name": self.agent_name,
            "knowledge_key": self.knowledge_key,
            "value": json_safe(self.value),
            "updated_at": iso(self.updated_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KnowledgeItem:
        return cls(
            data["agent_name"], data["knowledge_key"], data["value"], parse_iso(data["updated_at"])
        )


@dataclass(slots=True)
class Rejection:
    """One record that ingestion rejected, with the field at fault and the reason."""

    index: int
    field: str
    reason: str
    record: Any = None


@dataclass(slots=True)
class IngestBatch:
    """The result of parsing one payload: what was accepted and what was rejected, and why."""

    source: str
    alerts: list[Alert] = field(default_factory=list)
    series: list[MetricSeries] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # Dependency edges (caller, callee) and ground truth, when the input carries them (the
    # simulator's scenario files do).
    topology: list[tuple[str, str]] = field(default_factory=list)
    scenario: dict[str, Any] | None = None

    def extend(self, other: IngestBatch) -> None:
        """Append another batch's records and topology; the first scenario seen is kept."""
        self.alerts.extend(other.alerts)
        self.series.extend(other.series)
        self.rejected.extend(other.rejected)
        self.topology.extend(other.topology)
        self.scenario = self.scenario or other.scenario
