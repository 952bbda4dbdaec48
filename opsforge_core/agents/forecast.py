"""Trend forecasts of gauges towards a limit: when will the disk be full?

The trend is a Theil-Sen line (the median of pairwise slopes, robust to spikes and to a few
wrong samples) fitted to the recent part of the series. The crossing time comes with a
prediction interval: the early bound uses the upper slope bound of the fit plus 1.96 residual
standard deviations, the late bound the lower slope bound minus the same margin. A trend that
is flat, falling, or not significantly rising gives no crossing.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

from opsforge_core.agents.detect import PreparedSeries, prepare
from opsforge_core.models import MetricSeries

logger = logging.getLogger(__name__)

FIT_POINTS = 360  # most recent points used for the trend
MIN_POINTS = 12
PI_Z = 1.96  # two-sided 95% prediction interval on the residual noise
SLOPE_CONFIDENCE = 0.95
RESET_SD = 8.0  # a drop this many robust sd of the changes may be a reset
RESET_SHARE = 0.5  # and it must also be this share of the range of the values
MAX_AUTOCORRELATION = 0.95  # caps the interval widening at sqrt(39), about 6.2 times
MAX_HORIZON = 365 * 86400.0  # seconds; a crossing further out is reported as no crossing
SLOPE_Z = float(stats.norm.ppf((1.0 - SLOPE_CONFIDENCE) / 2.0))  # negative, about -1.96

# Limits of gauges that exhaust a resource, by metric name. Values are in the metric's own
# unit, so these apply only to percentages (checked in ``default_limit``).
PERCENT_LIMITS: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"disk|filesystem|fs_|volume|storage|inode", re.I), 95.0),
    (re.compile(r"mem|heap|swap", re.I), 95.0),
    (re.compile(r"pool|connection|conn_|thread", re.I), 95.0),
)


@dataclass(slots=True)
class Forecast:
    """A gauge's trend and when it crosses ``limit``, with a 95% band on that time.

    ``status`` is ``crossing`` (an ETA is given), ``breached`` (already at or past the limit),
    ``no_crossing`` (a flat, falling or insignificant trend, or a crossing beyond
    ``MAX_HORIZON``) or ``insufficient_data``. Times are epoch seconds, and ``eta_seconds``
    counts from the last sample. ``latest_ts`` is None when the band's late end is beyond
    ``MAX_HORIZON``.
    """

    series_key: str
    service: str
    metric: str
    limit: float
    status: str
    current: float = 0.0
    slope_per_hour: float = 0.0
    eta_seconds: float | None = None
    crossing_ts: float | None = None
    earliest_ts: float | None = None
    latest_ts: float | None = None
    confidence: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_limit(series: MetricSeries) -> float | None:
    """Return the exhaustion limit for a percentage gauge named like disk, memory or pool use."""
    if series.kind != "gauge":
        return None
    unit = series.unit.lower()
    percent = unit in {"%", "percent", "pct"} or "percent" in series.metric.lower()
    if not percent:
        return None
    for pattern, limit in PERCENT_LIMITS:
        if pattern.search(series.metric):
            return limit
    return None


@lru_cache(maxsize=8)
def _pair_indexes(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def _tie_term(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    k = counts[counts > 1].astype(np.float64)
    return float(np.sum(k * (k - 1.0) * (2.0 * k + 5.0)))


def theil_sen(ts: np.ndarray, vals: np.ndarray) -> tuple[float, float, float]:
    """Return the Theil-Sen slope and its ``SLOPE_CONFIDENCE`` interval as (slope, low, high).

    The values equal ``scipy.stats.theilslopes(vals, ts, alpha=SLOPE_CONFIDENCE)`` (scipy 1.17:
    the interval from Sen (1968), eq. 2.6, with its tie correction). Partial sorts pick the
    three order statistics, where scipy sorts every pairwise slope, and that is most of the
    forecast's time on hundreds of gauges.
    """
    first, second = _pair_indexes(ts.size)
    dx = ts[second] - ts[first]
    keep = dx != 0
    slopes = (vals[second] - vals[first])[keep] / dx[keep]
    count, n = slopes.size, ts.size
    if count == 0:
        return math.nan, math.nan, math.nan
    sigma = math.sqrt((n * (n - 1) * (2 * n + 5) - _tie_term(ts) - _tie_term(vals)) / 18.0)
    upper = min(int(np.round((count - SLOPE_Z * sigma) / 2.0)), count - 1)
    lower = max(int(np.round((count + SLOPE_Z * sigma) / 2.0)) - 1, 0)
    middle = count // 2
    ordered = np.partition(slopes, sorted({lower, upper, middle, max(middle - 1, 0)}))
    if count % 2:
        median = float(ordered[middle])
    else:
        median = 0.5 * float(ordered[middle - 1] + ordered[middle])
    return median, float(ordered[lower]), float(ordered[upper])


def _fit(ts: np.ndarray, vals: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Return (pivot time, pivot value, slope, slope low, slope high, residual sd)."""
    pivot_t = float(np.median(ts))
    slope, low, high = theil_sen(ts, vals)
    pivot_v = float(np.median(vals - slope * (ts - pivot_t)))
    residual = vals - (pivot_v + slope * (ts - pivot_t))
    sd = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    # Theil-Sen's interval assumes independent residuals. Metric noise is autocorrelated,
    # which makes the interval too narrow, so it is widened by sqrt((1 + r) / (1 - r)) for a
    # lag-1 autocorrelation r, the usual effective-sample-size correction.
    widen = _autocorrelation_factor(residual)
    low = slope - widen * (slope - low)
    high = slope + widen * (high - slope)
    return pivot_t, pivot_v, float(slope), float(low), float(high), sd


