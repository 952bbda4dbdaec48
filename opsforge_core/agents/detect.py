"""Per-series preparation and online anomaly scoring.

``prepare`` turns a raw ``MetricSeries`` into a regular grid: duplicates merged, samples binned,
short gaps filled, long gaps left as NaN, counters turned into per-second rates.
``score_online`` gives each point a score in [0, 1] computed only from the points before it, so
the same scores come out whether a series is scored live or after the fact. ``scan_series`` and
``scan_all`` reduce the scores to one ``SeriesAnomaly`` per series.

Scoring, per point t:

1. The baseline is the median of the previous ``WINDOW`` points, and the scale is their
   interquartile range (floored by the mean absolute residual, so a mostly flat series with
   rare blips does not divide by zero).
2. The deviation is also measured against the median of the last ``SHORT`` points; the smaller
   of the two is kept, so after a level shift the new level stops scoring within a few points.
3. A score that follows a high score within ``SUPPRESS`` points is damped by it, so one event
   gives one high score rather than a run of them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.models import MetricSeries

logger = logging.getLogger(__name__)

WINDOW = 288  # points of history in the baseline
MIN_HISTORY = 10  # points of history before any score is given
SHORT = 5  # points in the short baseline that absorbs level shifts
SUPPRESS = 12  # points after a high score during which later scores are damped
Z_FLOOR = 3.0  # robust z-scores at or below this map to score 0
Z_SCALE = 3.0  # width of the z to score mapping above Z_FLOOR
DEFAULT_THRESHOLD = 0.6  # score at which a point counts as anomalous (z of about 5.9)
MIN_COVERAGE = 0.6  # share of expected bins that must hold data to judge a series
MAX_FILL_STEPS = 3  # gaps of at most this many bins are interpolated
RUN_Z = 3.0  # |z| that keeps a point inside the anomalous run when looking for its onset
CACHE_KEY = "anomalies"


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


@dataclass(slots=True)
class SeriesAnomaly:
    """The verdict on one series: anomalous or not, when it started and by how much."""

    series_key: str
    service: str
    metric: str
    status: str  # "ok", "anomalous" or "insufficient_data"
    score: float = 0.0
    onset_ts: float | None = None
    peak_ts: float | None = None
    direction: int = 0
    zscore: float = 0.0
    baseline: float = 0.0
    value: float = 0.0
    coverage: float = 0.0
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        return 60.0
    spacing = np.diff(ts)
    spacing = spacing[spacing > 0]
    if not spacing.size:
        return 60.0
    # The median spacing is thrown off by jitter; averaging every interval, each counted as
    # the whole number of median steps it spans, is not, and it stays right across gaps.
    median = float(np.median(spacing))
    steps = np.maximum(np.round(spacing / median), 1.0)
    step = float(spacing.sum() / steps.sum())
    return float(round(step)) if step >= 1.0 else step


def _fill_short_gaps(values: np.ndarray, max_steps: int) -> np.ndarray:
    """Interpolate runs of at most ``max_steps`` NaN bins that have data on both sides."""
    filled = (
        pd.Series(values)
        .interpolate(method="linear", limit=max_steps, limit_area="inside")
        .to_numpy(copy=True)
    )
    # pandas fills the first ``max_steps`` bins of a long gap too; put those back to NaN.
    missing = np.isnan(values)
    if missing.any():
        edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        for start, end in zip(starts, ends, strict=True):
            if end - start > max_steps:
                filled[start:end] = np.nan
    return filled


def prepare(
    series: MetricSeries,
    step: float | None = None,
    start: float | None = None,
    end: float | None = None,
) -> PreparedSeries:
    """Bin ``series`` to a regular grid of ``step`` seconds (the median spacing when None).

    Each bin holds the mean of its samples. ``start`` and ``end`` (epoch seconds) widen the grid
    so that missing data at either edge lowers the coverage.
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


def _z_to_score(z: np.ndarray) -> np.ndarray:
    excess = np.maximum(np.abs(z) - Z_FLOOR, 0.0) / Z_SCALE
    return 1.0 - np.exp(-(excess**2))


