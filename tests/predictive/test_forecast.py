"""Trend forecasts to a limit: a linear disk fill with a known crossing, and flat or falling use."""

from __future__ import annotations

import numpy as np
import pytest

from opsforge_core.agents.forecast import default_limit, forecast_crossing, forecast_series
from opsforge_core.models import MetricSeries

T0 = 1_700_000_000.0


def _disk(values, step=300.0) -> MetricSeries:
    values = np.asarray(values, float)
    ts = T0 + step * np.arange(values.size)
    return MetricSeries("db", "disk_used_percent", ts, values, unit="%")


def test_linear_fill_crossing_time():
    # 40% + 1.5 points/h, sampled for 24 h: reaches 95% at 36.67 h, 12.67 h after the last point.
    rng = np.random.default_rng(0)
    hours = np.arange(288) * 300.0 / 3600.0
    series = _disk(40.0 + 1.5 * hours + rng.normal(0.0, 0.4, hours.size))
    result = forecast_series(series)
    true_crossing = T0 + (95.0 - 40.0) / 1.5 * 3600.0
    assert result is not None
    assert result.status == "crossing"
    assert result.limit == 95.0
    assert result.slope_per_hour == pytest.approx(1.5, rel=0.03)
    assert result.crossing_ts == pytest.approx(true_crossing, abs=0.03 * 36.67 * 3600)
    assert result.earliest_ts <= true_crossing <= result.latest_ts
    assert result.eta_seconds == pytest.approx(true_crossing - series.timestamps[-1], rel=0.1)
    assert result.confidence > 0.5


def test_flat_usage_no_crossing():
    rng = np.random.default_rng(1)
    result = forecast_crossing(_disk(60.0 + rng.normal(0.0, 0.5, 288)), 95.0)
    assert result.status == "no_crossing"
    assert result.eta_seconds is None
    assert result.crossing_ts is None


def test_falling_usage_no_crossing():
    result = forecast_crossing(_disk(np.linspace(80.0, 50.0, 288)), 95.0)
    assert result.status == "no_crossing"
    assert result.slope_per_hour < 0


def test_usage_past_limit_breached():
    result = forecast_crossing(_disk(np.linspace(90.0, 97.0, 100)), 95.0)
    assert result.status == "breached"
    assert result.eta_seconds == 0.0


def test_short_series_insufficient_data():
    result = forecast_crossing(_disk([50.0, 51.0, 52.0]), 95.0)
    assert result.status == "insufficient_data"


def test_default_limit_percent_gauges_only():
    assert default_limit(_disk([1.0])) == 95.0
    memory = MetricSeries("api", "memory_percent", np.array([T0]), np.array([1.0]))
    assert default_limit(memory) == 95.0
    latency = MetricSeries("api", "latency_ms", np.array([T0]), np.array([1.0]), unit="ms")
    assert default_limit(latency) is None


def test_crossing_beyond_horizon_not_reported():
    # 0.01 points a day from 50%: the limit is more than ten years away.
    rng = np.random.default_rng(3)
    days = np.arange(2000) * 300.0 / 86400.0
    result = forecast_crossing(_disk(50.0 + 0.01 * days + rng.normal(0.0, 0.001, days.size)), 95.0)
    assert result.status == "no_crossing"
    assert result.crossing_ts is None
    assert "365 days" in result.reason


def test_far_crossing_low_confidence():
    # 0.02 points an hour from 50%, 30 hours of data: the limit is about 85 days away.
    rng = np.random.default_rng(4)
    hours = np.arange(360) * 300.0 / 3600.0
    series = _disk(50.0 + 0.02 * hours + rng.normal(0.0, 0.3, hours.size))
    result = forecast_crossing(series, 95.0)
    assert result.status == "crossing"
    assert result.eta_seconds / 86400 == pytest.approx(45.0 / 0.02 / 24, rel=0.15)
    assert result.earliest_ts < result.crossing_ts < result.latest_ts
    assert result.confidence < 0.1


def test_restart_fits_new_cycle():
    # A leak of 3 points an hour restarted 4 hours ago from 97% down to 40%.
    rng = np.random.default_rng(5)
    hours = np.arange(240) * 300.0 / 3600.0
    values = np.where(hours < 16.0, 49.0 + 3.0 * hours, 40.0 + 3.0 * (hours - 16.0))
    series = _disk(values + rng.normal(0.0, 0.3, hours.size))
    result = forecast_crossing(series, 95.0)
    restart = T0 + 16.0 * 3600.0
    assert result.status == "crossing"
    assert result.slope_per_hour == pytest.approx(3.0, rel=0.1)
    assert result.crossing_ts == pytest.approx(restart + 55.0 / 3.0 * 3600.0, abs=1800.0)


def test_restart_too_recent_insufficient():
    values = np.concatenate([np.linspace(50.0, 97.0, 100), np.full(5, 40.0)])
    result = forecast_crossing(_disk(values), 95.0)
    assert result.status == "insufficient_data"
    assert "since the last reset" in result.reason
