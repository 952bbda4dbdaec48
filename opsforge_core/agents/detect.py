"""Per-series preparation and online anomaly scoring.

``prepare`` turns a raw ``MetricSeries`` into a regular grid: duplicates merged, samples binned,
short gaps filled, long gaps left as NaN, counters turned into per-second rates.
``score_online`` gives each point a score in [0, 1] computed only from the points before it, so
the same scores come out whether a series is scored live or after the fact. ``scan_series`` and
``scan_all`` reduce the scores to one ``SeriesAnomaly`` per series.

Scoring asks whether a point deviates more than anything seen before it. Per point t:

1. Deviations: the value minus the median of the previous ``WINDOW`` points; the median of the
   last ``SHIFT_POINTS`` points minus the median of the ``WINDOW`` before them (a level shift);
   and, when a period is given and the series repeats well, the value minus the median of the
   same phase in the last ``SEASONS`` periods.
2. Novelty: each deviation divided by the largest deviation of the same sign in the previous
   ``MEMORY`` points, or by ``MIN_Z`` standard deviations of the past deviations if that is
   larger. A ratio u above 1 is a new extreme; the score is ``1 - 1/u``. Spikes as tall as
   earlier spikes therefore score 0, and a flat series that moves at all scores 1.
3. Hold-off: for ``HOLD_OFF`` points after a score of at least ``ALARM``, scores that are not
   more than ``REFIRE`` times that score are set to 0, so one event gives one alarm.

On 28 of NAB's 58 data files (5-minute samples, so a period of 288), this scores 71.0 by NAB's
standard profile with one threshold (``python -m bench.nab``). NOTE: ``WINDOW``,
``SHIFT_POINTS``, ``HOLD_OFF``, ``ALARM``, ``REFIRE`` and ``MIN_Z`` were chosen by a small grid
search on those same files, so that figure is optimistic for unseen data.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import bottleneck as bn
import numpy as np
import pandas as pd

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.models import MetricSeries

logger = logging.getLogger(__name__)

WINDOW = 288  # points of history in the baseline median
MIN_HISTORY = 10  # points of history before any score is given
SHIFT_POINTS = 12  # points in the recent median that detects level shifts
MEMORY = 4032  # points of past deviations a new one is compared with
SEASONS = 3  # past periods whose median is the seasonal baseline
SEASONAL_GAIN = 0.5  # use the seasonal deviation when it is below this share of the plain one
HOLD_OFF = 60  # points after an alarm during which similar scores are dropped
ALARM = 0.1  # score that starts a hold-off (a deviation 11% beyond the previous maximum)
REFIRE = 2.0  # a score this many times the recent alarm still counts during a hold-off
DEFAULT_THRESHOLD = 0.5  # scan threshold: a deviation at least twice the previous maximum
DAY = 86400.0
MIN_COVERAGE = 0.6  # share of expected bins that must hold data to judge a series
MAX_FILL_STEPS = 3  # gaps of at most this many bins are interpolated
MIN_Z = 3.0  # a deviation must also exceed this many robust sd of the baseline window to score
RUN_Z = 3.0  # |robust z| that keeps a point inside the anomalous run when finding its onset
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


def _shift(array: np.ndarray, lag: int) -> np.ndarray:
    """Return ``array`` moved ``lag`` rows later, NaN in the first rows."""
    shifted = np.full_like(array, np.nan)
    if lag < array.shape[0]:
        shifted[lag:] = array[: array.shape[0] - lag]
    return shifted


def _moving(func, array: np.ndarray, window: int, min_count: int) -> np.ndarray:
    """Apply a bottleneck moving-window function down the columns, ignoring NaN."""
    window = max(1, min(window, array.shape[0]))
    return func(array, window, min_count=min(min_count, window), axis=0)


def _past_max(array: np.ndarray) -> np.ndarray:
    """Return the maximum of the previous ``MEMORY`` rows (NaN before ``MIN_HISTORY`` rows)."""
    past = _shift(array, 1)
    if array.shape[0] <= MEMORY:
        # The whole history fits in the memory, so a running maximum is the same and cheaper.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            running = np.fmax.accumulate(past, axis=0)
        counts = np.cumsum(np.isfinite(past), axis=0)
        return np.where(counts >= MIN_HISTORY, running, np.nan)
    return _moving(bn.move_max, past, MEMORY, MIN_HISTORY)


def _novelty(deviation: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Return |deviation| over the largest past deviation of the same sign.

    The divisor is at least ``MIN_Z`` standard deviations of the past deviations, and at least
    ``floor``. The ratio is 0 until ``MIN_HISTORY`` points of history exist.
    """
    past = _shift(deviation, 1)
    # 1.2533 * mean |x| estimates the sd of a normal centred at 0, far cheaper than quantiles.
    sd = 1.2533 * _moving(bn.move_mean, np.abs(past), WINDOW, MIN_HISTORY)
    floor = np.fmax(np.nan_to_num(MIN_Z * sd, nan=0.0), floor)
    # 0.0 * deviation is 0 where the deviation is finite and NaN where it is missing.
    rise = _past_max(np.where(deviation > 0, deviation, 0.0 * deviation))
    fall = _past_max(np.where(deviation < 0, -deviation, 0.0 * deviation))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(
            deviation >= 0,
            deviation / np.maximum(rise, floor),
            -deviation / np.maximum(fall, floor),
        )
    return np.nan_to_num(ratio, nan=0.0, posinf=1e6)


