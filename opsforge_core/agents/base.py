"""Agent interface and the analysis context every agent reads.

An agent scores its own relevance for an incident (0-100 with a one-line reason) and runs to
an ``AgentResult``. ``Agent.execute`` wraps ``run`` so that an agent never raises into the
orchestrator: an exception becomes a failed result that says what the agent tried.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsforge_core.models import AgentResult, Alert, MetricSeries, utcnow
from opsforge_core.topology import ServiceGraph

if TYPE_CHECKING:
    from opsforge_core.store.base import Store

logger = logging.getLogger(__name__)


@dataclass
class AnalysisContext:
    """The inputs of one analysis run, shared by every agent.

    ``cache`` holds work computed once per run and reused by several agents (for example the
    per-series anomaly scan); keys are owned by the module that fills them.
    ``symptom`` optionally names the service (and metric) an operator reported, for
    example the PetShop target node.
    """

    alerts: list[Alert]
    series: list[MetricSeries] = field(default_factory=list)
    graph: ServiceGraph | None = None
    store: Store | None = None
    now: datetime = field(default_factory=utcnow)
    symptom: dict[str, Any] | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def services(self) -> list[str]:
        names = {a.service for a in self.alerts} | {s.service for s in self.series}
        return sorted(names)


class Agent(ABC):
    """A specialist agent; subclasses set ``name`` and ``description``."""

    name: str = "agent"
    description: str = ""

    @abstractmethod
    def relevance(self, ctx: AnalysisContext) -> tuple[int, str]:
        """Return a score 0-100 for this incident and a one-line reason."""

    @abstractmethod
    def run(self, ctx: AnalysisContext) -> AgentResult:
        """Analyze the incident; may raise, ``execute`` turns that into a failed result."""

    def execute(self, ctx: AnalysisContext, score: int = 0, reason: str = "") -> AgentResult:
        """Run the agent, timing it; never raises."""
        started = time.perf_counter()
        try:
            result = self.run(ctx)
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            logger.warning("agent %s failed: %s", self.name, exc, exc_info=True)
            result = AgentResult(
                agent=self.name,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                confidence=0.0,
            )
        result.agent = self.name
        result.score = score
        result.reason = reason
        result.duration_ms = (time.perf_counter() - started) * 1000.0
        return result
