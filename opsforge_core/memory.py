"""What OpsForge remembers between runs: the pattern library and the agents' knowledge.

Reads here never fail a run: a store error is logged and treated as "nothing remembered".
Writes raise ``StoreError`` and the orchestrator records them on the report.

Knowledge keys written here:
    orchestrator / topology           the last dependency graph given to a run
    <agent> / stats                   runs, failures and mean duration of each agent
    rootcause / root_cause:<service>  how often a service was the diagnosed root cause
    rootcause / feedback:<pattern>    the operator's verdict on a pattern's root cause
"""

from __future__ import annotations

import logging
from typing import Any

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.errors import StoreError
from opsforge_core.models import AgentResult, IncidentReport, KnowledgeItem, Pattern, utcnow
from opsforge_core.store.base import Store
from opsforge_core.topology import ServiceGraph

logger = logging.getLogger(__name__)

TOPOLOGY_KEY = ("orchestrator", "topology")


def load_topology(store: Store | None) -> ServiceGraph | None:
    """Return the last topology a run was given, or None."""
    if store is None:
        return None
    try:
        item = store.get_knowledge(*TOPOLOGY_KEY)
    except StoreError as exc:
        logger.warning("reading the stored topology failed: %s", exc)
        return None
    if item is None or not item.value.get("edges"):
        return None
    return ServiceGraph.from_pairs([tuple(edge) for edge in item.value["edges"]])


def find_patterns(store: Store | None, signature: str) -> list[Pattern]:
    if store is None:
        return []
    try:
        return store.find_patterns(signature)
    except StoreError as exc:
        logger.warning("pattern lookup failed: %s", exc)
        return []


def similar_from_results(results: list[AgentResult]) -> list[dict[str, Any]]:
    """Return the similar past incidents AlertOps recalled, if it ran."""
    for result in results:
        if result.agent == "alertops" and result.status == "ok":
            return list(result.findings.get("similar_incidents") or [])
    return []


def corrected_root_cause(patterns: list[Pattern], results: list[AgentResult]) -> str | None:
    """Return the root cause operators taught for this signature, when the evidence allows it.

    A pattern whose root cause an operator corrected (``rejected`` > 0, the stored root cause
    being the corrected one) or confirmed wins over the ranker, but only if that service is
    among the services the ranker considered: feedback refines a diagnosis, it does not invent
    one for an unrelated incident.
    """
    reviewed = [p for p in patterns if p.confirmed + p.rejected > 0 and p.root_cause]
    if not reviewed:
        return None
    best = max(reviewed, key=lambda p: (p.confirmed + p.rejected, p.occurrences))
    candidates: set[str] = set()
    for result in results:
        if result.agent == "rootcause" and result.status == "ok":
            candidates = {row.get("service") for row in result.findings.get("ranking", [])}
    return best.root_cause if best.root_cause in candidates else None


def learn(
    store: Store,
    report: IncidentReport,
    ctx: AnalysisContext,
    signature: str,
    results: list[AgentResult],
) -> None:
    """Count the pattern occurrence and update each agent's knowledge after a run."""
    now = utcnow()
    root_cause = report.synthesis.root_cause
    fault_kind = next(
        (r.findings.get("fault_kind") for r in results if r.agent == "rootcause"), None
    )
    pattern = Pattern(
        pattern_id=report.pattern_id or "",
        signature=signature,
        root_cause=root_cause or "",
        fault_kind=fault_kind or "",
        fix=report.synthesis.actions[0] if report.synthesis.actions else "",
        alert_names=sorted({a.name for a in ctx.alerts}),
        services=list(report.services),
        last_seen=now,
        last_incident_id=report.incident_id,
    )
    store.record_pattern_occurrence(pattern, report.incident_id, now)

    if ctx.graph is not None and ctx.graph.edges:
        edges = [list(edge) for edge in ctx.graph.to_pairs()]
        store.put_knowledge(KnowledgeItem(*TOPOLOGY_KEY, {"edges": edges}, now))
    for result in results:
        if result.status != "skipped":
            _update_stats(store, result)
    if root_cause:
        _count(store, "rootcause", f"root_cause:{root_cause}", report.incident_id, fault_kind)


def learn_feedback(
    store: Store, report: IncidentReport, correct: bool, root_cause: str | None
) -> None:
    """Teach the pattern library and the root-cause agent from an operator's verdict."""
    if report.pattern_id:
        pattern = store.add_pattern_feedback(
            report.pattern_id, correct, None if correct else root_cause
        )
        if not correct and root_cause:
            _retarget_fix(store, pattern, root_cause)
    value = {
        "incident_id": report.incident_id,
        "diagnosed": report.synthesis.root_cause,
        "correct": correct,
        "right_root_cause": report.synthesis.root_cause if correct else root_cause,
    }
    key = f"feedback:{report.pattern_id or report.incident_id}"
    store.put_knowledge(KnowledgeItem("rootcause", key, value, utcnow()))


def _retarget_fix(store: Store, pattern: Pattern, root_cause: str) -> None:
    """Point a corrected pattern's fix at its new root cause, so no stale advice remains."""
    from opsforge_core.llm.runbooks import actions_for

    # NOTE: a whole-item write; an occurrence counted between the feedback update and this
    # write would be lost. Feedback is rare and operator-driven, so the window is small.
    current = store.get_pattern(pattern.pattern_id) or pattern
    current.fix = actions_for(current.fault_kind or "unknown", root_cause)[0]
    store.put_pattern(current)


def _update_stats(store: Store, result: AgentResult) -> None:
    # NOTE: read-modify-write; two concurrent runs may lose one count. These are display
    # statistics, so the simpler code wins over an atomic counter here.
    item = store.get_knowledge(result.agent, "stats")
    stats = dict(item.value) if item else {"runs": 0, "failures": 0, "mean_duration_ms": 0.0}
    runs = int(stats.get("runs", 0)) + 1
    mean = float(stats.get("mean_duration_ms", 0.0))
    stats["runs"] = runs
    stats["failures"] = int(stats.get("failures", 0)) + (result.status == "failed")
    stats["mean_duration_ms"] = mean + (result.duration_ms - mean) / runs
    stats["last_confidence"] = result.confidence
    store.put_knowledge(KnowledgeItem(result.agent, "stats", stats, utcnow()))


def _count(store: Store, agent: str, key: str, incident_id: str, fault_kind: str | None) -> None:
    item = store.get_knowledge(agent, key)
    value = dict(item.value) if item else {"count": 0, "fault_kinds": {}}
    value["count"] = int(value.get("count", 0)) + 1
    kinds = dict(value.get("fault_kinds") or {})
    if fault_kind:
        kinds[fault_kind] = int(kinds.get(fault_kind, 0)) + 1
    value["fault_kinds"] = kinds
    value["last_incident_id"] = incident_id
    store.put_knowledge(KnowledgeItem(agent, key, value, utcnow()))
