"""Alerting rules evaluated over the simulated metrics, in the manner of Prometheus.

A rule fires when its metric stays past the threshold for ``for_samples`` consecutive
evaluations (Prometheus' ``for:`` clause at one evaluation per scrape), and resolves on the
first sample back on the healthy side. So alert start times follow the metrics. The alert's
fingerprint hashes its full label set, as Alertmanager does, so every episode of a flapping
alert, and every repeated delivery, carries the same fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from opsforge_core.models import Alert
from simulator.topology import ServiceSpec


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule; ``threshold`` None means the service's latency SLO."""

    name: str
    metric: str
    above: bool
    threshold: float | None
    for_samples: int
    severity: str
    summary: str
    description: str

    def threshold_for(self, spec: ServiceSpec) -> float:
        return spec.latency_slo_ms if self.threshold is None else self.threshold

    def breached(self, values: np.ndarray, threshold: float) -> np.ndarray:
        # Comparisons with NaN are False, so a missing sample counts as healthy.
        return values > threshold if self.above else values < threshold


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "HighCPU", "cpu_percent", True, 90.0, 3, "high",
        "CPU usage on {service} is {value:.0f}% (threshold {threshold:.0f}%)",
        "CPU has been above the threshold for {for_minutes} minutes; requests queue behind it.",
    ),
    AlertRule(
        "MemoryHigh", "memory_percent", True, 90.0, 3, "high",
        "Memory usage on {service} is {value:.0f}% (threshold {threshold:.0f}%)",
        "Resident memory is close to the container limit; the process may be OOM-killed.",
    ),
    AlertRule(
        "DiskFilling", "disk_used_percent", True, 85.0, 3, "warning",
        "Disk on {service} is {value:.1f}% full (threshold {threshold:.0f}%)",
        "The data volume is filling; writes fail when it reaches 100%.",
    ),
    AlertRule(
        "DBConnectionPoolExhausted", "db_connections_in_use", True, 90.0, 2, "critical",
        "{service} has {value:.0f} connections in use (threshold {threshold:.0f})",
        "The connection pool is nearly exhausted; clients wait for a connection or time out.",
    ),
    AlertRule(
        "HighErrorRate", "error_rate", True, 0.05, 2, "critical",
        "{service} is failing {value:.1%} of requests (threshold {threshold:.0%})",
        "The 5xx ratio has been above the threshold for {for_minutes} minutes.",
    ),
    AlertRule(
        "HighLatency", "latency_p99_ms", True, None, 3, "warning",
        "p99 latency of {service} is {value:.0f} ms (SLO {threshold:.0f} ms)",
        "The 99th percentile latency is above the service's SLO.",
    ),
    AlertRule(
        "CacheHitRateLow", "cache_hit_ratio", False, 0.7, 3, "warning",
        "Cache hit ratio on {service} is {value:.0%} (threshold {threshold:.0%})",
        "Most lookups miss the cache and fall through to the databases.",
    ),
    AlertRule(
        "QueueBacklog", "queue_depth", True, 5000.0, 3, "high",
        "{value:.0f} messages are waiting on {service} (threshold {threshold:.0f})",
        "Consumers are not keeping up with publishers; the backlog grows.",
    ),
)  # fmt: skip

RULES_BY_METRIC: dict[str, tuple[AlertRule, ...]] = {}
for _rule in RULES:
    RULES_BY_METRIC[_rule.metric] = (*RULES_BY_METRIC.get(_rule.metric, ()), _rule)


@dataclass(frozen=True)
class Episode:
    """One firing of a rule on one series, as sample indexes.

    ``pending`` is the first breaching sample, ``fired`` the sample where the rule fires, and
    ``resolved`` the first healthy sample after it (None while still firing at the end).
    """

    pending: int
    fired: int
    resolved: int | None


