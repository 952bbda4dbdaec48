"""The PredictiveOps agent: relevance, findings sorted by onset, forecasts, thin data."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.agents.predictive import PredictiveOpsAgent
from opsforge_core.models import Alert, MetricSeries

T0 = 1_700_000_000.0
TS = T0 + 60.0 * np.arange(300)


def _context() -> AnalysisContext:
    rng = np.random.default_rng(2)
    latency = rng.normal(100.0, 5.0, 300)
    latency[250:] += 60.0
    errors = rng.normal(2.0, 0.2, 300)
    errors[220:] += 3.0
    disk = 40.0 + 0.1 * np.arange(300) + rng.normal(0.0, 0.3, 300)
    series = [
        MetricSeries("api", "latency", TS, latency),
        MetricSeries("db", "errors", TS, errors),
        MetricSeries("db", "cpu", TS, rng.normal(20.0, 2.0, 300)),
        MetricSeries("db", "disk_used_percent", TS, disk, unit="%"),
        MetricSeries("cache", "hits", TS[:5], np.ones(5)),
    ]
    return AnalysisContext(alerts=[], series=series)


def _alert() -> Alert:
    start = datetime.fromtimestamp(T0, tz=UTC)
    return Alert("fp1", "api", "HighLatency", "api", "high", "firing", "slow", start)


def test_relevance_counts_series():
    score, reason = PredictiveOpsAgent().relevance(_context())
    assert score >= 60
    assert "5 metric series" in reason


def test_relevance_low_with_alerts_only():
    score, _ = PredictiveOpsAgent().relevance(AnalysisContext(alerts=[_alert()]))
    assert score < 60


def test_run_findings_sorted_by_onset():
    result = PredictiveOpsAgent().execute(_context())
    assert result.status == "ok"
    anomalies = result.findings["anomalies"]
    assert [a["series_key"] for a in anomalies] == ["db/errors", "api/latency"]
    assert anomalies[0]["onset_ts"] == T0 + 220 * 60
    assert anomalies[1]["onset_ts"] == T0 + 250 * 60
    assert anomalies[0]["start"] == "2023-11-15T01:53:20Z"
    assert anomalies[1]["direction"] == 1
    assert result.findings["insufficient_data"] == ["cache/hits"]
    assert 0.0 < result.confidence <= 1.0


def test_run_forecasts_disk_and_reports_evidence():
    result = PredictiveOpsAgent().execute(_context())
    forecasts = result.findings["forecasts"]
    assert [f["series_key"] for f in forecasts] == ["db/disk_used_percent"]
    assert forecasts[0]["status"] == "crossing"
    titles = [step.title for step in result.steps]
    assert titles[0] == "Scan every series for anomalies"
    assert "Forecast gauges to their limits" in titles
    assert result.steps[0].evidence["anomalous"] == ["db/errors", "api/latency"]
    payload = result.to_dict()
    assert payload["findings"]["anomalies"][0]["score"] > 0.6


def test_run_without_series_finds_nothing():
    result = PredictiveOpsAgent().execute(AnalysisContext(alerts=[_alert()]))
    assert result.status == "ok"
    assert result.findings["anomalies"] == []
    assert result.confidence == 0.0


def test_run_slow_fill_does_not_fail():
    # Barely rising disk use: the late end of the band lies centuries ahead.
    rng = np.random.default_rng(6)
    disk = 50.0 + 1e-4 * np.arange(300) + rng.normal(0.0, 0.01, 300)
    series = [MetricSeries("db", "disk_used_percent", TS, disk, unit="%")]
    result = PredictiveOpsAgent().execute(AnalysisContext(alerts=[], series=series))
    assert result.status == "ok"
    assert result.error is None
    # The crossing is months away, beyond the horizon the findings report.
    assert result.findings["forecasts"] == []
    assert result.steps[-1].title == "Forecast gauges to their limits"
    assert result.steps[-1].detail.startswith("Forecast 1 gauges against their limits: 0 ")


def test_run_flat_windows_one_anomaly():
    ts = T0 + 60.0 * np.arange(60)
    windows = {
        "zeros": [0.0] * 60,
        "negative": [-0.087] * 60,
        "step": [5.0] * 59 + [6.0],
        "empty": [np.nan] * 60,
    }
    series = [MetricSeries(name, "value", ts, np.array(v)) for name, v in windows.items()]
    result = PredictiveOpsAgent().execute(AnalysisContext(alerts=[], series=series))
    assert result.status == "ok"
    anomalies = result.findings["anomalies"]
    assert [a["series_key"] for a in anomalies] == ["step/value"]
    assert anomalies[0]["onset_ts"] == ts[59]
    assert result.findings["insufficient_data"] == ["empty/value"]
    payload = json.dumps(result.to_dict(), allow_nan=False)
    assert "NaN" not in payload


def test_run_forecasts_against_given_limit():
    # A connection pool of 100 filling by 1 connection every 5 minutes from 40.
    rng = np.random.default_rng(8)
    in_use = 40.0 + np.arange(300) / 5.0 + rng.normal(0.0, 0.5, 300)
    pool = MetricSeries("db", "db_connections_in_use", TS, in_use, unit="connections")
    ctx = AnalysisContext(alerts=[], series=[pool])
    assert PredictiveOpsAgent().execute(ctx).findings["forecasts"] == []
    agent = PredictiveOpsAgent(limits={"db_connections_in_use": 100.0})
    forecasts = agent.execute(AnalysisContext(alerts=[], series=[pool])).findings["forecasts"]
    assert [f["status"] for f in forecasts] == ["crossing"]
    assert forecasts[0]["limit"] == 100.0
    assert forecasts[0]["crossing_ts"] == pytest.approx(T0 + 300 * 60, abs=600)
