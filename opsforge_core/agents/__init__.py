"""Specialist agents and the selector that picks them for an incident.

``default_agents()`` returns the agents the console and the orchestrator use: AlertOps,
PredictiveOps (when its module is importable) and RootCause.
"""

from __future__ import annotations

import logging

from opsforge_core.agents.alertops import AlertOpsAgent, signature_of
from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.agents.rootcause import RootCauseAgent
from opsforge_core.agents.selector import AgentSelector

logger = logging.getLogger(__name__)

__all__ = [
    "Agent",
    "AgentSelector",
    "AlertOpsAgent",
    "AnalysisContext",
    "PredictiveOpsAgent",
    "RootCauseAgent",
    "default_agents",
    "signature_of",
]


def default_agents() -> list[Agent]:
    """Return new instances of AlertOps, PredictiveOps and RootCause, in that order."""
    agents: list[Agent] = [AlertOpsAgent()]
    predictive = _predictive_class()
    if predictive is not None:
        agents.append(predictive())
    agents.append(RootCauseAgent())
    return agents


def _predictive_class() -> type[Agent] | None:
    # Imported lazily so a broken or missing PredictiveOps module leaves the other agents usable.
    try:
        from opsforge_core.agents.predictive import PredictiveOpsAgent
    except ImportError as exc:
        logger.warning("PredictiveOps agent unavailable: %s", exc)
        return None
    return PredictiveOpsAgent


def __getattr__(name: str):
    if name == "PredictiveOpsAgent":
        cls = _predictive_class()
        if cls is None:
            raise AttributeError("PredictiveOpsAgent is unavailable: its module failed to import")
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
