"""PetShop loader and the root-cause agent on one real PetShop issue."""

from __future__ import annotations

import numpy as np
import pytest

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.agents.rootcause import RootCauseAgent
from opsforge_core.petshop import issue_dirs, load_issue, load_normal, normal_for, with_history

SEARCH = "PetSearch_AWS::ECS::Fargate"


@pytest.fixture(scope="module")
def petshop(shared_data):
    return shared_data / "petshop"


@pytest.fixture(scope="module")
def issue(petshop):
    return load_issue(petshop / "high_traffic" / "train" / "issue_0")


def test_petshop_loader_reads_three_header_rows(issue):
    series, _, _, _ = issue
    by_key = {s.key: s for s in series}
    assert len(series) == 308
    latency = by_key[f"{SEARCH}/latency"]
    assert latency.timestamps.tolist() == [
        1681350000.0,
        1681350300.0,
        1681350600.0,
        1681350900.0,
        1681351200.0,
    ]
    assert latency.values[0] == pytest.approx(0.0059616640261144)
    assert f"{SEARCH}/latency_p99" in by_key
    assert f"{SEARCH}/requests" in by_key
    assert np.isnan(by_key["169.254.170.2_remote/latency"].values).all()


def test_petshop_loader_symptom_and_truth(issue):
    _, _, symptom, truth = issue
    assert symptom == {
        "service": "PetSite",
        "metric": "latency",
        "ts": 1681350548.0,
        "statistic": "Average",
    }
    assert truth["root_cause"] == SEARCH
    assert truth["scenario"] == "high_traffic"


def test_petshop_graph_rows_call_columns(issue):
    _, graph, _, _ = issue
    assert SEARCH in graph.dependencies("PetSite")
    assert SEARCH in graph.dependencies("PetSearch_client")
    assert "PetSite" not in graph.dependencies(SEARCH)
    assert len(graph.edges) == 44


def test_petshop_normal_data(petshop):
    normal = load_normal(petshop / "high_traffic")
    assert normal is not None
    assert len(normal[0]) == 589
    assert load_normal(petshop / "temporal_traffic1") is None


def test_petshop_normal_borrowed_from_sibling(petshop):
    normal, source = normal_for(petshop / "temporal_traffic1")
    assert normal is not None
    assert source in {"high_traffic", "low_traffic"}


def test_petshop_finds_issues_under_any_split(petshop, tmp_path):
    found = issue_dirs(petshop)
    assert len(found) == 20
    copy = tmp_path / "scenario" / "holdout" / "issue_3"
    copy.mkdir(parents=True)
    for name in ("metrics.csv", "target.json"):
        (copy / name).symlink_to(petshop / "low_traffic" / "train" / "issue_3" / name)
    assert issue_dirs(tmp_path) == [copy]


def test_petshop_history_precedes_window(issue, petshop):
    series, _, symptom, _ = issue
    normal = load_normal(petshop / "high_traffic")
    spliced = {s.key: s for s in with_history(series, normal, symptom["ts"])}
    latency = spliced[f"{SEARCH}/latency"]
    assert len(latency) == 288 + 5
    assert np.all(np.diff(latency.timestamps) == 300.0)
    assert latency.timestamps[-5] == 1681350000.0


def test_rootcause_names_petsearch_for_issue(issue, petshop):
    series, graph, symptom, _ = issue
    normal = load_normal(petshop / "high_traffic")
    ctx = AnalysisContext(
        alerts=[], series=with_history(series, normal, symptom["ts"]), graph=graph, symptom=symptom
    )
    result = RootCauseAgent().execute(ctx)
    assert result.status == "ok", result.error
    assert result.findings["root_cause"] == SEARCH
