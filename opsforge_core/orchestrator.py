"""The analysis run: select agents, run them, recall memory, synthesize, persist, learn.

    handle_incident(alerts, metrics)
      ├─ context     alerts, series, dependency graph (given, or the last one learned)
      ├─ select      AgentSelector scores every agent 0-100; the caller may override
      ├─ run         each chosen agent; a failure is recorded and the run goes on
      ├─ memory      patterns with the same alert signature, similar past incidents
      ├─ synthesize  the configured LLM provider, falling back to the offline rules
      └─ persist     incident, pattern occurrence, agent knowledge

A store failure while persisting never loses the answer: the report is returned with a note
saying what was not stored.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from opsforge_core import memory
from opsforge_core.agents import AgentSelector, default_agents
from opsforge_core.agents.alertops import signature_of
from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.config import Settings
from opsforge_core.errors import OpsForgeError, StoreError
from opsforge_core.gc_tuning import analysis_gc
from opsforge_core.llm import synthesize
from opsforge_core.llm.base import SynthesisRequest, TextCallback
from opsforge_core.models import (
    AgentChoice,
    AgentResult,
    Alert,
    IncidentReport,
    MetricSeries,
    Pattern,
    Synthesis,
    max_severity,
    new_incident_id,
    utcnow,
)
from opsforge_core.store.base import Store
from opsforge_core.topology import ServiceGraph

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, str, float], None]


def _no_progress(step: str, detail: str, fraction: float) -> None:
    logger.debug("progress %.0f%% %s: %s", fraction * 100, step, detail)


class Orchestrator:
    """Runs analyses against one store with one set of agents; safe to share across threads."""

    def __init__(
        self,
        store: Store | None = None,
        settings: Settings | None = None,
        agents: Sequence[Agent] | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._store = store
        self.agents: list[Agent] = list(agents) if agents is not None else default_agents()
        self.selector = AgentSelector(self.agents, threshold=self.settings.selector_threshold)

    @property
    def store(self) -> Store:
        if self._store is None:
            from opsforge_core.store import open_store

            self._store = open_store(self.settings)
        return self._store

    @property
    def agent_names(self) -> list[str]:
        return [agent.name for agent in self.agents]

    # -- context and selection ---------------------------------------------------------------

    def build_context(
        self,
        alerts: list[Alert],
        metrics: list[MetricSeries] | None = None,
        graph: ServiceGraph | None = None,
        symptom: dict[str, Any] | None = None,
    ) -> AnalysisContext:
        """Assemble the run's inputs; without a graph, use the last topology learned."""
        if graph is None:
            graph = memory.load_topology(self._store_or_none())
        return AnalysisContext(
            alerts=list(alerts),
            series=list(metrics or []),
            graph=graph,
            store=self._store_or_none(),
            symptom=symptom,
        )

    def select(
        self,
        alerts: list[Alert],
        metrics: list[MetricSeries] | None = None,
        graph: ServiceGraph | None = None,
    ) -> list[AgentChoice]:
        """Score every agent for these inputs (what the console pre-fills its picker with)."""
        return self.selector.score(self.build_context(alerts, metrics, graph))

    def _choose(self, ctx: AnalysisContext, requested: Sequence[str] | None) -> list[AgentChoice]:
        choices = self.selector.score(ctx)
        if requested is None:
            return choices
        unknown = sorted(set(requested) - set(self.agent_names))
        if unknown:
            raise OpsForgeError(
                f"unknown agent(s): {', '.join(unknown)}; "
                f"choose from: {', '.join(self.agent_names)}"
            )
        for choice in choices:
            choice.selected = choice.name in requested
        return choices

    # -- the run -------------------------------------------------------------------------------

    def handle_incident(
        self,
        alerts: list[Alert],
        metrics: list[MetricSeries] | None = None,
        agents: Sequence[str] | None = None,
        *,
        graph: ServiceGraph | None = None,
        symptom: dict[str, Any] | None = None,
        progress: ProgressCallback | None = None,
        on_text: TextCallback | None = None,
        persist: bool = True,
        require_stored: bool = False,
    ) -> IncidentReport:
        """Analyze one incident and return its report (stored unless ``persist`` is False).

        ``agents`` names the agents to run and overrides the selector's choice. A failed
        incident write is a note on the report, unless ``require_stored`` is set: then it
        raises ``StoreError``, for callers that must let their sender retry.
        Otherwise raises ``OpsForgeError`` only for an unknown agent name.
        """
        with analysis_gc():
            return self._handle_incident(
                alerts, metrics, agents, graph, symptom, progress, on_text, persist, require_stored
            )

    def _handle_incident(
        self,
        alerts: list[Alert],
        metrics: list[MetricSeries] | None,
        agents: Sequence[str] | None,
        graph: ServiceGraph | None,
        symptom: dict[str, Any] | None,
        progress: ProgressCallback | None,
        on_text: TextCallback | None,
        persist: bool,
        require_stored: bool,
    ) -> IncidentReport:
        report_progress = progress or _no_progress
        if not alerts and not metrics:
            raise OpsForgeError("nothing to analyze: give at least one alert or metric series")

        report_progress("context", f"{len(alerts)} alerts, {len(metrics or [])} series", 0.02)
        ctx = self.build_context(alerts, metrics, graph, symptom)
        choices = self._choose(ctx, agents)
        chosen = [c for c in choices if c.selected]
        report_progress("select", ", ".join(f"{c.name} {c.score}" for c in chosen), 0.08)

        results = self._run_agents(ctx, choices, report_progress)

        report_progress("memory", "patterns and similar incidents", 0.75)
        signature = signature_of(ctx.alerts) if ctx.alerts else _series_signature(ctx.series)
        patterns = memory.find_patterns(self._store_or_none(), signature)
        similar = memory.similar_from_results(results)

        report_progress("synthesize", f"provider {self.settings.llm_provider}", 0.8)
        incident_id = new_incident_id()
        request = self._synthesis_request(incident_id, ctx, results, similar, patterns)
        synthesis = self._synthesize(request, on_text)

        report = self._build_report(incident_id, ctx, choices, results, synthesis, similar)
        report.pattern_id = pattern_id_for(signature)
        if persist:
            report_progress("persist", f"incident {report.incident_id}", 0.92)
            self._persist(report, ctx, signature, results, require_stored)
        report_progress("done", report.synthesis.root_cause or "no root cause", 1.0)
        return report

    def _run_agents(
        self,
        ctx: AnalysisContext,
        choices: list[AgentChoice],
        report_progress: ProgressCallback,
    ) -> list[AgentResult]:
        by_name = {agent.name: agent for agent in self.agents}
        selected = [c for c in choices if c.selected]
        results: list[AgentResult] = []
        for index, choice in enumerate(choices):
            if not choice.selected:
                results.append(
                    AgentResult(
                        agent=choice.name,
                        status="skipped",
                        score=choice.score,
                        reason=choice.reason,
                    )
                )
                continue
            position = sum(1 for c in choices[:index] if c.selected)
            fraction = 0.1 + 0.6 * position / max(1, len(selected))
            report_progress(f"run {choice.name}", choice.reason, fraction)
            result = by_name[choice.name].execute(ctx, choice.score, choice.reason)
            if result.status == "failed":
                logger.warning("agent %s failed: %s", choice.name, result.error)
            results.append(result)
        return results

    def _synthesis_request(
        self,
        incident_id: str,
        ctx: AnalysisContext,
        results: list[AgentResult],
        similar: list[dict[str, Any]],
        patterns: list[Pattern],
    ) -> SynthesisRequest:
        rule_root, rule_kind = rule_diagnosis(results)
        learned = memory.corrected_root_cause(patterns, results)
        if learned is not None:
            rule_root = learned
        return SynthesisRequest(
            incident_id=incident_id,
            alerts=ctx.alerts,
            results=results,
            rule_severity=rule_severity(ctx.alerts, results),
            rule_root_cause=rule_root,
            rule_fault_kind=rule_kind,
            similar_incidents=similar,
            patterns=patterns,
        )

    def _synthesize(self, request: SynthesisRequest, on_text: TextCallback | None) -> Synthesis:
        try:
            return synthesize(request, settings=self.settings, on_text=on_text)
        except Exception as exc:  # noqa: BLE001 - a run always ends with an answer
            logger.error("synthesis failed, using offline rules: %s", exc, exc_info=True)
            from opsforge_core.llm import offline_synthesis

            synthesis = offline_synthesis(request)
            synthesis.fallback = True
            synthesis.fallback_reason = f"synthesis failed: {type(exc).__name__}: {exc}"
            return synthesis

    def _build_report(
        self,
        incident_id: str,
        ctx: AnalysisContext,
        choices: list[AgentChoice],
        results: list[AgentResult],
        synthesis: Synthesis,
        similar: list[dict[str, Any]],
    ) -> IncidentReport:
        start, end = _window(ctx)
        services = sorted({a.service for a in ctx.alerts} or {s.service for s in ctx.series})
        root = synthesis.root_cause or "unknown cause"
        kind = rule_diagnosis(results)[1] or "incident"
        return IncidentReport(
            incident_id=incident_id,
            created_at=utcnow(),
            window_start=start,
            window_end=end,
            alerts=ctx.alerts,
            series_keys=[s.key for s in ctx.series],
            agents=choices,
            results=results,
            synthesis=synthesis,
            title=f"{root}: {kind.replace('_', ' ')} ({len(ctx.alerts)} alerts)",
            severity=synthesis.severity,
            services=services,
            similar_incidents=similar,
        )

    def _persist(
        self,
        report: IncidentReport,
        ctx: AnalysisContext,
        signature: str,
        results: list[AgentResult],
        require_stored: bool = False,
    ) -> None:
        store = self.store if require_stored else self._store_or_none()
        if store is None:
            report.notes.append("not stored: no store is configured")
            return
        try:
            store.put_incident(report)
        except StoreError as exc:
            logger.error("storing incident %s failed: %s", report.incident_id, exc)
            if require_stored:
                raise
            report.notes.append(f"not stored: {exc}")
            return
        try:
            memory.learn(store, report, ctx, signature, results)
        except StoreError as exc:
            logger.error("learning from incident %s failed: %s", report.incident_id, exc)
            report.notes.append(f"pattern library not updated: {exc}")

    def _store_or_none(self) -> Store | None:
        try:
            return self.store
        except StoreError as exc:
            logger.error("store unavailable: %s", exc)
            return None

    # -- operator actions ----------------------------------------------------------------------

    def resolve_incident(self, incident_id: str, notes: str = "") -> IncidentReport:
        """Mark an open incident resolved with the operator's notes."""
        return self.store.update_incident_status(incident_id, "resolved", notes=notes)

    def give_feedback(
        self, incident_id: str, correct: bool, root_cause: str | None = None
    ) -> IncidentReport:
        """Record whether the root cause was right (or the right one) and teach the patterns."""
        if not correct and not root_cause:
            raise OpsForgeError("feedback that the root cause is wrong needs the right root cause")
        feedback = {
            "correct": correct,
            "root_cause": root_cause if not correct else None,
            "at": utcnow().isoformat(),
        }
        report = self.store.set_feedback(incident_id, feedback)
        memory.learn_feedback(self.store, report, correct, root_cause)
        return report


