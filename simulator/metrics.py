"""Healthy metric values: daily traffic cycles, per-service baselines, noise and counters.

Traffic peaks at 15:00 UTC and bottoms out at 03:00 UTC. Traffic-driven metrics (CPU,
latency, request rates, connections, queue depth) follow it; memory and disk drift slowly.
Noise is AR(1) (each sample keeps ``NOISE_PHI`` of the previous deviation), so series wander
the way scraped metrics do instead of jumping independently every sample.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from simulator.topology import METRICS, ServiceSpec

PEAK_HOUR_UTC = 15.0
NOISE_PHI = 0.7

# Relative swing of each traffic-driven metric between the daily mean and the peak.
DAILY_AMPLITUDE: dict[str, float] = {
    "cpu_percent": 0.25,
    "latency_p99_ms": 0.15,
    "http_requests_total": 0.45,
    "messages_consumed_total": 0.45,
    "db_connections_in_use": 0.3,
    "queue_depth": 0.3,
    "error_rate": 0.2,
}

# Noise standard deviation at a given level of the metric, by mode:
#   ("abs", sd)  a constant sd in the metric's units.
#   ("rel", f)   f times the current level, because latencies and rates jitter in proportion.
#   ("sqrt", f)  f times sqrt(level x baseline). It equals f x baseline at the baseline and
#                grows slower than the level, as the spread of a ratio or a backlog does.
NOISE: dict[str, tuple[str, float]] = {
    "cpu_percent": ("abs", 2.5),
    "memory_percent": ("abs", 0.5),
    "disk_used_percent": ("abs", 0.05),
    "latency_p99_ms": ("rel", 0.07),
    "error_rate": ("sqrt", 0.3),
    "http_requests_total": ("rel", 0.04),
    "messages_consumed_total": ("rel", 0.06),
    "db_connections_in_use": ("abs", 2.0),
    "cache_hit_ratio": ("abs", 0.006),
    "queue_depth": ("sqrt", 0.25),
}

# Slow growth per day while healthy (log files, caches warming), in metric units.
DAILY_DRIFT: dict[str, float] = {"disk_used_percent": 0.4, "memory_percent": 0.8}


def daily_cycle(timestamps: np.ndarray) -> np.ndarray:
    """Return traffic's daily swing in [-1, 1] at epoch-second ``timestamps``."""
    hours = np.mod(timestamps, 86400.0) / 3600.0
    return np.cos(2.0 * np.pi * (hours - PEAK_HOUR_UTC) / 24.0)


def baseline(spec: ServiceSpec, metric: str, timestamps: np.ndarray) -> np.ndarray:
    """Return the noiseless healthy value (the rate, for counters) of one metric."""
    base = spec.baseline(metric)
    amplitude = DAILY_AMPLITUDE.get(metric, 0.0)
    values = base * (1.0 + amplitude * daily_cycle(timestamps))
    drift = DAILY_DRIFT.get(metric)
    if drift:
        values = values + drift * (timestamps - timestamps[0]) / 86400.0
    return values


def noise_sd(spec: ServiceSpec, metric: str, level: np.ndarray) -> np.ndarray:
    """Return the noise standard deviation of one metric at ``level``, in its units."""
    mode, size = NOISE[metric]
    if mode == "abs":
        return np.full_like(level, size)
    if mode == "rel":
        return size * np.abs(level)
    return size * np.sqrt(np.abs(level) * spec.baseline(metric))


def with_noise(
    spec: ServiceSpec, metric: str, level: np.ndarray, unit_noise: np.ndarray
) -> np.ndarray:
    """Add noise to ``level``: ``unit_noise`` (standard deviation 1) times the metric's sd."""
    return level + unit_noise * noise_sd(spec, metric, level)


def ar1_noise(n: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Return ``n`` AR(1) samples whose stationary standard deviation is ``scale``."""
    innovations = rng.normal(0.0, scale * np.sqrt(1.0 - NOISE_PHI**2), n)
    # Start from the stationary distribution so the first samples are not calmer than the rest.
    initial = rng.normal(0.0, scale) * NOISE_PHI
    noise, _ = lfilter([1.0], [1.0, -NOISE_PHI], innovations, zi=[initial])
    return noise


def clip(spec: ServiceSpec, metric: str, values: np.ndarray) -> np.ndarray:
    """Clip values to the metric's range (connections to the service's pool size)."""
    meta = METRICS[metric]
    high = float(spec.pool_size) if metric == "db_connections_in_use" else meta.high
    return np.clip(values, meta.low, high)


def counter_from_rate(
    rate: np.ndarray,
    step_seconds: float,
    restart_indexes: list[int],
    initial: float,
) -> np.ndarray:
    """Integrate a per-second rate into a Prometheus-style counter that resets on restarts.

    The counter starts at ``initial`` (the process has been up for a while). At each restart
    index the running total starts again from zero, so the sample there holds only the
    requests counted since the restart.
    """
    increments = np.maximum(rate, 0.0) * step_seconds
    total = np.cumsum(increments) + initial
    if not restart_indexes:
        return total
    offsets = np.zeros_like(total)
    for index in sorted(set(restart_indexes)):
        if 0 < index < total.size:
            offsets[index] = total[index - 1]
    # Totals only grow, so the running maximum carries the latest reset's offset forward.
    return total - np.maximum.accumulate(offsets)
