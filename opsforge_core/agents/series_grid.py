"""Preparation of a raw metric series on a regular time grid.

``prepare`` sorts the samples and merges duplicate timestamps by their mean. It turns counters
into per-second rates with resets handled, and bins the samples to a regular step by their
mean. Gaps of at most ``MAX_FILL_STEPS`` bins are interpolated linearly. Longer gaps stay NaN,
never zero or a straight line. ``coverage`` is the share of bins that held data.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from opsforge_core.models import MetricSeries

logger = logging.getLogger(__name__)

MAX_FILL_STEPS = 3  # gaps of at most this many bins are interpolated
MAX_BINS = 200_000  # a longer grid gets a wider step, so a tiny step cannot exhaust memory
DEFAULT_STEP = 60.0  # seconds, for a series with fewer than two distinct timestamps


@dataclass(slots=True)
class PreparedSeries:
    """A series on a regular grid: ``values[i]`` is the aggregate of bin ``timestamps[i]``.

    ``observed`` marks bins that held at least one finite sample; ``values`` is NaN where a gap
    was too long to fill. ``coverage`` is the share of bins between the first and last sample
    (or the requested range) that held data.
    """

    key: str
    service: str
    metric: str
    kind: str
    step: float
    timestamps: np.ndarray
    values: np.ndarray
    observed: np.ndarray
    coverage: float
    duplicates_merged: int = 0
    counter_resets: int = 0

    def __len__(self) -> int:
        return int(self.values.size)


def _merge_duplicates(ts: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Sort by time and replace samples sharing a timestamp by their mean (NaN ignored)."""
    keep = np.isfinite(ts)
    ts, vals = ts[keep], vals[keep]
    order = np.argsort(ts, kind="stable")
    ts, vals = ts[order], vals[order]
    unique, inverse = np.unique(ts, return_inverse=True)
    if unique.size == ts.size:
        return ts, vals, 0
    finite = np.isfinite(vals)
    sums = np.bincount(inverse, weights=np.where(finite, vals, 0.0), minlength=unique.size)
    counts = np.bincount(inverse, weights=finite.astype(float), minlength=unique.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        merged = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return unique, merged, int(ts.size - unique.size)


def _counter_rates(ts: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Turn a cumulative counter into per-second rates between consecutive finite samples.

    A decrease means the process restarted and the counter began again from zero, so the
    increase over that interval is the new value itself, not a negative jump.
    """
    finite = np.isfinite(vals)
    ts, vals = ts[finite], vals[finite]
    if ts.size < 2:
        return ts[:0], vals[:0], 0
    delta = np.diff(vals)
    resets = delta < 0
    delta = np.where(resets, vals[1:], delta)
    rates = delta / np.diff(ts)
    return ts[1:], rates, int(resets.sum())


def _infer_step(ts: np.ndarray) -> float:
    if ts.size < 2:
        return DEFAULT_STEP
    spacing = np.diff(ts)
    spacing = spacing[spacing > 0]
    if not spacing.size:
        return DEFAULT_STEP
    # Jitter shifts the median spacing enough to misplace samples over a long series. So the
    # step is the mean interval, with each interval counted as the median steps it spans.
    median = float(np.median(spacing))
    steps = np.maximum(np.round(spacing / median), 1.0)
    step = float(spacing.sum() / steps.sum())
    return float(round(step)) if step >= 1.0 else step


def _fill_short_gaps(values: np.ndarray, max_steps: int) -> np.ndarray:
    """Interpolate runs of at most ``max_steps`` NaN bins that have data on both sides."""
    filled = values.copy()
    missing = np.isnan(values)
    if not missing.any():
        return filled
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for start, end in zip(starts, ends, strict=True):
        if end - start > max_steps or start == 0 or end == values.size:
            continue
        gap = np.arange(start, end)
        filled[start:end] = np.interp(gap, [start - 1, end], [values[start - 1], values[end]])
    return filled


def prepare(
    series: MetricSeries,
    step: float | None = None,
    start: float | None = None,
    end: float | None = None,
) -> PreparedSeries:
    """Bin ``series`` to a regular grid of ``step`` seconds (inferred from the spacing when None).

    Each bin's value is the mean of its samples. ``start`` and ``end`` (epoch seconds) widen
    the grid, so missing data at either edge lowers the coverage. A grid of more than
    ``MAX_BINS`` bins gets a wider step.
    """
    ts, vals, duplicates = _merge_duplicates(series.timestamps, series.values)
    resets = 0
    if series.kind == "counter":
        ts, vals, resets = _counter_rates(ts, vals)
    step = float(step) if step and step > 0 else _infer_step(ts)
    finite = np.isfinite(vals)
    if not finite.any():
        empty = np.zeros(0)
        return PreparedSeries(
            series.key, series.service, series.metric, series.kind, step,
            empty, empty, empty.astype(bool), 0.0, duplicates, resets,
        )  # fmt: skip
    origin = float(ts[finite][0]) if start is None else float(start)
    last = float(ts[finite][-1]) if end is None else float(end)
    if (last - origin) / step + 1 > MAX_BINS:
        logger.debug("%s: step %.3g s gives too many bins; widening it", series.key, step)
        step = (last - origin) / (MAX_BINS - 1)
    n_bins = max(1, int(math.floor((last - origin) / step + 0.5)) + 1)
    index = np.floor((ts[finite] - origin) / step + 0.5).astype(np.int64)
    inside = (index >= 0) & (index < n_bins)
    index, kept = index[inside], vals[finite][inside]
    sums = np.bincount(index, weights=kept, minlength=n_bins)
    counts = np.bincount(index, minlength=n_bins)
    observed = counts > 0
    binned = np.where(observed, sums / np.maximum(counts, 1), np.nan)
    values = _fill_short_gaps(binned, MAX_FILL_STEPS)
    return PreparedSeries(
        key=series.key,
        service=series.service,
        metric=series.metric,
        kind=series.kind,
        step=step,
        timestamps=origin + step * np.arange(n_bins),
        values=values,
        observed=observed,
        coverage=float(observed.mean()),
        duplicates_merged=duplicates,
        counter_resets=resets,
    )