def find_episodes(breached: np.ndarray, for_samples: int) -> list[Episode]:
    """Return every run of at least ``for_samples`` breaching samples as an ``Episode``."""
    padded = np.concatenate(([False], breached, [False])).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    episodes = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if end - start < for_samples:
            continue
        resolved = end if end < breached.size else None
        episodes.append(Episode(start, start + for_samples - 1, resolved))
    return episodes


def fingerprint(labels: dict[str, str]) -> str:
    """Hash a label set to 16 hex digits, independent of label order."""
    # The byte 0xFF never occurs in UTF-8, so it separates names and values unambiguously.
    parts: list[bytes] = []
    for name in sorted(labels):
        parts += (name.encode(), labels[name].encode())
    return hashlib.blake2b(b"\xff".join(parts) + b"\xff", digest_size=8).hexdigest()


def fingerprints_varying(labels: dict[str, str], name: str, values: list[str]) -> list[str]:
    """Return ``fingerprint`` of ``labels`` with label ``name`` set to each of ``values``.

    The labels before ``name`` in sorted order are hashed once and the hash state is copied
    for each value, which matters when a storm fans one alert out to thousands of instances.
    """
    names = sorted({*labels, name})
    split = names.index(name)

    def encode(part: list[str]) -> bytes:
        return b"".join(n.encode() + b"\xff" + labels[n].encode() + b"\xff" for n in part)

    prefix = hashlib.blake2b(encode(names[:split]) + name.encode() + b"\xff", digest_size=8)
    suffix = b"\xff" + encode(names[split + 1 :])
    out = []
    for value in values:
        digest = prefix.copy()
        digest.update(value.encode() + suffix)
        out.append(digest.hexdigest())
    return out


def epoch_to_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def alert_labels(rule: AlertRule, spec: ServiceSpec, version: str, instance: str) -> dict:
    return {
        "alertname": rule.name,
        "service": spec.name,
        "severity": rule.severity,
        "instance": instance,
        "job": spec.name,
        "tier": spec.tier,
        "version": version,
        "env": "prod",
    }


def build_alert(
    rule: AlertRule,
    spec: ServiceSpec,
    *,
    value: float,
    starts_at: float,
    ends_at: float | None,
    version: str,
    step_seconds: float,
    instance: str | None = None,
) -> Alert:
    """Build the alert a rule sends for one episode; times are epoch seconds."""
    threshold = rule.threshold_for(spec)
    labels = alert_labels(rule, spec, version, instance or spec.instance)
    for_minutes = max(1, round(rule.for_samples * step_seconds / 60))
    text = {"service": spec.name, "value": value, "threshold": threshold}
    return Alert(
        fingerprint=fingerprint(labels),
        source="simulator",
        name=rule.name,
        service=spec.name,
        severity=rule.severity,
        status="firing" if ends_at is None else "resolved",
        summary=rule.summary.format(**text),
        description=rule.description.format(for_minutes=for_minutes),
        labels=labels,
        starts_at=epoch_to_datetime(starts_at),
        ends_at=None if ends_at is None else epoch_to_datetime(ends_at),
    )


def deploy_alert(spec: ServiceSpec, old: str, new: str, at: float) -> Alert:
    """Build the informational change event a deploy pipeline posts when a rollout finishes."""
    labels = {
        "alertname": "DeploymentRolledOut",
        "service": spec.name,
        "severity": "info",
        "instance": spec.instance,
        "job": spec.name,
        "tier": spec.tier,
        "version": new,
        "previous_version": old,
        "env": "prod",
    }
    return Alert(
        fingerprint=fingerprint(labels),
        source="simulator",
        name="DeploymentRolledOut",
        service=spec.name,
        severity="info",
        status="resolved",
        summary=f"{spec.name} rolled out {new} (was {old})",
        description="A new version finished rolling out; its pods restarted.",
        labels=labels,
        starts_at=epoch_to_datetime(at),
        ends_at=epoch_to_datetime(at),
    )