def pattern_id_for(signature: str) -> str:
    """Stable pattern id for a signature, so every backend and run agree on it."""
    return "pat-" + hashlib.sha256(signature.encode()).hexdigest()[:16]


def _series_signature(series: list[MetricSeries]) -> str:
    return "series:" + ",".join(sorted({s.service for s in series}))


def rule_severity(alerts: list[Alert], results: list[AgentResult]) -> str:
    """Return the rule-based severity: the worst alert, or warning for metric-only anomalies."""
    if alerts:
        firing = [a.severity for a in alerts if a.status == "firing"]
        return max_severity(firing or [a.severity for a in alerts])
    for result in results:
        if result.agent == "predictiveops" and result.findings.get("anomalies"):
            return "warning"
    return "info"


def rule_diagnosis(results: list[AgentResult]) -> tuple[str | None, str | None]:
    """Return the root cause and fault kind the root-cause agent found, if it ran and found one."""
    for result in results:
        if result.agent == "rootcause" and result.status == "ok":
            return result.findings.get("root_cause"), result.findings.get("fault_kind")
    return None, None


def _window(ctx: AnalysisContext) -> tuple[datetime, datetime]:
    times = [a.starts_at for a in ctx.alerts] + [a.ends_at for a in ctx.alerts if a.ends_at]
    stamps = [float(s.timestamps[0]) for s in ctx.series if len(s)]
    stamps += [float(s.timestamps[-1]) for s in ctx.series if len(s)]
    if stamps:
        times += [datetime.fromtimestamp(t, tz=UTC) for t in (min(stamps), max(stamps))]
    if not times:
        now = utcnow()
        return now, now
    return min(times), max(times)


_default: Orchestrator | None = None


def handle_incident(
    alerts: list[Alert],
    metrics: list[MetricSeries] | None = None,
    agents: Sequence[str] | None = None,
    **kwargs: Any,
) -> IncidentReport:
    """Analyze with a process-wide orchestrator built from the environment's settings."""
    global _default
    if _default is None:
        _default = Orchestrator()
    return _default.handle_incident(alerts, metrics, agents, **kwargs)
