"""Scope of the root-cause ranking: the symptom, the incident's alert group, and the length
of each anomaly.

With a symptom, the candidates are its service and the sick services it reaches through sick
dependencies. Without one, alerts are grouped as AlertOps groups them and the main group's
services and their dependencies are the candidates.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np

from opsforge_core.agents import detect
from opsforge_core.agents.alertops import dedup_and_flapping, triage
from opsforge_core.agents.base import AnalysisContext
from opsforge_core.agents.evidence import ServiceEvidence, is_harmful
from opsforge_core.agents.grouping import AlertGroup
from opsforge_core.models import SEVERITY_RANK, Alert
from opsforge_core.topology import ServiceGraph

GROUP_WINDOW = timedelta(minutes=10)  # the AlertOps default
LOOKBACK_S = 900.0  # with a symptom time, anomalies are judged from this long before it
SYMPTOM_Z = 3.0  # robust z that confirms a reported symptom


def scan_window(
    prepared: list[detect.PreparedSeries], since: float
) -> dict[str, detect.SeriesAnomaly]:
    """Judge each series from ``since`` on by the detector's scores before its hold-off.

    Each verdict's ``extra`` also gets the highest and lowest robust z in the window
    (``z_high``, ``z_low``).
    """
    # NOTE: this reaches into detect._verdict; a hold-off switch on scan_prepared would let
    # it use the public API instead.
    verdicts: dict[str, detect.SeriesAnomaly] = {}
    groups: dict[tuple[int, int | None], list[detect.PreparedSeries]] = {}
    for item in prepared:
        if len(item) == 0:
            verdicts.update(detect.scan_prepared([item], since=since))
            continue
        period = detect.daily_period(item.step, len(item))
        groups.setdefault((len(item), period), []).append(item)
    for (_, period), group in groups.items():
        details = detect.score_details(np.column_stack([g.values for g in group]), period)
        details["score"] = details["raw"]
        first = np.searchsorted(group[0].timestamps, since, side="left")
        for column, item in enumerate(group):
            own = {name: array[:, column] for name, array in details.items()}
            verdict = detect._verdict(item, own, since, detect.DEFAULT_THRESHOLD)
            window_z = own["z"][first:]
            if window_z.size:
                verdict.extra["z_high"] = float(window_z.max())
                verdict.extra["z_low"] = float(window_z.min())
            verdicts[item.key] = verdict
    return verdicts


def symptom_scope(
    ctx: AnalysisContext, graph: ServiceGraph | None, sick: dict[str, ServiceEvidence]
) -> tuple[set[str] | None, str]:
    """Return the services that may explain the symptom, or None when all may.

    A fault reaches the symptom through the calls between them, so a candidate must be the
    symptom's service or reachable from it along dependency edges through sick services only.
    """
    service = (ctx.symptom or {}).get("service")
    if not service:
        return None, "every anomalous service is a candidate"
    if graph is None or service not in graph.edges:
        return None, f"symptom {service} not in the graph: every anomalous service is a candidate"
    scope = {service}
    frontier = [service]
    while frontier:
        current = frontier.pop()
        for dependency in graph.dependencies(current):
            if dependency in sick and dependency not in scope:
                scope.add(dependency)
                frontier.append(dependency)
    return scope, (
        f"symptom {service} and the {len(scope) - 1} sick services it reaches through "
        "sick dependencies"
    )


def flapping_fingerprints(alerts: list[Alert], cache: dict[str, Any] | None = None) -> set[str]:
    """Return the fingerprints AlertOps finds flapping (computed once per run with ``cache``,
    the run's ``ctx.cache``)."""
    _, _, flapping = dedup_and_flapping(alerts, cache)
    return {f["fingerprint"] for f in flapping}


def without_flapping(alerts: list[Alert], flapping: set[str] | None = None) -> list[Alert]:
    """Drop flapping alerts, because a rule crossing its threshold again and again is weak
    evidence of where a fault began. A flapping service's metrics still count, though as
    quiet evidence (see ``evidence.mark_quiet``) unless the service keeps restarting."""
    if flapping is None:
        flapping = flapping_fingerprints(alerts)
    return [a for a in alerts if a.fingerprint not in flapping]


def incident_scope(
    alerts: list[Alert],
    graph: ServiceGraph | None,
    anomalous: dict[str, ServiceEvidence],
    cache: dict[str, Any] | None = None,
) -> tuple[set[str] | None, str, float | None]:
    """Return the services of the main alert group and their direct dependencies, and the
    group's start (epoch seconds).

    The alerts are grouped as AlertOps groups them, so noise elsewhere is left out. The
    dependencies are included because a root cause need not alert itself (a slow link, a
    resource anomaly below every rule's threshold). The main group is the one whose services
    and dependencies hold the most services with metric anomalies during the group, then the
    one with the most services. With ``cache`` (the run's ``ctx.cache``) the groups AlertOps
    made are reused.
    """
    found = triage(alerts, graph, GROUP_WINDOW, 1, cache)
    groups, flapping = found.groups, found.flapping_fingerprints
    if not groups:
        return None, "", None

    def reach(group: AlertGroup) -> set[str]:
        scope = set(group.services)
        if graph is not None:
            for service in group.services:
                scope |= graph.dependencies(service)
        return scope

    def backing(group: AlertGroup) -> int:
        """Count services next to the group whose metric anomaly began during it."""
        slack = GROUP_WINDOW.total_seconds()
        start = group.start.timestamp() - slack
        ends = [a.ends_at.timestamp() if a.ends_at else math.inf for a in group.alerts]
        end = max(ends) + slack
        nearby = reach(group)
        if graph is not None:
            for service in group.services:
                nearby |= graph.dependents(service)
        return sum(1 for s in nearby if s in anomalous and start <= anomalous[s].onset <= end)

    main = max(
        groups,
        key=lambda g: (
            backing(g) + len(g.services),
            len(g.alerts),
            SEVERITY_RANK.get(g.severity, 0),
        ),
    )
    scope = reach(main)
    note = (
        f"the main alert group ({len(main.alerts)} alerts on {', '.join(main.services)}) "
        "and the services they call"
    )
    # Flapping alerts were collapsed to their first episode, which can sit before the fault,
    # so the incident starts at its first steady alert. When most of the group flaps (a crash
    # loop and the callers it takes down), the flapping is the incident and starts it.
    steady = [a.starts_at for a in main.alerts if a.fingerprint not in flapping]
    start = min(steady) if 2 * len(steady) > len(main.alerts) else main.start
    return scope, note, start.timestamp()


def anomaly_spans(
    ctx: AnalysisContext, verdicts: dict[str, detect.SeriesAnomaly]
) -> dict[str, tuple[float, float]]:
    """Return (end of the anomaly, sampling step) for each anomalous series.

    The anomaly lasts from its peak while the value stays at least half as far from the
    detector's baseline as the peak was, the same way (full width at half maximum). A spike
    ends when the value falls back; a level shift or a ramp lasts. The end is infinity when
    it lasts to the last point.
    """
    prepared = ctx.cache.get("prepared", {})
    spans: dict[str, tuple[float, float]] = {}
    for key, verdict in verdicts.items():
        series = prepared.get(key)
        if verdict.status != "anomalous" or series is None or verdict.peak_ts is None:
            continue
        spans[key] = (_half_maximum_end(series, verdict), float(series.step))
    return spans


def _half_maximum_end(series: detect.PreparedSeries, verdict: detect.SeriesAnomaly) -> float:
    values = series.values
    index = min(int(np.searchsorted(series.timestamps, verdict.peak_ts)), values.size - 1)
    peak = verdict.value - verdict.baseline
    half = 0.5 * abs(peak)
    sign = 1.0 if peak >= 0 else -1.0
    while index + 1 < values.size:
        value = values[index + 1]
        # A missing sample neither ends nor extends the anomaly.
        if np.isfinite(value) and sign * (value - verdict.baseline) < half:
            break
        index += 1
    if index + 1 >= values.size:
        return math.inf
    return float(series.timestamps[index])


def symptom_metric(ctx: AnalysisContext, verdicts: dict[str, detect.SeriesAnomaly]) -> str | None:
    """Return the symptom's metric when other services report it too, else None.

    A cause shows the symptom's own kind of trouble (latency behind latency), so when the
    metric is shared only it counts as evidence.
    """
    metric = (ctx.symptom or {}).get("metric")
    if not metric:
        return None
    services = {v.service for v in verdicts.values() if v.metric == metric}
    return metric if len(services) >= 2 else None


def symptom_ts(ctx: AnalysisContext) -> float | None:
    value = (ctx.symptom or {}).get("ts")
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)


