"""The offline synthesis: a deterministic answer built from the agents' findings alone.

It needs no account and no network, so it is the default provider and the fallback whenever an
LLM call fails or answers badly. The same request always gives the same synthesis.
"""

from __future__ import annotations

from collections import Counter

from opsforge_core.agents.faultkind import FAULT_KINDS, infer_fault_kind
from opsforge_core.llm import findings as fx
from opsforge_core.llm.base import SynthesisRequest
from opsforge_core.llm.guard import injection_flags
from opsforge_core.llm.runbooks import actions_for
from opsforge_core.models import SEVERITIES, SEVERITY_RANK, Synthesis, max_severity

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL_ID = "rules-v1"

# Confidence scale per source of the root cause: a ranked dependency walk is worth more than
# the earliest anomaly, which is worth more than the earliest alert.
_SOURCE_WEIGHT = {
    "rootcause": 1.0,
    "rule": 0.8,
    "predictiveops": 0.6,
    "alert": 0.3,
    "none": 0.0,
}


def offline_synthesis(request: SynthesisRequest) -> Synthesis:
    """Build the rule-based synthesis of ``request``; never raises on missing findings."""
    root_cause, source, evidence = _root_cause(request)
    fault_kind = _fault_kind(request, root_cause)
    anomalies = fx.earliest_anomalies(request.results)
    evidence += [f"predictiveops.anomalies[{i}]" for i, _ in anomalies]
    evidence = list(dict.fromkeys(evidence))
    blast = blast_radius(request, root_cause)
    return Synthesis(
        provider=OFFLINE_PROVIDER,
        model_id=OFFLINE_MODEL_ID,
        summary=_summary(request, root_cause, fault_kind, blast, anomalies),
        root_cause=root_cause,
        confidence=_confidence(request, source),
        severity=rule_severity(request),
        actions=actions_for(fault_kind, root_cause),
        evidence=evidence,
        flags=injection_flags(request.alerts),
    )


def rule_severity(request: SynthesisRequest) -> str:
    """Return the request's rule severity, or the worst alert severity if it is invalid."""
    if request.rule_severity in SEVERITIES:
        return request.rule_severity
    return max_severity([a.severity for a in request.alerts if a.severity in SEVERITY_RANK])


def _root_cause(request: SynthesisRequest) -> tuple[str, str, list[str]]:
    """Return (service, source, evidence): rootcause agent, rule, earliest anomaly or alert."""
    found = _from_rootcause(request)
    if found is not None:
        return found
    if request.rule_root_cause:
        return request.rule_root_cause, "rule", []
    anomalies = fx.earliest_anomalies(request.results, limit=1)
    if anomalies:
        index, entry = anomalies[0]
        return fx.entry_service(entry) or "", "predictiveops", [f"predictiveops.anomalies[{index}]"]
    alert = fx.earliest_alert(request.alerts)
    if alert is not None:
        return alert.service, "alert", []
    # Nothing is anomalous and nothing alerted: naming no cause is the honest answer.
    return "", "none", []


def _from_rootcause(request: SynthesisRequest) -> tuple[str, str, list[str]] | None:
    """Return the rootcause agent's verdict, or the request's rule root cause among its ranks.

    The orchestrator sets ``rule_root_cause`` to a service operators taught for this alert
    signature; it wins over the agent's top rank when the agent ranked that service too.
    """
    rootcause = fx.ok_result(request.results, "rootcause")
    if rootcause is None:
        return None
    ranked = [fx.entry_service(entry) for entry in fx.ranking(request.results)]
    named = rootcause.findings.get("root_cause")
    rule = request.rule_root_cause
    if rule and rule != named and rule in ranked:
        return rule, "rootcause", [f"rootcause.ranking[{ranked.index(rule)}]"]
    if isinstance(named, str) and named:
        evidence = ["rootcause.root_cause"]
        if named in ranked:
            evidence.append(f"rootcause.ranking[{ranked.index(named)}]")
        return named, "rootcause", evidence
    if ranked and ranked[0]:
        return ranked[0], "rootcause", ["rootcause.ranking[0]"]
    return None


def _fault_kind(request: SynthesisRequest, root_cause: str) -> str:
    """Return the fault kind named by the request or the rootcause agent, else infer it."""
    if request.rule_fault_kind in FAULT_KINDS:
        return request.rule_fault_kind
    rootcause = fx.ok_result(request.results, "rootcause")
    named = rootcause.findings.get("fault_kind") if rootcause else None
    if named in FAULT_KINDS:
        return named
    anomalies = [
        a
        for a in fx.anomalies(request.results)
        if isinstance(a, dict) and fx.entry_service(a) == root_cause
    ]
    alerts = [a for a in request.alerts if a.service == root_cause]
    kind, _ = infer_fault_kind(anomalies, alerts)
    return kind


def blast_radius(request: SynthesisRequest, root_cause: str) -> list[str]:
    """Return the affected services other than the root cause, sorted.

    The rootcause agent's ``blast_radius`` finding wins; otherwise every service with an alert
    or an anomaly counts.
    """
    rootcause = fx.ok_result(request.results, "rootcause")
    named = rootcause.findings.get("blast_radius") if rootcause else None
    if isinstance(named, list) and all(isinstance(s, str) for s in named):
        return sorted(set(named) - {root_cause})
    services = {a.service for a in request.alerts}
    services |= {fx.entry_service(a) for a in fx.anomalies(request.results)} - {None}
    return sorted(services - {root_cause})


def _confidence(request: SynthesisRequest, source: str) -> float:
    weight = _SOURCE_WEIGHT.get(source, 0.3)
    if weight == 0.0:
        return 0.0
    if source == "rootcause":
        agent = fx.ok_result(request.results, "rootcause")
        base = agent.confidence if agent else 0.5
    else:
        ran = [r.confidence for r in request.results if r.status == "ok"]
        base = max(ran, default=0.5)
    value = max(0.0, min(1.0, float(base))) * weight
    return round(value, 3)


def _summary(
    request: SynthesisRequest,
    root_cause: str,
    fault_kind: str,
    blast: list[str],
    anomalies: list[tuple[int, object]],
) -> str:
    kind = fault_kind.replace("_", " ")
    if not root_cause:
        return (
            "No root cause identified: no agent found a service anomalous enough to name, "
            "and no alert points at one."
        )
    parts = [f"Probable root cause: {root_cause} ({kind})."]
    if blast:
        shown = ", ".join(blast[:8]) + (f" and {len(blast) - 8} more" if len(blast) > 8 else "")
        parts.append(f"Blast radius: {len(blast)} other service(s): {shown}.")
    else:
        parts.append("Blast radius: no other service is affected.")
    if anomalies:
        labels = "; ".join(fx.describe_anomaly(entry) for _, entry in anomalies)
        parts.append(f"First anomalies: {labels}.")
    if request.alerts:
        counts = Counter(a.severity for a in request.alerts)
        by_severity = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if counts[s])
        parts.append(f"{len(request.alerts)} alert(s): {by_severity}.")
    return " ".join(parts)
