"""Background activity unrelated to the fault: short spikes, flapping rules, routine restarts.

Noise alerts come from the metrics like every other alert: a spike pushes one healthy series
past its rule's threshold for a few samples, and a flapping series crosses its threshold again
and again. Times here are seconds after the start of the run, not after the fault start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.effects import Effect, FaultPlan, Shape
from simulator.metrics import baseline
from simulator.rules import RULES_BY_METRIC
from simulator.topology import ServiceSpec

# Metrics a spike or a flap may hit, and how far past the threshold it goes (a fraction).
NOISY_METRICS: dict[str, float] = {
    "cpu_percent": 0.06,
    "memory_percent": 0.04,
    "disk_used_percent": 0.04,
    "latency_p99_ms": 0.35,
    "error_rate": 0.6,
}


@dataclass
class Background:
    effects: list[Effect] = field(default_factory=list)
    restarts: list[tuple[str, float]] = field(default_factory=list)
    # (service, old version, new version, seconds) when the routine restart is a deploy
    version_change: tuple[str, str, str, float] | None = None
    # (service, metric, "spike" or "flapping") for each noisy series
    noisy_series: list[tuple[str, str, str]] = field(default_factory=list)


def _candidates(specs: dict[str, ServiceSpec], plan: FaultPlan) -> list[tuple[str, str]]:
    """Series of healthy services, or untouched series when every service is affected."""
    affected = plan.affected_services()
    healthy = [s for s in sorted(specs) if s not in affected]
    touched = set(plan.by_series())
    pool = healthy or [s for s in sorted(specs) if s != plan.root_cause]
    return [
        (service, metric)
        for service in pool
        for metric in specs[service].metrics
        if metric in NOISY_METRICS and (service, metric) not in touched
    ]


def threshold_lift(spec: ServiceSpec, metric: str, at: float) -> float:
    """Return how much to add at epoch ``at`` to sit just past the metric's threshold."""
    rule = RULES_BY_METRIC[metric][0]
    target = rule.threshold_for(spec) * (1.0 + NOISY_METRICS[metric])
    return target - float(baseline(spec, metric, np.array([at]))[0])


def plan_background(
    specs: dict[str, ServiceSpec],
    plan: FaultPlan,
    rng: np.random.Generator,
    start_epoch: float,
    duration_s: float,
    step_seconds: float,
) -> Background:
    """Choose spikes, flapping series and one routine restart away from the fault.

    Half the time the restart is a routine deploy, with a new version and a change event,
    which is the decoy a change-correlation check has to see past.
    """
    background = Background()
    pool = _candidates(specs, plan)
    if pool:
        order = rng.permutation(len(pool))
        n_spikes = min(len(pool), int(rng.integers(2, 5)))
        for index in order[:n_spikes]:
            service, metric = pool[index]
            for_samples = RULES_BY_METRIC[metric][0].for_samples
            width = (for_samples + int(rng.integers(1, 4))) * step_seconds
            onset = rng.uniform(0.05, 0.9) * duration_s
            amount = threshold_lift(specs[service], metric, start_epoch + onset)
            shape = Shape("pulse", width_s=width)
            background.effects.append(Effect(service, metric, "add", amount, onset, shape))
            background.noisy_series.append((service, metric, "spike"))
        for index in order[n_spikes : n_spikes + int(rng.integers(1, 3))]:
            background.effects.append(_flap(specs, pool[index], rng, start_epoch, duration_s,
                                            step_seconds))  # fmt: skip
            background.noisy_series.append((*pool[index], "flapping"))
    counters = [
        s
        for s in sorted(specs)
        if s not in plan.affected_services() and "http_requests_total" in specs[s].metrics
    ]
    if counters:
        service = str(rng.choice(counters))
        at = rng.uniform(0.1, 0.9) * duration_s
        background.restarts.append((service, at))
        if rng.random() < 0.5:
            spec = specs[service]
            background.version_change = (service, spec.version, spec.next_version(), at)
    return background


def _flap(
    specs: dict[str, ServiceSpec],
    series: tuple[str, str],
    rng: np.random.Generator,
    start_epoch: float,
    duration_s: float,
    step_seconds: float,
) -> Effect:
    """Build an effect that pushes a series past its threshold for a few samples, drops it
    back, and repeats."""
    service, metric = series
    for_samples = RULES_BY_METRIC[metric][0].for_samples
    above = (for_samples + int(rng.integers(1, 3))) * step_seconds
    below = int(rng.integers(2, 5)) * step_seconds
    length = rng.uniform(0.25, 0.4) * duration_s
    onset = rng.uniform(0.05, 0.95 - length / duration_s) * duration_s
    amount = threshold_lift(specs[service], metric, start_epoch + onset)
    shape = Shape("square", period_s=above + below, width_s=above)
    return Effect(service, metric, "add", amount, onset, shape, until_s=onset + length)
