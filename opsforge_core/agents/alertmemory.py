"""Recall for AlertOps: similar past incidents and learned patterns from the store.

Similarity is the Jaccard index over the set of alert names and services of two incidents.
Incident summaries carry services but not alert names, so the recent incidents are first
ranked by their services and only the best few are read in full.
"""

from __future__ import annotations

import logging
from typing import Any

from opsforge_core.errors import StoreError
from opsforge_core.models import Alert, ReasoningStep, iso
from opsforge_core.store.base import Store

logger = logging.getLogger(__name__)

RECENT_INCIDENTS = 100
FULL_READS = 10
MIN_SIMILARITY = 0.3
MAX_SIMILAR = 5


def recall(
    store: Store | None, alerts: list[Alert], signature: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[ReasoningStep]]:
    """Return (similar incidents, patterns, reasoning steps); a store error becomes a step."""
    if store is None:
        step = ReasoningStep("Recall", "no store configured: similar incidents skipped", {})
        return [], [], [step]
    steps: list[ReasoningStep] = []
    try:
        similar = similar_incidents(store, alerts)
        steps.append(_similar_step(similar))
    except StoreError as exc:
        logger.warning("similar incident lookup failed: %s", exc)
        similar = []
        steps.append(ReasoningStep("Similar incidents", f"store lookup failed: {exc}", {}))
    try:
        patterns = [p.to_dict() for p in store.find_patterns(signature)]
        steps.append(_pattern_step(patterns, signature))
    except StoreError as exc:
        logger.warning("pattern lookup failed: %s", exc)
        patterns = []
        steps.append(ReasoningStep("Patterns", f"store lookup failed: {exc}", {}))
    return similar, patterns, steps


def tokens_of(names: set[str], services: set[str]) -> set[str]:
    return {f"alert:{n}" for n in names} | {f"service:{s}" for s in services}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def similar_incidents(store: Store, alerts: list[Alert]) -> list[dict[str, Any]]:
    """Return up to five past incidents most similar to ``alerts``, best first."""
    services = {a.service for a in alerts}
    current = tokens_of({a.name for a in alerts}, services)
    fingerprints = {a.fingerprint for a in alerts}
    summaries = store.list_incidents(limit=RECENT_INCIDENTS).items
    by_services = sorted(
        summaries,
        key=lambda s: jaccard({f"service:{x}" for x in s.services}, current),
        reverse=True,
    )
    scored = []
    for summary in by_services[:FULL_READS]:
        if not set(summary.services) & services:
            continue
        report = store.get_incident(summary.incident_id)
        if report is None:
            continue
        # A report holding exactly these alerts is this incident analysed again, not a match.
        if {a.fingerprint for a in report.alerts} == fingerprints:
            continue
        past = tokens_of({a.name for a in report.alerts}, set(report.services))
        similarity = jaccard(current, past)
        if similarity >= MIN_SIMILARITY:
            scored.append((similarity, report))
    scored.sort(key=lambda pair: pair[0], reverse=True)
    return [_similar_dict(sim, report) for sim, report in scored[:MAX_SIMILAR]]


def _similar_dict(similarity: float, report) -> dict[str, Any]:
    feedback = report.feedback or {}
    root = feedback.get("root_cause") or report.synthesis.root_cause
    return {
        "incident_id": report.incident_id,
        "similarity": round(similarity, 3),
        "title": report.title,
        "root_cause": root,
        "status": report.status,
        "created_at": iso(report.created_at),
        "resolution_notes": report.resolution_notes,
        "services": list(report.services),
    }


def _similar_step(similar: list[dict[str, Any]]) -> ReasoningStep:
    if not similar:
        detail = f"no past incident shares {MIN_SIMILARITY:.0%} of alert names and services"
    else:
        best = similar[0]
        detail = (
            f"{len(similar)} similar past incidents; closest {best['incident_id']} "
            f"({best['similarity']:.0%}, root cause {best['root_cause'] or 'unknown'})"
        )
    evidence = {"incidents": {s["incident_id"]: s["similarity"] for s in similar}}
    return ReasoningStep("Similar incidents", detail, evidence)


def _pattern_step(patterns: list[dict[str, Any]], signature: str) -> ReasoningStep:
    if not patterns:
        detail = "no learned pattern has this alert signature"
    else:
        best = max(patterns, key=lambda p: p.get("occurrences", 0))
        detail = (
            f"{len(patterns)} learned patterns match; {best['pattern_id']} seen "
            f"{best.get('occurrences', 0)} times, root cause {best.get('root_cause') or 'unknown'}"
        )
    return ReasoningStep("Patterns", detail, {"signature": signature})
