"""RootCause on a small hand-built graph, and the fault-kind rules."""

from __future__ import annotations

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.agents.evidence import QUIET_WEIGHT, ServiceEvidence, mark_quiet
from opsforge_core.agents.faultkind import infer_fault_kind
from opsforge_core.agents.rootcause import RootCauseAgent
from opsforge_core.topology import ServiceGraph
from tests.agents.conftest import T0, make_alert, make_series

# web calls api, api calls db and cache; batch is on its own.
GRAPH = ServiceGraph.from_pairs([("web", "api"), ("api", "db"), ("api", "cache")])
GRAPH.add("batch", "batch-db")
FAULT = 150  # point (minute) where the db fault starts


def cascade_series(faulty: bool = True) -> list:
    """db fills its disk and slows down; api and then web slow down a few minutes later."""
    shift = {True: 1.0, False: 0.0}[faulty]
    return [
        make_series("db", "latency_ms", base=20, fault_at=FAULT, jump=80 * shift, seed=1),
        make_series("db", "disk_used_percent", base=60, noise=0.5, fault_at=FAULT - 2,
                    jump=35 * shift, seed=2),
        make_series("cache", "latency_ms", base=2, noise=0.1, seed=3),
        make_series("api", "latency_ms", base=50, fault_at=FAULT + 3, jump=90 * shift, seed=4),
        make_series("web", "latency_ms", base=80, fault_at=FAULT + 6, jump=95 * shift, seed=5),
        make_series("batch", "cpu_percent", base=30, seed=6),
    ]  # fmt: skip


def run_rootcause(series, graph=GRAPH, alerts=(), symptom=None):
    ctx = AnalysisContext(alerts=list(alerts), series=series, graph=graph, symptom=symptom)
    result = RootCauseAgent().execute(ctx)
    assert result.status == "ok", result.error
    return result


def test_rootcause_finds_cause_at_bottom_of_cascade():
    result = run_rootcause(cascade_series())
    ranking = result.findings["ranking"]
    assert result.findings["root_cause"] == "db"
    assert [e["service"] for e in ranking][:1] == ["db"]
    assert {"api", "web"} <= {e["service"] for e in ranking}
    assert ranking[0]["score"] == 1.0
    assert "db/latency_ms" in ranking[0]["evidence"]["series"]
    assert "api" in ranking[0]["evidence"]["explains"]


def test_rootcause_ranks_victims_below_cause():
    scores = {e["service"]: e["score"] for e in run_rootcause(cascade_series()).findings["ranking"]}
    assert scores["api"] < 0.5
    assert scores["web"] < 0.5


def test_rootcause_names_fault_kind_from_root_metrics():
    assert run_rootcause(cascade_series()).findings["fault_kind"] == "disk_filling"


def test_rootcause_names_nothing_on_healthy_data():
    result = run_rootcause(cascade_series(faulty=False))
    assert result.findings["root_cause"] is None
    assert result.findings["fault_kind"] is None


def test_rootcause_without_graph_says_so():
    result = run_rootcause(cascade_series(), graph=None)
    assert "no dependency graph" in result.findings["graph"]
    assert result.findings["root_cause"] == "db"


def test_rootcause_infers_edges_from_alert_labels():
    alerts = [make_alert("api-slow", "api", FAULT + 3, labels={"depends_on": "db"})]
    result = run_rootcause(cascade_series(), graph=None, alerts=alerts)
    assert result.findings["graph"] == "dependency edges inferred from alert labels"


def test_rootcause_symptom_limits_search_to_its_dependencies():
    # batch breaks first and hardest, but web does not depend on it.
    series = cascade_series()
    series[-1] = make_series("batch", "cpu_percent", base=30, fault_at=FAULT - 30, jump=60, seed=6)
    symptom = {"service": "web", "metric": "latency_ms", "ts": T0.timestamp() + 60 * (FAULT + 6)}
    result = run_rootcause(series, symptom=symptom)
    services = [e["service"] for e in result.findings["ranking"]]
    assert result.findings["root_cause"] == "db"
    assert "batch" not in services


def test_rootcause_quiet_symptom_names_nothing():
    symptom = {"service": "web", "metric": "latency_ms", "ts": T0.timestamp() + 60 * 100}
    series = cascade_series(faulty=False)
    series[1] = make_series("db", "disk_used_percent", base=60, noise=0.5, fault_at=98,
                            jump=35, seed=2)  # fmt: skip
    result = run_rootcause(series, symptom=symptom)
    assert result.findings["root_cause"] is None
    assert any(s.title == "Symptom" for s in result.steps)


def test_rootcause_relevance():
    agent = RootCauseAgent()
    assert agent.relevance(AnalysisContext(alerts=[]))[0] == 0
    full = AnalysisContext(alerts=[], series=cascade_series(), graph=GRAPH)
    assert agent.relevance(full)[0] >= 60