def score_details(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Score every column of ``matrix`` (points x series) online; see the module docstring.

    Returns ``score`` (damped, in [0, 1]), ``raw`` (undamped), signed ``z`` and ``baseline``,
    each the shape of ``matrix`` and free of NaN.
    """
    frame = pd.DataFrame(np.asarray(matrix, dtype=np.float64))
    prior = frame.shift(1)
    rolling = prior.rolling(WINDOW, min_periods=MIN_HISTORY)
    median = rolling.median()
    iqr = rolling.quantile(0.75) - rolling.quantile(0.25)
    residual = (frame - median).abs()
    typical = residual.shift(1).rolling(WINDOW, min_periods=MIN_HISTORY).mean()
    short = prior.rolling(SHORT, min_periods=1).median()
    values = frame.to_numpy()
    base = median.to_numpy()
    scale_floor = 1e-9 * np.maximum(np.abs(base), 1.0)
    scale = np.fmax(iqr.to_numpy() / 1.349, 0.5 * 1.2533 * typical.to_numpy())
    scale = np.fmax(np.nan_to_num(scale, nan=0.0), scale_floor)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_long = (values - base) / scale
        z_short = (values - short.to_numpy()) / scale
    z = np.where(np.abs(z_short) < np.abs(z_long), z_short, z_long)
    # A deviation from a perfectly flat baseline has an infinite z; 1000 is plenty to score 1.
    z = np.clip(np.nan_to_num(z, nan=0.0, posinf=1e3, neginf=-1e3), -1e3, 1e3)
    raw = _z_to_score(z)
    recent = pd.DataFrame(raw).shift(1).rolling(SUPPRESS, min_periods=1).max().to_numpy()
    score = raw * (1.0 - np.nan_to_num(recent, nan=0.0))
    return {
        "score": np.clip(score, 0.0, 1.0),
        "raw": raw,
        "z": z,
        "baseline": np.nan_to_num(base, nan=0.0),
    }


def score_online(values: np.ndarray) -> np.ndarray:
    """Return one score in [0, 1] per point, each computed from the points before it only.

    NaN points score 0; a series with fewer than ``MIN_HISTORY`` finite points scores 0
    throughout.
    """
    column = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    if column.size == 0:
        return np.zeros(0)
    return score_details(column)["score"][:, 0]


def _insufficient(
    prepared: PreparedSeries, reason: str, coverage: float | None = None
) -> SeriesAnomaly:
    coverage = prepared.coverage if coverage is None else coverage
    return SeriesAnomaly(
        series_key=prepared.key,
        service=prepared.service,
        metric=prepared.metric,
        status="insufficient_data",
        coverage=round(coverage, 4),
        reason=reason,
    )


def _verdict(
    prepared: PreparedSeries,
    details: dict[str, np.ndarray],
    since: float | None,
    threshold: float,
) -> SeriesAnomaly:
    """Reduce one series' scores in the window starting at ``since`` to a ``SeriesAnomaly``."""
    ts = prepared.timestamps
    first = 0 if since is None else int(np.searchsorted(ts, since, side="left"))
    window = slice(first, ts.size)
    coverage = float(prepared.observed[window].mean()) if first < ts.size else 0.0
    finite = int(np.isfinite(prepared.values).sum())
    if finite < MIN_HISTORY + 1 or coverage < MIN_COVERAGE:
        reason = f"coverage {coverage:.0%}, {finite} points; need {MIN_COVERAGE:.0%}"
        return _insufficient(prepared, reason, coverage)
    score, z = details["score"][window], details["z"][window]
    peak = int(np.argmax(score))
    found = SeriesAnomaly(
        series_key=prepared.key,
        service=prepared.service,
        metric=prepared.metric,
        status="ok",
        score=round(float(score[peak]), 4),
        coverage=round(coverage, 4),
    )
    if score[peak] < threshold:
        found.reason = f"max score {score[peak]:.2f} below {threshold:.2f}"
        return found
    onset = _onset(z, peak)
    absolute = first + peak
    found.status = "anomalous"
    found.onset_ts = float(ts[first + onset])
    found.peak_ts = float(ts[absolute])
    found.zscore = round(float(z[peak]), 3)
    found.direction = 1 if z[peak] > 0 else -1
    found.baseline = float(details["baseline"][absolute])
    found.value = float(np.nan_to_num(prepared.values[absolute]))
    word = "above" if found.direction > 0 else "below"
    found.reason = (
        f"{found.value:.4g} is {abs(found.zscore):.1f} robust sd {word} "
        f"the baseline {found.baseline:.4g}"
    )
    return found


def _onset(z: np.ndarray, peak: int) -> int:
    """Walk back from ``peak`` while points deviate the same way by at least ``RUN_Z``."""
    sign = np.sign(z[peak])
    start = peak
    while start > 0 and np.sign(z[start - 1]) == sign and abs(z[start - 1]) >= RUN_Z:
        start -= 1
    return start


def scan_series(
    series: MetricSeries | PreparedSeries,
    since: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> SeriesAnomaly:
    """Prepare and score one series; judge the points at or after ``since`` (epoch seconds)."""
    prepared = series if isinstance(series, PreparedSeries) else prepare(series)
    if len(prepared) == 0:
        return _insufficient(prepared, "no finite samples")
    details = score_details(prepared.values.reshape(-1, 1))
    details = {name: array[:, 0] for name, array in details.items()}
    return _verdict(prepared, details, since, threshold)


def scan_prepared(
    prepared: list[PreparedSeries],
    since: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, SeriesAnomaly]:
    """Scan many prepared series, scoring those of equal length together as one matrix."""
    verdicts: dict[str, SeriesAnomaly] = {}
    by_length: dict[int, list[PreparedSeries]] = {}
    for item in prepared:
        if len(item) == 0:
            verdicts[item.key] = _insufficient(item, "no finite samples")
        else:
            by_length.setdefault(len(item), []).append(item)
    for group in by_length.values():
        matrix = np.column_stack([item.values for item in group])
        details = score_details(matrix)
        for column, item in enumerate(group):
            own = {name: array[:, column] for name, array in details.items()}
            verdicts[item.key] = _verdict(item, own, since, threshold)
    return verdicts


def scan_all(
    ctx: AnalysisContext,
    threshold: float = DEFAULT_THRESHOLD,
    since: float | None = None,
) -> dict[str, SeriesAnomaly]:
    """Scan every series of the context once per run, caching in ``ctx.cache["anomalies"]``."""
    cached = ctx.cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    prepared = [prepare(series) for series in ctx.series]
    verdicts = scan_prepared(prepared, since=since, threshold=threshold)
    ctx.cache[CACHE_KEY] = verdicts
    ctx.cache["prepared"] = {item.key: item for item in prepared}
    logger.debug(
        "scanned %d series: %d anomalous",
        len(verdicts),
        sum(v.status == "anomalous" for v in verdicts.values()),
    )
    return verdicts
