"""The root-cause agent on the connection-pool storm, with whole cells and a cut-short cell.

The storm's cells reach the shared database only through each cell's ``users`` service, so
the agent can name the database only when those callers are observed. The generator keeps them
first in every cell, which tests/simulator/test_storm.py covers.
"""

from __future__ import annotations

import pytest

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.agents.rootcause import RootCauseAgent
from simulator.storm import SHARED, cell_topology, generate_storm

CELLS = 3


def _all_series_count(cells: int) -> int:
    """Return the number of series that keeps every metric of every service in ``cells``."""
    specs, _ = cell_topology(cells)
    return sum(len(spec.metrics) for spec in specs.values())


@pytest.mark.parametrize(
    ("seed", "n_series"),
    [(1, _all_series_count(CELLS)), (7, _all_series_count(CELLS)), (7, 200)],
)
def test_rootcause_storm_names_shared_database(seed, n_series):
    # 200 series is three cells with the last one cut short.
    run = generate_storm(n_alerts=2000, n_series=n_series, points=240, seed=seed)
    ctx = AnalysisContext(alerts=run.alerts, series=run.series, graph=run.graph)

    result = RootCauseAgent().execute(ctx)

    assert result.status == "ok", result.error
    assert result.findings["root_cause"] == SHARED
    top = result.findings["ranking"][0]
    explained_cells = {s.rsplit("-c", 1)[1] for s in top["evidence"]["explains"] if "-c" in s}
    assert len(explained_cells) == CELLS
