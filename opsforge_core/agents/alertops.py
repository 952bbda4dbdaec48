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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from opsforge_core.agents import alertmemory
from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.agents.grouping import (
    START_ORDER,
    AlertGroup,
    find_origin,
    group_alerts,
    shared_grouping,
    signature_of,
    split_noise,
)
from opsforge_core.models import (
    AgentResult,
    Alert,
    ReasoningStep,
    iso,
)
from opsforge_core.topology import ServiceGraph

logger = logging.getLogger(__name__)

# Labels that name a service the alert's service calls (caller -> value) or is called by.
DEPENDENCY_LABELS = ("depends_on", "dependency", "callee", "downstream", "upstream_of")
DEPENDENT_LABELS = ("caller", "upstream", "called_by", "downstream_of")
# A fingerprint firing this many separate times, resolving in between, is flapping.
FLAP_EPISODES = 3


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
        # The run needs the deduplication anyway, so it is done once here and shared.
        unique, _, _ = dedup_and_flapping(ctx.alerts, ctx.cache)
        repeats = count - len(unique)
        if repeats or len(unique) > len({a.fingerprint for a in unique}):
            return 95, f"{count} alerts with {repeats} repeats or re-firings to collapse"
        if count == 1:
            return 60, "one alert: nothing to group, but past incidents may match"
        services = len({a.service for a in ctx.alerts})
        score = 75 if count < 5 else 85
        return score, f"{count} alerts on {services} services to group"

    def run(self, ctx: AnalysisContext) -> AgentResult:
        steps: list[ReasoningStep] = []
        graph, graph_note = self._graph(ctx)
        found = triage(ctx.alerts, graph, self.group_window, self.max_hops, ctx.cache)
        unique, duplicates, flapping = found.unique, found.duplicates, found.flapping
        steps.append(_dedup_step(ctx.alerts, unique, duplicates))
        steps.append(_flapping_step(flapping))

        # Copies, because the triage is shared with other agents and ``origin`` is set here.
        groups = [AlertGroup(list(g.alerts), g.origin) for g in found.groups]
        noise = list(found.noise)
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


@dataclass(frozen=True)
class Triage:
    """Alerts deduplicated, flapping found, grouped and split from noise."""

    unique: list[Alert]
    duplicates: list[dict[str, Any]]
    flapping: list[dict[str, Any]]
    groups: list[AlertGroup]
    noise: list[Alert]

    @property
    def flapping_fingerprints(self) -> set[str]:
        return {f["fingerprint"] for f in self.flapping}


def triage(
    alerts: list[Alert],
    graph: ServiceGraph | None,
    window: timedelta,
    max_hops: int = 1,
    cache: dict[str, Any] | None = None,
) -> Triage:
    """Deduplicate, find flapping, group and split noise; once per run with ``cache``.

    A storm of 100,000 alerts takes seconds to group, and both AlertOps and the root-cause
    scope need the same groups, so they share them through ``ctx.cache``.
    """

    def build() -> Triage:
        unique, duplicates, flapping = dedup_and_flapping(alerts, cache)
        fingerprints = {f["fingerprint"] for f in flapping}
        groups = group_alerts(collapse_flapping(unique, fingerprints), graph, window, max_hops)
        groups, noise = split_noise(groups, fingerprints)
        return Triage(unique, duplicates, flapping, groups, noise)

    return shared_grouping(cache, alerts, graph, (window, max_hops), build)


def dedup_and_flapping(
    alerts: list[Alert], cache: dict[str, Any] | None = None
) -> tuple[list[Alert], list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``deduplicate(alerts)`` and the flapping found in it; once per run with ``cache``."""

    def build() -> tuple[list[Alert], list[dict[str, Any]], list[dict[str, Any]]]:
        unique, duplicates = deduplicate(alerts)
        return unique, duplicates, find_flapping(unique)

    return shared_grouping(cache, alerts, None, ("dedup",), build)


def deduplicate(alerts: list[Alert]) -> tuple[list[Alert], list[dict[str, Any]]]:
    """Keep one alert per (fingerprint, start): the last resolved copy, else the last copy."""
    # One pass with no per-key lists: a storm of 100,000 alerts has about as many keys.
    chosen: dict[tuple[str, Any], Alert] = {}
    copies: dict[tuple[str, Any], int] = {}
    for alert in alerts:
        key = (alert.fingerprint, alert.starts_at)
        current = chosen.get(key)
        if current is None:
            chosen[key] = alert
            continue
        copies[key] = copies.get(key, 1) + 1
        if alert.status == "resolved" or current.status != "resolved":
            chosen[key] = alert
    # Listed in the order each key first arrived.
    duplicates = [
        {"fingerprint": fingerprint, "start": iso(start), "count": copies[(fingerprint, start)]}
        for fingerprint, start in chosen
        if (fingerprint, start) in copies
    ]
    unique = list(chosen.values())
    unique.sort(key=START_ORDER)
    return unique, duplicates


@dataclass(slots=True)
class _Episodes:
    first: Alert
    last: Alert
    count: int = 1
    resolved: int = 0


def find_flapping(unique: list[Alert], min_episodes: int = FLAP_EPISODES) -> list[dict[str, Any]]:
    """Return fingerprints that fired at least ``min_episodes`` times, resolving in between."""
    episodes: dict[str, _Episodes] = {}
    for alert in unique:
        runs = episodes.get(alert.fingerprint)
        if runs is None:
            runs = episodes[alert.fingerprint] = _Episodes(alert, alert, 0)
        runs.last = alert
        runs.count += 1
        if alert.status == "resolved":
            runs.resolved += 1
    flapping = []
    for fingerprint, runs in episodes.items():
        # Every episode but the last must have resolved for the next one to start.
        if runs.count >= min_episodes and runs.resolved >= runs.count - 1:
            flapping.append(
                {
                    "fingerprint": fingerprint,
                    "service": runs.first.service,
                    "name": runs.first.name,
                    "episodes": runs.count,
                    "first": iso(runs.first.starts_at),
                    "last": iso(runs.last.starts_at),
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