def anomaly(metric: str, direction: int = 1, score: float = 0.9) -> dict:
    return {"metric": metric, "direction": direction, "score": score}


def test_fault_kind_resource_beats_generic_latency():
    kind, _ = infer_fault_kind([anomaly("latency_p99_ms"), anomaly("memory_percent")], [])
    assert kind == "memory_leak"


def test_fault_kind_cache_hit_ratio_drop():
    kind, _ = infer_fault_kind([anomaly("cache_hit_ratio", direction=-1)], [])
    assert kind == "cache_failure"


def test_fault_kind_rising_hit_ratio():
    kind, _ = infer_fault_kind([anomaly("cache_hit_ratio", direction=1)], [])
    assert kind == "unknown"


def test_fault_kind_pool_and_queue():
    assert infer_fault_kind([anomaly("db_connections_in_use")], [])[0] == (
        "db_connection_pool_exhaustion"
    )
    assert infer_fault_kind([anomaly("queue_depth")], [])[0] == "queue_backlog"


def test_fault_kind_version_change_is_bad_deploy():
    alerts = [
        make_alert("a", "api", 0, name="HighErrorRate", labels={"version": "v1.2.0"}),
        make_alert("b", "api", 5, name="HighLatency", labels={"version": "v1.2.1"}),
    ]
    kind, votes = infer_fault_kind(
        [anomaly("error_rate"), anomaly("cpu_percent", score=0.6)], alerts
    )
    assert kind == "bad_deploy"
    assert votes["bad_deploy"] > votes["cpu_saturation"]


def test_fault_kind_repeated_restarts_are_crash_loop():
    assert infer_fault_kind([anomaly("error_rate")], [], restarts=5)[0] == "crash_loop"
    assert infer_fault_kind([anomaly("error_rate")], [], restarts=1)[0] != "crash_loop"


def test_fault_kind_unknown_without_evidence():
    assert infer_fault_kind([], []) == ("unknown", {})


def flapping_cache(first: int = FAULT - 10, period: int = 8) -> tuple[list, list]:
    """cache's CPU crosses its threshold for two minutes every ``period`` minutes from
    ``first``, unrelated to any fault, and its HighCPU rule fires each time."""
    series = make_series("cache", "cpu_percent", base=30, noise=1.0, seed=7)
    starts = list(range(first, series.values.size - 2, period))
    for start in starts:
        series.values[start : start + 2] += 45
    alerts = [
        make_alert("cache-cpu", "cache", start + 1, name="HighCPU", resolved_after=2)
        for start in starts
    ]
    return [series], alerts


def test_rootcause_earlier_flapping_dependency():
    # api slows down for good at FAULT and web follows. cache, which api calls, has flapped
    # on CPU since ten minutes before, unrelated to the fault.
    series = [
        make_series("api", "latency_ms", base=50, fault_at=FAULT, jump=90, seed=4),
        make_series("web", "latency_ms", base=80, fault_at=FAULT + 3, jump=95, seed=5),
        make_series("db", "latency_ms", base=20, seed=1),
    ]
    noise, alerts = flapping_cache()
    alerts.append(make_alert("api-lat", "api", FAULT + 1))
    result = run_rootcause(series + noise, alerts=alerts)
    ranking = {e["service"]: e["score"] for e in result.findings["ranking"]}
    assert result.findings["root_cause"] == "api"
    assert ranking["cache"] < ranking["api"]


def test_mark_quiet_exemptions():
    # Every alert clears within two minutes. web has nothing else, api also has a lasting
    # anomaly, db restarted three times, and cache has no alerts.
    restarts = {"web": 0, "api": 0, "db": 3, "cache": 0}
    evidence = {s: ServiceEvidence(s, strength=0.9, onset=T0.timestamp()) for s in restarts}
    evidence["api"].lasting = True
    alerts = [
        make_alert(f"{service}-{k}", service, 10 * k, resolved_after=2)
        for service in ("web", "api", "db")
        for k in range(3)
    ]
    mark_quiet(evidence, alerts, set(), restarts)
    quiet = {s: ev.quiet for s, ev in evidence.items()}
    assert quiet == {"web": True, "api": False, "db": False, "cache": False}
    assert evidence["web"].weighted == 0.9 * QUIET_WEIGHT
    assert evidence["db"].weighted == 0.9


def test_mark_quiet_steady_alert():
    evidence = {"web": ServiceEvidence("web", strength=0.9, onset=T0.timestamp())}
    alerts = [make_alert("web-flap", "web", 10 * k, resolved_after=2) for k in range(3)] + [
        make_alert("web-steady", "web", 5, resolved_after=30)
    ]
    mark_quiet(evidence, alerts, {"web-flap"}, {})
    assert not evidence["web"].quiet
