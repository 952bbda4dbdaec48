"""Per-service evidence for root-cause ranking: anomalous series and firing alerts.

A service's ``strength`` (0-1) is the highest of its series' anomaly scores and its alerts'
severity weights; its ``onset`` is the earliest anomaly onset or alert start. ``magnitude``
breaks ties between saturated scores by the size of the deviation.

Evidence is ``quiet`` when everything seen on the service came and went by itself: all its
alerts flapped or cleared within minutes, none of its anomalies lasted, and it did not keep
restarting. Background noise looks like that (a spike, a rule flapping on a busy cache), so
quiet evidence weighs ``QUIET_WEIGHT`` of its strength. A crash loop also comes and goes, but
its process restarts (its counters reset), which marks where the fault is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsforge_core.agents.detect import SeriesAnomaly
from opsforge_core.agents.faultkind import CRASH_LOOP_RESTARTS
from opsforge_core.agents.grouping import TRANSIENT
from opsforge_core.agents.series_grid import PreparedSeries
from opsforge_core.models import Alert
from opsforge_core.topology import ServiceGraph

# Strength an alert lends its service, by severity: a firing critical alert is as strong as
# a saturated anomaly, an info alert alone does not make a service sick.
ALERT_STRENGTH = {"critical": 1.0, "high": 0.9, "warning": 0.7, "info": 0.3}
# Metrics whose harmful direction is known: latency, errors and resource use hurt when they
# rise, availability and hit ratios when they fall. A deviation the other way (latency that
# drops) is no symptom of a fault. Metrics matching neither count in both directions.
HARMFUL_UP = re.compile(
    r"latency|duration|response_time|error|fail|fault|5xx|timeout|cpu|mem|heap|disk|queue"
    r"|backlog|lag|conn|restart|saturat|wait",
    re.IGNORECASE,
)
HARMFUL_DOWN = re.compile(r"availab|success|hit_?ratio|uptime|health", re.IGNORECASE)
# Robust z at which the magnitude bonus reaches log(2) times MAGNITUDE_WEIGHT.
Z_REFERENCE = 6.0
MAGNITUDE_WEIGHT = 0.05
QUIET_WEIGHT = 0.5  # share of its strength that quiet evidence counts for


@dataclass
class ServiceEvidence:
    service: str
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    # Every harmful anomaly of the service, also those of other metrics than the symptom's.
    all_anomalies: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    strength: float = 0.0
    onset: float = math.inf
    # Last time any of its anomalies was still under way; infinity while one persists.
    end: float = -math.inf
    # Sampling step of its series in seconds; onsets closer than half a step are simultaneous.
    step: float = 60.0
    max_z: float = 0.0
    # True when one of its anomalies lasted longer than grouping.TRANSIENT or is still on.
    lasting: bool = False
    quiet: bool = False

    @property
    def weight(self) -> float:
        return QUIET_WEIGHT if self.quiet else 1.0

    @property
    def weighted(self) -> float:
        """Strength as evidence of where the fault began: less for quiet evidence."""
        return self.strength * self.weight

    @property
    def magnitude(self) -> float:
        bonus = 1.0 + MAGNITUDE_WEIGHT * math.log1p(self.max_z / Z_REFERENCE)
        return self.weighted * bonus

    def summary(self) -> str:
        parts = []
        if self.anomalies:
            best = max(self.anomalies, key=lambda a: a["score"])
            parts.append(f"{len(self.anomalies)} series, worst {best['metric']} z={best['zscore']}")
        if self.alerts:
            parts.append(f"{len(self.alerts)} alerts")
        return ", ".join(parts) or "no evidence"


def is_harmful(metric: str, direction: int) -> bool:
    """Return False for a deviation in the direction that does not hurt (see HARMFUL_UP)."""
    if HARMFUL_DOWN.search(metric):
        return direction < 0
    if HARMFUL_UP.search(metric):
        return direction > 0
    return True


def collect_evidence(
    verdicts: dict[str, SeriesAnomaly],
    alerts: list[Alert],
    metric: str | None = None,
    spans: dict[str, tuple[float, float]] | None = None,
    since: float | None = None,
) -> dict[str, ServiceEvidence]:
    """Group anomalous series and alerts by service.

    With ``metric``, only that metric's anomalies set strength and onset; the others are kept
    in ``all_anomalies`` for naming the fault kind. ``spans`` gives each series key's
    (end of its anomaly, sampling step). With ``since`` (epoch seconds, the incident's start),
    anomalies and alerts that were over more than a step before it are left out: a blip
    that came and went earlier did not cause this incident.
    """
    spans = spans or {}
    evidence: dict[str, ServiceEvidence] = {}
    for verdict in verdicts.values():
        if verdict.status != "anomalous" or not is_harmful(verdict.metric, verdict.direction):
            continue
        end, step = spans.get(verdict.series_key, (math.inf, 60.0))
        if since is not None and end + step < since:
            continue
        ev = evidence.setdefault(verdict.service, ServiceEvidence(verdict.service))
        ev.all_anomalies.append(verdict.to_dict())
        if metric is not None and verdict.metric != metric:
            continue
        ev.anomalies.append(verdict.to_dict())
        ev.strength = max(ev.strength, verdict.score)
        ev.max_z = max(ev.max_z, min(abs(verdict.zscore), 1e6))
        if verdict.onset_ts is not None:
            ev.onset = min(ev.onset, verdict.onset_ts)
            ev.lasting = ev.lasting or end - verdict.onset_ts > TRANSIENT.total_seconds()
        ev.end = max(ev.end, end)
        ev.step = step
    # Resolved alerts count too: they fired during the window being analysed.
    for alert in alerts:
        if since is not None and alert.ends_at is not None and alert.ends_at.timestamp() < since:
            continue
        ev = evidence.setdefault(alert.service, ServiceEvidence(alert.service))
        ev.alerts.append(alert)
        ev.strength = max(ev.strength, ALERT_STRENGTH.get(alert.severity, 0.5))
        ev.onset = min(ev.onset, alert.starts_at.timestamp())
        ev.end = max(ev.end, alert.ends_at.timestamp() if alert.ends_at else math.inf)
    return evidence


def restarts_by_service(prepared: Iterable[PreparedSeries]) -> dict[str, int]:
    """Return how often each service restarted: the most resets of any one of its counters.

    A restart resets every counter of the process at once, so the counts are not added up.
    """
    restarts: dict[str, int] = {}
    for series in prepared:
        restarts[series.service] = max(restarts.get(series.service, 0), series.counter_resets)
    return restarts


def mark_quiet(
    evidence: dict[str, ServiceEvidence],
    alerts: list[Alert],
    flapping: set[str],
    restarts: dict[str, int],
    since: float | None = None,
) -> None:
    """Set ``quiet`` on the evidence of services whose trouble came and went by itself.

    ``alerts`` are all the alerts, flapping ones included; ``flapping`` names the flapping
    fingerprints. A service without alerts is never quiet: its anomalies are all there is to
    judge it by, and they are judged by strength alone.
    """
    by_service: dict[str, list[Alert]] = {}
    for alert in alerts:
        if since is not None and alert.ends_at is not None and alert.ends_at.timestamp() < since:
            continue
        by_service.setdefault(alert.service, []).append(alert)
    for service, ev in evidence.items():
        own = by_service.get(service)
        if not own or ev.lasting or restarts.get(service, 0) >= CRASH_LOOP_RESTARTS:
            continue
        ev.quiet = all(a.fingerprint in flapping or _cleared_soon(a) for a in own)


def _cleared_soon(alert: Alert) -> bool:
    duration = alert.duration_seconds
    return duration is not None and duration <= TRANSIENT.total_seconds()


def clusters(evidence: dict[str, ServiceEvidence], graph: ServiceGraph | None) -> list[set[str]]:
    """Split sick services into incidents: connected by a call while both were sick.

    A caller and its dependency belong together when the trouble of one began while the
    other's was under way (within half a sampling step). A short spike on a dependency long
    before its callers fell ill stays apart. Largest cluster first.
    """
    parent = {service: service for service in evidence}

    def find(service: str) -> str:
        while parent[service] != service:
            parent[service] = parent[parent[service]]
            service = parent[service]
        return service

    if graph is not None:
        for caller, ev in evidence.items():
            for dependency in graph.dependencies(caller):
                dep = evidence.get(dependency)
                if dep is not None and _overlaps(ev, dep):
                    parent[find(caller)] = find(dependency)
    groups: dict[str, set[str]] = {}
    for service in evidence:
        groups.setdefault(find(service), set()).add(service)
    return sorted(
        groups.values(),
        key=lambda members: (-len(members), -sum(evidence[s].strength for s in members)),
    )


def _overlaps(caller: ServiceEvidence, dependency: ServiceEvidence) -> bool:
    slack = 0.5 * max(caller.step, dependency.step)
    caller_started_during = dependency.onset - slack <= caller.onset <= dependency.end + slack
    dependency_started_during = caller.onset - slack <= dependency.onset <= caller.end + slack
    return caller_started_during or dependency_started_during
