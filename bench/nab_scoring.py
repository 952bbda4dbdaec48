"""Scoring of the Numenta Anomaly Benchmark (NAB), standard profile.

Rules, as NAB defines them (numenta/NAB, ``nab/sweeper.py``):

* The first ``min(floor(0.15 * rows), 750)`` rows of a file are a probation period and are not
  scored. A window is counted only if at least one of its rows is scored.
* A row whose score is at or above the threshold is a detection.
* Inside a labelled window only the earliest detection counts. It earns
  ``scaled_sigmoid(position) / scaled_sigmoid(-1)`` times the true positive weight, where
  ``position = -(right - i + 1) / width`` runs from -1 at the left edge to about 0 at the right.
* A window without a detection costs the false negative weight (1.0).
* Every detection outside a window costs ``fp_weight * scaled_sigmoid(distance)``. The
  ``distance`` is how far past the previous window's right edge the row lies, in window widths
  of ``width - 1`` rows. With no previous window the cost is the full ``fp_weight``.
* One threshold is chosen for the whole corpus: the one that maximizes the summed raw score.
* The reported score is ``100 * (raw - null) / (perfect - null)``. The null detector never fires
  (every window costs 1); the perfect one fires once at the first scored row of every window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STANDARD_PROFILE = {"tp_weight": 1.0, "fp_weight": 0.11, "fn_weight": 1.0}
PROBATION_SHARE = 0.15
PROBATION_MAX_ROWS = 750


def scaled_sigmoid(position: float) -> float:
    """Return the NAB weight in [-1, 1) of a detection at a relative ``position``."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_rows(n_rows: int) -> int:
    return int(min(math.floor(PROBATION_SHARE * n_rows), PROBATION_SHARE * 5000))


@dataclass
class FileRows:
    """The rows of one data file ready for the sweep.

    ``weight[i]`` is what a detection at row i earns, positive in a window and negative outside.
    ``window[i]`` is the index of the window that contains row i, or -1. ``scored[i]`` is False
    in the probation period. ``windows`` counts windows that contain at least one scored row.
    """

    name: str
    scores: np.ndarray
    weight: np.ndarray
    window: np.ndarray
    scored: np.ndarray
    windows: int = 0
    perfect: float = 0.0
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))


def label_rows(
    name: str,
    timestamps: np.ndarray,
    scores: np.ndarray,
    windows: list[tuple[float, float]],
    profile: dict[str, float] = STANDARD_PROFILE,
) -> FileRows:
    """Compute each row's detection weight for one file with labelled ``windows``.

    ``timestamps`` and the window limits are epoch seconds; a window spans the rows whose
    timestamps lie within its limits, inclusive.
    """
    n = len(timestamps)
    max_tp = scaled_sigmoid(-1.0)
    weight = np.empty(n)
    window = np.full(n, -1, dtype=np.int64)
    spans = []
    for start, end in sorted(windows):
        rows = np.flatnonzero((timestamps >= start) & (timestamps <= end))
        if rows.size:
            spans.append((int(rows[0]), int(rows[-1])))
    previous: tuple[int, int] | None = None  # (right edge, width) of the last window passed
    span_index = 0
    i = 0
    while i < n:
        if span_index < len(spans) and i == spans[span_index][0]:
            left, right = spans[span_index]
            width = right - left + 1
            for row in range(left, right + 1):
                position = -(right - row + 1) / width
                weight[row] = scaled_sigmoid(position) * profile["tp_weight"] / max_tp
                window[row] = span_index
            previous = (right, width)
            span_index += 1
            i = right + 1
            continue
        if previous is None:
            distance = 3.0
        else:
            distance = abs(previous[0] - i) / max(previous[1] - 1, 1)
        weight[i] = scaled_sigmoid(distance) * profile["fp_weight"]
        i += 1
    scored = np.arange(n) >= probation_rows(n)
    counted = {int(w) for w in window[scored] if w >= 0}
    perfect = 0.0
    for index in counted:
        first = int(np.flatnonzero((window == index) & scored)[0])
        perfect += weight[first]
    labels = (window >= 0).astype(np.int8)
    return FileRows(name, np.asarray(scores, float), weight, window, scored, len(counted), perfect,
                    labels)  # fmt: skip


@dataclass
class SweepResult:
    """The best corpus-wide threshold and the scores it gives."""

    threshold: float
    raw: float
    null: float
    perfect: float
    score: float
    windows: int
    per_file: dict[str, dict[str, float]]


def sweep(files: list[FileRows], fn_weight: float = 1.0) -> SweepResult:
    """Try every distinct score as the threshold and keep the one with the best summed raw."""
    scores, weights, window_ids = [], [], []
    offset = 0
    total_windows = 0
    for item in files:
        mask = item.scored
        ids = item.window[mask]
        scores.append(item.scores[mask])
        weights.append(item.weight[mask])
        window_ids.append(np.where(ids >= 0, ids + offset, -1))
        offset += int(item.window.max(initial=-1)) + 1
        total_windows += item.windows
    all_scores = np.concatenate(scores)
    all_weights = np.concatenate(weights)
    all_windows = np.concatenate(window_ids)
    order = np.argsort(-all_scores, kind="stable")

    null = -fn_weight * total_windows
    best_window = np.full(max(offset, 1), -fn_weight)
    total = null
    best = (null, math.inf)
    ordered_scores = all_scores[order]
    for position, row in enumerate(order):
        window = all_windows[row]
        if window < 0:
            total += all_weights[row]
        elif all_weights[row] > best_window[window]:
            total += all_weights[row] - best_window[window]
            best_window[window] = all_weights[row]
        # A threshold sits between distinct scores: evaluate once every tie has been added.
        last_of_tie = (
            position + 1 == order.size or ordered_scores[position + 1] != ordered_scores[position]
        )
        if last_of_tie and total > best[0]:
            best = (total, float(ordered_scores[position]))

    perfect = sum(item.perfect for item in files)
    raw, threshold = best
    normalized = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    per_file = {item.name: file_counts(item, threshold, fn_weight) for item in files}
    return SweepResult(threshold, raw, null, perfect, normalized, total_windows, per_file)


def file_counts(item: FileRows, threshold: float, fn_weight: float = 1.0) -> dict[str, float]:
    """Return one file's raw score and detection counts at ``threshold``."""
    detected = item.scored & (item.scores >= threshold)
    outside = detected & (item.window < 0)
    raw = float(item.weight[outside].sum())
    hits = 0
    for index in {int(w) for w in item.window[item.scored] if w >= 0}:
        rows = detected & (item.window == index)
        if rows.any():
            hits += 1
            raw += float(item.weight[rows].max())
        else:
            raw -= fn_weight
    return {
        "raw": round(raw, 4),
        "windows": item.windows,
        "detected_windows": hits,
        "false_positives": int(outside.sum()),
    }
