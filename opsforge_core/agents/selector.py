"""Choose which agents run for an incident from their own relevance scores.

Every agent scores itself 0-100 with a one-line reason. Agents at or above the threshold are
selected. When none reaches it the best-scoring agent is selected anyway, so an analysis never
runs with no agent, and its reason states that. An operator may override the choice by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.errors import OpsForgeError
from opsforge_core.models import AgentChoice

logger = logging.getLogger(__name__)


class AgentSelector:
    """Score agents for an analysis context and mark the ones to run."""

    def __init__(self, agents: Sequence[Agent], threshold: int = 60) -> None:
        if not 0 <= threshold <= 100:
            raise ValueError(f"selector threshold {threshold} is outside 0-100")
        self.agents = list(agents)
        self.threshold = threshold

    def score(
        self, ctx: AnalysisContext, override: Iterable[str] | None = None
    ) -> list[AgentChoice]:
        """Return one choice per agent, in the agents' order.

        ``override`` names the agents to run regardless of their scores; an unknown name
        raises ``OpsForgeError`` listing the known ones.
        """
        choices = [self._choice(agent, ctx) for agent in self.agents]
        if override is not None:
            return self._apply_override(choices, list(override))
        if choices and not any(c.selected for c in choices):
            best = max(choices, key=lambda c: c.score)
            best.selected = True
            best.reason += (
                f" (no agent reached the threshold {self.threshold}; selected as the best score)"
            )
        return choices

    def _choice(self, agent: Agent, ctx: AnalysisContext) -> AgentChoice:
        try:
            raw_score, reason = agent.relevance(ctx)
            score = max(0, min(100, int(round(raw_score))))
        except Exception as exc:  # noqa: BLE001 - one agent's bug must not stop the selection
            logger.warning("relevance of agent %s failed: %s", agent.name, exc, exc_info=True)
            score, reason = 0, f"relevance check failed: {type(exc).__name__}: {exc}"
        return AgentChoice(agent.name, score, reason, selected=score >= self.threshold)

    def _apply_override(self, choices: list[AgentChoice], names: list[str]) -> list[AgentChoice]:
        known = [c.name for c in choices]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise OpsForgeError(
                f"unknown agent(s): {', '.join(unknown)}; choose from: {', '.join(known)}"
            )
        for choice in choices:
            choice.selected = choice.name in names
            if choice.selected and choice.score < self.threshold:
                choice.reason += " (selected by the operator)"
        return choices
