"""AlertOps: deduplicate, detect flapping, suppress noise and group alerts into incidents.

Steps, in order:

    dedup      one alert per (fingerprint, start); a repeat delivery is a duplicate
    flapping   a fingerprint with several firing episodes that resolved in between
    grouping   alerts linked by time and by service (same service, connected in the dependency
               graph, or a shared correlation label), merged transitively (union-find)
    noise      isolated low-severity groups on services unconnected to the rest
    origin     per group, the earliest alert among the most downstream services
    memory     similar past incidents (Jaccard over alert names and services) and learned
               patterns with the same signature

A flapping fingerprint counts once in its group, so compression reports incidents, not
deliveries.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsforge_core.agents import alertmemory
from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.models import (
    SEVERITY_RANK,
    AgentResult,
    Alert,
    ReasoningStep,
    iso,
    max_severity,
)
from opsforge_core.topology import ServiceGraph

logger = logging.getLogger(__name__)

# Labels whose equal values put two alerts in the same incident whatever their services.
CORRELATION_LABELS = ("incident", "incident_id", "correlation_id", "trace_id", "change_id")
# Labels that name a service the alert's service calls (caller -> value) or is called by.
DEPENDENCY_LABELS = ("depends_on", "dependency", "callee", "downstream", "upstream_of")
DEPENDENT_LABELS = ("caller", "upstream", "called_by", "downstream_of")
LOW_SEVERITIES = frozenset({"info", "warning"})
# A fingerprint firing this many separate times, resolving in between, is flapping.
FLAP_EPISODES = 3
# An alert resolved within this long after it started is a blip, when nothing joins it.
TRANSIENT = timedelta(minutes=5)
# A fingerprint firing again within this long after its group went quiet rejoins the group.
RECUR_WINDOW = timedelta(minutes=60)


def signature_of(alerts: list[Alert]) -> str:
    """Return a stable signature of an alert set: its sorted alert names and services.

    The same kinds of alerts on the same services give the same signature whatever their
    order, fingerprints or times. The pattern library is keyed by it.
    """
    names = sorted({a.name for a in alerts})
    services = sorted({a.service for a in alerts})
    return f"alerts={','.join(names)};services={','.join(services)}"


def graph_from_labels(alerts: list[Alert]) -> ServiceGraph | None:
    """Infer dependency edges from alert labels such as ``depends_on`` or ``caller``.

    Returns None when no alert carries such a label.
    """
    pairs: list[tuple[str, str]] = []
    for alert in alerts:
        for label in DEPENDENCY_LABELS:
            for value in _label_values(alert, label):
                pairs.append((alert.service, value))
        for label in DEPENDENT_LABELS:
            for value in _label_values(alert, label):
                pairs.append((value, alert.service))
    pairs = [(a, b) for a, b in pairs if a != b]
    return ServiceGraph.from_pairs(pairs) if pairs else None


def _label_values(alert: Alert, label: str) -> list[str]:
    raw = alert.labels.get(label) or ""
    return [v.strip() for v in raw.split(",") if v.strip()]


@dataclass
class AlertGroup:
    """Alerts that belong to one incident."""

    alerts: list[Alert]
    origin: str = ""

    @property
    def services(self) -> list[str]:
        return sorted({a.service for a in self.alerts})

    @property
    def start(self):
        return min(a.starts_at for a in self.alerts)

    @property
    def severity(self) -> str:
        return max_severity([a.severity for a in self.alerts])

    def to_dict(self, group_id: str) -> dict[str, Any]:
        ends = [a.ends_at for a in self.alerts if a.ends_at is not None]
        firing = any(a.status == "firing" for a in self.alerts)
        return {
            "id": group_id,
            "fingerprints": sorted({a.fingerprint for a in self.alerts}),
            "services": self.services,
            "names": sorted({a.name for a in self.alerts}),
            "start": iso(self.start),
            "end": None if firing or not ends else iso(max(ends)),
            "severity": self.severity,
            "alert_count": len(self.alerts),
            "origin": self.origin,
            "signature": signature_of(self.alerts),
        }


class AlertOpsAgent(Agent):
    """Alert triage: deduplication, flapping, noise, grouping and recall of similar incidents."""

    name = "alertops"
    description = "Deduplicates, groups and de-noises alerts; recalls similar past incidents."

    def __init__(self, group_window: timedelta = timedelta(minutes=10), max_hops: int = 1):
        self.group_window = group_window
        self.max_hops = max_hops

    def relevance(self, ctx: AnalysisContext) -> tuple[int, str]:
        count = len(ctx.alerts)
        if count == 0:
            return 5, "no alerts to triage"
        unique = {(a.fingerprint, a.starts_at) for a in ctx.alerts}
        repeats = count - len(unique)
        fingerprints = {a.fingerprint for a in ctx.alerts}
        if repeats or len(unique) > len(fingerprints):
            return 95, f"{count} alerts with {repeats} repeats or re-firings to collapse"
        if count == 1:
            return 60, "one alert: nothing to group, but past incidents may match"
        services = len({a.service for a in ctx.alerts})
        score = 75 if count < 5 else 85
        return score, f"{count} alerts on {services} services to group"

    def run(self, ctx: AnalysisContext) -> AgentResult:
        steps: list[ReasoningStep] = []
        unique, duplicates = deduplicate(ctx.alerts)
        steps.append(_dedup_step(ctx.alerts, unique, duplicates))

        flapping = find_flapping(unique)
        steps.append(_flapping_step(flapping))
        collapsed = collapse_flapping(unique, {f["fingerprint"] for f in flapping})

        graph, graph_note = self._graph(ctx)
        groups = group_alerts(collapsed, graph, self.group_window, self.max_hops)
        flapping_fingerprints = {f["fingerprint"] for f in flapping}
        groups, noise = split_noise(groups, flapping_fingerprints)
        for group in groups:
            group.origin = find_origin(group, graph)
        group_dicts = [g.to_dict(f"g{i + 1}") for i, g in enumerate(groups)]
        steps.append(_grouping_step(group_dicts, graph_note, self.group_window))
        steps.append(_noise_step(noise))

        compression = _compression(len(ctx.alerts), len(groups))
        signature = signature_of(ctx.alerts)
        similar, patterns, memory_steps = alertmemory.recall(ctx.store, ctx.alerts, signature)
        steps.extend(memory_steps)

        findings = {
            "groups": group_dicts,
            "duplicates": duplicates,
            "flapping": flapping,
            "noise": [_noise_dict(a) for a in noise],
            "compression": compression,
            "signature": signature,
            "similar_incidents": similar,
            "patterns": patterns,
        }
        confidence = 0.9 if groups else 0.3
        return AgentResult(agent=self.name, steps=steps, findings=findings, confidence=confidence)

    def _graph(self, ctx: AnalysisContext) -> tuple[ServiceGraph | None, str]:
        if ctx.graph is not None and ctx.graph.edges:
            return ctx.graph, "dependency graph given"
        inferred = graph_from_labels(ctx.alerts)
        if inferred is not None:
            return inferred, "dependency edges inferred from alert labels"
        return None, "no dependency graph: alerts linked by time alone"


def deduplicate(alerts: list[Alert]) -> tuple[list[Alert], list[dict[str, Any]]]:
    """Keep one alert per (fingerprint, start), preferring the latest state (resolved)."""
    by_key: dict[tuple[str, Any], list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_key[(alert.fingerprint, alert.starts_at)].append(alert)
    unique: list[Alert] = []
    duplicates: list[dict[str, Any]] = []
    for (fingerprint, start), copies in by_key.items():
        resolved = [a for a in copies if a.status == "resolved"]
        unique.append(resolved[-1] if resolved else copies[-1])
        if len(copies) > 1:
            duplicates.append(
                {"fingerprint": fingerprint, "start": iso(start), "count": len(copies)}
            )
    unique.sort(key=lambda a: (a.starts_at, a.fingerprint))
    return unique, duplicates


def find_flapping(unique: list[Alert], min_episodes: int = FLAP_EPISODES) -> list[dict[str, Any]]:
    """Return fingerprints that fired at least ``min_episodes`` times, resolving in between."""
    episodes: dict[str, list[Alert]] = defaultdict(list)
    for alert in unique:
        episodes[alert.fingerprint].append(alert)
    flapping = []
    for fingerprint, runs in episodes.items():
        resolved = sum(1 for a in runs if a.status == "resolved")
        # Every episode but the last must have resolved for the next one to start.
        if len(runs) >= min_episodes and resolved >= len(runs) - 1:
            flapping.append(
                {
                    "fingerprint": fingerprint,
                    "service": runs[0].service,
                    "name": runs[0].name,
                    "episodes": len(runs),
                    "first": iso(runs[0].starts_at),
                    "last": iso(runs[-1].starts_at),
                }
            )
    return flapping


def collapse_flapping(unique: list[Alert], flapping: set[str]) -> list[Alert]:
    """Keep only the first episode of each flapping fingerprint."""
    seen: set[str] = set()
    kept = []
    for alert in unique:
        if alert.fingerprint in flapping:
            if alert.fingerprint in seen:
                continue
            seen.add(alert.fingerprint)
        kept.append(alert)
    return kept


def group_alerts(
    alerts: list[Alert],
    graph: ServiceGraph | None,
    window: timedelta,
    max_hops: int = 1,
) -> list[AlertGroup]:
    """Group alerts that start while a related group is active (or within ``window`` after).

    A group stays active while any of its alerts fires, so a long incident keeps collecting
    the symptoms that spread from it. An alert that fires again within ``RECUR_WINDOW`` after
    its group went quiet reopens that group. A blip (resolved within ``TRANSIENT``) joins only
    a group with a related alert that started within ``window`` of it. Related means the same
    service, a shared correlation label, or (with a graph) a dependency path of at most
    ``max_hops`` either way; without a graph, time alone links. An alert related to several
    active groups merges them.
    """
    ordered = sorted(alerts, key=lambda a: (a.starts_at, a.fingerprint))
    related = _RelatedServices(graph, max_hops)
    active: list[_OpenGroup] = []
    closed: list[_OpenGroup] = []
    for alert in ordered:
        still_open = []
        for group in active:
            if group.until is not None and group.until + window < alert.starts_at:
                closed.append(group)
            else:
                still_open.append(group)
        recurring = [
            g
            for g in closed
            if alert.fingerprint in g.fingerprints and g.until + RECUR_WINDOW >= alert.starts_at
        ]
        closed = [g for g in closed if g not in recurring]
        still_open += recurring
        matches = [
            g
            for g in still_open
            if g in recurring or related.to_group(alert, g, window if _is_blip(alert) else None)
        ]
        merged = _OpenGroup([alert], {alert.service}, alert.ends_at)
        for group in matches:
            merged.absorb(group)
        active = [g for g in still_open if g not in matches] + [merged]
    groups = [AlertGroup(g.alerts) for g in closed + active]
    for group in groups:
        group.alerts.sort(key=lambda a: (a.starts_at, a.fingerprint))
    groups.sort(key=lambda g: (g.start, g.alerts[0].fingerprint))
    return groups


@dataclass(eq=False)
class _OpenGroup:
    alerts: list[Alert]
    services: set[str]
    until: datetime | None  # last end time; None while an alert still fires

    @property
    def fingerprints(self) -> set[str]:
        return {a.fingerprint for a in self.alerts}

    def absorb(self, other: _OpenGroup) -> None:
        self.alerts.extend(other.alerts)
        self.services |= other.services
        if self.until is None or other.until is None:
            self.until = None
        else:
            self.until = max(self.until, other.until)


class _RelatedServices:
    """Decides whether two alerts' services are related; caches graph distances."""

    def __init__(self, graph: ServiceGraph | None, max_hops: int) -> None:
        self.graph = graph
        self.max_hops = max_hops
        self._cache: dict[tuple[str, str], bool] = {}

    def to_group(self, alert: Alert, group: _OpenGroup, near: timedelta | None = None) -> bool:
        """Return True when ``alert`` relates to the group.

        With ``near``, only the group's alerts that started within ``near`` of ``alert``
        count, so a blip joins the burst it belongs to, not a long incident it happens
        to overlap.
        """
        members = group.alerts
        if near is not None:
            members = [m for m in members if abs(m.starts_at - alert.starts_at) <= near]
        services = {m.service for m in members}
        if alert.service in services or (self.graph is None and members):
            return True
        for label in CORRELATION_LABELS:
            value = alert.labels.get(label)
            if value and any(value == other.labels.get(label) for other in members):
                return True
        return any(self.connected(alert.service, service) for service in services)

    def connected(self, a: str, b: str) -> bool:
        key = (a, b) if a < b else (b, a)
        if key not in self._cache:
            hops = [self.graph.distance(a, b), self.graph.distance(b, a)]
            self._cache[key] = any(h is not None and h <= self.max_hops for h in hops)
        return self._cache[key]


