"""The root-cause agent on the connection-pool storm, with every series of every cell kept.

NOTE: ``generate_storm`` rounds the cell count up and keeps the first ``n_series`` series
by service name, so the ``users-cNN`` services, the only callers of the shared database,
sort last and are the first to lose their series and alerts. With 200 series all three
cells lose them, nothing observed links the cells to the database, and the agent ranks a
service of one cell. These tests keep whole cells for that reason.
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


@pytest.mark.parametrize("seed", [1, 7])
def test_rootcause_storm_names_shared_database(seed):
    n_series = _all_series_count(CELLS)
    run = generate_storm(n_alerts=2000, n_series=n_series, points=240, seed=seed)
    ctx = AnalysisContext(alerts=run.alerts, series=run.series, graph=run.graph)

    result = RootCauseAgent().execute(ctx)

    assert result.status == "ok", result.error
    assert result.findings["root_cause"] == SHARED
    top = result.findings["ranking"][0]
    explained_cells = {s.rsplit("-c", 1)[1] for s in top["evidence"]["explains"] if "-c" in s}
    assert len(explained_cells) == CELLS
