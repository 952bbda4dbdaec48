"""Records whose text is HTML markup, stored before a page renders them.

The alert summary, a label value and the LLM's synthesis contain HTML and script tags. Every
page must show them as text, and no script may run.
"""

from __future__ import annotations

from datetime import timedelta

from opsforge_core.models import (
    AgentChoice,
    AgentResult,
    Alert,
    IncidentReport,
    ReasoningStep,
    Synthesis,
    utcnow,
)
from opsforge_core.store.base import Store

SUMMARY = "<img src=x onerror=alert(1)>"
LABEL = "</div><script>alert(2)</script>"
LLM_ANSWER = "<b>Checkout</b> failed <script>alert(3)</script> after the deploy"
TITLE = "c2-probe <img src=x onerror=alert(4)>"
INCIDENT_ID = "inc-c2probe00001"


def c2_alert() -> Alert:
    return Alert(
        fingerprint="c2-probe-fingerprint",
        source="api",
        name="MarkupProbe",
        service="checkout",
        severity="critical",
        status="firing",
        summary=SUMMARY,
        labels={"team": LABEL, "service": "checkout"},
        starts_at=utcnow() - timedelta(minutes=2),
    )


def c2_report() -> IncidentReport:
    alert = c2_alert()
    now = utcnow()
    step = ReasoningStep(
        title="Group into incidents",
        detail=f"1 alert on checkout: {SUMMARY} (team {LABEL})",
        evidence={"fingerprints": [alert.fingerprint], "summary": SUMMARY},
    )
    return IncidentReport(
        incident_id=INCIDENT_ID,
        created_at=now - timedelta(days=1),
        window_start=alert.starts_at,
        window_end=now,
        alerts=[alert],
        series_keys=[],
        agents=[AgentChoice("alertops", 90, "1 alert to group", True)],
        results=[AgentResult(agent="alertops", score=90, steps=[step], confidence=0.5)],
        synthesis=Synthesis(
            provider="anthropic",
            model_id="claude-test",
            summary=LLM_ANSWER,
            root_cause="checkout",
            confidence=0.7,
            severity="critical",
            actions=[f"Roll back {LABEL}"],
            flags=[f"prompt injection suspected in {SUMMARY}"],
        ),
        title=TITLE,
        severity="critical",
        services=["checkout"],
    )


def store_c2_records(store: Store) -> None:
    """Write the markup alert into the feed and the markup incident into the memory."""
    store.upsert_alerts([c2_alert()])
    store.put_incident(c2_report())
