"""RootCause: rank the services that could have caused an incident.

Evidence per service comes from the anomaly detector (``detect.scan_all``) and from alerts. A
sick service is a likely cause when its own dependencies are healthy (nothing below it
explains its anomaly), its anomaly started early, and its trouble can have reached the other
sick services. Each candidate's score multiplies those factors::

    score = strength x (1 - EXPLAINED x worst sick dependency)
                     x timing (decays with onset after the first onset)
                     x (COVERAGE_BASE + share of the other sick services it explains)

Quiet evidence counts for less, as a candidate's strength and as a sick dependency's. It is
trouble that came and went by itself (see ``evidence``), the way background noise does. Quiet
trouble explains only quiet trouble, and its onset sets the first onset only when every
candidate is quiet, so noise that started before the fault does not look like its start.

A service explains the sick services its trouble can have reached: along calls either way,
each one starting no earlier than the one before. The cause of a cascade explains most of it.

The candidates come from ``incident``: with ``ctx.symptom``, its service and the sick
services it reaches through sick dependencies (and nothing is named when the symptom's own
metric shows no harmful deviation). Otherwise the main alert group's services and their
dependencies, or without alerts the largest cluster of services sick at the same time.
Without a graph, edges come from alert labels, else ranking uses strength and onset alone,
and a reasoning step names which.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from opsforge_core.agents import detect
from opsforge_core.agents.alertops import graph_from_labels
from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.agents.evidence import (
    ServiceEvidence,
    clusters,
    collect_evidence,
    mark_quiet,
    restarts_by_service,
)
from opsforge_core.agents.faultkind import change_times, infer_fault_kind
from opsforge_core.agents.incident import (
    LOOKBACK_S,
    anomaly_spans,
    check_symptom,
    flapping_fingerprints,
    incident_scope,
    scan_window,
    symptom_metric,
    symptom_scope,
    symptom_ts,
    without_flapping,
)
from opsforge_core.models import AgentResult, ReasoningStep, iso
from opsforge_core.topology import ServiceGraph

logger = logging.getLogger(__name__)

EXPLAINED = 0.8  # how much a sick dependency that started no later discounts a service
COVERAGE_BASE = 0.5  # factor of a candidate that explains none of the other sick services
CHECKED = 0.1  # bonus for MAX_CHECKED or more dependencies observed healthy
MAX_CHECKED = 3
CHANGE_WINDOW_S = 1800.0  # a deploy this long before a service's onset may have caused it
CHANGE_BOOST = 1.25
TIMING_TAU_S = 300.0  # onset delay at which the timing factor falls to 1/e of its range
TIMING_FLOOR = 0.2
CACHE_KEY = "rootcause_anomalies"


class RootCauseAgent(Agent):
    """Ranks services by how well they explain the incident over the dependency graph."""

    name = "rootcause"
    description = "Ranks likely root-cause services over the dependency graph and anomalies."

    def __init__(self, min_strength: float = detect.DEFAULT_THRESHOLD) -> None:
        self.min_strength = min_strength

    def relevance(self, ctx: AnalysisContext) -> tuple[int, str]:
        alerting = {a.service for a in ctx.alerts}
        if not ctx.alerts and not ctx.series:
            return 0, "no alerts or metrics to rank services from"
        if ctx.symptom:
            return 90, f"symptom on {ctx.symptom.get('service')}: rank what it depends on"
        score, parts = 35, []
        if ctx.series:
            score += 25
            parts.append(f"{len(ctx.series)} series")
        if ctx.graph is not None and ctx.graph.edges:
            score += 20
            parts.append("a dependency graph")
        if len(alerting) >= 2:
            score += 15
            parts.append(f"alerts on {len(alerting)} services")
        reason = "ranks causes from " + (", ".join(parts) if parts else "alerts on one service")
        return score, reason

    def run(self, ctx: AnalysisContext) -> AgentResult:
        steps: list[ReasoningStep] = []
        graph, graph_note = self._graph(ctx)
        verdicts = self._anomalies(ctx)
        metric = symptom_metric(ctx, verdicts)
        findings: dict[str, Any] = {
            "ranking": [],
            "root_cause": None,
            "fault_kind": None,
            "graph": graph_note,
        }
        symptom_onset, gate = check_symptom(ctx, verdicts)
        if gate is not None:
            steps.append(ReasoningStep("Symptom", gate, {"symptom": ctx.symptom}))
            return AgentResult(self.name, steps=steps, findings=findings, confidence=0.6)

        incident, incident_note, since = None, "", None
        spans = anomaly_spans(ctx, verdicts)
        if not ctx.symptom and ctx.alerts:
            everything = collect_evidence(verdicts, [], metric, spans)
            incident, incident_note, since = incident_scope(
                ctx.alerts, graph, everything, ctx.cache
            )
        flapping = flapping_fingerprints(ctx.alerts, ctx.cache)
        steady = without_flapping(ctx.alerts, flapping)
        evidence = collect_evidence(verdicts, steady, metric, spans, since)
        restarts = restarts_by_service(ctx.cache.get("prepared", {}).values())
        mark_quiet(evidence, ctx.alerts, flapping, restarts, since)
        sick = {s: e for s, e in evidence.items() if e.strength >= self.min_strength}
        steps.append(_evidence_step(verdicts, sick, graph_note, metric))

        scope, scope_note = symptom_scope(ctx, graph, sick)
        if scope is None and incident is not None:
            scope, scope_note = incident, incident_note
        if scope is None and sick:
            incidents = clusters(sick, graph)
            scope = incidents[0]
            scope_note = (
                f"{len(incidents)} clusters of services sick at once; the largest has "
                f"{len(scope)}: {', '.join(sorted(scope))}"
            )
        candidates = {s: e for s, e in sick.items() if scope is None or s in scope}
        steps.append(ReasoningStep("Candidates", scope_note, {"services": sorted(candidates)}))
        observed = {v.service for v in verdicts.values() if v.status != "insufficient_data"}
        changes = change_times(ctx.alerts)
        ranking = rank(candidates, sick, graph, symptom_onset, observed, changes)
        findings["ranking"] = ranking
        if not ranking:
            steps.append(ReasoningStep("Verdict", "no service is anomalous enough to name", {}))
            return AgentResult(self.name, steps=steps, findings=findings, confidence=0.5)

        root = ranking[0]["service"]
        kind, votes = infer_fault_kind(
            evidence[root].all_anomalies,
            [a for a in ctx.alerts if a.service == root],
            restarts.get(root, 0),
        )
        findings["root_cause"] = root
        findings["fault_kind"] = kind
        confidence = _confidence(ranking, sick[root].strength)
        steps.append(_verdict_step(ranking, kind, votes))
        return AgentResult(self.name, steps=steps, findings=findings, confidence=confidence)

    def _graph(self, ctx: AnalysisContext) -> tuple[ServiceGraph | None, str]:
        if ctx.graph is not None and ctx.graph.edges:
            return ctx.graph, "dependency graph given"
        inferred = graph_from_labels(ctx.alerts)
        if inferred is not None:
            return inferred, "dependency edges inferred from alert labels"
        return None, "no dependency graph: ranked by anomaly strength and onset alone"

    def _anomalies(self, ctx: AnalysisContext) -> dict[str, detect.SeriesAnomaly]:
        """Return the detector's verdicts, judged from shortly before the symptom when given.

        With a symptom time the question is whether that window is anomalous, so the
        detector's raw scores are used: its hold-off, which keeps one event from alarming
        twice in a stream, would hide a window that follows an earlier alarm.
        """
        verdicts = detect.scan_all(ctx)
        symptom_time = symptom_ts(ctx)
        if symptom_time is None:
            return verdicts
        cached = ctx.cache.get(CACHE_KEY)
        if cached is None:
            prepared = list(ctx.cache.get("prepared", {}).values())
            cached = scan_window(prepared, symptom_time - LOOKBACK_S)
            ctx.cache[CACHE_KEY] = cached
        return cached


def rank(
    candidates: dict[str, ServiceEvidence],
    sick: dict[str, ServiceEvidence],
    graph: ServiceGraph | None,
    reference_onset: float | None = None,
    observed: set[str] | None = None,
    changes: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Score each candidate (see the module docstring) and return them best first.

    ``observed`` names the services with judged metrics. A candidate whose dependencies were
    observed healthy is a little more likely the cause than a leaf, because a leaf's trouble
    could sit in something unobserved behind it.

    Onset delays are measured from ``reference_onset`` (the symptom's onset) when given, else
    from the earliest candidate onset. ``changes`` gives each service's last deploy time: a
    service changed shortly before its trouble began is the prime suspect, so a sick
    dependency does not discount it and its score gets ``CHANGE_BOOST``.
    """
    changes = changes or {}
    if not candidates:
        return []
    lasting = [e.onset for e in candidates.values() if not e.quiet]
    first_onset = min(lasting or [e.onset for e in candidates.values()])
    if reference_onset is not None:
        first_onset = reference_onset
    entries = []
    for service, ev in candidates.items():
        explained_by, callers = _neighbours(service, ev, sick, graph)
        worst = max((sick[d].weighted for d in explained_by), default=0.0)
        changed = _changed_before(changes.get(service), ev)
        if changed:
            worst = 0.0
        delay = max(0.0, ev.onset - first_onset)
        timing = TIMING_FLOOR + (1 - TIMING_FLOOR) * math.exp(-delay / TIMING_TAU_S)
        covered = _covered(service, ev, candidates, graph)
        coverage = len(covered) / max(1, len(candidates) - 1)
        checked = _checked_dependencies(service, sick, graph, observed)
        vouched = 1.0 + CHECKED * min(len(checked), MAX_CHECKED) / MAX_CHECKED
        score = ev.magnitude * (1 - EXPLAINED * worst) * timing * (COVERAGE_BASE + coverage)
        score *= vouched * (CHANGE_BOOST if changed else 1.0)
        reason = _reason(ev, explained_by, callers, delay, graph is not None)
        if changed:
            reason = f"deployed {(ev.onset - changes[service]) / 60:.0f} min before; {reason}"
        entries.append(
            {
                "service": service,
                "score": score,
                "reason": reason,
                "evidence": {
                    "strength": round(ev.strength, 3),
                    "onset": iso_ts(ev.onset),
                    "series": [a["series_key"] for a in ev.anomalies],
                    "alerts": [a.fingerprint for a in ev.alerts],
                    "sick_dependencies": sorted(explained_by),
                    "sick_callers": sorted(callers),
                    "explains": sorted(covered),
                },
            }
        )
    best = max(e["score"] for e in entries) or 1.0
    for entry in entries:
        entry["score"] = round(entry["score"] / best, 4)
    entries.sort(key=lambda e: (-e["score"], e["service"]))
    return entries


