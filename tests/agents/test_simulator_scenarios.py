"""The root-cause agent on every simulator scenario, seed 1, as the console runs it."""

from __future__ import annotations

import pytest

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.agents.rootcause import RootCauseAgent
from simulator import SCENARIOS, generate


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rootcause_top1_on_scenario_seed1(scenario):
    run = generate(scenario, 1)
    ctx = AnalysisContext(alerts=run.alerts, series=run.series, graph=run.graph)
    result = RootCauseAgent().execute(ctx)
    assert result.status == "ok", result.error
    assert result.findings["root_cause"] == run.ground_truth["root_cause"]