def split_noise(
    groups: list[AlertGroup],
    flapping: set[str] | frozenset[str] = frozenset(),
    transient: timedelta = TRANSIENT,
) -> tuple[list[AlertGroup], list[Alert]]:
    """Move isolated quiet groups out when another group remains.

    A group is isolated when it covers one service: grouping found no related service
    alerting at the same time. It is noise when its alerts are also all info or warning, all
    flapping, or all resolved within ``transient`` (a blip that cleared itself).
    """
    if len(groups) < 2:
        return groups, []
    kept: list[AlertGroup] = []
    noise: list[Alert] = []
    for group in groups:
        if len(group.services) == 1 and _quiet(group, flapping, transient):
            noise.extend(group.alerts)
        else:
            kept.append(group)
    if not kept:
        # Everything looked like noise: keep the largest group rather than report nothing.
        largest = max(groups, key=lambda g: (len(g.alerts), SEVERITY_RANK.get(g.severity, 0)))
        noise = [a for a in noise if a not in largest.alerts]
        kept = [largest]
    return kept, noise


def _is_blip(alert: Alert, transient: timedelta = TRANSIENT) -> bool:
    duration = alert.duration_seconds
    return duration is not None and duration <= transient.total_seconds()


def _quiet(group: AlertGroup, flapping: set[str] | frozenset[str], transient: timedelta) -> bool:
    alerts = group.alerts
    if all(a.severity in LOW_SEVERITIES for a in alerts):
        return True
    if all(a.fingerprint in flapping for a in alerts):
        return True
    return all(_is_blip(a, transient) for a in alerts)