def _changed_before(change: float | None, ev: ServiceEvidence) -> bool:
    if change is None:
        return False
    return ev.onset - CHANGE_WINDOW_S <= change <= ev.onset + 0.5 * ev.step


def _checked_dependencies(
    service: str,
    sick: dict[str, ServiceEvidence],
    graph: ServiceGraph | None,
    observed: set[str] | None,
) -> list[str]:
    """Return the dependencies of ``service`` whose metrics were judged and found healthy."""
    if graph is None or not observed:
        return []
    return sorted(d for d in graph.dependencies(service) if d in observed and d not in sick)


def _covered(
    service: str,
    ev: ServiceEvidence,
    candidates: dict[str, ServiceEvidence],
    graph: ServiceGraph | None,
) -> list[str]:
    """Return the sick services that trouble starting at ``service`` can have reached.

    Trouble travels along calls in both directions, forward in time: latency and errors up
    to the callers, load and backpressure down to the dependencies (a failing consumer fills
    its queue). So this walks the graph's edges either way, through candidates whose onset is
    no earlier (within half a step) than the service it came from. Quiet trouble reaches only
    quiet trouble (see ``_neighbours``).
    """
    if graph is None or service not in graph.edges:
        return []
    seen = {service}
    frontier = [service]
    while frontier:
        current = frontier.pop()
        here = candidates.get(current, ev)
        for neighbour in graph.dependencies(current) | graph.dependents(current):
            other = candidates.get(neighbour)
            if other is None or neighbour in seen or (here.quiet and not other.quiet):
                continue
            if other.onset >= here.onset - 0.5 * max(here.step, other.step):
                seen.add(neighbour)
                frontier.append(neighbour)
    return sorted(seen - {service})


