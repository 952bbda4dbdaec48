"""The NAB standard-profile scorer on hand-built files with known scores."""

from __future__ import annotations

import numpy as np
import pytest

from bench.nab_scoring import label_rows, probation_rows, scaled_sigmoid, sweep

STEP = 300.0
ROWS = 1000
TS = np.arange(ROWS) * STEP
WINDOWS = [(TS[400], TS[449]), (TS[700], TS[749])]


def _scores(*rows: int) -> np.ndarray:
    scores = np.zeros(ROWS)
    scores[list(rows)] = 1.0
    return scores


def test_scaled_sigmoid_edges():
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.0) == -1.0
    assert probation_rows(4032) == 604
    assert probation_rows(10000) == 750


def test_perfect_detector_scores_100():
    result = sweep([label_rows("a.csv", TS, _scores(400, 700), WINDOWS)])
    assert result.score == pytest.approx(100.0)
    assert result.raw == pytest.approx(2.0)
    assert result.null == -2.0


def test_silent_detector_scores_0():
    result = sweep([label_rows("a.csv", TS, np.zeros(ROWS), WINDOWS)])
    assert result.score == pytest.approx(0.0)
    assert result.raw == pytest.approx(-2.0)


def test_late_detection_and_false_positive():
    # Halfway into each window: position -0.5 earns 2*sigmoid(2.5)-1 over 2*sigmoid(5)-1.
    # Row 900 is more than three window widths past the second window: a full 0.11 cost.
    result = sweep([label_rows("a.csv", TS, _scores(425, 725, 900), WINDOWS)])
    half = scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0)
    assert result.raw == pytest.approx(2 * half - 0.11)
    assert result.score == pytest.approx(100 * (2 * half - 0.11 + 2) / 4)
    counts = result.per_file["a.csv"]
    assert counts["detected_windows"] == 2
    assert counts["false_positives"] == 1


def test_only_earliest_detection_counts():
    both = sweep([label_rows("a.csv", TS, _scores(400, 420, 700), WINDOWS)])
    assert both.raw == pytest.approx(2.0)


def test_false_positive_near_window_is_cheap():
    near = sweep([label_rows("a.csv", TS, _scores(400, 452, 700), WINDOWS)]).per_file["a.csv"]
    far = sweep([label_rows("a.csv", TS, _scores(400, 500, 700), WINDOWS)]).per_file["a.csv"]
    assert near["false_positives"] == 1
    assert far["false_positives"] == 1
    assert 2.0 - 0.11 < far["raw"] < near["raw"] < 2.0


def test_probation_rows_ignored():
    early = sweep([label_rows("a.csv", TS, _scores(10, 400, 700), WINDOWS)])
    assert early.raw == pytest.approx(2.0)


def test_threshold_shared_across_files():
    # File b fires everywhere at 0.5; the best single threshold must skip it and keep a.
    noisy = np.full(ROWS, 0.5)
    files = [
        label_rows("a.csv", TS, _scores(400, 700) * 0.9, WINDOWS),
        label_rows("b.csv", TS, noisy, []),
    ]
    result = sweep(files)
    assert result.threshold == pytest.approx(0.9)
    assert result.score == pytest.approx(100.0)