def check_symptom(
    ctx: AnalysisContext, verdicts: dict[str, detect.SeriesAnomaly]
) -> tuple[float | None, str | None]:
    """Return (the symptom's onset, why nothing should be named) for ``ctx.symptom``.

    The bar is lower than for candidates: an operator already reported the symptom, so a
    harmful deviation the detector scores above zero confirms it, and so does a robust z of
    ``SYMPTOM_Z`` or more the harmful way. When the symptom's series shows neither there is
    no incident to explain.
    """
    symptom = ctx.symptom or {}
    service, metric = symptom.get("service"), symptom.get("metric")
    if not service or not metric:
        return None, None
    own = [v for v in verdicts.values() if v.service == service and v.metric == metric]
    if not own or any(v.status == "insufficient_data" for v in own):
        return None, None
    confirmed = [v for v in own if _confirms(v)]
    if not confirmed:
        best = max(v.score for v in own)
        return None, (
            f"symptom {service}/{metric} shows no harmful deviation (score {best:.2f}): "
            "nothing to explain"
        )
    onsets = [v.onset_ts for v in confirmed if v.onset_ts is not None]
    return (min(onsets) if onsets else None), None


def _confirms(verdict: detect.SeriesAnomaly) -> bool:
    if verdict.score > 0 and is_harmful(verdict.metric, verdict.direction):
        return True
    high = verdict.extra.get("z_high", 0.0) >= SYMPTOM_Z and is_harmful(verdict.metric, 1)
    low = verdict.extra.get("z_low", 0.0) <= -SYMPTOM_Z and is_harmful(verdict.metric, -1)
    return high or low
