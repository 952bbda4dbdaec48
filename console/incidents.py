"""Incidents: the incident memory newest first, one incident's report, resolve and feedback."""

from __future__ import annotations

import logging

import streamlit as st

from console._data import follow_pages, forget_incident_pages, incident_page, report_series
from console._report import render_report
from console._shared import failure_shown, get_orchestrator, get_store, init_state
from opsforge_core.models import SEVERITIES, IncidentReport, IncidentSummary, utcnow
from opsforge_core.views import escape_markdown, incident_label, incident_rows

logger = logging.getLogger(__name__)

PAGE_SIZE = 25
SINCE = {"any time": None, "last hour": 1, "last 24 hours": 24, "last 7 days": 168}


def read_filters() -> tuple:
    """Read the filter widgets into a hashable tuple; empty choices mean no filter."""
    cols = st.columns([1, 1, 2, 2, 1])
    status = cols[0].selectbox("Status", ["any", "open", "resolved"], key="inc-status")
    severity = cols[1].selectbox("Severity", ["any", *SEVERITIES], key="inc-severity")
    service = cols[2].text_input("Service", key="inc-service").strip()
    text = cols[3].text_input("Search title, root cause, services", key="inc-text").strip()
    since = cols[4].selectbox("Created", list(SINCE), key="inc-since")
    return (
        None if status == "any" else status,
        None if severity == "any" else severity,
        service or None,
        text or None,
        SINCE[since],
    )


def incident_list(filters: tuple) -> IncidentSummary | None:
    """Draw the incidents loaded so far with "Load more" and return the one the operator picks."""
    state = st.session_state
    if state["inc-filters"] != filters:
        state.update({"inc-filters": filters, "inc-pages": 1})
    items, more = follow_pages(lambda c: incident_page(filters, c, PAGE_SIZE), state["inc-pages"])
    if not items:
        st.info("No incidents match. Run an analysis on the Analyze page to create one.")
        return None
    st.dataframe(incident_rows(items, utcnow()), hide_index=True, key="inc-table")
    left, right = st.columns([1, 4], vertical_alignment="center")
    if left.button("Load more", key="inc-more", disabled=not more):
        state["inc-pages"] += 1
        st.rerun()
    right.caption(f"{len(items)} loaded" + ("; more in the store" if more else "; that is all"))
    by_id = {s.incident_id: s for s in items}
    if state.get("inc-selected") not in by_id:
        state["inc-selected"] = items[0].incident_id
    chosen = st.selectbox(
        "Incident",
        list(by_id),
        format_func=lambda i: incident_label(by_id[i]),
        key="inc-selected",
    )
    return by_id[chosen]


def resolve_form(report: IncidentReport) -> None:
    if report.status == "resolved":
        return
    with st.form(f"inc-resolve-{report.incident_id}"):
        notes = st.text_area("Resolution notes", key=f"inc-notes-{report.incident_id}")
        if st.form_submit_button("Resolve incident", type="primary"):
            get_orchestrator().resolve_incident(report.incident_id, notes)
            _refresh(f"Incident {report.incident_id} resolved.")


def feedback_form(report: IncidentReport) -> None:
    rootcause = report.result("rootcause")
    ranking = (rootcause.findings.get("ranking") or []) if rootcause is not None else []
    candidates = sorted({str(r.get("service")) for r in ranking} | set(report.services))
    found = report.synthesis.root_cause or "none"
    with st.form(f"inc-feedback-{report.incident_id}"):
        st.markdown(f"Root cause found: **{escape_markdown(found)}**")
        verdict = st.radio(
            "Is it right?",
            ["Correct", "Wrong"],
            horizontal=True,
            key=f"inc-verdict-{report.incident_id}",
        )
        right = st.selectbox(
            "The right root cause (when wrong)",
            ["", *candidates],
            key=f"inc-right-{report.incident_id}",
        )
        other = st.text_input("or another service", key=f"inc-other-{report.incident_id}")
        if st.form_submit_button("Send feedback"):
            correct = verdict == "Correct"
            root = (other.strip() or right or None) if not correct else None
            get_orchestrator().give_feedback(report.incident_id, correct, root)
            _refresh("Feedback recorded; the pattern library is updated.")


def _refresh(message: str) -> None:
    """Drop cached lists so the change shows, and confirm it after the rerun."""
    forget_incident_pages()
    st.session_state["inc-message"] = message
    st.rerun()


def _topology_pairs() -> list[tuple[str, str]]:
    from opsforge_core import memory

    graph = memory.load_topology(get_store())
    return graph.to_pairs() if graph is not None else []


st.title("Incidents")
init_state({"inc-filters": None, "inc-pages": 1, "inc-message": None})
if st.session_state["inc-message"]:
    st.success(escape_markdown(st.session_state["inc-message"]))
    st.session_state["inc-message"] = None

summary = None
with failure_shown("Listing incidents"):
    summary = incident_list(read_filters())
if summary is not None:
    st.divider()
    with failure_shown(f"Showing incident {summary.incident_id}"):
        report = get_store().get_incident(summary.incident_id)
        if report is None:
            st.warning("This incident is no longer in the store.")
        else:
            label = "Resolve or give feedback" if report.status == "open" else "Give feedback"
            with st.expander(label, key="inc-actions", icon=":material/task_alt:"):
                actions = st.columns(2)
                with actions[0], failure_shown("Resolving the incident"):
                    resolve_form(report)
                with actions[1], failure_shown("Sending feedback"):
                    feedback_form(report)
            render_report(report, report_series(report), _topology_pairs())
