"""Indexed alert grouping, single-pass deduplication and the collector settings of a run."""

from __future__ import annotations

import gc
import math
import random
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from opsforge_core.agents.alertops import deduplicate, find_flapping
from opsforge_core.agents.grouping import group_alerts
from opsforge_core.agents.open_groups import RECUR_WINDOW, is_blip
from opsforge_core.config import Settings
from opsforge_core.errors import OpsForgeError
from opsforge_core.gc_tuning import ANALYSIS_GEN0_THRESHOLD, analysis_gc
from opsforge_core.models import AgentResult, Alert, ReasoningStep, json_safe
from opsforge_core.orchestrator import Orchestrator
from opsforge_core.store.codec import dumps, normalize
from opsforge_core.store.records import incident_document
from opsforge_core.store.sqlite import SQLiteStore
from opsforge_core.topology import ServiceGraph
from simulator import generate_storm

BASE = datetime(2026, 3, 1, tzinfo=UTC)
SERVICES = [f"svc-{i}" for i in range(12)]


CORRELATION = ("incident", "incident_id", "correlation_id", "trace_id", "change_id")


def _nearby(service: str, graph: ServiceGraph, hops: int) -> set[str]:
    """Return the services on a dependency path of at most ``hops`` edges, one way or the
    other, from ``service``."""
    found = {service}
    for step in (graph.dependencies, graph.dependents):
        frontier = {service}
        for _ in range(hops):
            frontier = {nxt for node in frontier for nxt in step(node)}
            found |= frontier
    return found


def _until(members: list[Alert]) -> datetime | None:
    if any(m.ends_at is None for m in members):
        return None
    return max(m.ends_at for m in members)


def _relates(alert: Alert, members: list[Alert], graph, near, hops: int) -> bool:
    since = None if near is None else alert.starts_at - near
    counted = [m for m in members if since is None or m.starts_at >= since]
    if graph is None:
        return bool(counted)
    services = _nearby(alert.service, graph, hops)
    for member in counted:
        if member.service in services:
            return True
        for label in CORRELATION:
            value = alert.labels.get(label)
            if value and member.labels.get(label) == value:
                return True
    return False


def _scan_all_groups(alerts, graph, window, hops=1):
    """Group by walking every member of every group for each alert: the plain algorithm that
    the indexed ``group_alerts`` must agree with."""
    groups: list[list[Alert]] = []
    for alert in sorted(alerts, key=lambda a: (a.starts_at, a.fingerprint)):
        now = alert.starts_at
        matches = []
        for members in groups:
            until = _until(members)
            closed = until is not None and until + window < now
            if closed:
                recurs = until + RECUR_WINDOW >= now
                if recurs and any(m.fingerprint == alert.fingerprint for m in members):
                    matches.append(members)
                continue
            blips = all(is_blip(m) for m in members)
            near = window if is_blip(alert) or blips else None
            if _relates(alert, members, graph, near, hops):
                matches.append(members)
        merged = [alert]
        for members in matches:
            merged += members
        groups = [g for g in groups if not any(g is m for m in matches)] + [merged]
    ordered = [sorted(g, key=lambda a: (a.starts_at, a.fingerprint)) for g in groups]
    return sorted(ordered, key=lambda g: (g[0].starts_at, g[0].fingerprint))


def _random_alerts(rng: random.Random, count: int) -> list[Alert]:
    alerts = []
    for index in range(count):
        start = BASE + timedelta(minutes=rng.uniform(0, 600))
        minutes = rng.choice([None, 0.5, 4.9, 5, 12, 45, 100])
        labels = {}
        if rng.random() < 0.3:
            labels[rng.choice(["incident", "trace_id", "change_id"])] = rng.choice(["", "a", "b"])
        fingerprint = f"fp{rng.randint(0, 30)}"
        alerts.append(
            Alert(
                fingerprint=fingerprint,
                source="api",
                name=f"alert-{fingerprint}",
                service=rng.choice(SERVICES),
                severity=rng.choice(["critical", "warning", "info"]),
                status="firing" if minutes is None else "resolved",
                summary=f"delivery {index}",
                starts_at=start,
                labels=labels,
                ends_at=None if minutes is None else start + timedelta(minutes=minutes),
            )
        )
    return alerts


def _keys(groups: list[list[Alert]]) -> list[list[tuple[str, datetime]]]:
    return [[(a.fingerprint, a.starts_at) for a in group] for group in groups]


@pytest.mark.parametrize("with_graph", [True, False])
@pytest.mark.parametrize("window_minutes", [2, 10, 90])
def test_group_alerts_matches_full_scan(with_graph: bool, window_minutes: int) -> None:
    rng = random.Random(window_minutes * 2 + with_graph)
    pairs = [(rng.choice(SERVICES), rng.choice(SERVICES)) for _ in range(14)]
    graph = ServiceGraph.from_pairs([(a, b) for a, b in pairs if a != b]) if with_graph else None
    window = timedelta(minutes=window_minutes)
    for _ in range(40):
        alerts = _random_alerts(rng, rng.randint(1, 150))
        for hops in (1, 2):
            indexed = [g.alerts for g in group_alerts(alerts, graph, window, hops)]
            assert _keys(indexed) == _keys(_scan_all_groups(alerts, graph, window, hops))


def test_group_alerts_storm_matches_full_scan() -> None:
    run = generate_storm(n_alerts=1_000, n_series=200, points=60, seed=11)
    graph = ServiceGraph.from_pairs(run.topology)
    unique, _ = deduplicate(run.alerts)
    window = timedelta(minutes=10)
    indexed = [g.alerts for g in group_alerts(unique, graph, window)]
    assert len(indexed) > 1
    assert _keys(indexed) == _keys(_scan_all_groups(unique, graph, window))