def _neighbours(
    service: str,
    ev: ServiceEvidence,
    sick: dict[str, ServiceEvidence],
    graph: ServiceGraph | None,
) -> tuple[list[str], list[str]]:
    """Return (sick dependencies that started no later, sick callers) of ``service``.

    Quiet trouble came and went by itself, so it cannot explain trouble that lasts or a
    process that keeps restarting.
    """
    if graph is None:
        return [], []
    explained_by = []
    for dependency in graph.dependencies(service):
        dep = sick.get(dependency)
        if dep is None or (dep.quiet and not ev.quiet):
            continue
        if dep.onset <= ev.onset + 0.5 * max(ev.step, dep.step):
            explained_by.append(dependency)
    callers = [c for c in graph.dependents(service) if c in sick]
    return explained_by, callers


def _reason(
    ev: ServiceEvidence, explained_by: list[str], callers: list[str], delay: float, graphed: bool
) -> str:
    parts = [f"anomalous ({ev.summary()})"]
    if graphed:
        if explained_by:
            parts.append(f"but depends on sick {', '.join(sorted(explained_by))}")
        else:
            parts.append("its dependencies are healthy")
        if callers:
            parts.append(f"{len(callers)} callers sick")
    parts.append(
        "first to start" if delay == 0 else f"started {delay / 60:.0f} min after the first"
    )
    return "; ".join(parts)


