"""Fault scenarios with ground truth: what breaks, where, and how the symptoms spread.

Each ``Scenario`` lists the services it can break and a builder that returns a ``FaultPlan``
for one of them. The seed picks the root cause among the candidates, so runs of one scenario
with different seeds exercise different parts of the graph. Every time in a plan is in seconds
after the fault start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from opsforge_core.topology import ServiceGraph
from simulator.effects import Effect, FaultPlan, Shape, spread_upstream
from simulator.topology import ServiceSpec

MINUTE = 60.0


@dataclass
class BuildContext:
    """Inputs of a scenario builder: the graph, the service specs, a seeded generator, and
    ``horizon_s``, the seconds from the fault start to the end of the run."""

    graph: ServiceGraph
    specs: dict[str, ServiceSpec]
    rng: np.random.Generator
    horizon_s: float

    def base(self, service: str, metric: str) -> float:
        return self.specs[service].baseline(metric)


Builder = Callable[[BuildContext, str], FaultPlan]


@dataclass(frozen=True)
class Scenario:
    name: str
    fault_kind: str
    summary: str
    roots: tuple[str, ...]
    build: Builder

    def plan(self, ctx: BuildContext, root: str | None = None) -> FaultPlan:
        """Pick a root cause among ``roots`` (unless given) and build the fault plan."""
        chosen = root or str(ctx.rng.choice(sorted(self.roots)))
        plan = self.build(ctx, chosen)
        plan.scenario = self.name
        return plan


def _ramp(rise_s: float) -> Shape:
    return Shape("ramp", rise_s=rise_s)


def _cpu_saturation(ctx: BuildContext, root: str) -> FaultPlan:
    added_ms = ctx.base(root, "latency_p99_ms") * ctx.rng.uniform(4.0, 7.0)
    effects = [
        Effect(root, "cpu_percent", "toward", ctx.rng.uniform(95.0, 99.0), 0.0, _ramp(150)),
        Effect(root, "latency_p99_ms", "add", added_ms, 60.0, _ramp(180)),
        Effect(root, "error_rate", "add", 0.03, 240.0, _ramp(120)),
    ]
    effects += spread_upstream(
        ctx.graph, root, ctx.rng, onset_s=120.0, latency_ms=added_ms, error_rate=0.03
    )
    return FaultPlan("", "cpu_saturation", root, effects)


def _memory_leak(ctx: BuildContext, root: str) -> FaultPlan:
    # Memory climbs to the limit over one period, the process is OOM-killed and restarts
    # (resetting its counters), and the leak starts again from the baseline.
    period = ctx.rng.uniform(50.0, 75.0) * MINUTE
    thrash_s = 0.2 * period  # garbage-collector thrashing in the last fifth of each cycle
    gc = Shape("square", period_s=period, width_s=thrash_s)
    after_oom = Shape("square", period_s=period, width_s=3 * MINUTE)
    added_ms = ctx.base(root, "latency_p99_ms") * 5.0
    effects = [
        Effect(root, "memory_percent", "toward", 99.5, 0.0, Shape("sawtooth", period_s=period)),
        Effect(root, "cpu_percent", "add", 30.0, period - thrash_s, gc),
        Effect(root, "latency_p99_ms", "add", added_ms, period - thrash_s, gc),
        Effect(root, "error_rate", "add", 0.25, period, after_oom),
    ]
    effects += spread_upstream(
        ctx.graph, root, ctx.rng, onset_s=period - thrash_s, latency_ms=added_ms,
        error_rate=0.1, shape=Shape("square", period_s=period, width_s=thrash_s + 3 * MINUTE),
    )  # fmt: skip
    restarts = [(root, k * period) for k in range(1, int(ctx.horizon_s // period) + 1)]
    return FaultPlan("", "memory_leak", root, effects, restarts, details={"oom_period_s": period})


def _disk_filling(ctx: BuildContext, root: str) -> FaultPlan:
    full_s = ctx.rng.uniform(60.0, 90.0) * MINUTE
    effects = [
        Effect(root, "disk_used_percent", "toward", 100.0, 0.0, _ramp(full_s)),
        # Writes stall, then fail, once the volume is full.
        Effect(root, "latency_p99_ms", "add", ctx.base(root, "latency_p99_ms") * 20, full_s),
        Effect(root, "error_rate", "add", 0.35, full_s),
    ]
    effects += spread_upstream(
        ctx.graph, root, ctx.rng, onset_s=full_s, latency_ms=800.0, error_rate=0.2
    )
    return FaultPlan("", "disk_filling", root, effects, details={"full_after_s": full_s})


def _db_pool_exhaustion(ctx: BuildContext, root: str) -> FaultPlan:
    pool = float(ctx.specs[root].pool_size)
    effects = [
        Effect(root, "db_connections_in_use", "toward", pool, 0.0, _ramp(240)),
        Effect(root, "latency_p99_ms", "add", ctx.base(root, "latency_p99_ms") * 6, 60.0),
        Effect(root, "cpu_percent", "add", 20.0, 60.0, _ramp(240)),
    ]
    # Callers wait up to their pool timeout for a connection, then fail the request.
    effects += spread_upstream(
        ctx.graph, root, ctx.rng, onset_s=180.0, latency_ms=2500.0, error_rate=0.15
    )
    return FaultPlan("", "db_connection_pool_exhaustion", root, effects)


def _bad_deploy(ctx: BuildContext, root: str) -> FaultPlan:
    old = ctx.specs[root].version
    new = ctx.specs[root].next_version()
    added_ms = ctx.base(root, "latency_p99_ms") * 2.5
    effects = [
        Effect(root, "error_rate", "add", ctx.rng.uniform(0.1, 0.25), 60.0, _ramp(120)),
        Effect(root, "latency_p99_ms", "add", added_ms, 60.0, _ramp(120)),
        Effect(root, "cpu_percent", "add", 8.0, 0.0, _ramp(60)),
    ]
    effects += spread_upstream(
        ctx.graph, root, ctx.rng, onset_s=120.0, latency_ms=added_ms, error_rate=0.15
    )
    return FaultPlan(
        "", "bad_deploy", root, effects, restarts=[(root, 0.0)],
        version_change=(root, old, new, 0.0), details={"version": new, "previous_version": old},
    )  # fmt: skip


def _network_latency(ctx: BuildContext, root: str) -> FaultPlan:
    # The fault sits on the caller's side (its node's network path to one dependency, say a
    # full conntrack table), so ``root`` is the caller. Calls to that one callee slow down and
    # time out. The callee's own metrics stay normal because it measures server-side latency.
    callees = sorted(ctx.graph.dependencies(root))
    callee = str(ctx.rng.choice(callees))
    added_ms = ctx.rng.uniform(3.0, 6.0) * ctx.specs[root].latency_slo_ms
    effects = [
        Effect(root, "latency_p99_ms", "add", added_ms, 30.0, _ramp(90)),
        Effect(root, "error_rate", "add", 0.07, 120.0, _ramp(120)),
    ]
    effects += spread_upstream(
        ctx.graph, root, ctx.rng, onset_s=150.0, latency_ms=added_ms, error_rate=0.05
    )
    return FaultPlan("", "network_latency", root, effects, details={"link": [root, callee]})


def _cache_failure(ctx: BuildContext, root: str) -> FaultPlan:
    effects = [
        Effect(root, "cache_hit_ratio", "toward", ctx.rng.uniform(0.1, 0.3), 0.0, _ramp(120)),
        Effect(root, "memory_percent", "toward", 99.0, 0.0, _ramp(300)),
        Effect(root, "latency_p99_ms", "add", ctx.base(root, "latency_p99_ms") * 15, 0.0),
    ]
    # Misses fall through to the databases behind the cache's callers.
    for db in sorted(s for s, spec in ctx.specs.items() if spec.tier == "database"):
        effects += [
            Effect(db, "cpu_percent", "add", 45.0, 180.0, _ramp(240)),
            Effect(db, "db_connections_in_use", "add", 45.0, 180.0, _ramp(240)),
            Effect(db, "latency_p99_ms", "add", ctx.base(db, "latency_p99_ms") * 3, 180.0),
        ]
    effects += spread_upstream(
        ctx.graph, root, ctx.rng, onset_s=120.0, latency_ms=350.0, error_rate=0.04
    )
    return FaultPlan("", "cache_failure", root, effects)


def _queue_backlog(ctx: BuildContext, root: str) -> FaultPlan:
    # The consumer fails on every message (a poison message or a broken dependency), so the
    # broker's queue grows until it applies flow control to the publishers.
    broker = sorted(s for s in ctx.graph.dependencies(root) if ctx.specs[s].tier == "queue")[0]
    growth = ctx.rng.uniform(500.0, 900.0)  # messages per minute
    effects = [
        Effect(root, "error_rate", "add", ctx.rng.uniform(0.4, 0.8), 0.0, _ramp(60)),
        Effect(root, "messages_consumed_total", "scale", -0.9, 0.0, _ramp(60)),
        Effect(root, "cpu_percent", "add", 15.0, 0.0, _ramp(60)),
        Effect(broker, "queue_depth", "add", growth * ctx.horizon_s / MINUTE, 60.0,
               _ramp(ctx.horizon_s)),
        Effect(broker, "memory_percent", "toward", 95.0, 10 * MINUTE, _ramp(50 * MINUTE)),
        Effect(broker, "disk_used_percent", "add", 12.0, 10 * MINUTE, _ramp(60 * MINUTE)),
    ]  # fmt: skip
    effects += spread_upstream(
        ctx.graph, broker, ctx.rng, onset_s=35 * MINUTE, latency_ms=600.0, error_rate=0.03,
        exclude=[root],
    )  # fmt: skip
    return FaultPlan("", "queue_backlog", root, effects, details={"queue": broker})


def _crash_loop(ctx: BuildContext, root: str) -> FaultPlan:
    period = ctx.rng.uniform(5.0, 7.0) * MINUTE
    down = Shape("square", period_s=period, width_s=3 * MINUTE)
    effects = [
        Effect(root, "error_rate", "add", 0.6, 0.0, down),
        Effect(root, "cpu_percent", "add", 35.0, 0.0, Shape("square", period_s=period,
                                                            width_s=MINUTE)),
        Effect(root, "http_requests_total", "scale", -0.7, 0.0, down),
    ]  # fmt: skip
    effects += spread_upstream(
        ctx.graph, root, ctx.rng, onset_s=60.0, latency_ms=400.0, error_rate=0.3,
        shape=Shape("square", period_s=period, width_s=3 * MINUTE),
    )  # fmt: skip
    restarts = [(root, k * period) for k in range(int(ctx.horizon_s // period) + 1)]
    return FaultPlan(
        "", "crash_loop", root, effects, restarts, details={"restart_period_s": period}
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("cpu_saturation", "cpu_saturation", "a hot loop pins one service's CPU",
                 ("search", "inventory", "checkout", "orders", "payments"), _cpu_saturation),
        Scenario("memory_leak", "memory_leak", "memory grows until the process is OOM-killed",
                 ("orders", "users", "checkout", "search", "notifications"), _memory_leak),
        Scenario("disk_filling", "disk_filling", "a volume fills up, then writes fail",
                 ("orders-db", "users-db", "search", "rabbitmq"), _disk_filling),
        Scenario("db_connection_pool_exhaustion", "db_connection_pool_exhaustion",
                 "a database runs out of connections and its clients time out",
                 ("orders-db", "users-db"), _db_pool_exhaustion),
        Scenario("bad_deploy", "bad_deploy", "a new version rolls out, then requests fail",
                 ("checkout", "payments", "orders", "users", "search", "inventory"), _bad_deploy),
        Scenario("network_latency", "network_latency",
                 "packets from a service to one of its dependencies are delayed",
                 ("checkout", "orders", "search", "users", "inventory"), _network_latency),
        Scenario("cache_failure", "cache_failure",
                 "the cache evicts everything and misses fall through to the databases",
                 ("redis",), _cache_failure),
        Scenario("queue_backlog", "queue_backlog",
                 "the queue consumer fails every message and the backlog grows",
                 ("notifications-worker",), _queue_backlog),
        Scenario("crash_loop", "crash_loop", "a service crashes on start-up and restarts",
                 ("payments", "users", "inventory", "orders"), _crash_loop),
    )
}  # fmt: skip


def get_scenario(name: str) -> Scenario:
    """Return the named scenario; raise ``KeyError`` listing the valid names."""
    try:
        return SCENARIOS[name]
    except KeyError as exc:
        raise KeyError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from exc
