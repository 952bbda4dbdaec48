"""Name the kind of fault from the anomalous metrics and the alerts of the root service.

Each anomalous metric or alert votes for the kinds its name suggests, weighted by its anomaly
score. Latency and errors vote weakly because almost every fault raises them; a resource
metric (CPU, memory, disk, connection pool, cache, queue) points more precisely at what broke. A
change of the ``version`` label on the service's alerts, or a deploy alert, is a bad deploy;
repeated restarts (counter resets) are a crash loop.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from opsforge_core.models import Alert

FAULT_KINDS = (
    "cpu_saturation",
    "memory_leak",
    "disk_filling",
    "db_connection_pool_exhaustion",
    "bad_deploy",
    "network_latency",
    "cache_failure",
    "queue_backlog",
    "crash_loop",
    "unknown",
)

# (pattern over a metric or alert name, fault kind, weight of the vote)
_RULES: tuple[tuple[re.Pattern[str], str, float], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind, weight)
    for pattern, kind, weight in (
        (r"cpu|load_?avg|throttl", "cpu_saturation", 1.0),
        (r"mem|heap|rss|oom|gc_", "memory_leak", 1.0),
        (r"disk|filesystem|volume|inode|storage", "disk_filling", 1.0),
        (r"conn(ection)?s?_(in_use|pool|active|wait)|pool", "db_connection_pool_exhaustion", 1.0),
        # A cache that loses its hit ratio also fills its memory; the ratio names the fault.
        (r"cache|hit_?ratio|evict|miss", "cache_failure", 1.5),
        (r"queue|backlog|lag|consum|depth", "queue_backlog", 1.0),
        (r"deploy|rollout|version|release", "bad_deploy", 1.2),
        (r"network|packet|retransmit|rtt|dns|timeout", "network_latency", 1.0),
        (r"latency|duration|response_time|slow", "network_latency", 0.35),
    )
)
VERSION_LABELS = ("version", "app_version", "image_tag", "release")
CRASH_LOOP_RESTARTS = 3


def infer_fault_kind(
    anomalies: list[dict[str, Any]], alerts: list[Alert], restarts: int = 0
) -> tuple[str, dict[str, float]]:
    """Return the fault kind and the votes behind it.

    ``anomalies`` are the root service's anomalous series as dicts with ``metric``, ``score``
    and ``direction``; ``alerts`` are that service's alerts; ``restarts`` counts its process
    restarts (counter resets). Restarting again and again is a crash loop, unless a deploy
    explains them.
    """
    votes: dict[str, float] = defaultdict(float)
    if restarts >= CRASH_LOOP_RESTARTS:
        votes["crash_loop"] += 1.0 + 0.25 * restarts
    for anomaly in anomalies:
        for kind, weight in _kinds_of(anomaly.get("metric", "")):
            if kind == "cache_failure" and anomaly.get("direction", 0) > 0:
                # A hit ratio that rises is no cache failure; a miss count that rises is.
                if "hit" in anomaly.get("metric", ""):
                    continue
            votes[kind] += weight * float(anomaly.get("score", 0.0))
    # Each alert rule votes once, however many times it fired.
    for name in sorted({alert.name for alert in alerts}):
        for kind, weight in _kinds_of(name):
            votes[kind] += 0.8 * weight
    if version_changed(alerts):
        votes["bad_deploy"] += 2.0
    if not votes:
        return "unknown", {}
    kind = max(votes, key=lambda k: (votes[k], -FAULT_KINDS.index(k)))
    return kind, {k: round(v, 3) for k, v in votes.items()}


def _kinds_of(name: str) -> list[tuple[str, float]]:
    found: dict[str, float] = {}
    for pattern, kind, weight in _RULES:
        if pattern.search(name):
            found[kind] = max(found.get(kind, 0.0), weight)
    return list(found.items())


def version_changed(alerts: list[Alert]) -> bool:
    """Return True when the alerts of one service carry more than one version label value."""
    for label in VERSION_LABELS:
        values = {a.labels[label] for a in alerts if a.labels.get(label)}
        if len(values) > 1:
            return True
        for alert in alerts:
            previous = alert.labels.get(f"previous_{label}") or alert.labels.get(f"old_{label}")
            if previous and previous != alert.labels.get(label):
                return True
    return False


CHANGE_ALERT = re.compile(r"deploy|rollout|rolled_?out|release|upgrade", re.IGNORECASE)


def change_times(alerts: list[Alert]) -> dict[str, float]:
    """Return the latest change event (a deploy alert or a version label change) per service,
    as epoch seconds."""
    changes: dict[str, float] = {}
    # A storm repeats a few alert names many times; each is matched once.
    is_change: dict[str, bool] = {}
    for alert in alerts:
        name = alert.name
        if name not in is_change:
            is_change[name] = CHANGE_ALERT.search(name) is not None
        if not (is_change[name] or _relabelled(alert)):
            continue
        at = alert.starts_at.timestamp()
        changes[alert.service] = max(changes.get(alert.service, at), at)
    return changes


def _relabelled(alert: Alert) -> bool:
    """Return ``version_changed([alert])``: one alert carries one value per label, so only
    its previous-version labels can show a change."""
    labels = alert.labels
    for label in VERSION_LABELS:
        previous = labels.get(f"previous_{label}") or labels.get(f"old_{label}")
        if previous and previous != labels.get(label):
            return True
    return False