def find_origin(group: AlertGroup, graph: ServiceGraph | None) -> str:
    """Return the group's likely origin: the earliest alert among its most downstream services.

    A service is most downstream when none of the group's other services is among its own
    dependencies (direct or indirect). Without a graph every service qualifies.
    """
    services = set(group.services)
    if graph is not None:
        leaves = {s for s in services if not (graph.downstream(s) & (services - {s}))}
        services = leaves or services
    candidates = [a for a in group.alerts if a.service in services]
    first = min(candidates, key=lambda a: (a.starts_at, -SEVERITY_RANK.get(a.severity, 0)))
    return first.service


def _compression(alerts_in: int, groups_out: int) -> dict[str, Any]:
    ratio = 1.0 - groups_out / alerts_in if alerts_in else 0.0
    return {"alerts_in": alerts_in, "groups_out": groups_out, "ratio": round(ratio, 4)}


def _noise_dict(alert: Alert) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "service": alert.service,
        "name": alert.name,
        "severity": alert.severity,
        "start": iso(alert.starts_at),
    }


def _dedup_step(
    alerts: list[Alert], unique: list[Alert], duplicates: list[dict[str, Any]]
) -> ReasoningStep:
    removed = len(alerts) - len(unique)
    return ReasoningStep(
        "Deduplicate",
        f"{len(alerts)} deliveries, {len(unique)} distinct alerts, {removed} repeats dropped",
        {"fingerprints": [d["fingerprint"] for d in duplicates], "removed": removed},
    )


