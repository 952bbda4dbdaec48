"""Preparation and online scoring of single series: flat windows, irregular sampling, resets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.agents.detect import (
    MIN_COVERAGE,
    prepare,
    scan_all,
    scan_series,
    score_online,
)
from opsforge_core.models import MetricSeries

T0 = 1_700_000_000.0


def _series(values, step=60.0, kind="gauge", timestamps=None) -> MetricSeries:
    values = np.asarray(values, dtype=float)
    if timestamps is None:
        timestamps = T0 + step * np.arange(values.size)
    return MetricSeries("checkout", "cpu", np.asarray(timestamps, float), values, kind=kind)


def _assert_no_nan(anomaly) -> None:
    for name, value in anomaly.to_dict().items():
        if isinstance(value, float):
            assert math.isfinite(value), name


@pytest.mark.parametrize("level", [0.0, -0.087])
def test_flat_window_scores_zero(level):
    scores = score_online(np.full(60, level))
    assert scores.shape == (60,)
    assert np.all(scores == 0.0)
    anomaly = scan_series(_series([level] * 60))
    assert anomaly.status == "ok"
    assert anomaly.score == 0.0
    assert anomaly.onset_ts is None
    _assert_no_nan(anomaly)


def test_flat_window_step_scores_once():
    values = [5.0] * 59 + [6.0]
    scores = score_online(np.array(values))
    assert np.flatnonzero(scores > 0).tolist() == [59]
    assert scores[59] == pytest.approx(1.0)
    again = score_online(np.array(values))
    assert np.array_equal(scores, again)
    anomaly = scan_series(_series(values))
    assert anomaly.status == "anomalous"
    assert anomaly.onset_ts == T0 + 59 * 60
    assert anomaly.peak_ts == T0 + 59 * 60
    assert anomaly.direction == 1
    assert anomaly.baseline == 5.0
    assert anomaly.value == 6.0
    _assert_no_nan(anomaly)


def test_level_shift_scores_only_at_step():
    scores = score_online(np.array([5.0] * 30 + [6.0] * 30))
    assert np.flatnonzero(scores > 0).tolist() == [30]


def test_all_nan_window_insufficient_data():
    scores = score_online(np.full(60, np.nan))
    assert np.all(scores == 0.0)
    anomaly = scan_series(_series([np.nan] * 60))
    assert anomaly.status == "insufficient_data"
    assert anomaly.score == 0.0
    assert anomaly.coverage == 0.0
    _assert_no_nan(anomaly)


def test_score_online_uses_only_past_points():
    rng = np.random.default_rng(7)
    base = rng.normal(50.0, 3.0, 400)
    changed = base.copy()
    changed[250:] = rng.normal(90.0, 10.0, 150)
    first, second = score_online(base), score_online(changed)
    assert np.array_equal(first[:250], second[:250])
    assert np.all((first >= 0.0) & (first <= 1.0))


def test_noise_is_rarely_flagged():
    rng = np.random.default_rng(11)
    scores = score_online(rng.normal(0.0, 1.0, 5000))
    assert (scores >= 0.6).sum() <= 2


def _irregular_cpu(rng, outage=True):
    """Two hours of CPU sampled every 60 s give or take 3 s, scraped twice at minute 10."""
    minutes = np.arange(120)
    times = T0 + minutes * 60.0 + rng.uniform(-3.0, 3.0, minutes.size)
    values = 40.0 + rng.normal(0.0, 1.0, minutes.size)
    keep = ~((minutes >= 50) & (minutes < 70)) if outage else np.ones(minutes.size, bool)
    times, values = times[keep], values[keep]
    values[5] = np.nan
    times = np.append(times, times[10])
    values = np.append(values, values[10] + 2.0)
    return times, values


def test_irregular_sampling_binned_with_long_gap():
    rng = np.random.default_rng(3)
    times, values = _irregular_cpu(rng)
    prepared = prepare(_series(values, timestamps=times))
    assert prepared.step == pytest.approx(60.0, abs=3.0)
    assert len(prepared) == 120
    assert prepared.duplicates_merged == 1
    assert prepared.values[10] == pytest.approx(values[10] + 1.0)
    gap = prepared.values[50:70]
    assert np.all(np.isnan(gap))
    assert np.all(np.isfinite(prepared.values[:50]))
    assert np.all(np.isfinite(prepared.values[70:]))
    assert not prepared.observed[5]
    assert prepared.coverage == pytest.approx(99 / 120)


def test_irregular_sampling_gap_not_anomalous():
    rng = np.random.default_rng(4)
    times, values = _irregular_cpu(rng)
    anomaly = scan_series(_series(values, timestamps=times))
    assert anomaly.status == "ok"
    assert anomaly.coverage == pytest.approx(99 / 120)
    _assert_no_nan(anomaly)


def test_low_coverage_gives_insufficient_data():
    rng = np.random.default_rng(5)
    times = T0 + np.arange(0, 120, 4) * 60.0 + rng.uniform(-3.0, 3.0, 30)
    values = 40.0 + rng.normal(0.0, 1.0, 30)
    values[-1] = 400.0
    anomaly = scan_series(_series(values, timestamps=times), threshold=0.6)
    prepared = prepare(_series(values, timestamps=times), step=60.0)
    assert prepared.coverage < MIN_COVERAGE
    low = scan_series(prepared)
    assert low.status == "insufficient_data"
    assert low.coverage < MIN_COVERAGE
    assert anomaly.status == "anomalous"


def test_counter_reset_gives_rate_not_negative():
    counts = np.array([100.0, 160.0, 220.0, 280.0, 40.0, 100.0, 160.0])
    prepared = prepare(_series(counts, kind="counter"))
    assert prepared.counter_resets == 1
    assert prepared.values.tolist() == pytest.approx([1.0, 1.0, 1.0, 40.0 / 60.0, 1.0, 1.0])
    assert np.all(prepared.values >= 0.0)


def test_scan_all_caches_per_context():
    rng = np.random.default_rng(9)
    steady = _series(rng.normal(10.0, 1.0, 200))
    jump = rng.normal(10.0, 1.0, 200)
    jump[150:] += 25.0
    shifted = MetricSeries("payments", "latency", steady.timestamps, jump)
    ctx = AnalysisContext(alerts=[], series=[steady, shifted])
    verdicts = scan_all(ctx)
    assert ctx.cache["anomalies"] is verdicts
    assert scan_all(ctx) is verdicts
    assert verdicts["checkout/cpu"].status == "ok"
    assert verdicts["payments/latency"].status == "anomalous"
    assert verdicts["payments/latency"].onset_ts == T0 + 150 * 60


def test_short_gap_interpolated():
    values = np.arange(20, dtype=float)
    times = T0 + 60.0 * np.arange(20)
    keep = np.ones(20, bool)
    keep[[7, 8]] = False
    prepared = prepare(_series(values[keep], timestamps=times[keep]))
    assert len(prepared) == 20
    assert prepared.values[7] == pytest.approx(7.0)
    assert prepared.values[8] == pytest.approx(8.0)
    assert not prepared.observed[7]
    assert prepared.coverage == pytest.approx(18 / 20)


def test_seasonal_scores_use_only_past_points():
    rng = np.random.default_rng(12)
    period = 48
    cycle = np.where(np.arange(period * 6) % period < period // 2, 20.0, 80.0)
    base = cycle + rng.normal(0.0, 1.0, cycle.size)
    changed = base.copy()
    changed[200:] = 50.0
    first = score_online(base, period=period)
    second = score_online(changed, period=period)
    assert np.array_equal(first[:200], second[:200])
    # The first rise is new to the detector; after one full cycle the wave is normal.
    assert first[period:].max() < 0.5
    assert second[200:].max() >= 0.5


def test_seasonal_missing_phase_detected():
    # A daily square wave stays low on the fourth day, which only the seasonal term detects.
    period = 48
    cycle = np.where(np.arange(period * 5) % period < period // 2, 20.0, 80.0)
    values = cycle + np.random.default_rng(13).normal(0.0, 1.0, cycle.size)
    values[3 * period + period // 2 : 4 * period] = 20.0
    scores = score_online(values, period=period)
    plain = score_online(values)
    assert scores[3 * period + period // 2 :].max() >= 0.5
    assert plain[3 * period + period // 2 :].max() < 0.5


def test_below_threshold_reports_peak():
    values = np.concatenate([np.random.default_rng(14).normal(10.0, 1.0, 100), [15.0]])
    anomaly = scan_series(_series(values), threshold=0.99)
    assert anomaly.status == "ok"
    assert 0.0 < anomaly.score < 0.99
    assert anomaly.peak_ts == T0 + 100 * 60
    assert anomaly.direction == 1
    assert anomaly.onset_ts is None


def test_scan_all_other_threshold_rescans():
    rng = np.random.default_rng(10)
    values = np.concatenate([rng.normal(10.0, 1.0, 100), [18.0]])
    ctx = AnalysisContext(alerts=[], series=[_series(values)])
    default = scan_all(ctx)
    strict = scan_all(ctx, threshold=0.999)
    assert default["checkout/cpu"].status == "anomalous"
    assert strict["checkout/cpu"].status == "ok"
    assert ctx.cache["anomalies"] is default
