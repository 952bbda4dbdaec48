"""Scenario runs: ground truth, symptom spread, noise, determinism and counters."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import numpy as np
import pytest

from opsforge_core.models import Alert, MetricSeries
from simulator.generate import ScenarioRun, default_start, generate, series_dict
from simulator.rules import RULES
from simulator.scenarios import SCENARIOS
from simulator.topology import SERVICES, default_graph

SEEDS = (0, 1, 2)
RULES_BY_NAME = {rule.name: rule for rule in RULES}


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, int], ScenarioRun]:
    return {(name, seed): generate(name, seed) for name in SCENARIOS for seed in SEEDS}


def _series(run: ScenarioRun, service: str, metric: str) -> MetricSeries:
    return next(s for s in run.series if s.service == service and s.metric == metric)


def _incident_alerts(run: ScenarioRun) -> list[Alert]:
    wanted = set(run.ground_truth["incident_fingerprints"])
    return [a for a in run.alerts if a.fingerprint in wanted]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_generate_ground_truth_per_scenario(runs, name: str) -> None:
    for seed in SEEDS:
        run = runs[(name, seed)]
        truth = run.ground_truth
        fingerprints = {a.fingerprint for a in run.alerts}
        assert truth["fault_kind"] == SCENARIOS[name].fault_kind
        assert truth["root_cause"] in SCENARIOS[name].roots
        assert run.start < truth["start"] < run.end
        assert truth["incident_fingerprints"], f"{name} seed {seed} caused no alert"
        assert set(truth["incident_fingerprints"]) <= fingerprints
        assert not set(truth["incident_fingerprints"]) & set(truth["noise_fingerprints"])
        first = run.ground_truth["root_cause"]
        assert first in {a.service for a in _incident_alerts(run)}, f"{name} seed {seed}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_generate_incident_alerts_start_after_fault(runs, name: str) -> None:
    for seed in SEEDS:
        run = runs[(name, seed)]
        start = run.ground_truth["start"]
        first_by_service: dict[str, datetime] = {}
        for alert in _incident_alerts(run):
            assert alert.starts_at >= start, f"{alert.name} on {alert.service} before the fault"
            first_by_service.setdefault(alert.service, alert.starts_at)
        origin = run.ground_truth["root_cause"]
        graph = default_graph()
        for service, first in first_by_service.items():
            if origin in graph.downstream(service):
                assert first > start
                assert first >= first_by_service.get(origin, start), f"{service} before {origin}"


def test_generate_upstream_latency_rises_hop_by_hop(runs) -> None:
    run = runs[("db_connection_pool_exhaustion", 1)]
    truth = run.ground_truth
    onsets = truth["affected_services"]
    chain = [truth["root_cause"]]
    graph = default_graph()
    while graph.dependents(chain[-1]) - {"notifications-worker"}:
        callers = sorted(graph.dependents(chain[-1]) - {"notifications-worker"})
        chain.append(min(callers, key=lambda c: onsets[c]))
    assert chain[-1] == "frontend"
    for callee, caller in zip(chain, chain[1:], strict=False):
        assert onsets[caller] > onsets[callee], f"{caller} not after {callee}"
    for service in chain[1:]:
        latency = _series(run, service, "latency_p99_ms")
        fault_at = truth["start"].timestamp()
        before = latency.values[latency.timestamps < fault_at]
        late = latency.values[latency.timestamps > fault_at + 1800]
        assert np.median(late) > 2 * np.median(before), service


def test_generate_symptoms_weaker_with_distance(runs) -> None:
    run = runs[("db_connection_pool_exhaustion", 0)]
    truth = run.ground_truth
    fault_at = truth["start"].timestamp()
    added = {}
    for service in ("orders", "checkout", "api-gateway", "frontend"):
        latency = _series(run, service, "latency_p99_ms")
        before = np.median(latency.values[latency.timestamps < fault_at])
        after = np.median(latency.values[latency.timestamps > fault_at + 3600])
        added[service] = after - before
    assert truth["root_cause"] in {"orders-db", "users-db"}
    if truth["root_cause"] == "orders-db":
        assert added["orders"] > added["checkout"] > added["api-gateway"] > added["frontend"] > 0
    else:
        assert added["api-gateway"] > added["frontend"] > 0


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_generate_noise_flapping_and_duplicates(runs, name: str) -> None:
    for seed in SEEDS:
        run = runs[(name, seed)]
        truth = run.ground_truth
        affected = set(truth["affected_services"])
        noise = set(truth["noise_fingerprints"])
        assert noise, f"{name} seed {seed} has no noise alert"
        assert all(a.service not in affected for a in run.alerts if a.fingerprint in noise)
        episodes: dict[str, set[datetime]] = {}
        for alert in run.alerts:
            episodes.setdefault(alert.fingerprint, set()).add(alert.starts_at)
        flapping = {fp for fp, starts in episodes.items() if len(starts) > 1}
        assert flapping, f"{name} seed {seed} has no flapping alert"
        assert flapping == set(truth["flapping_fingerprints"])
        deliveries = Counter((a.fingerprint, a.starts_at) for a in run.alerts)
        assert max(deliveries.values()) >= 2, f"{name} seed {seed} has no repeated delivery"


def test_generate_alerts_follow_their_metrics(runs) -> None:
    checked = 0
    for run in runs.values():
        for alert in run.alerts:
            rule = RULES_BY_NAME.get(alert.name)
            if rule is None:
                continue
            series = _series(run, alert.service, rule.metric)
            index = int(np.searchsorted(series.timestamps, alert.starts_at.timestamp()))
            window = series.values[index - rule.for_samples + 1 : index + 1]
            threshold = rule.threshold_for(SERVICES[alert.service])
            assert window.size == rule.for_samples
            assert bool(np.all(rule.breached(window, threshold))), (
                f"{alert.name} on {alert.service} fired without a breach"
            )
            checked += 1
    assert checked > 200


def test_generate_same_seed_gives_same_run() -> None:
    first = generate("memory_leak", 11)
    second = generate("memory_leak", 11)
    assert first.start == default_start(11)
    assert first.lines() == second.lines()


def test_generate_different_seeds_differ() -> None:
    first = generate("memory_leak", 11)
    other = generate("memory_leak", 12)
    assert first.start != other.start
    assert not np.array_equal(first.series[0].values, other.series[0].values)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_generate_counters_reset_on_restart(runs, name: str) -> None:
    for seed in SEEDS:
        run = runs[(name, seed)]
        counters = [s for s in run.series if s.kind == "counter"]
        assert counters
        resets = [s for s in counters if np.any(np.diff(s.values) < 0)]
        assert resets, f"{name} seed {seed} has no counter reset"
        for series in counters:
            assert np.all(series.values >= 0)


def test_generate_memory_leak_restart_resets_root_counter(runs) -> None:
    run = runs[("memory_leak", 0)]
    truth = run.ground_truth
    restart = truth["restarts"][0]
    assert restart["service"] == truth["root_cause"]
    counter = _series(run, truth["root_cause"], "http_requests_total")
    index = int(np.searchsorted(counter.timestamps, restart["at"].timestamp()))
    assert counter.values[index] < counter.values[index - 1]
    memory = _series(run, truth["root_cause"], "memory_percent")
    assert memory.values[index - 1] > 90
    assert memory.values[index + 1] < 80


def test_generate_bad_deploy_changes_version_label(runs) -> None:
    run = runs[("bad_deploy", 0)]
    truth = run.ground_truth
    root = truth["root_cause"]
    deploys = [a for a in run.alerts if a.name == "DeploymentRolledOut" and a.service == root]
    assert len({a.fingerprint for a in deploys}) == 1
    assert deploys[0].labels["version"] == truth["version"]
    assert deploys[0].labels["previous_version"] == truth["previous_version"]
    assert deploys[0].fingerprint in truth["incident_fingerprints"]
    errors = [a for a in _incident_alerts(run) if a.service == root and a.name == "HighErrorRate"]
    assert errors
    assert all(a.labels["version"] == truth["version"] for a in errors)
    assert all(a.starts_at > deploys[0].starts_at for a in errors)


def test_generate_routine_deploys_are_noise(runs) -> None:
    routine = [
        (run, alert)
        for run in runs.values()
        for alert in run.alerts
        if alert.name == "DeploymentRolledOut" and alert.service != run.ground_truth["root_cause"]
    ]
    assert routine
    for run, event in routine:
        truth = run.ground_truth
        assert event.fingerprint in truth["noise_fingerprints"]
        assert event.service not in truth["affected_services"]
        counter = _series(run, event.service, "http_requests_total")
        index = int(np.searchsorted(counter.timestamps, event.starts_at.timestamp()))
        assert counter.values[index] < counter.values[index - 1]


def test_generate_network_latency_names_the_link(runs) -> None:
    run = runs[("network_latency", 0)]
    caller, callee = run.ground_truth["link"]
    assert caller == run.ground_truth["root_cause"]
    assert callee in default_graph().dependencies(caller)
    assert not [a for a in _incident_alerts(run) if a.service == callee]


def test_generate_rejects_short_window_and_unknown_scenario() -> None:
    with pytest.raises(ValueError, match="at least 30"):
        generate("cpu_saturation", 0, duration_minutes=10)
    with pytest.raises(KeyError, match="cpu_saturation"):
        generate("no_such_fault", 0)


def test_series_dict_matches_model_to_dict(runs) -> None:
    run = runs[("cache_failure", 0)]
    for series in run.series:
        assert series_dict(series) == series.to_dict(), series.key
    odd = MetricSeries("redis", "cpu_percent", np.array([0.5, 61.25]), np.array([1.0, np.nan]))
    assert series_dict(odd) == odd.to_dict()
