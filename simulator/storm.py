"""A large incident for scale benchmarks, built from the same machinery as ``generate``.

The shop is copied into cells (``checkout-c03`` and so on) that all share one ``users-db``.
That database exhausts its connection pool, so every cell's callers fail. Each service-level
alert is then sent by many instances (pods), as a real storm is, until the requested number
of alerts is reached.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from datetime import timedelta

import numpy as np

from opsforge_core.models import Alert
from opsforge_core.topology import ServiceGraph
from simulator.background import plan_background
from simulator.engine import FiredAlert, Timeline, deploys_of, simulate
from simulator.generate import (
    ScenarioRun,
    change_events,
    default_start,
    ground_truth_of,
    scenario_rng,
)
from simulator.rules import epoch_to_datetime, fingerprints_varying
from simulator.scenarios import BuildContext, get_scenario
from simulator.topology import EDGES, SERVICES, ServiceSpec

logger = logging.getLogger(__name__)

SHARED = "users-db"
STORM_SCENARIO = "db_connection_pool_exhaustion"
STORM_DUPLICATE_SHARE = 0.05


def cell_topology(cells: int) -> tuple[dict[str, ServiceSpec], ServiceGraph]:
    """Return specs and graph of ``cells`` copies of the shop around one shared database."""
    specs = {SHARED: SERVICES[SHARED]}
    pairs: list[tuple[str, str]] = []
    for cell in range(cells):
        suffix = f"-c{cell:02d}"

        def name(service: str, suffix: str = suffix) -> str:
            return service if service == SHARED else service + suffix

        for service, spec in SERVICES.items():
            if service != SHARED:
                specs[name(service)] = replace(spec, name=name(service))
        pairs += [(name(a), name(b)) for a, b in EDGES]
    return specs, ServiceGraph.from_pairs(pairs)


def _hops_to_shared() -> dict[str, float]:
    """Return each shop service's number of calls away from the shared database."""
    callers: dict[str, list[str]] = {}
    for caller, callee in EDGES:
        callers.setdefault(callee, []).append(caller)
    hops: dict[str, float] = dict.fromkeys(SERVICES, math.inf)
    hops[SHARED] = 0
    frontier = [SHARED]
    while frontier:
        service = frontier.pop(0)
        for caller in callers.get(service, []):
            if hops[caller] == math.inf:
                hops[caller] = hops[service] + 1
                frontier.append(caller)
    return hops


def _series_keys(specs: dict[str, ServiceSpec], n_series: int) -> list[tuple[str, str]]:
    """Return the first ``n_series`` series keys: the shared database's, then cell by cell.

    Whole cells are kept, and within a cell the services nearest the database come first, so
    even a cell that is cut short keeps the callers that tie it to the root cause. (Taking
    services in name order kept each cell's ``checkout`` but dropped every cell's ``users``,
    the database's only callers, which left nothing observed linking the cells to the fault.)
    """
    distance = _hops_to_shared()
    # cell_topology adds the shared database first, then the services cell by cell.
    cells: dict[str, list[str]] = {}
    for name in specs:
        if name != SHARED:
            base, _, cell = name.rpartition("-")
            cells.setdefault(cell, []).append(base)
    names = [SHARED]
    for cell, bases in cells.items():
        names += [f"{base}-{cell}" for base in sorted(bases, key=lambda b: (distance[b], b))]
    keys = [(name, metric) for name in names for metric in specs[name].metrics]
    return keys[:n_series]


