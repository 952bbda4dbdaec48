"""The simulated shop: its services, the metrics each exposes, and who calls whom.

``default_graph()`` is the dependency graph every scenario runs on (an edge ``a -> b`` means
``a`` calls ``b``). ``SERVICES`` gives each service a tier, the metrics it exports and the
baselines those metrics sit at under average traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from opsforge_core.topology import ServiceGraph


@dataclass(frozen=True)
class MetricSpec:
    """One metric name: its unit, Prometheus kind and the range its values are clipped to."""

    name: str
    unit: str
    kind: str  # "gauge" or "counter"
    low: float = 0.0
    high: float = math.inf


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("cpu_percent", "percent", "gauge", 0.0, 100.0),
        MetricSpec("memory_percent", "percent", "gauge", 0.0, 100.0),
        MetricSpec("disk_used_percent", "percent", "gauge", 0.0, 100.0),
        MetricSpec("latency_p99_ms", "ms", "gauge", 0.1),
        MetricSpec("error_rate", "ratio", "gauge", 0.0, 1.0),
        MetricSpec("http_requests_total", "requests", "counter"),
        MetricSpec("db_connections_in_use", "connections", "gauge"),
        MetricSpec("cache_hit_ratio", "ratio", "gauge", 0.0, 1.0),
        MetricSpec("queue_depth", "messages", "gauge"),
        MetricSpec("messages_consumed_total", "messages", "counter"),
    )
}

# Metrics exported per tier. Counters carry the per-second rate as their baseline.
TIER_METRICS: dict[str, tuple[str, ...]] = {
    "web": (
        "cpu_percent",
        "memory_percent",
        "disk_used_percent",
        "latency_p99_ms",
        "error_rate",
        "http_requests_total",
    ),
    "database": (
        "cpu_percent",
        "memory_percent",
        "disk_used_percent",
        "latency_p99_ms",
        "db_connections_in_use",
    ),
    "cache": ("cpu_percent", "memory_percent", "latency_p99_ms", "cache_hit_ratio"),
    "queue": ("cpu_percent", "memory_percent", "disk_used_percent", "queue_depth"),
    "worker": ("cpu_percent", "memory_percent", "error_rate", "messages_consumed_total"),
}
TIER_METRICS["edge"] = TIER_METRICS["web"]
TIER_METRICS["app"] = TIER_METRICS["web"]


@dataclass(frozen=True)
class ServiceSpec:
    """A service's tier, version and the baseline of each metric it exports.

    ``latency_slo_ms`` is the p99 threshold of its HighLatency rule; ``pool_size`` caps
    ``db_connections_in_use`` on databases.
    """

    name: str
    tier: str
    version: str
    baselines: dict[str, float] = field(default_factory=dict)
    latency_slo_ms: float = 1000.0
    pool_size: int = 100

    @property
    def metrics(self) -> tuple[str, ...]:
        return TIER_METRICS[self.tier]

    @property
    def instance(self) -> str:
        """The scrape target label, ``host:port`` as Prometheus writes it."""
        return f"{self.name}-0.prod.internal:9100"

    def baseline(self, metric: str) -> float:
        return self.baselines.get(metric, DEFAULT_BASELINES[metric])

    def next_version(self) -> str:
        """Return the version with its last number raised by one (``v2.14.0`` -> ``v2.14.1``)."""
        head, _, last = self.version.rpartition(".")
        return f"{head}.{int(last) + 1}"


# Baselines used when a service does not set its own: average traffic, healthy system.
DEFAULT_BASELINES: dict[str, float] = {
    "cpu_percent": 35.0,
    "memory_percent": 55.0,
    "disk_used_percent": 48.0,
    "latency_p99_ms": 100.0,
    "error_rate": 0.002,
    "http_requests_total": 120.0,
    "db_connections_in_use": 24.0,
    "cache_hit_ratio": 0.94,
    "queue_depth": 40.0,
    "messages_consumed_total": 60.0,
}


def _service(name: str, tier: str, version: str, slo_ms: float, **baselines: float) -> ServiceSpec:
    return ServiceSpec(name, tier, version, dict(baselines), latency_slo_ms=slo_ms)


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        _service("frontend", "web", "v4.2.0", 900, latency_p99_ms=220, http_requests_total=400),
        _service("api-gateway", "edge", "v1.9.3", 600, latency_p99_ms=150, http_requests_total=520),
        _service("checkout", "app", "v2.14.0", 1200, latency_p99_ms=320, cpu_percent=42),
        _service("payments", "app", "v3.1.7", 1500, latency_p99_ms=380, http_requests_total=45),
        _service("orders", "app", "v5.0.2", 700, latency_p99_ms=170, memory_percent=61),
        _service("inventory", "app", "v1.22.4", 300, latency_p99_ms=70, cpu_percent=30),
        _service("search", "app", "v0.31.0", 450, latency_p99_ms=110, cpu_percent=48),
        _service("users", "app", "v2.3.1", 250, latency_p99_ms=55, http_requests_total=300),
        _service("notifications", "app", "v1.4.0", 400, latency_p99_ms=90, http_requests_total=40),
        _service("notifications-worker", "worker", "v1.4.0", 1000, messages_consumed_total=38),
        _service("orders-db", "database", "pg-15.6", 80, latency_p99_ms=14, disk_used_percent=61),
        _service("users-db", "database", "pg-15.6", 60, latency_p99_ms=9, disk_used_percent=52),
        _service("redis", "cache", "7.2.4", 20, latency_p99_ms=1.8, memory_percent=64),
        _service("rabbitmq", "queue", "3.13.1", 1000, memory_percent=38, queue_depth=35),
    )
}

EDGES: tuple[tuple[str, str], ...] = (
    ("frontend", "api-gateway"),
    ("api-gateway", "checkout"),
    ("api-gateway", "search"),
    ("api-gateway", "users"),
    ("api-gateway", "orders"),
    ("checkout", "payments"),
    ("checkout", "orders"),
    ("checkout", "inventory"),
    ("checkout", "users"),
    ("checkout", "redis"),
    ("checkout", "notifications"),
    ("payments", "orders-db"),
    ("orders", "orders-db"),
    ("orders", "inventory"),
    ("orders", "rabbitmq"),
    ("inventory", "orders-db"),
    ("inventory", "redis"),
    ("search", "inventory"),
    ("search", "redis"),
    ("users", "users-db"),
    ("users", "redis"),
    ("notifications", "rabbitmq"),
    ("notifications", "users"),
    # The worker consumes the notifications queue and looks up recipients.
    ("notifications-worker", "rabbitmq"),
    ("notifications-worker", "users"),
)


def default_graph() -> ServiceGraph:
    """Return the dependency graph of the simulated shop (14 services)."""
    return ServiceGraph.from_pairs(list(EDGES))


def dependents_map(graph: ServiceGraph) -> dict[str, list[str]]:
    """Map each service to the sorted services that call it (one pass over the edges)."""
    callers: dict[str, list[str]] = {name: [] for name in graph.services}
    for caller, callees in graph.edges.items():
        for callee in callees:
            callers[callee].append(caller)
    return {name: sorted(found) for name, found in callers.items()}