def test_group_alerts_reopens_recurring_group() -> None:
    first = Alert("fp-a", "api", "Down", "svc-0", "critical", "resolved", "", BASE,
                  ends_at=BASE + timedelta(minutes=20))  # fmt: skip
    other = replace(first, fingerprint="fp-b", service="svc-5", starts_at=BASE + timedelta(1))
    again = replace(first, starts_at=BASE + timedelta(minutes=70), ends_at=None, status="firing")
    groups = group_alerts([first, other, again], None, timedelta(minutes=10))
    assert [len(g.alerts) for g in groups] == [2, 1]
    assert groups[0].alerts == [first, again]


def test_deduplicate_prefers_last_resolved_copy() -> None:
    firing = Alert("fp-1", "api", "Down", "svc-0", "critical", "firing", "first", BASE)
    resolved = replace(firing, status="resolved", summary="resolved",
                       ends_at=BASE + timedelta(minutes=3))  # fmt: skip
    late = replace(firing, summary="late repeat")
    single = replace(firing, fingerprint="fp-2")
    unique, duplicates = deduplicate([firing, single, resolved, late, firing])
    assert unique == [resolved, single]
    assert duplicates == [{"fingerprint": "fp-1", "start": "2026-03-01T00:00:00Z", "count": 4}]


def test_deduplicate_keeps_last_copy_without_resolved() -> None:
    first = Alert("fp-1", "api", "Down", "svc-0", "critical", "firing", "first", BASE)
    second = replace(first, summary="second")
    unique, duplicates = deduplicate([first, second])
    assert unique == [second]
    assert duplicates[0]["count"] == 2


def test_find_flapping_counts_episodes() -> None:
    starts = [BASE + timedelta(minutes=10 * i) for i in range(4)]
    episodes = [
        Alert(
            "fp-1",
            "api",
            "Flap",
            "svc-0",
            "warning",
            "resolved",
            "",
            start,
            ends_at=start + timedelta(minutes=1),
        )  # fmt: skip
        for start in starts
    ]
    steady = Alert("fp-2", "api", "Up", "svc-1", "warning", "firing", "", BASE)
    flapping = find_flapping([*episodes, steady])
    assert len(flapping) == 1
    assert flapping[0]["episodes"] == 4
    assert flapping[0]["first"] == "2026-03-01T00:00:00Z"
    assert flapping[0]["last"] == "2026-03-01T00:30:00Z"


@pytest.fixture
def default_gc():
    """Start each collector test from enabled, unfrozen, default-threshold state."""
    thresholds = gc.get_threshold()
    enabled = gc.isenabled()
    assert gc.get_freeze_count() == 0
    gc.enable()
    gc.set_threshold(700, 10, 10)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if not enabled:
        gc.disable()


def test_analysis_gc_restores_settings(default_gc) -> None:
    with analysis_gc():
        assert gc.get_threshold() == (ANALYSIS_GEN0_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_analysis_gc_nested_restores_at_last_exit(default_gc) -> None:
    with analysis_gc():
        with analysis_gc():
            pass
        assert gc.get_threshold() == (ANALYSIS_GEN0_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_analysis_gc_leaves_existing_freeze(default_gc) -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    with analysis_gc():
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == frozen
    assert gc.get_threshold() == (700, 10, 10)


def test_analysis_gc_leaves_disabled_collector(default_gc) -> None:
    gc.disable()
    with analysis_gc():
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
    assert not gc.isenabled()


def test_handle_incident_restores_gc_after_error(default_gc, tmp_path) -> None:
    store = SQLiteStore(tmp_path / "gc.db")
    store.init()
    settings = replace(Settings.from_env(), llm_provider="offline", store="sqlite")
    orchestrator = Orchestrator(store=store, settings=settings)
    run = generate_storm(n_alerts=300, n_series=6, points=60, seed=2)
    report = orchestrator.handle_incident(run.alerts, run.series)
    assert report.synthesis.root_cause == "users-db"
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    with pytest.raises(OpsForgeError):
        orchestrator.handle_incident([], [], agents=["no-such-agent"])
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    store.close()


def _odd_result() -> AgentResult:
    evidence = {"nan": math.nan, "array": np.array([1.0, np.nan]), "pair": (1, 2), 4: "key"}
    findings = {
        "inf": math.inf,
        "none": None,
        "nested": [{"count": np.int64(3), "values": [math.nan, None]}],
        "step": ReasoningStep("inner", "a dataclass inside the findings"),
        "set": {3, 1},
    }
    return AgentResult(agent="odd", steps=[ReasoningStep("t", "d", evidence)], findings=findings)


def test_normalize_dataclass_matches_asdict() -> None:
    result = _odd_result()
    assert normalize(result) == normalize(json_safe(asdict(result)))
    assert normalize(result)["steps"][0]["evidence"]["array"] == [1.0, None]
    assert "none" not in normalize(result)["findings"]


def test_incident_document_matches_report_dict() -> None:
    run = generate_storm(n_alerts=400, n_series=8, points=60, seed=5)
    settings = replace(Settings.from_env(), llm_provider="offline", store="sqlite")
    orchestrator = Orchestrator(store=None, settings=settings)
    report = orchestrator.handle_incident(run.alerts, run.series, persist=False)
    report.results.append(_odd_result())
    document = incident_document(report)
    assert dumps(document) == dumps(normalize(report.to_dict()))
    assert list(document)[:5] == ["incident_id", "created_at", "window_start", "window_end",
                                  "alerts"]  # fmt: skip
