"""PredictiveOps: anomalies and change points per metric series, and forecasts to a limit."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from opsforge_core.agents.base import Agent, AnalysisContext
from opsforge_core.agents.detect import DEFAULT_THRESHOLD, SeriesAnomaly, scan_all
from opsforge_core.agents.forecast import Forecast, default_limit, forecast_crossing
from opsforge_core.agents.series_grid import PreparedSeries
from opsforge_core.models import AgentResult, MetricSeries, ReasoningStep

logger = logging.getLogger(__name__)

STEP_DETAIL_LIMIT = 5  # anomalies described one by one in the reasoning
FORECAST_HORIZON = 7 * 86400.0  # seconds; later crossings are left out of the findings


def _iso(epoch: float | None) -> str | None:
    """Format epoch seconds as ISO 8601 UTC; None for None or a time no datetime can hold."""
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


def anomaly_entry(anomaly: SeriesAnomaly) -> dict[str, Any]:
    """Return an anomaly as a findings dict; ``start`` repeats the onset as ISO 8601 UTC."""
    entry = anomaly.to_dict()
    entry.pop("extra", None)
    entry["start"] = _iso(anomaly.onset_ts)
    entry["peak"] = _iso(anomaly.peak_ts)
    return entry


def _is_near(forecast: Forecast) -> bool:
    if forecast.status == "breached":
        return True
    eta = forecast.eta_seconds
    return forecast.status == "crossing" and eta is not None and eta <= FORECAST_HORIZON


def _forecasts(ctx: AnalysisContext, limits: dict[str, float]) -> list[Forecast]:
    """Forecast every gauge with a limit, reusing the series ``scan_all`` prepared.

    A series' limit is ``limits[key]``, else ``limits[metric]``, else its default limit.
    """
    prepared = ctx.cache.get("prepared") or {}
    # With repeated series keys the cache holds only one of them, so each is prepared again.
    reuse = len(prepared) == len(ctx.series)
    forecasts: list[Forecast] = []
    for series in ctx.series:
        limit = limits.get(series.key, limits.get(series.metric))
        if limit is None:
            limit = default_limit(series)
        if limit is None or not math.isfinite(limit):
            continue
        source: MetricSeries | PreparedSeries = (
            prepared.get(series.key, series) if reuse else series
        )
        forecasts.append(forecast_crossing(source, limit))
    return forecasts


class PredictiveOpsAgent(Agent):
    """Scan every metric series for anomalies and forecast gauges that approach a limit."""

    name = "predictiveops"
    description = "Anomaly detection, change points and time-to-limit forecasts per series"

    def __init__(
        self, threshold: float = DEFAULT_THRESHOLD, limits: dict[str, float] | None = None
    ) -> None:
        """Set the scan threshold and extra limits to forecast against.

        ``limits`` maps a metric name or a ``service/metric`` key to the value the gauge must
        not reach, for gauges without a default limit such as a connection pool's size.
        """
        self.threshold = threshold
        self.limits = dict(limits or {})

    def relevance(self, ctx: AnalysisContext) -> tuple[int, str]:
        count = len(ctx.series)
        if count == 0:
            return 15, "no metric series to scan; alerts only"
        score = min(95, 75 + count)
        return score, f"{count} metric series to scan for anomalies and trends"

    def run(self, ctx: AnalysisContext) -> AgentResult:
        verdicts = scan_all(ctx, threshold=self.threshold)
        anomalies = sorted(
            (v for v in verdicts.values() if v.status == "anomalous"),
            key=lambda v: (v.onset_ts if v.onset_ts is not None else float("inf"), v.series_key),
        )
        insufficient = sorted(k for k, v in verdicts.items() if v.status == "insufficient_data")
        forecasts = _forecasts(ctx, self.limits)
        near = sorted((f for f in forecasts if _is_near(f)), key=lambda f: f.eta_seconds or 0.0)
        steps = [self._scan_step(verdicts, anomalies, insufficient)]
        steps += [self._anomaly_step(anomaly) for anomaly in anomalies[:STEP_DETAIL_LIMIT]]
        if forecasts:
            steps.append(self._forecast_step(len(forecasts), near))
        return AgentResult(
            agent=self.name,
            steps=steps,
            findings={
                "anomalies": [anomaly_entry(a) for a in anomalies],
                "forecasts": [f.to_dict() for f in near],
                "insufficient_data": insufficient,
            },
            confidence=self._confidence(verdicts, anomalies, insufficient),
        )

    def _scan_step(
        self,
        verdicts: dict[str, SeriesAnomaly],
        anomalies: list[SeriesAnomaly],
        insufficient: list[str],
    ) -> ReasoningStep:
        judged = len(verdicts) - len(insufficient)
        detail = (
            f"Scanned {len(verdicts)} series: {len(anomalies)} anomalous, "
            f"{judged - len(anomalies)} normal, {len(insufficient)} with too little data "
            f"(threshold {self.threshold:.2f})."
        )
        return ReasoningStep(
            title="Scan every series for anomalies",
            detail=detail,
            evidence={
                "anomalous": [a.series_key for a in anomalies],
                "scores": {a.series_key: a.score for a in anomalies},
                "insufficient_data": insufficient,
            },
        )

    @staticmethod
    def _anomaly_step(anomaly: SeriesAnomaly) -> ReasoningStep:
        word = "rose" if anomaly.direction > 0 else "fell"
        return ReasoningStep(
            title=f"{anomaly.series_key} {word} from {_iso(anomaly.onset_ts)}",
            detail=anomaly.reason,
            evidence={
                "series": anomaly.series_key,
                "score": anomaly.score,
                "onset": _iso(anomaly.onset_ts),
                "peak": _iso(anomaly.peak_ts),
                "value": anomaly.value,
                "baseline": anomaly.baseline,
                "zscore": anomaly.zscore,
                "coverage": anomaly.coverage,
            },
        )

    @staticmethod
    def _forecast_step(checked: int, near: list[Forecast]) -> ReasoningStep:
        detail = (
            f"Forecast {checked} gauges against their limits: {len(near)} are past it or reach "
            f"it within {FORECAST_HORIZON / 86400:.0f} days."
        )
        if near:
            detail += " " + " ".join(f"{f.series_key}: {f.reason}." for f in near)
        return ReasoningStep(
            title="Forecast gauges to their limits",
            detail=detail,
            evidence={
                f.series_key: {
                    "limit": f.limit,
                    "eta_seconds": f.eta_seconds,
                    "earliest": _iso(f.earliest_ts),
                    "latest": _iso(f.latest_ts),
                    "confidence": f.confidence,
                }
                for f in near
            },
        )

    @staticmethod
    def _confidence(
        verdicts: dict[str, SeriesAnomaly],
        anomalies: list[SeriesAnomaly],
        insufficient: list[str],
    ) -> float:
        """Trust the verdicts in proportion to the share of series that could be judged."""
        if not verdicts:
            return 0.0
        judged = 1.0 - len(insufficient) / len(verdicts)
        if anomalies:
            strength = max(a.score for a in anomalies)
            return round(judged * (0.5 + 0.5 * strength), 3)
        return round(0.6 * judged, 3)
