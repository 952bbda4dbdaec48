"""A forecast of one gauge to its limit: history, trend, the band on the crossing time.

The input is one entry of the PredictiveOps agent's ``findings["forecasts"]``: a
``Forecast`` as a dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go

from opsforge_core.models import MetricSeries
from opsforge_core.views.charts import (
    MAX_POINTS,
    TIME_AXIS_TITLE,
    downsample_minmax,
    plain,
    to_datetime64,
)
from opsforge_core.views.tables import format_time
from opsforge_core.views.text import format_duration

BAND_COLOR = "rgba(31, 119, 180, 0.18)"


def forecast_rows(forecasts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Build one table row per forecast: series, limit, time to crossing and its 95% band."""
    rows = []
    for item in forecasts:
        rows.append(
            {
                "series": item.get("series_key"),
                "status": item.get("status"),
                "current": item.get("current"),
                "limit": item.get("limit"),
                "slope per hour": item.get("slope_per_hour"),
                "time to limit": format_duration(item.get("eta_seconds")),
                "crosses at (UTC)": _epoch_text(item.get("crossing_ts")),
                "earliest (UTC)": _epoch_text(item.get("earliest_ts")),
                "latest (UTC)": _epoch_text(item.get("latest_ts")),
                "confidence": item.get("confidence"),
            }
        )
    return rows


def _epoch_text(value: Any) -> str:
    if value is None:
        return "-"
    return format_time(datetime.fromtimestamp(float(value), tz=UTC))


def _projection(forecast: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """Return (last sample time, current value, crossing time) when a crossing is forecast."""
    crossing = forecast.get("crossing_ts")
    eta = forecast.get("eta_seconds")
    current = forecast.get("current")
    if crossing is None or eta is None or current is None:
        return None
    return float(crossing) - float(eta), float(current), float(crossing)


def forecast_figure(
    series: MetricSeries, forecast: Mapping[str, Any], max_points: int = MAX_POINTS
) -> go.Figure:
    """Draw the series, the trend to the limit, the 95% band on the crossing time and the limit.

    The band is the fan from the last sample to the earliest and latest crossing times of the
    forecast (``earliest_ts``, ``latest_ts``). The trend line runs to ``crossing_ts``.
    """
    x, y = downsample_minmax(series.timestamps, series.values, max_points - 8)
    figure = go.Figure(go.Scatter(x=to_datetime64(x), y=y, mode="lines", name="observed"))
    limit = forecast.get("limit")
    projection = _projection(forecast)
    if projection is not None and limit is not None:
        last, current, crossing = projection
        earliest = forecast.get("earliest_ts") or crossing
        latest = forecast.get("latest_ts") or crossing
        figure.add_trace(
            go.Scatter(
                x=to_datetime64(np.array([last, earliest, latest, last], dtype=np.float64)),
                y=[current, limit, limit, current],
                fill="toself",
                fillcolor=BAND_COLOR,
                line={"width": 0},
                hoverinfo="skip",
                name="95% band",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=to_datetime64(np.array([last, crossing], dtype=np.float64)),
                y=[current, limit],
                mode="lines+markers",
                line={"dash": "dash"},
                name="trend",
            )
        )
    if limit is not None:
        figure.add_hline(y=float(limit), line_color="#d62728", annotation_text="limit")
    unit = f" ({series.unit})" if series.unit else ""
    figure.update_layout(
        title=plain(f"{series.key}{unit}: {forecast.get('status', 'forecast')}"),
        xaxis_title=TIME_AXIS_TITLE,
        height=340,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return figure
