"""The simulated shop's graph and service catalogue."""

from __future__ import annotations

from simulator.topology import METRICS, SERVICES, default_graph


def test_default_graph_has_every_kind_of_service() -> None:
    graph = default_graph()
    tiers = {SERVICES[name].tier for name in graph.services}
    assert len(graph.services) >= 12
    assert {"web", "edge", "app", "database", "cache", "queue", "worker"} <= tiers
    assert {"orders-db", "users-db", "redis", "rabbitmq"} <= set(graph.services)


def test_default_graph_services_all_have_specs() -> None:
    graph = default_graph()
    assert set(graph.services) == set(SERVICES)
    for name in graph.services:
        assert SERVICES[name].metrics, name
        assert all(metric in METRICS for metric in SERVICES[name].metrics), name


def test_default_graph_is_acyclic() -> None:
    graph = default_graph()
    for name in graph.services:
        assert name not in graph.downstream(name), f"{name} depends on itself"


def test_frontend_reaches_every_service_but_the_worker() -> None:
    graph = default_graph()
    reached = graph.downstream("frontend") | {"frontend"}
    # The worker is driven by the queue, not by requests, so nothing calls it.
    assert set(graph.services) - reached == {"notifications-worker"}
    assert graph.dependents("notifications-worker") == set()
    assert "rabbitmq" in graph.dependencies("notifications-worker")
