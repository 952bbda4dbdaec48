"""Plain-text rendering of an incident report, for the CLI and logs."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from opsforge_core.models import AgentResult, IncidentReport, iso

WIDTH = 100


def _wrap(text: str, indent: str, first: str | None = None) -> str:
    first = indent if first is None else first
    return textwrap.fill(text, WIDTH, initial_indent=first, subsequent_indent=indent) or first


def _evidence(evidence: dict[str, Any]) -> str:
    text = json.dumps(evidence, default=str, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."


def format_agent(result: AgentResult) -> list[str]:
    header = f"== {result.agent} [{result.status}] score {result.score}: {result.reason}"
    lines = [header]
    if result.status == "skipped":
        return lines
    lines.append(f"   confidence {result.confidence:.2f}, {result.duration_ms:.0f} ms")
    if result.error:
        lines.append(f"   error: {result.error}")
    for number, step in enumerate(result.steps, start=1):
        lines.append(f"   {number}. {step.title}")
        lines.append(_wrap(step.detail, "      "))
        if step.evidence:
            lines.append(_wrap("evidence: " + _evidence(step.evidence), "      "))
    return lines


def format_report(report: IncidentReport) -> str:
    """Render the whole report: agents chosen, each agent's reasoning, the synthesis."""
    synthesis = report.synthesis
    lines = [
        f"Incident {report.incident_id}: {report.title}",
        f"Window {iso(report.window_start)} to {iso(report.window_end)} (UTC); "
        f"{len(report.alerts)} alerts, {len(report.series_keys)} series; "
        f"services: {', '.join(report.services) or '-'}",
        "",
        "Agents (relevance score and reason):",
    ]
    for choice in report.agents:
        mark = "run " if choice.selected else "skip"
        lines.append(f"  [{mark}] {choice.name:<14} {choice.score:>3}  {choice.reason}")
    lines.append("")
    for result in report.results:
        lines.extend(format_agent(result))
        lines.append("")
    source = f"{synthesis.provider} / {synthesis.model_id}"
    if synthesis.fallback:
        source += f"  FALLBACK: {synthesis.fallback_reason}"
    lines += [
        "Synthesis",
        f"  source:     {source}",
        f"  root cause: {synthesis.root_cause or 'none found'}",
        f"  severity:   {synthesis.severity}   confidence: {synthesis.confidence:.2f}",
        _wrap(synthesis.summary, " " * 14, first="  summary:    "),
    ]
    lines += [f"  action:     {action}" for action in synthesis.actions]
    if synthesis.evidence:
        lines.append(f"  evidence:   {', '.join(synthesis.evidence)}")
    if synthesis.flags:
        lines.append(f"  flags:      {', '.join(synthesis.flags)}")
    lines.append(
        f"  tokens in/out {synthesis.input_tokens}/{synthesis.output_tokens}, "
        f"latency {synthesis.latency_ms:.0f} ms, est. cost ${synthesis.cost_usd:.4f}"
    )
    for similar in report.similar_incidents[:3]:
        lines.append(f"  similar:    {json.dumps(similar, default=str)}")
    for note in report.notes:
        lines.append(f"  note:       {note}")
    return "\n".join(lines)
