"""Analyze: choose alerts and metrics, choose agents, run the analysis and read the report."""

from __future__ import annotations

import logging

import streamlit as st

from console._data import (
    AnalysisInput,
    forget_incident_pages,
    load_feed,
    load_scenario,
    parse_upload,
    scenario_names,
)
from console._report import render_report
from console._shared import failure_shown, get_orchestrator, get_simulator, init_state, show_error
from opsforge_core.models import IncidentReport
from opsforge_core.topology import ServiceGraph
from opsforge_core.views import count_by, escape_markdown

logger = logging.getLogger(__name__)

SOURCES = ["Live feed", "Simulator scenario", "Uploaded file"]
WINDOWS = {"15 minutes": 15, "1 hour": 60, "6 hours": 360, "24 hours": 1440}


def choose_input() -> AnalysisInput | None:
    """Read the source widgets and return the chosen input, or None when nothing is chosen."""
    source = st.radio("Source", SOURCES, key="analyze-source", horizontal=True)
    if source == "Live feed":
        window = st.selectbox("Time window", list(WINDOWS), key="analyze-window")
        feed = load_feed(WINDOWS[window])
        return AnalysisInput(
            label=f"live feed, last {window}",
            alerts=list(feed["alerts"]),
            series=feed["series"],
            pairs=_simulator_pairs(),
            cut=feed["cut"],
        )
    if source == "Simulator scenario":
        names = scenario_names()
        left, right = st.columns([3, 1])
        name = left.selectbox("Scenario", names, key="analyze-scenario")
        seed = right.number_input("Seed", min_value=0, step=1, key="analyze-seed")
        return load_scenario(name, int(seed)) if name else None
    upload = st.file_uploader(
        "Alerts or metrics file (Alertmanager, CloudWatch, EventBridge, SNS, PagerDuty, "
        "OpsForge JSON or JSONL)",
        key="analyze-upload",
    )
    if upload is None:
        return None
    return parse_upload(upload.name, upload.getvalue())


def _simulator_pairs() -> list[tuple[str, str]]:
    """Return the live simulator's topology, or none when the feed has other writers only."""
    if get_simulator() is None:
        return []
    from simulator.topology import default_graph

    return default_graph().to_pairs()


def describe_input(chosen: AnalysisInput) -> None:
    by_severity = count_by(chosen.alerts, "severity")
    services = sorted({a.service for a in chosen.alerts} | {s.service for s in chosen.series})
    text = (
        f"{chosen.label}: {len(chosen.alerts):,} alerts "
        f"({', '.join(f'{n} {s}' for s, n in by_severity.items()) or 'none'}), "
        f"{len(chosen.series):,} series, {len(services)} services"
    )
    st.markdown(escape_markdown(text))
    if chosen.cut:
        st.warning("The window holds more alerts than are read at once; the newest are analyzed.")
    if chosen.rejected:
        st.warning(f"{len(chosen.rejected)} records were rejected and are left out:")
        st.dataframe(
            [{"record": r.index, "field": r.field, "reason": r.reason} for r in chosen.rejected],
            hide_index=True,
            key="analyze-rejected",
        )
    if chosen.truth:
        with st.expander("Ground truth of this scenario", key="analyze-truth"):
            st.json(chosen.truth)


def pick_agents(chosen: AnalysisInput) -> list[str]:
    """Show each agent's relevance and return the agents the operator keeps selected."""
    identity = (chosen.label, len(chosen.alerts), len(chosen.series))
    memo = st.session_state.get("analyze-choices")
    if memo is None or memo[0] != identity:
        graph = ServiceGraph.from_pairs(chosen.pairs) if chosen.pairs else None
        memo = (identity, get_orchestrator().select(chosen.alerts, chosen.series, graph))
        st.session_state["analyze-choices"] = memo
    choices = memo[1]
    st.dataframe(
        [
            {"agent": c.name, "score": c.score, "selected": c.selected, "reason": c.reason}
            for c in choices
        ],
        hide_index=True,
        key="analyze-scores",
    )
    # The picker's key follows the input, so a new input starts from the selector's choice.
    return st.multiselect(
        "Agents to run (pre-filled from the relevance scores)",
        [c.name for c in choices],
        default=[c.name for c in choices if c.selected],
        key=f"analyze-agents-{chosen.label}",
    )


def run_analysis(chosen: AnalysisInput, agents: list[str]) -> IncidentReport | None:
    """Run the orchestrator with progress in an ``st.status`` and streamed text below it."""
    graph = ServiceGraph.from_pairs(chosen.pairs) if chosen.pairs else None
    with st.status("Analyzing…", expanded=True) as status:
        bar = st.progress(0.0)
        streamed = st.empty()
        text: list[str] = []

        def progress(step: str, detail: str, fraction: float) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0))
            st.markdown(f"**{escape_markdown(step)}** {escape_markdown(detail)}")

        def on_text(chunk: str) -> None:
            text.append(chunk)
            streamed.text("".join(text)[-4000:])

        try:
            report = get_orchestrator().handle_incident(
                chosen.alerts,
                chosen.series,
                agents,
                graph=graph,
                progress=progress,
                on_text=on_text,
            )
        except Exception as exc:  # noqa: BLE001 - shown with the fix, never as a traceback
            status.update(label="Analysis failed", state="error", expanded=True)
            show_error("The analysis", exc)
            return None
        status.update(label=f"Analysis complete: {report.incident_id}", state="complete")
    return report


st.title("Analyze")
init_state(
    {"analyze-window": "1 hour", "analyze-seed": 1, "analyze-result": None, "analyze-choices": None}
)

chosen = None
with failure_shown("Loading the input"):
    chosen = choose_input()
if chosen is not None:
    describe_input(chosen)
    agents: list[str] = []
    with failure_shown("Scoring the agents"):
        agents = pick_agents(chosen)
    empty = not chosen.alerts and not chosen.series
    if st.button("Run analysis", type="primary", key="analyze-run", disabled=empty or not agents):
        report = run_analysis(chosen, agents)
        if report is not None:
            st.session_state["analyze-result"] = (report, chosen.series, chosen.pairs)
            forget_incident_pages()
    if empty:
        st.info("This input holds no alerts and no metrics; choose another window or file.")

result = st.session_state["analyze-result"]
if result is not None:
    st.divider()
    with failure_shown("Drawing the report"):
        render_report(*result)
