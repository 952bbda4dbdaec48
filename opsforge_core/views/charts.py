"""Plotly figures for the console: metrics per service, one anomaly, a forecast, the graph.

Every builder takes plain data (models, dicts, arrays) and returns a ``go.Figure``. Times go to
the browser as UTC wall-clock values, and the axis titles state it. Each figure sends at most
``max_points`` data points: long series are cut down by ``downsample_minmax``.

Plotly renders a small set of HTML tags in titles and hover text, so every string that came
from an alert, a label or a service name passes through ``html.escape`` first.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from opsforge_core.models import SEVERITY_RANK, MetricSeries
from opsforge_core.views.tables import AlertFields
from opsforge_core.views.text import shorten

# Points per figure. Traces are SVG, not WebGL: at this size SVG draws fast, and a browser
# without a GPU renders WebGL in software, which blocked clicks while the Live page refreshed.
MAX_POINTS = 5000
# Severity colours shared by the alert strip and the tables' legend.
SEVERITY_COLORS = {
    "critical": "#d62728",
    "high": "#ff7f0e",
    "warning": "#e6b800",
    "info": "#1f77b4",
}
TIME_AXIS_TITLE = "time (UTC)"


def plain(text: object) -> str:
    """Escape ``text`` for Plotly titles, labels and hover text."""
    return html.escape("" if text is None else str(text), quote=True)


def to_datetime64(timestamps: np.ndarray) -> np.ndarray:
    """Convert epoch seconds (UTC) to naive ``datetime64[ms]`` values, which Plotly shows as is."""
    millis = np.round(np.asarray(timestamps, dtype=np.float64) * 1000.0).astype(np.int64)
    return millis.astype("datetime64[ms]")


def downsample_minmax(
    x: np.ndarray, y: np.ndarray, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a series to at most ``max_points`` points, keeping each bucket's minimum and maximum.

    Points are split into equal-count buckets in time order. Every bucket keeps its lowest and
    highest sample in their original order, so spikes and dips survive. A bucket with no finite
    value keeps one NaN point, so a gap in the data stays a gap in the line.
    """
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n <= max_points:
        return x, y
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    bucket_size = int(np.ceil(n / (max_points // 2)))
    buckets = int(np.ceil(n / bucket_size))
    padded = np.full(buckets * bucket_size, np.nan)
    padded[:n] = y
    grid = padded.reshape(buckets, bucket_size)
    finite = np.isfinite(grid)
    empty = ~finite.any(axis=1)
    low = np.where(finite, grid, np.inf).argmin(axis=1)
    high = np.where(finite, grid, -np.inf).argmax(axis=1)
    offsets = np.arange(buckets) * bucket_size
    first = offsets + np.minimum(low, high)
    second = offsets + np.maximum(low, high)
    # An all-NaN bucket keeps its first index (a NaN sample); a flat bucket keeps one point.
    first[empty] = offsets[empty]
    keep_second = (~empty) & (second != first)
    indexes = np.concatenate([first, second[keep_second]])
    indexes = np.unique(indexes[indexes < n])
    return x[indexes], y[indexes]


def counter_rate(series: MetricSeries) -> MetricSeries:
    """Turn a counter into its per-second rate, so a chart shows load rather than a ramp.

    A drop in the counter is a restart, so the rate after it is the new value over the step.
    The rate keeps the counter's key, so anomaly marks found for the counter still apply.
    """
    if series.kind != "counter" or len(series) < 2:
        return series
    elapsed = np.diff(series.timestamps)
    growth = np.diff(series.values)
    growth = np.where(growth >= 0, growth, series.values[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(elapsed > 0, growth / elapsed, np.nan)
    unit = f"{series.unit}/s" if series.unit else "per second"
    return MetricSeries(series.service, series.metric, series.timestamps[1:], rate, unit, "rate")


def count_points(figure: go.Figure) -> int:
    """Count the data points of every trace in ``figure`` (what is sent to the browser)."""
    total = 0
    for trace in figure.data:
        xs = getattr(trace, "x", None)
        total += 0 if xs is None else len(xs)
    return total


def _nearest_value(series: MetricSeries, ts: float) -> float | None:
    if len(series) == 0:
        return None
    index = int(np.clip(np.searchsorted(series.timestamps, ts), 0, len(series) - 1))
    if index > 0 and abs(series.timestamps[index - 1] - ts) < abs(series.timestamps[index] - ts):
        index -= 1
    value = float(series.values[index])
    return value if np.isfinite(value) else None


def _anomaly_marks(series: MetricSeries, anomaly: Mapping[str, Any]) -> list[tuple[float, str]]:
    """Return (timestamp, label) pairs to mark for an anomalous series: onset, then peak."""
    if anomaly.get("status") != "anomalous":
        return []
    marks = []
    for field, label in (("onset_ts", "onset"), ("peak_ts", "peak")):
        ts = anomaly.get(field)
        if ts is not None and all(ts != seen for seen, _ in marks):
            marks.append((float(ts), label))
    return marks


def _alert_strips(alerts: Sequence[AlertFields], budget: int) -> list[dict[str, Any]]:
    """Build the alert-start markers, one row per severity, thinned to ``budget`` points.

    Each severity gets its own trace with one marker colour, because Plotly (7.1) validates a
    list of colours one by one, which took about 9 ms for 1,000 markers.
    """
    ordered = sorted(alerts, key=lambda a: a.starts_at)
    if len(ordered) > budget:
        step = len(ordered) / budget
        ordered = [ordered[int(i * step)] for i in range(budget)]
    by_severity: dict[str, list[AlertFields]] = {}
    for alert in ordered:
        by_severity.setdefault(alert.severity, []).append(alert)
    # Worse severities come later, so their markers are drawn on top.
    severities = sorted(by_severity, key=lambda s: (SEVERITY_RANK.get(s, -1), s))
    return [_strip(severity, by_severity[severity]) for severity in severities]


def _strip(severity: str, alerts: list[AlertFields]) -> dict[str, Any]:
    return {
        "type": "scatter",
        "x": to_datetime64(np.array([a.starts_at.timestamp() for a in alerts])),
        "y": [severity] * len(alerts),
        "mode": "markers",
        "marker": {
            "symbol": "triangle-down",
            "size": 9,
            "color": SEVERITY_COLORS.get(severity, "#7f7f7f"),
        },
        "text": [plain(f"{a.name} ({a.status}): {shorten(a.summary, 80)}") for a in alerts],
        "hovertemplate": "%{x|%H:%M:%S} UTC<br>%{text}<extra>alert start</extra>",
        "name": "alert starts",
        "showlegend": False,
    }


def service_figure(
    service: str,
    series: Sequence[MetricSeries],
    anomalies: Mapping[str, Mapping[str, Any]] | None = None,
    alerts: Sequence[AlertFields] = (),
    max_points: int = MAX_POINTS,
) -> go.Figure:
    """Draw every metric of one service on a shared UTC time axis.

    The top row shows alert start times by severity. Each metric gets its own row with its
    anomaly onset and peak marked, counters as per-second rates. ``anomalies`` maps series keys
    to ``SeriesAnomaly`` dicts.
    """
    anomalies = anomalies or {}
    ordered = sorted((counter_rate(s) for s in series), key=lambda s: s.metric)
    rows = 1 + len(ordered)
    titles = ["alert starts"] + [
        plain(f"{s.metric} ({s.unit})" if s.unit else s.metric) for s in ordered
    ]
    layout = stacked_layout(titles, [0.5] + [1.0] * len(ordered), min(0.06, 0.3 / rows))
    traces: list[dict[str, Any]] = []
    alert_budget = min(len(alerts), max_points // 5)
    for strip in _alert_strips(alerts, alert_budget):
        traces.append(_on_row(strip, 1))
    marks = {s.key: _anomaly_marks(s, anomalies.get(s.key, {})) for s in ordered}
    mark_count = sum(len(m) for m in marks.values())
    per_series = max(2, (max_points - alert_budget - mark_count) // max(1, len(ordered)))
    for row, item in enumerate(ordered, start=2):
        x, y = downsample_minmax(item.timestamps, item.values, per_series)
        line = {
            "type": "scatter",
            "x": to_datetime64(x),
            "y": y,
            "mode": "lines",
            "name": plain(item.metric),
            "line": {"width": 1.4},
            "showlegend": False,
            "hovertemplate": "%{x|%Y-%m-%d %H:%M:%S} UTC<br>%{y:.4g}<extra></extra>",
        }
        traces.append(_on_row(line, row))
        if marks[item.key]:
            traces.append(_on_row(_mark_trace(item, marks[item.key]), row))
    layout["yaxis"].update(categoryorder="array", categoryarray=_severity_order(), fixedrange=True)
    layout[_axis_name("x", rows)]["title"] = {"text": TIME_AXIS_TITLE}
    layout.update(
        title={"text": plain(service)},
        height=110 + 150 * len(ordered),
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
        hovermode="closest",
    )
    # One validated construction. Building with make_subplots and add_trace validates the
    # layout again on every call and took about three times as long with Plotly 7.1.
    return go.Figure(data=traces, layout=layout)


def _axis_name(letter: str, row: int) -> str:
    return f"{letter}axis" if row == 1 else f"{letter}axis{row}"


def _on_row(trace: dict[str, Any], row: int) -> dict[str, Any]:
    trace["xaxis"] = "x" if row == 1 else f"x{row}"
    trace["yaxis"] = "y" if row == 1 else f"y{row}"
    return trace


def stacked_layout(titles: Sequence[str], heights: Sequence[float], spacing: float) -> dict:
    """Build the layout of one column of rows that share the bottom row's time axis.

    The plain dict equals the layout of ``plotly.subplots.make_subplots(rows, 1,
    shared_xaxes=True, vertical_spacing=spacing, subplot_titles=titles, row_heights=heights)``
    without its template, and a test compares the two on the installed Plotly (7.1).
    ``titles`` and ``heights`` are listed from the top row down.
    """
    rows = len(heights)
    total = float(sum(heights))
    # Plotly lays the rows out from the bottom up, so the sums run in that order.
    upward = [(1.0 - spacing * (rows - 1)) * (h / total) for h in reversed(heights)]
    layout: dict[str, Any] = {"annotations": []}
    for row in range(1, rows + 1):
        below = rows - row
        low = _clamp(sum(upward[:below]) + below * spacing)
        high = _clamp(low + upward[below])
        xaxis: dict[str, Any] = {"anchor": "y" if row == 1 else f"y{row}", "domain": [0.0, 1.0]}
        if row < rows:
            xaxis.update(matches=f"x{rows}", showticklabels=False)
        layout[_axis_name("x", row)] = xaxis
        layout[_axis_name("y", row)] = {
            "anchor": "x" if row == 1 else f"x{row}",
            "domain": [low, high],
        }
        if titles[row - 1]:
            layout["annotations"].append(_title_annotation(titles[row - 1], high))
    return layout


def _clamp(value: float) -> float:
    # Float sums can end a hair outside the page; Plotly rounds those to the edge too.
    return min(max(value, 0.0), 1.0)


def _title_annotation(text: str, top: float) -> dict[str, Any]:
    return {
        "font": {"size": 16},
        "showarrow": False,
        "text": text,
        "x": 0.5,
        "xanchor": "center",
        "xref": "paper",
        "y": top,
        "yanchor": "bottom",
        "yref": "paper",
    }


def _severity_order() -> list[str]:
    return sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__)


def _mark_trace(series: MetricSeries, marks: list[tuple[float, str]]) -> dict[str, Any]:
    return {
        "type": "scatter",
        "x": to_datetime64(np.array([ts for ts, _ in marks])),
        "y": [_nearest_value(series, ts) for ts, _ in marks],
        "mode": "markers",
        "marker": {"symbol": "x", "size": 12, "color": "#d62728", "line": {"width": 2}},
        "text": [label for _, label in marks],
        "hovertemplate": "anomaly %{text}<br>%{x|%Y-%m-%d %H:%M:%S} UTC<extra></extra>",
        "name": "anomaly",
        "showlegend": False,
    }


def anomaly_figure(
    series: MetricSeries, anomaly: Mapping[str, Any], max_points: int = MAX_POINTS
) -> go.Figure:
    """Draw one series with its anomaly onset and peak and, when known, its baseline."""
    x, y = downsample_minmax(series.timestamps, series.values, max_points - 3)
    figure = go.Figure(go.Scatter(x=to_datetime64(x), y=y, mode="lines", name=plain(series.metric)))
    baseline = anomaly.get("baseline")
    if baseline is not None and np.isfinite(baseline):
        figure.add_hline(y=float(baseline), line_dash="dot", annotation_text="baseline")
    marks = _anomaly_marks(series, anomaly)
    if marks:
        figure.add_trace(
            go.Scatter(
                x=to_datetime64(np.array([ts for ts, _ in marks])),
                y=[_nearest_value(series, ts) for ts, _ in marks],
                mode="markers+text",
                text=[label for _, label in marks],
                textposition="top center",
                marker={"symbol": "x", "size": 12, "color": "#d62728"},
                name="anomaly",
            )
        )
    unit = f" ({series.unit})" if series.unit else ""
    figure.update_layout(
        title=plain(f"{series.key}{unit}"),
        xaxis_title=TIME_AXIS_TITLE,
        height=320,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        showlegend=False,
    )
    return figure