def _fan_out(
    fired: list[FiredAlert],
    specs: dict[str, ServiceSpec],
    n_alerts: int,
    step_seconds: float,
    rng: np.random.Generator,
) -> list[FiredAlert]:
    """Send each fired alert from several instances until there are ``n_alerts`` of them."""
    if not fired or n_alerts < 1:
        return []
    counts = np.full(len(fired), n_alerts // len(fired))
    counts[: n_alerts % len(fired)] += 1
    out: list[FiredAlert] = []
    for item, count in zip(fired, counts.tolist(), strict=True):
        first = item.alert
        start = first.starts_at.timestamp()
        end = None if first.ends_at is None else first.ends_at.timestamp()
        # Pods are scraped at different moments within one step.
        jitter = rng.uniform(0.0, step_seconds, count).tolist()
        instances = [f"{first.service}-{replica}.prod.internal:9100" for replica in range(count)]
        hashes = fingerprints_varying(first.labels, "instance", instances)
        for shift, instance, fingerprint in zip(jitter, instances, hashes, strict=True):
            copy = Alert(
                fingerprint=fingerprint,
                source=first.source,
                name=first.name,
                service=first.service,
                severity=first.severity,
                status=first.status,
                summary=first.summary,
                description=first.description,
                labels={**first.labels, "instance": instance},
                starts_at=epoch_to_datetime(start + shift),
                ends_at=None if end is None else epoch_to_datetime(end + shift),
            )
            out.append(FiredAlert(copy, item.caused, item.episode, item.rule, item.value))
    return out


def generate_storm(
    n_alerts: int = 200_000,
    n_series: int = 2_000,
    points: int = 240,
    seed: int = 0,
    step_seconds: int = 60,
) -> ScenarioRun:
    """Generate a connection-pool storm with ``n_alerts`` alerts over ``n_series`` series.

    The root cause is always the shared ``users-db``; ``ground_truth`` has the same keys as a
    ``generate`` run. Raise ``ValueError`` when a size is not positive or ``points`` < 30.
    """
    if n_alerts < 1 or n_series < 1 or points < 30:
        raise ValueError(
            f"invalid storm size n_alerts={n_alerts}, n_series={n_series}, points={points}; "
            "alerts and series must be positive and points at least 30"
        )
    per_cell = sum(len(s.metrics) for name, s in SERVICES.items() if name != SHARED)
    cells = max(1, math.ceil((n_series - len(SERVICES[SHARED].metrics)) / per_cell))
    specs, graph = cell_topology(cells)
    rng = scenario_rng("storm", seed)
    begin = default_start(seed, step_seconds)
    timestamps = begin.timestamp() + step_seconds * np.arange(points, dtype=np.float64)
    duration_s = float(points * step_seconds)
    fault_offset = float(np.round(0.35 * duration_s))
    timeline = Timeline(timestamps, float(step_seconds), begin.timestamp() + fault_offset)

    ctx = BuildContext(graph, specs, rng, horizon_s=duration_s - fault_offset)
    plan = get_scenario(STORM_SCENARIO).plan(ctx, root=SHARED)
    background = plan_background(specs, plan, rng, timeline.start, duration_s, step_seconds)
    keys = _series_keys(specs, n_series)
    series, fired = simulate(specs, plan, background, timeline, rng, keys)

    events = change_events(specs, deploys_of(plan, background, timeline))[:n_alerts]
    n_repeats = int(n_alerts * STORM_DUPLICATE_SHARE) if n_alerts >= 40 else 0
    budget = n_alerts - n_repeats - len(events)
    sent = _fan_out(fired, specs, budget, float(step_seconds), rng)
    alerts = [item.alert for item in sent]
    if n_repeats and alerts:
        # Repeated deliveries share the object: they are identical by definition.
        picks = rng.choice(len(alerts), size=n_repeats, replace=True)
        alerts += [alerts[int(i)] for i in picks.tolist()]
    alerts += [event for event, _ in events]
    alerts.sort(key=lambda a: a.starts_at)
    truth = ground_truth_of(plan, timeline.fault_start, sent, background, events)
    logger.debug("storm seed=%d: %d cells, %d series, %d alerts", seed, cells, len(series),
                 len(alerts))  # fmt: skip
    return ScenarioRun(
        scenario="storm",
        seed=seed,
        start=begin,
        end=begin + timedelta(seconds=duration_s),
        step_seconds=step_seconds,
        alerts=alerts,
        series=series,
        ground_truth=truth,
        topology=graph.to_pairs(),
    )
