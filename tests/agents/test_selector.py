"""AgentSelector: threshold, fallback to the best agent, operator override."""

from __future__ import annotations

import pytest

from opsforge_core.agents import AgentSelector, default_agents
from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.errors import OpsForgeError
from opsforge_core.models import AgentResult


class FixedAgent(Agent):
    def __init__(self, name: str, score: int) -> None:
        self.name = name
        self._score = score

    def relevance(self, ctx: AnalysisContext) -> tuple[int, str]:
        return self._score, f"fixed {self._score}"

    def run(self, ctx: AnalysisContext) -> AgentResult:
        return AgentResult(agent=self.name)


class BrokenAgent(FixedAgent):
    def relevance(self, ctx: AnalysisContext) -> tuple[int, str]:
        raise RuntimeError("relevance blew up")


def choices_by_name(selector: AgentSelector, **kwargs) -> dict:
    return {c.name: c for c in selector.score(AnalysisContext(alerts=[]), **kwargs)}


def test_selector_selects_at_or_above_threshold():
    selector = AgentSelector([FixedAgent("a", 59), FixedAgent("b", 60), FixedAgent("c", 90)])
    chosen = choices_by_name(selector)
    assert not chosen["a"].selected
    assert chosen["b"].selected
    assert chosen["c"].selected
    assert chosen["a"].score == 59
    assert chosen["b"].reason == "fixed 60"


def test_selector_keeps_agent_order():
    selector = AgentSelector([FixedAgent("z", 10), FixedAgent("a", 90)])
    names = [c.name for c in selector.score(AnalysisContext(alerts=[]))]
    assert names == ["z", "a"]


def test_selector_picks_best_when_none_reaches_threshold():
    selector = AgentSelector([FixedAgent("a", 20), FixedAgent("b", 45)], threshold=60)
    chosen = choices_by_name(selector)
    assert chosen["b"].selected
    assert not chosen["a"].selected
    assert "no agent reached the threshold 60" in chosen["b"].reason


def test_selector_override_runs_named_agents_only():
    selector = AgentSelector([FixedAgent("a", 10), FixedAgent("b", 95)])
    chosen = choices_by_name(selector, override=["a"])
    assert chosen["a"].selected
    assert not chosen["b"].selected
    assert "selected by the operator" in chosen["a"].reason


def test_selector_override_rejects_unknown_name():
    selector = AgentSelector([FixedAgent("a", 10)])
    with pytest.raises(OpsForgeError, match="unknown agent"):
        selector.score(AnalysisContext(alerts=[]), override=["nope"])


def test_selector_scores_failing_relevance_zero():
    selector = AgentSelector([BrokenAgent("broken", 99), FixedAgent("ok", 70)])
    chosen = choices_by_name(selector)
    assert chosen["broken"].score == 0
    assert not chosen["broken"].selected
    assert "relevance blew up" in chosen["broken"].reason


def test_selector_clamps_scores_to_range():
    chosen = choices_by_name(AgentSelector([FixedAgent("big", 250), FixedAgent("neg", -5)]))
    assert chosen["big"].score == 100
    assert chosen["neg"].score == 0


def test_selector_rejects_threshold_outside_range():
    with pytest.raises(ValueError):
        AgentSelector([], threshold=101)


def test_default_agents_names():
    names = [agent.name for agent in default_agents()]
    assert names == ["alertops", "predictiveops", "rootcause"]