def _confidence(ranking: list[dict[str, Any]], strength: float) -> float:
    if len(ranking) == 1:
        return round(0.9 * strength, 3)
    margin = ranking[0]["score"] - ranking[1]["score"]
    return round(strength * (0.5 + 0.5 * margin), 3)


def _evidence_step(
    verdicts: dict[str, detect.SeriesAnomaly],
    sick: dict[str, ServiceEvidence],
    graph_note: str,
    metric: str | None,
) -> ReasoningStep:
    anomalous = [k for k, v in verdicts.items() if v.status == "anomalous"]
    short = sum(1 for v in verdicts.values() if v.status == "insufficient_data")
    judged = f" on {metric}, the symptom's metric" if metric else ""
    detail = (
        f"{len(anomalous)} of {len(verdicts)} series anomalous ({short} with too little data); "
        f"{len(sick)} services sick{judged}; {graph_note}"
    )
    return ReasoningStep("Evidence", detail, {"series": sorted(anomalous)[:50]})


def _verdict_step(
    ranking: list[dict[str, Any]], kind: str, votes: dict[str, float]
) -> ReasoningStep:
    top = ranking[0]
    runner = (
        f"; next {ranking[1]['service']} at {ranking[1]['score']:.2f}" if len(ranking) > 1 else ""
    )
    return ReasoningStep(
        "Verdict",
        f"root cause {top['service']} ({kind}): {top['reason']}{runner}",
        {"top": [(e["service"], e["score"]) for e in ranking[:5]], "fault_kind_votes": votes},
    )


def iso_ts(ts: float) -> str | None:
    if not math.isfinite(ts):
        return None
    from datetime import UTC, datetime

    return iso(datetime.fromtimestamp(ts, tz=UTC))