def _flapping_step(flapping: list[dict[str, Any]]) -> ReasoningStep:
    if not flapping:
        detail = "no alert fired and resolved repeatedly"
    else:
        detail = ", ".join(f"{f['name']} on {f['service']} x{f['episodes']}" for f in flapping)
        detail = f"flapping, counted once each: {detail}"
    return ReasoningStep("Flapping", detail, {"fingerprints": [f["fingerprint"] for f in flapping]})


def _grouping_step(
    groups: list[dict[str, Any]], graph_note: str, window: timedelta
) -> ReasoningStep:
    minutes = window.total_seconds() / 60
    parts = [f"{g['id']}: {g['alert_count']} alerts on {', '.join(g['services'])}" for g in groups]
    return ReasoningStep(
        "Group into incidents",
        f"{len(groups)} groups within {minutes:g}-minute windows ({graph_note}); "
        + "; ".join(parts),
        {"groups": {g["id"]: g["fingerprints"] for g in groups}},
    )


def _noise_step(noise: list[Alert]) -> ReasoningStep:
    detail = (
        f"{len(noise)} isolated low-severity alerts suppressed"
        if noise
        else "no isolated low-severity alerts"
    )
    return ReasoningStep("Suppress noise", detail, {"fingerprints": [a.fingerprint for a in noise]})
