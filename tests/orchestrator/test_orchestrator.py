"""The analysis run end to end: selection, agents, synthesis, persistence and learning."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.config import Settings
from opsforge_core.errors import OpsForgeError, StoreError
from opsforge_core.models import AgentResult
from opsforge_core.orchestrator import Orchestrator
from opsforge_core.store import open_store
from opsforge_core.topology import ServiceGraph

simulator = pytest.importorskip("simulator")
from simulator.scenarios import SCENARIOS  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"OPSFORGE_SQLITE_PATH": str(tmp_path / "opsforge.db")})


@pytest.fixture
def orchestrator(settings: Settings) -> Orchestrator:
    store = open_store(settings)
    store.init()
    return Orchestrator(store=store, settings=settings)


def _run(orchestrator: Orchestrator, scenario: str, seed: int = 3, **kwargs):
    run = simulator.generate(scenario, seed)
    graph = ServiceGraph.from_pairs([tuple(edge) for edge in run.topology])
    report = orchestrator.handle_incident(run.alerts, run.series, graph=graph, **kwargs)
    return run, report


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_synthesis_names_scenario_root_cause(orchestrator: Orchestrator, scenario: str) -> None:
    named = []
    for seed in range(1, 6):
        run, report = _run(orchestrator, scenario, seed=seed)
        stored = orchestrator.store.get_incident(report.incident_id)
        assert stored is not None
        assert stored.synthesis.root_cause == report.synthesis.root_cause
        named.append(report.synthesis.root_cause == run.ground_truth["root_cause"])
    assert sum(named) >= 4, f"{scenario}: seeds 1 to 5 named the root cause {named}"


def test_every_chosen_agent_reports_reasoning(orchestrator: Orchestrator) -> None:
    _, report = _run(orchestrator, "memory_leak")
    ran = [r for r in report.results if r.status == "ok"]
    assert {r.agent for r in ran} >= {"alertops", "rootcause"}
    for result in ran:
        assert result.steps, f"{result.agent} gave no reasoning steps"
        assert 0.0 <= result.confidence <= 1.0
    assert [c.name for c in report.agents if c.selected]


def test_progress_reports_each_step(orchestrator: Orchestrator) -> None:
    steps: list[tuple[str, float]] = []
    _run(orchestrator, "cpu_saturation", progress=lambda s, d, f: steps.append((s, f)))
    names = [name for name, _ in steps]
    assert names[0] == "context"
    assert "select" in names
    assert "synthesize" in names
    assert names[-1] == "done"
    fractions = [fraction for _, fraction in steps]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_agents_argument_overrides_selector(orchestrator: Orchestrator) -> None:
    _, report = _run(orchestrator, "disk_filling", agents=["predictiveops"])
    statuses = {r.agent: r.status for r in report.results}
    assert statuses["predictiveops"] == "ok"
    assert statuses["alertops"] == "skipped"
    assert statuses["rootcause"] == "skipped"


def test_unknown_agent_name_is_rejected(orchestrator: Orchestrator) -> None:
    with pytest.raises(OpsForgeError, match="unknown agent"):
        _run(orchestrator, "disk_filling", agents=["oracle"])


class _BrokenAgent(Agent):
    name = "broken"

    def relevance(self, ctx: AnalysisContext) -> tuple[int, str]:
        return 99, "always relevant"

    def run(self, ctx: AnalysisContext) -> AgentResult:
        raise RuntimeError("disk on fire")


def test_failing_agent_is_recorded_and_run_continues(settings: Settings) -> None:
    from opsforge_core.agents import default_agents

    store = open_store(settings)
    store.init()
    orchestrator = Orchestrator(store, settings, [*default_agents(), _BrokenAgent()])
    run, report = _run(orchestrator, "cache_failure")
    broken = report.result("broken")
    assert broken is not None
    assert broken.status == "failed"
    assert "disk on fire" in broken.error
    assert report.synthesis.root_cause == run.ground_truth["root_cause"]


class _FailingStore:
    """Delegates to a real store but fails every incident write."""

    def __init__(self, inner):
        self._inner = inner

    def put_incident(self, report):
        raise StoreError("table opsforge-incident-memory: disk I/O error")

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_store_failure_keeps_the_answer(settings: Settings) -> None:
    store = open_store(settings)
    store.init()
    orchestrator = Orchestrator(_FailingStore(store), settings)
    run, report = _run(orchestrator, "bad_deploy")
    assert report.synthesis.root_cause == run.ground_truth["root_cause"]
    assert any("not stored" in note for note in report.notes)


def test_feedback_updates_pattern_library(orchestrator: Orchestrator) -> None:
    run, report = _run(orchestrator, "queue_backlog")
    pattern = orchestrator.store.get_pattern(report.pattern_id)
    assert pattern is not None
    assert pattern.occurrences == 1
    assert pattern.root_cause == run.ground_truth["root_cause"]

    orchestrator.give_feedback(report.incident_id, correct=True)
    pattern = orchestrator.store.get_pattern(report.pattern_id)
    assert pattern.confirmed == 1
    stored = orchestrator.store.get_incident(report.incident_id)
    assert stored.feedback["correct"] is True


def test_corrected_root_cause_is_used_next_time(orchestrator: Orchestrator) -> None:
    run, report = _run(orchestrator, "network_latency")
    ranking = report.result("rootcause").findings["ranking"]
    other = next(r["service"] for r in ranking if r["service"] != report.synthesis.root_cause)
    orchestrator.give_feedback(report.incident_id, correct=False, root_cause=other)
    corrected = orchestrator.store.get_pattern(report.pattern_id)
    assert corrected.root_cause == other
    assert other in corrected.fix

    _, again = _run(orchestrator, "network_latency")
    assert again.pattern_id == report.pattern_id
    assert again.synthesis.root_cause == other


def test_wrong_feedback_needs_the_right_root_cause(orchestrator: Orchestrator) -> None:
    _, report = _run(orchestrator, "cpu_saturation")
    with pytest.raises(OpsForgeError, match="right root cause"):
        orchestrator.give_feedback(report.incident_id, correct=False)


def test_resolve_incident_sets_status_and_notes(orchestrator: Orchestrator) -> None:
    _, report = _run(orchestrator, "cpu_saturation")
    resolved = orchestrator.resolve_incident(report.incident_id, "scaled out")
    assert resolved.status == "resolved"
    assert resolved.resolution_notes == "scaled out"


def test_nothing_to_analyze_is_rejected(orchestrator: Orchestrator) -> None:
    with pytest.raises(OpsForgeError, match="nothing to analyze"):
        orchestrator.handle_incident([], [])
