"""Per-service evidence for root-cause ranking: anomalous series and firing alerts.

A service's ``strength`` (0-1) is the highest of its series' anomaly scores and its alerts'
severity weights; its ``onset`` is the earliest anomaly onset or alert start. ``magnitude``
breaks ties between saturated scores by the size of the deviation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from opsforge_core.agents.detect import SeriesAnomaly
from opsforge_core.models import Alert

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
MAGNITUDE_WEIGHT = 0.1


@dataclass
class ServiceEvidence:
    service: str
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    # Every harmful anomaly of the service, also those of other metrics than the symptom's.
    all_anomalies: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    strength: float = 0.0
    onset: float = math.inf
    max_z: float = 0.0

    @property
    def magnitude(self) -> float:
        return self.strength * (1.0 + MAGNITUDE_WEIGHT * math.log1p(self.max_z / Z_REFERENCE))

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
    verdicts: dict[str, SeriesAnomaly], alerts: list[Alert], metric: str | None = None
) -> dict[str, ServiceEvidence]:
    """Group anomalous series and alerts by service.

    With ``metric``, only that metric's anomalies set strength and onset; the others are kept
    in ``all_anomalies`` for naming the fault kind.
    """
    evidence: dict[str, ServiceEvidence] = {}
    for verdict in verdicts.values():
        if verdict.status != "anomalous" or not is_harmful(verdict.metric, verdict.direction):
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
    # Resolved alerts count too: they fired during the window being analysed.
    for alert in alerts:
        ev = evidence.setdefault(alert.service, ServiceEvidence(alert.service))
        ev.alerts.append(alert)
        ev.strength = max(ev.strength, ALERT_STRENGTH.get(alert.severity, 0.5))
        ev.onset = min(ev.onset, alert.starts_at.timestamp())
    return evidence
