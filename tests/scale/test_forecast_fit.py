"""The fast Theil-Sen fit of the forecasts against scipy's reference implementation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from opsforge_core.agents.forecast import SLOPE_CONFIDENCE, theil_sen

START = 1.7e9


def _reference(ts: np.ndarray, vals: np.ndarray) -> tuple[float, float, float]:
    result = stats.theilslopes(vals, ts, alpha=SLOPE_CONFIDENCE)
    return float(result[0]), float(result[2]), float(result[3])


@pytest.mark.parametrize("n", [12, 13, 60, 361])
def test_theil_sen_matches_scipy_on_regular_grid(n: int) -> None:
    rng = np.random.default_rng(n)
    ts = START + 60.0 * np.arange(n)
    vals = np.cumsum(rng.normal(size=n)) + 0.02 * np.arange(n)
    slope, low, high = theil_sen(ts, vals)
    ref_slope, ref_low, ref_high = _reference(ts, vals)
    assert slope == pytest.approx(ref_slope, rel=1e-12)
    assert low == pytest.approx(ref_low, rel=1e-12)
    assert high == pytest.approx(ref_high, rel=1e-12)


def test_theil_sen_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(3)
    # Repeated timestamps drop pairs; rounded values repeat and change the tie correction.
    ts = np.sort(rng.choice(START + 60.0 * np.arange(40), size=80))
    vals = np.round(np.cumsum(rng.normal(size=80)))
    slope, low, high = theil_sen(ts, vals)
    ref_slope, ref_low, ref_high = _reference(ts, vals)
    assert slope == pytest.approx(ref_slope, rel=1e-12)
    assert low == pytest.approx(ref_low, rel=1e-12)
    assert high == pytest.approx(ref_high, rel=1e-12)


def test_theil_sen_exact_line_has_zero_width() -> None:
    ts = START + 60.0 * np.arange(30)
    vals = 10.0 + 0.5 * (ts - START)
    slope, low, high = theil_sen(ts, vals)
    assert slope == pytest.approx(0.5)
    assert low == pytest.approx(0.5)
    assert high == pytest.approx(0.5)


def test_theil_sen_identical_timestamps_is_nan() -> None:
    ts = np.full(20, START)
    vals = np.arange(20.0)
    assert all(np.isnan(value) for value in theil_sen(ts, vals))