def _seasonal_deviation(values: np.ndarray, plain: np.ndarray, period: int) -> np.ndarray | None:
    """Return the deviation from the same phase of past periods where that fits better."""
    if period < 2 or values.shape[0] <= period + MIN_HISTORY:
        return None
    lags = np.stack([_shift(values, period * k) for k in range(1, SEASONS + 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN phases before one period
        seasonal = np.nanmedian(lags, axis=0)
    deviation = values - seasonal
    typical = _moving(bn.move_mean, _shift(np.abs(deviation), 1), WINDOW, MIN_HISTORY)
    typical_plain = _moving(bn.move_mean, _shift(np.abs(plain), 1), WINDOW, MIN_HISTORY)
    fits = typical < SEASONAL_GAIN * typical_plain
    return np.where(fits, deviation, 0.0)


def _hold_off(raw: np.ndarray) -> np.ndarray:
    recent = np.nan_to_num(_moving(bn.move_max, _shift(raw, 1), HOLD_OFF, 1), nan=0.0)
    held = (recent >= ALARM) & (raw <= REFIRE * recent)
    return np.where(held, 0.0, raw)


def score_details(matrix: np.ndarray, period: int | None = None) -> dict[str, np.ndarray]:
    """Score every column of ``matrix`` (points x series) online; see the module docstring.

    ``period`` is the season length in points (None for no seasonal term). Returns ``score``
    (after the hold-off, in [0, 1]), ``raw`` (before it), ``direction`` (+1 or -1), a robust
    ``z`` against the baseline and the ``baseline`` itself, each shaped like ``matrix`` and
    free of NaN.
    """
    values = np.asarray(matrix, dtype=np.float64)
    baseline = _moving(bn.move_median, _shift(values, 1), WINDOW, MIN_HISTORY)
    floor = 1e-9 * np.maximum(np.abs(np.nan_to_num(baseline)), 1.0)
    plain = values - baseline
    recent = _moving(bn.move_median, values, SHIFT_POINTS, SHIFT_POINTS)
    before = _moving(bn.move_median, _shift(values, SHIFT_POINTS), WINDOW, MIN_HISTORY)
    deviations = [plain, recent - before]
    seasonal = _seasonal_deviation(values, plain, period) if period else None
    if seasonal is not None:
        deviations.append(seasonal)
    best = np.zeros(values.shape)
    direction = np.zeros(values.shape)
    for deviation in deviations:
        ratio = _novelty(deviation, floor)
        wins = ratio > best
        best = np.where(wins, ratio, best)
        direction = np.where(wins, np.sign(deviation), direction)
    raw = 1.0 - 1.0 / np.maximum(best, 1.0)
    scale = 1.2533 * _moving(bn.move_mean, _shift(np.abs(plain), 1), WINDOW, MIN_HISTORY)
    scale = np.fmax(np.nan_to_num(scale, nan=0.0), floor)
    # A deviation from a perfectly flat baseline has an infinite z; 1000 says enough.
    z = np.clip(np.nan_to_num(plain / scale, nan=0.0, posinf=1e3, neginf=-1e3), -1e3, 1e3)
    return {
        "score": np.clip(_hold_off(raw), 0.0, 1.0),
        "raw": raw,
        "direction": direction,
        "z": z,
        "baseline": np.nan_to_num(baseline, nan=0.0),
    }


def score_online(values: np.ndarray, period: int | None = None) -> np.ndarray:
    """Return one score in [0, 1] per point, each computed from the points before it only.

    ``period`` is the season length in points, for example 288 for a daily cycle sampled every
    5 minutes. NaN points score 0, and so do the first ``MIN_HISTORY`` points.
    """
    column = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    if column.size == 0:
        return np.zeros(0)
    return score_details(column, period)["score"][:, 0]


def daily_period(step: float, points: int) -> int | None:
    """Return the points in a day at ``step`` seconds, if ``points`` spans two days or more."""
    if step <= 0 or DAY % step > 1e-6 * DAY:
        return None
    period = int(round(DAY / step))
    return period if points >= 2 * period else None


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
    """Reduce one series' scores in the window starting at ``since`` to a ``SeriesAnomaly``.

    The peak's time, direction, value and baseline are filled in whenever its score is above
    0, even below ``threshold``; ``onset_ts`` only when the series is anomalous.
    """
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
        reason=f"max score {score[peak]:.2f} below {threshold:.2f}",
    )
    if score[peak] <= 0.0:
        return found

    absolute = first + peak
    found.direction = 1 if details["direction"][absolute] >= 0 else -1
    found.peak_ts = float(ts[absolute])
    found.zscore = round(float(z[peak]), 3)
    found.baseline = float(details["baseline"][absolute])
    found.value = float(np.nan_to_num(prepared.values[absolute]))
    if score[peak] < threshold:
        return found

    found.status = "anomalous"
    found.onset_ts = float(ts[first + _onset(z, peak, found.direction)])
    ratio = 1.0 / max(1.0 - float(details["raw"][absolute]), 1e-6)
    word = "above" if found.direction > 0 else "below"
    found.reason = (
        f"{found.value:.4g} against a baseline of {found.baseline:.4g} (robust z "
        f"{found.zscore:.1f}): a deviation {word} {min(ratio, 1e3):.1f} times the largest before"
    )
    return found


def _onset(z: np.ndarray, peak: int, sign: int) -> int:
    """Walk back from ``peak`` while points deviate the ``sign`` way by at least ``RUN_Z``."""
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
    period = daily_period(prepared.step, len(prepared))
    details = score_details(prepared.values.reshape(-1, 1), period)
    details = {name: array[:, 0] for name, array in details.items()}
    return _verdict(prepared, details, since, threshold)


def scan_prepared(
    prepared: list[PreparedSeries],
    since: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, SeriesAnomaly]:
    """Scan many prepared series, scoring those of equal length and period as one matrix."""
    verdicts: dict[str, SeriesAnomaly] = {}
    groups: dict[tuple[int, int | None], list[PreparedSeries]] = {}
    for item in prepared:
        if len(item) == 0:
            verdicts[item.key] = _insufficient(item, "no finite samples")
        else:
            period = daily_period(item.step, len(item))
            groups.setdefault((len(item), period), []).append(item)
    for (_, period), group in groups.items():
        matrix = np.column_stack([item.values for item in group])
        details = score_details(matrix, period)
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
