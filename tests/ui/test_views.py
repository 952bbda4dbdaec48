"""Tests of the console's display helpers: downsampling, figures, tables and escaping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from opsforge_core.models import Alert, MetricSeries
from opsforge_core.views import (
    MAX_POINTS,
    alert_rows,
    count_points,
    counter_rate,
    dependency_figure,
    downsample_minmax,
    escape_markdown,
    forecast_figure,
    forecast_rows,
    format_duration,
    paginate,
    service_figure,
    settings_rows,
    sort_alerts,
)
from opsforge_core.views.charts import SEVERITY_COLORS, stacked_layout

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _alert(index: int, severity: str = "warning", status: str = "firing", service: str = "api"):
    return Alert(
        fingerprint=f"fp{index}",
        source="simulator",
        name="HighLatency",
        service=service,
        severity=severity,
        status=status,
        summary=f"alert {index}",
        starts_at=START + timedelta(seconds=index),
    )


def test_downsample_short_series_unchanged():
    x = np.arange(10.0)
    y = np.arange(10.0) * 2
    xs, ys = downsample_minmax(x, y, 100)
    assert xs.tolist() == x.tolist()
    assert ys.tolist() == y.tolist()


def test_downsample_keeps_extremes_within_budget():
    rng = np.random.default_rng(3)
    x = np.arange(200_000.0)
    y = rng.normal(0, 1, x.size)
    y[123_457] = 50.0
    y[7] = -40.0
    xs, ys = downsample_minmax(x, y, 5000)
    assert len(xs) <= 5000
    assert len(xs) == len(ys)
    assert ys.max() == 50.0
    assert ys.min() == -40.0
    assert 123_457.0 in xs.tolist()
    assert np.all(np.diff(xs) > 0)


def test_downsample_all_nan_bucket_stays_a_gap():
    y = np.ones(10_000)
    y[4000:6000] = np.nan
    xs, ys = downsample_minmax(np.arange(y.size, dtype=float), y, 100)
    assert np.isnan(ys).any()
    gap = xs[np.isnan(ys)]
    assert gap.min() >= 4000
    assert gap.max() < 6000


def test_downsample_rejects_budget_below_two():
    with pytest.raises(ValueError, match="max_points"):
        downsample_minmax(np.arange(10.0), np.arange(10.0), 1)


def test_service_figure_point_budget_with_10000_alerts():
    ts = START.timestamp() + 10.0 * np.arange(50_000)
    series = [
        MetricSeries("api", metric, ts, np.sin(np.arange(ts.size) / 50.0), "%")
        for metric in ("cpu_percent", "memory_percent", "latency_p99_ms")
    ]
    alerts = [_alert(i, "critical" if i % 7 == 0 else "warning") for i in range(10_000)]
    anomaly = {"status": "anomalous", "onset_ts": ts[1000], "peak_ts": ts[1200]}
    figure = service_figure("api", series, {"api/cpu_percent": anomaly}, alerts)
    assert count_points(figure) <= MAX_POINTS
    names = [trace.name for trace in figure.data]
    assert "anomaly" in names
    assert "alert starts" in names
    assert figure.layout.xaxis4.title.text == "time (UTC)"


def test_service_figure_escapes_markup_in_hover_text():
    alert = _alert(1)
    alert.summary = "<img src=x onerror=alert(1)>"
    series = [MetricSeries("api", "cpu", np.array([START.timestamp()]), np.array([1.0]))]
    figure = service_figure("api", series, {}, [alert])
    strip = next(t for t in figure.data if t.name == "alert starts")
    assert "<img" not in strip.text[0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in strip.text[0]


def test_counter_rate_handles_restart():
    ts = START.timestamp() + 60.0 * np.arange(5)
    counter = MetricSeries(
        "api", "http_requests_total", ts, [600, 1200, 1800, 120, 720], "", "counter"
    )
    rate = counter_rate(counter)
    assert rate.values.tolist() == [10.0, 10.0, 2.0, 10.0]
    assert rate.timestamps.tolist() == ts[1:].tolist()
    assert rate.key == counter.key
    assert rate.unit == "per second"
    gauge = MetricSeries("api", "cpu", ts, np.ones(5))
    assert counter_rate(gauge) is gauge


def test_dependency_figure_highlights_root_cause():
    pairs = [("frontend", "api"), ("api", "db"), ("api", "cache")]
    ranking = [{"service": "db", "score": 0.9}, {"service": "api", "score": 0.4}]
    figure = dependency_figure(pairs, ranking, "db")
    nodes = figure.data[1]
    names = list(nodes.text)
    assert names == ["api", "cache", "db", "frontend"]
    assert nodes.marker.color[names.index("db")] == "#d62728"
    assert nodes.marker.color[names.index("cache")] == "#b0b0b0"
    # Callers sit above callees: frontend on top, db below api.
    y = dict(zip(names, nodes.y, strict=True))
    assert y["frontend"] > y["api"] > y["db"]
    assert "root cause: db" in figure.layout.title.text


def test_forecast_figure_draws_band_and_limit():
    ts = START.timestamp() + 60.0 * np.arange(120)
    series = MetricSeries("db", "disk_used_percent", ts, np.linspace(50, 80, ts.size), "%")
    forecast = {
        "series_key": "db/disk_used_percent",
        "status": "crossing",
        "limit": 95.0,
        "current": 80.0,
        "eta_seconds": 3600.0,
        "crossing_ts": ts[-1] + 3600.0,
        "earliest_ts": ts[-1] + 3000.0,
        "latest_ts": ts[-1] + 4800.0,
        "confidence": 0.8,
    }
    figure = forecast_figure(series, forecast)
    names = [trace.name for trace in figure.data]
    assert names == ["observed", "95% band", "trend"]
    assert list(figure.data[2].y) == [80.0, 95.0]
    assert figure.layout.shapes[0].y0 == 95.0
    rows = forecast_rows([forecast])
    assert rows[0]["time to limit"] == "1h"
    assert rows[0]["crosses at (UTC)"] == "2026-11-20 10:59:00"


def test_escape_markdown_neutralizes_markup():
    cases = {
        "<img src=x onerror=alert(1)>": r"\<img src\=x onerror\=alert\(1\)\>",
        "</div><script>alert(2)</script>": r"\<\/div\>\<script\>alert\(2\)\<\/script\>",
        ":red[boom] $x$": r"\:red\[boom\] \$x\$",
        "# title\n- item": r"\# title \- item",
    }
    for raw, escaped in cases.items():
        assert escape_markdown(raw) == escaped
    assert escape_markdown(None) == ""


def test_escape_markdown_breaks_bare_links():
    escaped = escape_markdown("see https://evil.example/login or www.evil.example")
    assert "://" not in escaped.replace("\\", "")
    assert "https\\:\u2060\\/\\/evil" in escaped
    assert "www\u2060\\.evil" in escaped


def test_paginate_clamps_page_number():
    rows = list(range(125))
    last = paginate(rows, 99, 50)
    assert last.number == 3
    assert last.count == 3
    assert last.rows == list(range(100, 125))
    assert paginate([], 1, 50).count == 1


def test_alert_rows_age_and_order():
    now = START + timedelta(hours=2)
    resolved = _alert(1, "critical", "resolved")
    resolved.ends_at = START + timedelta(minutes=5)
    alerts = sort_alerts([resolved, _alert(2, "info"), _alert(3, "critical")])
    rows = alert_rows(alerts, now)
    assert [r["alert"] for r in rows] == ["HighLatency"] * 3
    assert [r["severity"] for r in rows] == ["critical", "info", "critical"]
    assert rows[0]["age"] == "1h 59m"
    assert rows[2]["age"] == "4m"


def test_format_duration_units():
    assert format_duration(None) == "-"
    assert format_duration(59) == "59s"
    assert format_duration(3600) == "1h"
    assert format_duration(2 * 86400 + 4 * 3600) == "2d 4h"


def test_settings_rows_mask_secrets():
    settings = {
        "api_token": "s3cret",
        "ANTHROPIC_API_KEY": None,
        "llm_max_tokens": 2048,
        "store": "sqlite",
        "model_prices": {"a": 1},
    }
    shown = {r["setting"]: r["value"] for r in settings_rows(settings)}
    assert shown["api_token"] == "set"
    assert shown["ANTHROPIC_API_KEY"] == "unset"
    assert shown["llm_max_tokens"] == "2048"
    assert shown["store"] == "sqlite"
    assert shown["model_prices"] == '{"a": 1}'


@pytest.mark.parametrize("metrics", [0, 1, 3, 7])
def test_stacked_layout_matches_make_subplots(metrics):
    from plotly.subplots import make_subplots

    rows = 1 + metrics
    titles = ["alert starts"] + [f"metric {i}" if i != 1 else "" for i in range(metrics)]
    heights = [0.5] + [1.0] * metrics
    spacing = min(0.06, 0.3 / rows)
    expected = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=spacing,
        subplot_titles=titles,
        row_heights=heights,
    ).to_plotly_json()["layout"]
    expected.pop("template")
    assert stacked_layout(titles, heights, spacing) == expected


def test_service_figure_strip_per_severity():
    alerts = [_alert(i, ["critical", "warning", "info"][i % 3]) for i in range(30)]
    series = [MetricSeries("api", "cpu", np.array([START.timestamp()]), np.array([1.0]))]
    figure = service_figure("api", series, {}, alerts)
    strips = [t for t in figure.data if t.name == "alert starts"]
    assert [t.y[0] for t in strips] == ["info", "warning", "critical"]
    for strip in strips:
        assert set(strip.y) == {strip.y[0]}
        assert strip.marker.color == SEVERITY_COLORS[strip.y[0]]
        assert len(strip.x) == 10
    critical = strips[-1]
    assert list(critical.text[:2]) == [
        "HighLatency (firing): alert 0",
        "HighLatency (firing): alert 3",
    ]