def _autocorrelation_factor(residual: np.ndarray) -> float:
    centred = residual - residual.mean()
    denominator = float(np.dot(centred, centred))
    if denominator <= 0.0 or centred.size < 3:
        return 1.0
    lag1 = float(np.dot(centred[1:], centred[:-1])) / denominator
    lag1 = min(max(lag1, 0.0), MAX_AUTOCORRELATION)
    return math.sqrt((1.0 + lag1) / (1.0 - lag1))


def _last_reset(vals: np.ndarray) -> int | None:
    """Return the index just after the last sharp drop (a restart or a cleanup), if any.

    A drop is sharp when it exceeds both ``RESET_SD`` robust standard deviations of the
    point-to-point changes and ``RESET_SHARE`` of the range of the values.
    """
    if vals.size < 3:
        return None
    changes = np.diff(vals)
    spread = 1.4826 * float(np.median(np.abs(changes - np.median(changes))))
    size = max(RESET_SD * spread, RESET_SHARE * float(np.ptp(vals)))
    drops = np.flatnonzero(changes < -size)
    if drops.size == 0 or size <= 0.0:
        return None
    return int(drops[-1]) + 1


def _solve(pivot_t: float, pivot_v: float, slope: float, limit: float) -> float | None:
    """Return when the line through (pivot_t, pivot_v) with ``slope`` reaches ``limit``."""
    if slope <= 0:
        return None
    return pivot_t + (limit - pivot_v) / slope


def forecast_crossing(
    series: MetricSeries | PreparedSeries,
    limit: float,
    now: float | None = None,
) -> Forecast:
    """Forecast when a rising gauge reaches ``limit`` (same unit as the series).

    ``now`` (epoch seconds) is where the ETA counts from; the last sample when None.
    """
    prepared = series if isinstance(series, PreparedSeries) else prepare(series)
    result = Forecast(prepared.key, prepared.service, prepared.metric, float(limit), "no_crossing")
    finite = np.isfinite(prepared.values)
    ts, vals = prepared.timestamps[finite][-FIT_POINTS:], prepared.values[finite][-FIT_POINTS:]
    reset = _last_reset(vals)
    if reset is not None:
        # A restart or cleanup starts a new trend: fit only what came after it.
        ts, vals = ts[reset:], vals[reset:]
    if ts.size < MIN_POINTS:
        result.status = "insufficient_data"
        since = " since the last reset" if reset is not None else ""
        result.reason = f"{ts.size} points{since}; need {MIN_POINTS}"
        return result
    pivot_t, pivot_v, slope, low, high, sd = _fit(ts, vals)
    last = float(ts[-1]) if now is None else float(now)
    result.current = float(pivot_v + slope * (last - pivot_t))
    result.slope_per_hour = slope * 3600.0
    if result.current >= limit or float(np.median(vals[-3:])) >= limit:
        result.status = "breached"
        result.eta_seconds = 0.0
        result.crossing_ts = last
        result.confidence = 1.0
        result.reason = f"at {result.current:.4g}, already at or past {limit:.4g}"
        return result
    if slope <= 0 or low <= 0:
        result.reason = _no_trend_reason(slope, low, high)
        return result
    _fill_crossing(result, (pivot_t, pivot_v, slope, low, high, sd), last, float(ts[-1] - ts[0]))
    return result


def _fill_crossing(
    result: Forecast, fit: tuple[float, float, float, float, float, float], last: float, span: float
) -> None:
    """Set the crossing time and its band on ``result`` from a significantly rising fit."""
    pivot_t, pivot_v, slope, low, high, sd = fit
    limit = result.limit
    crossing = _solve(pivot_t, pivot_v, slope, limit)
    if crossing is None or crossing - last > MAX_HORIZON:
        result.reason = (
            f"rising {result.slope_per_hour:.4g}/h but reaches {limit:.4g} only after more "
            f"than {MAX_HORIZON / 86400:.0f} days"
        )
        return
    earliest = _solve(pivot_t, pivot_v + PI_Z * sd, high, limit)
    latest = _solve(pivot_t, pivot_v - PI_Z * sd, low, limit)
    result.status = "crossing"
    result.crossing_ts = crossing
    result.eta_seconds = max(0.0, crossing - last)
    result.earliest_ts = max(last, earliest) if earliest is not None else None
    # A late bound past the horizon means the band is open-ended.
    result.latest_ts = latest if latest is not None and latest - last <= MAX_HORIZON else None
    result.confidence = _confidence(slope, low, high, result.eta_seconds, span)
    result.reason = (
        f"rising {result.slope_per_hour:.4g}/h from {result.current:.4g}; "
        f"reaches {limit:.4g} in {_duration(result.eta_seconds)}"
    )


def _confidence(slope: float, low: float, high: float, eta: float, span: float) -> float:
    """Combine how tight the slope is with how far past the fitted span the crossing lies."""
    tightness = 1.0 - min(1.0, (high - low) / (2.0 * slope))
    reach = 1.0 if eta <= span else span / eta
    return round(max(0.0, min(1.0, tightness * reach)), 3)


def _no_trend_reason(slope: float, low: float, high: float) -> str:
    if slope <= 0:
        return f"trend {slope * 3600:.4g}/h is flat or falling"
    return (
        f"rising {slope * 3600:.4g}/h but the 95% slope interval "
        f"[{low * 3600:.4g}, {high * 3600:.4g}]/h includes zero"
    )


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def forecast_series(series: MetricSeries, limit: float | None = None) -> Forecast | None:
    """Forecast ``series`` against ``limit`` or its default limit; None when it has neither."""
    limit = default_limit(series) if limit is None else limit
    if limit is None or not math.isfinite(limit):
        return None
    return forecast_crossing(series, limit)
