"""Fault effects on metric series, and their spread to upstream callers.

A fault is a list of ``Effect`` values, each changing one metric of one service from an onset
time on, with an intensity ``Shape`` between 0 and 1. The same effects drive the batch
generator (whole numpy arrays) and the live simulator (one-element arrays per tick).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from opsforge_core.topology import ServiceGraph
from simulator.topology import dependents_map

# Spread to callers: each hop delays the symptom by a few minutes and keeps only a fraction of
# the added latency and errors, so services far from the fault suffer less and later.
HOP_DELAY_S = (90.0, 240.0)
HOP_WEIGHT = (0.5, 0.85)


@dataclass(frozen=True)
class Shape:
    """Intensity over time since an effect's onset, between 0 and 1 (0 before the onset).

    ``ramp`` rises linearly over ``rise_s`` and stays at 1; ``sawtooth`` rises over each
    ``period_s`` and drops back to 0 (a leak and its restarts); ``pulse`` is 1 for ``width_s``;
    ``square`` is 1 for the first ``width_s`` of every ``period_s`` (flapping, crash loops).
    """

    kind: str = "ramp"
    rise_s: float = 60.0
    period_s: float = 0.0
    width_s: float = 0.0

    def intensity(self, elapsed: np.ndarray) -> np.ndarray:
        active = elapsed >= 0
        if self.kind == "ramp":
            level = np.clip(elapsed / max(self.rise_s, 1.0), 0.0, 1.0)
        elif self.kind == "sawtooth":
            level = np.mod(elapsed, self.period_s) / self.period_s
        elif self.kind == "pulse":
            level = (elapsed < self.width_s).astype(np.float64)
        elif self.kind == "square":
            level = (np.mod(elapsed, self.period_s) < self.width_s).astype(np.float64)
        else:
            raise ValueError(f"unknown shape kind {self.kind!r}")
        return np.where(active, level, 0.0)


@dataclass(frozen=True)
class Effect:
    """A change to ``service``/``metric`` starting ``onset_s`` after the fault starts.

    ``op`` is ``scale`` (value times 1 + amount x intensity), ``add`` (value plus amount x
    intensity) or ``toward`` (value moved toward the target ``amount`` by the intensity).
    ``until_s`` ends the effect, in seconds after the fault start. On a counter the effect
    applies to the per-second rate, not to the running total.
    """

    service: str
    metric: str
    op: str
    amount: float
    onset_s: float = 0.0
    shape: Shape = field(default_factory=Shape)
    until_s: float | None = None

    def intensity(self, seconds_since_start: np.ndarray) -> np.ndarray:
        level = self.shape.intensity(seconds_since_start - self.onset_s)
        if self.until_s is not None:
            level = np.where(seconds_since_start < self.until_s, level, 0.0)
        return level


_OP_ORDER = {"scale": 0, "add": 1, "toward": 2}


def apply_effects(
    values: np.ndarray, seconds_since_start: np.ndarray, effects: Iterable[Effect]
) -> np.ndarray:
    """Return ``values`` with the effects applied: scaling first, then additions, then targets."""
    out = values.copy()
    for effect in sorted(effects, key=lambda e: _OP_ORDER[e.op]):
        level = effect.intensity(seconds_since_start)
        if effect.op == "scale":
            out = out * (1.0 + effect.amount * level)
        elif effect.op == "add":
            out = out + effect.amount * level
        else:
            out = out + (effect.amount - out) * level
    return out


@dataclass
class FaultPlan:
    """The effects, restarts and deploys of one fault, timed from the fault start.

    ``restarts`` are (service, seconds) process restarts, which reset counters.
    ``version_change`` is (service, old version, new version, seconds) for a deploy.
    ``details`` is extra ground truth (for example the link of a network fault).
    """

    scenario: str
    fault_kind: str
    root_cause: str
    effects: list[Effect] = field(default_factory=list)
    restarts: list[tuple[str, float]] = field(default_factory=list)
    version_change: tuple[str, str, str, float] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def by_series(self) -> dict[tuple[str, str], list[Effect]]:
        grouped: dict[tuple[str, str], list[Effect]] = {}
        for effect in self.effects:
            grouped.setdefault((effect.service, effect.metric), []).append(effect)
        return grouped

    def affected_services(self) -> set[str]:
        return {e.service for e in self.effects} | {self.root_cause}

    def onsets(self) -> dict[str, float]:
        """Earliest effect onset per service, in seconds after the fault start."""
        first: dict[str, float] = {}
        for effect in self.effects:
            first[effect.service] = min(first.get(effect.service, effect.onset_s), effect.onset_s)
        return first


def spread_upstream(
    graph: ServiceGraph,
    source: str,
    rng: np.random.Generator,
    *,
    onset_s: float,
    latency_ms: float,
    error_rate: float,
    shape: Shape | None = None,
    exclude: Iterable[str] = (),
) -> list[Effect]:
    """Return latency and error effects on every service upstream of ``source``.

    Callers are visited breadth first. Each hop draws a delay from ``HOP_DELAY_S`` and a weight
    from ``HOP_WEIGHT``. A service reached along several paths keeps the strongest weight and
    the earliest onset. ``source`` itself gets nothing: its symptoms belong to the scenario.
    """
    shape = shape or Shape("ramp", rise_s=120.0)
    callers_of = dependents_map(graph)
    skip = set(exclude) | {source}
    reached: dict[str, tuple[float, float]] = {source: (0.0, 1.0)}
    frontier = [source]
    while frontier:
        layer: dict[str, tuple[float, float]] = {}
        for node in frontier:
            delay, weight = reached[node]
            for caller in callers_of.get(node, []):
                if caller in skip or caller in reached:
                    continue
                hop = (delay + rng.uniform(*HOP_DELAY_S), weight * rng.uniform(*HOP_WEIGHT))
                old = layer.get(caller)
                layer[caller] = hop if old is None else (min(old[0], hop[0]), max(old[1], hop[1]))
        reached.update(layer)
        frontier = sorted(layer)
    effects: list[Effect] = []
    for service in sorted(reached):
        if service == source:
            continue
        delay, weight = reached[service]
        start = onset_s + delay
        effects.append(Effect(service, "latency_p99_ms", "add", latency_ms * weight, start, shape))
        if error_rate > 0:
            effects.append(Effect(service, "error_rate", "add", error_rate * weight, start, shape))
    return effects


def shift(effects: Iterable[Effect], seconds: float) -> list[Effect]:
    """Return the effects moved ``seconds`` later (onset and end)."""
    moved = []
    for effect in effects:
        until = None if effect.until_s is None else effect.until_s + seconds
        moved.append(replace(effect, onset_s=effect.onset_s + seconds, until_s=until))
    return moved
