"""Render one incident report; shared by the Analyze and Incidents pages.

Every string from the report (alert text, agent reasoning, the LLM's answer) is untrusted and
reaches the page only through ``escape_markdown``, ``st.text``, ``st.json`` or ``st.dataframe``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from opsforge_core.models import AgentResult, IncidentReport, MetricSeries, Synthesis, utcnow
from opsforge_core.views import (
    alert_rows,
    anomaly_figure,
    dependency_figure,
    escape_markdown,
    format_time,
    sort_alerts,
)
from opsforge_core.views.forecast import forecast_figure, forecast_rows

MAX_ANOMALY_CHARTS = 3
MAX_FORECAST_CHARTS = 3
# Forecasts worth a chart: a limit already reached or a crossing ahead. Flat trends are listed.
CHARTED_FORECASTS = ("breached", "crossing")


def render_report(
    report: IncidentReport,
    series: Sequence[MetricSeries] = (),
    graph_pairs: Sequence[tuple[str, str]] = (),
) -> None:
    """Draw the synthesis, each agent's reasoning with its charts, and the alerts analyzed.

    ``series`` and ``graph_pairs`` are the run's inputs when the caller still has them. A
    stored report keeps only series keys, so without them the charts that need the data are
    left out and the tables remain.
    """
    key = report.incident_id
    st.subheader(escape_markdown(report.title or report.incident_id))
    st.caption(
        escape_markdown(
            f"{report.incident_id} · created {format_time(report.created_at)} UTC · "
            f"window {format_time(report.window_start)} to {format_time(report.window_end)} UTC · "
            f"{len(report.alerts)} alerts, {len(report.series_keys)} series · "
            f"status {report.status}"
        )
    )
    for note in report.notes:
        st.warning(escape_markdown(note))
    render_synthesis(report.synthesis)
    _render_status(report)
    st.markdown("#### Agents")
    st.dataframe(
        [
            {"agent": c.name, "score": c.score, "ran": c.selected, "reason": c.reason}
            for c in report.agents
        ],
        hide_index=True,
        key=f"{key}-choices",
    )
    by_series = {s.key: s for s in series}
    names = [r.agent for r in report.results]
    if names:
        for tab, result in zip(st.tabs(names), report.results, strict=True):
            with tab:
                _render_agent(result, by_series, graph_pairs, key)
    _render_alerts(report, key)


def render_synthesis(synthesis: Synthesis) -> None:
    """Draw the synthesis: root cause, severity, confidence, actions, provider and cost."""
    with st.container(border=True):
        st.markdown("#### Synthesis")
        if synthesis.fallback:
            st.warning(
                "**Fallback answer** from the offline rules: "
                + escape_markdown(synthesis.fallback_reason or "no reason recorded")
            )
        for flag in synthesis.flags:
            st.warning("**Flag:** " + escape_markdown(flag))
        root, severity, confidence = st.columns(3)
        root.metric("Root cause", synthesis.root_cause or "none found")
        severity.metric("Severity", synthesis.severity)
        confidence.metric("Confidence", f"{synthesis.confidence:.0%}")
        st.markdown(escape_markdown(synthesis.summary) or "_No summary._")
        if synthesis.actions:
            st.markdown("**Recommended actions**")
            st.markdown(
                "\n".join(f"{i}. {escape_markdown(a)}" for i, a in enumerate(synthesis.actions, 1))
            )
        st.caption(
            escape_markdown(
                f"{synthesis.provider} / {synthesis.model_id} · latency "
                f"{synthesis.latency_ms:.0f} ms · tokens in {synthesis.input_tokens}, out "
                f"{synthesis.output_tokens} · estimated cost ${synthesis.cost_usd:.4f}"
            )
        )
        if synthesis.evidence:
            st.caption("Evidence: " + escape_markdown(", ".join(synthesis.evidence)))


def _render_status(report: IncidentReport) -> None:
    if report.status == "resolved":
        st.success(
            f"Resolved {escape_markdown(format_time(report.resolved_at))} UTC: "
            + (escape_markdown(report.resolution_notes) or "no notes")
        )
    if report.feedback:
        verdict = "confirmed" if report.feedback.get("correct") else "corrected"
        right = report.feedback.get("root_cause")
        text = f"Operator feedback: root cause {verdict}"
        if right:
            text += f"; the right root cause is {right}"
        st.info(escape_markdown(text))


def _render_agent(
    result: AgentResult,
    by_series: dict[str, MetricSeries],
    graph_pairs: Sequence[tuple[str, str]],
    key: str,
) -> None:
    st.markdown(
        escape_markdown(
            f"Status {result.status} · relevance {result.score} · confidence "
            f"{result.confidence:.0%} · {result.duration_ms:.0f} ms"
        )
    )
    st.caption(escape_markdown(result.reason))
    if result.error:
        st.error(escape_markdown(result.error))
    if result.status == "skipped":
        st.info("Not run: its relevance was below the threshold or the operator left it out.")
        return
    for number, step in enumerate(result.steps, start=1):
        st.markdown(
            f"**{number}. {escape_markdown(step.title)}**  \n{escape_markdown(step.detail)}"
        )
    with_evidence = [(n, s) for n, s in enumerate(result.steps, start=1) if s.evidence]
    if with_evidence:
        with st.expander("Evidence of each step", key=f"{key}-{result.agent}-evidence"):
            for number, step in with_evidence:
                st.markdown(f"**{number}. {escape_markdown(step.title)}**")
                st.json(step.evidence, expanded=False)
    if result.agent == "predictiveops":
        _render_predictive(result.findings, by_series, key)
    elif result.agent == "rootcause":
        _render_rootcause(result.findings, graph_pairs, key)
    elif result.agent == "alertops":
        _render_alertops(result.findings, key)
    with st.expander("All findings", key=f"{key}-{result.agent}-findings"):
        st.json(result.findings, expanded=False)


def _render_predictive(
    findings: dict[str, Any], by_series: dict[str, MetricSeries], key: str
) -> None:
    anomalies = [a for a in findings.get("anomalies") or [] if a.get("status") == "anomalous"]
    if anomalies:
        st.markdown("**Anomalies** (earliest onset first)")
        st.dataframe(
            [
                {
                    "series": a.get("series_key"),
                    "onset (UTC)": _epoch_text(a.get("onset_ts")),
                    "score": a.get("score"),
                    "z": a.get("zscore"),
                    "value": a.get("value"),
                    "baseline": a.get("baseline"),
                }
                for a in anomalies
            ],
            hide_index=True,
            key=f"{key}-anomalies",
        )
        charted = [a for a in anomalies if a.get("series_key") in by_series]
        for index, anomaly in enumerate(charted[:MAX_ANOMALY_CHARTS]):
            figure = anomaly_figure(by_series[anomaly["series_key"]], anomaly)
            st.plotly_chart(figure, key=f"{key}-anomaly-{index}")
    forecasts = sorted(findings.get("forecasts") or [], key=_forecast_order)
    if forecasts:
        st.markdown("**Forecasts** (soonest limit first)")
        st.dataframe(forecast_rows(forecasts), hide_index=True, key=f"{key}-forecasts")
        crossing = [
            f
            for f in forecasts
            if f.get("status") in CHARTED_FORECASTS and f.get("series_key") in by_series
        ]
        for index, forecast in enumerate(crossing[:MAX_FORECAST_CHARTS]):
            figure = forecast_figure(by_series[forecast["series_key"]], forecast)
            st.plotly_chart(figure, key=f"{key}-forecast-{index}")
    missing = findings.get("insufficient_data") or []
    if missing:
        st.caption(escape_markdown("Insufficient data: " + ", ".join(map(str, missing))))


def _forecast_order(forecast: dict[str, Any]) -> tuple[bool, float]:
    eta = forecast.get("eta_seconds")
    return (eta is None, float(eta) if eta is not None else 0.0)


def _render_rootcause(
    findings: dict[str, Any], graph_pairs: Sequence[tuple[str, str]], key: str
) -> None:
    ranking = list(findings.get("ranking") or [])
    if ranking:
        st.markdown("**Ranking**")
        st.dataframe(
            [
                {
                    "rank": i,
                    "service": r.get("service"),
                    "score": r.get("score"),
                    "reason": r.get("reason"),
                }
                for i, r in enumerate(ranking, start=1)
            ],
            hide_index=True,
            key=f"{key}-ranking",
        )
    if ranking or graph_pairs:
        figure = dependency_figure(graph_pairs, ranking, findings.get("root_cause"))
        st.plotly_chart(figure, key=f"{key}-graph")


def _render_alertops(findings: dict[str, Any], key: str) -> None:
    groups = list(findings.get("groups") or [])
    compression = findings.get("compression")
    if isinstance(compression, dict):
        st.caption(escape_markdown(", ".join(f"{k}: {v}" for k, v in compression.items())))
    elif compression is not None:
        st.caption(escape_markdown(f"compression: {compression}"))
    if groups:
        st.markdown("**Alert groups**")
        st.dataframe(
            [
                {
                    "start": g.get("start"),
                    "services": ", ".join(map(str, g.get("services") or [])),
                    "alerts": len(g.get("fingerprints") or []),
                    "origin": g.get("origin"),
                }
                for g in groups
            ],
            hide_index=True,
            key=f"{key}-groups",
        )
    similar = list(findings.get("similar_incidents") or [])
    if similar:
        st.markdown("**Similar past incidents**")
        st.dataframe(similar, hide_index=True, key=f"{key}-similar")


def _render_alerts(report: IncidentReport, key: str) -> None:
    with st.expander(f"Alerts analyzed ({len(report.alerts)})", key=f"{key}-alerts"):
        st.dataframe(
            alert_rows(sort_alerts(report.alerts), utcnow()), hide_index=True, key=f"{key}-at"
        )


def _epoch_text(value: Any) -> str:
    if value is None:
        return "-"
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(float(value), tz=UTC))
