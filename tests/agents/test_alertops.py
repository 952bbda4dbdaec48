"""AlertOps on hand-built alerts: dedup, flapping, grouping, noise, origin, recall, signature."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsforge_core.agents.alertops import AlertOpsAgent, signature_of
from opsforge_core.agents.base import AnalysisContext
from opsforge_core.config import Settings
from opsforge_core.models import IncidentReport, Pattern, Synthesis
from opsforge_core.store import open_store
from opsforge_core.topology import ServiceGraph
from tests.agents.conftest import T0, make_alert

# web calls api, api calls db; mail and batch stand apart.
GRAPH = ServiceGraph.from_pairs([("web", "api"), ("api", "db"), ("mail", "smtp")])
GRAPH.add("batch", "batch-store")


def run_alertops(alerts, graph=GRAPH, store=None):
    ctx = AnalysisContext(alerts=alerts, graph=graph, store=store)
    result = AlertOpsAgent().execute(ctx)
    assert result.status == "ok", result.error
    return result


def cascade():
    return [
        make_alert("db-slow", "db", 0, name="HighLatency"),
        make_alert("api-err", "api", 2, name="HighErrorRate"),
        make_alert("web-err", "web", 4, name="HighErrorRate"),
    ]


def test_alertops_dedup_same_fingerprint_and_start():
    alerts = cascade()
    repeat = make_alert("db-slow", "db", 0, name="HighLatency")
    result = run_alertops([*alerts, repeat, repeat])
    duplicates = result.findings["duplicates"]
    assert duplicates == [{"fingerprint": "db-slow", "start": "2026-03-02T12:00:00Z", "count": 3}]
    assert result.findings["compression"]["alerts_in"] == 5
    assert result.findings["groups"][0]["alert_count"] == 3


def test_alertops_dedup_keeps_resolved_copy():
    firing = make_alert("db-slow", "db", 0)
    resolved = make_alert("db-slow", "db", 0, resolved_after=3)
    result = run_alertops([resolved, firing])
    group = result.findings["groups"][0]
    assert group["end"] == "2026-03-02T12:03:00Z"


def test_alertops_flapping_counted_once():
    episodes = [
        make_alert("cpu-flap", "api", m, name="HighCPU", resolved_after=2) for m in (0, 8, 16, 24)
    ]
    result = run_alertops(episodes)
    flapping = result.findings["flapping"]
    assert [f["fingerprint"] for f in flapping] == ["cpu-flap"]
    assert flapping[0]["episodes"] == 4
    groups = result.findings["groups"]
    assert len(groups) == 1
    assert groups[0]["alert_count"] == 1


def test_alertops_two_episodes_are_not_flapping():
    episodes = [make_alert("cpu", "api", m, resolved_after=2) for m in (0, 8)]
    assert run_alertops(episodes).findings["flapping"] == []


def test_alertops_groups_connected_services():
    unrelated = make_alert("mail-down", "mail", 3, name="ServiceDown")
    result = run_alertops([*cascade(), unrelated])
    groups = {tuple(g["services"]): g for g in result.findings["groups"]}
    assert set(groups) == {("api", "db", "web"), ("mail",)}
    assert groups[("api", "db", "web")]["fingerprints"] == ["api-err", "db-slow", "web-err"]
    assert result.findings["compression"] == {"alerts_in": 4, "groups_out": 2, "ratio": 0.5}


def test_alertops_splits_alerts_far_apart_in_time():
    early = make_alert("db-slow", "db", 0, resolved_after=20)
    late = make_alert("api-err", "api", 120, resolved_after=30)
    groups = run_alertops([early, late]).findings["groups"]
    assert len(groups) == 2


def test_alertops_long_incident_collects_late_symptoms():
    # The db alert keeps firing, so a caller failing 40 minutes later joins its incident.
    root = make_alert("db-full", "db", 0, name="DiskFilling", severity="warning")
    late = make_alert("api-err", "api", 40, name="HighErrorRate")
    groups = run_alertops([root, late]).findings["groups"]
    assert len(groups) == 1
    assert groups[0]["services"] == ["api", "db"]


def test_alertops_without_graph_links_by_time():
    result = run_alertops([*cascade(), make_alert("mail-down", "mail", 3)], graph=None)
    assert len(result.findings["groups"]) == 1
    assert "no dependency graph" in result.steps[2].detail


def test_alertops_correlation_label_links_unconnected_services():
    a = make_alert("a", "mail", 0, labels={"incident": "INC-7"})
    b = make_alert("b", "batch", 1, labels={"incident": "INC-7"})
    groups = run_alertops([a, b]).findings["groups"]
    assert len(groups) == 1


def test_alertops_suppresses_isolated_low_severity_noise():
    noise = make_alert("batch-warn", "batch", 2, name="DiskFilling", severity="warning")
    result = run_alertops([*cascade(), noise])
    assert [n["fingerprint"] for n in result.findings["noise"]] == ["batch-warn"]
    assert len(result.findings["groups"]) == 1


def test_alertops_keeps_lone_critical_group():
    lone = make_alert("mail-down", "mail", 30, name="ServiceDown", severity="critical")
    result = run_alertops([*cascade(), lone])
    assert result.findings["noise"] == []
    assert len(result.findings["groups"]) == 2


def test_alertops_origin_is_earliest_most_downstream():
    # web alerts first, but db is the most downstream service of the group.
    alerts = [
        make_alert("web-err", "web", 0),
        make_alert("api-err", "api", 1),
        make_alert("db-slow", "db", 2),
    ]
    assert run_alertops(alerts).findings["groups"][0]["origin"] == "db"


def test_signature_ignores_order_times_and_fingerprints():
    alerts = cascade()
    moved = [make_alert(f"other-{a.fingerprint}", a.service, 50, name=a.name) for a in alerts]
    assert signature_of(alerts) == signature_of(list(reversed(alerts)))
    assert signature_of(alerts) == signature_of(moved)
    assert signature_of(alerts) == ("alerts=HighErrorRate,HighLatency;services=api,db,web")


def test_signature_changes_with_service():
    alerts = cascade()
    other = [*alerts[:2], make_alert("web-err", "frontend", 4, name="HighErrorRate")]
    assert signature_of(alerts) != signature_of(other)


def test_alertops_without_store_says_recall_skipped():
    result = run_alertops(cascade())
    assert result.findings["similar_incidents"] == []
    assert any("no store configured" in s.detail for s in result.steps)


@pytest.fixture
def store(tmp_path):
    store = open_store(Settings(sqlite_path=str(tmp_path / "opsforge.db")))
    yield store
    store.close()


def past_report(incident_id: str, alerts, root: str) -> IncidentReport:
    synthesis = Synthesis("offline", "rules", f"{root} failed", root, 0.8)
    return IncidentReport(
        incident_id=incident_id,
        created_at=T0 - timedelta(days=1),
        window_start=T0 - timedelta(days=1),
        window_end=T0 - timedelta(days=1),
        alerts=alerts,
        series_keys=[],
        agents=[],
        results=[],
        synthesis=synthesis,
        title=f"{root} incident",
        services=sorted({a.service for a in alerts}),
    )


def test_alertops_recalls_similar_incident_from_store(store):
    before = [make_alert(f"old-{a.fingerprint}", a.service, -1440, name=a.name) for a in cascade()]
    store.put_incident(past_report("inc-similar", before, "db"))
    unrelated = [make_alert("old-mail", "mail", -1440, name="ServiceDown")]
    store.put_incident(past_report("inc-other", unrelated, "mail"))
    similar = run_alertops(cascade(), store=store).findings["similar_incidents"]
    assert [s["incident_id"] for s in similar] == ["inc-similar"]
    assert similar[0]["similarity"] == 1.0
    assert similar[0]["root_cause"] == "db"


def test_alertops_finds_learned_pattern(store):
    alerts = cascade()
    pattern = Pattern("pat-1", signature_of(alerts), root_cause="db", fault_kind="disk_filling")
    store.record_pattern_occurrence(pattern, "inc-1", T0)
    patterns = run_alertops(alerts, store=store).findings["patterns"]
    assert [p["pattern_id"] for p in patterns] == ["pat-1"]
    assert patterns[0]["root_cause"] == "db"


def test_alertops_relevance_by_alert_count():
    agent = AlertOpsAgent()
    assert agent.relevance(AnalysisContext(alerts=[]))[0] < 60
    assert agent.relevance(AnalysisContext(alerts=cascade()))[0] >= 60
    repeated = [*cascade(), cascade()[0]]
    assert agent.relevance(AnalysisContext(alerts=repeated))[0] == 95
