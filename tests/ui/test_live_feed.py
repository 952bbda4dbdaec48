"""Tests of the Live page's feed frame against alerts stored in SQLite."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from console._live_feed import (
    alert_frame,
    feed_alerts,
    filter_alerts,
    read_feed_alert,
    worst_firing,
)
from opsforge_core.models import SEVERITY_RANK, Alert, utcnow
from opsforge_core.store.base import Store
from opsforge_core.views import sort_alerts


def _alerts() -> list[Alert]:
    now = utcnow().replace(microsecond=123456)
    cases = [
        ("a", "checkout", "warning", "firing", 50),
        ("b", "checkout", "critical", "resolved", 40),
        ("c", "payments", "high", "firing", 30),
        ("d", "payments", "critical", "firing", 30),  # same start as c
        ("e", "search", "info", "firing", 30),
        ("f", "search", "critical", "resolved", 20),
        ("g", "checkout", "critical", "firing", 10),
        ("h", "checkout", "critical", "firing", 10),  # same start and severity as g
    ]
    return [
        Alert(
            fingerprint=fingerprint,
            source="api",
            name=f"Probe-{fingerprint}",
            service=service,
            severity=severity,
            status=status,
            summary=f"probe {fingerprint}",
            starts_at=now - timedelta(seconds=seconds),
            labels={"team": "core"},
            ends_at=now - timedelta(seconds=5) if status == "resolved" else None,
            raw={"note": fingerprint},
        )
        for fingerprint, service, severity, status, seconds in cases
    ]


def _frame(store: Store):
    store.upsert_alerts(_alerts())
    return alert_frame(store.recent_alert_rows().items)


def test_alert_frame_in_sort_alerts_order(store: Store) -> None:
    frame = _frame(store)
    expected = [a.fingerprint for a in sort_alerts(store.recent_alerts().items)]
    assert frame["fingerprint"].tolist() == expected
    assert expected[:3] == ["h", "g", "d"]


def test_feed_alerts_keep_exact_times(store: Store) -> None:
    stored = {a.fingerprint: a for a in _alerts()}
    rows = {a.fingerprint: a for a in feed_alerts(_frame(store))}
    assert rows["b"].starts_at == stored["b"].starts_at
    assert rows["b"].starts_at.microsecond == 123456
    assert rows["b"].ends_at == stored["b"].ends_at
    assert rows["a"].ends_at is None
    assert rows["c"].summary == "probe c"
    assert rows["c"].service == "payments"


def test_filter_alerts_by_severity_and_state(store: Store) -> None:
    frame = _frame(store)
    critical = filter_alerts(frame, ["critical"], only_firing=False)
    assert sorted(critical["fingerprint"]) == ["b", "d", "f", "g", "h"]
    firing = filter_alerts(frame, ["critical"], only_firing=True)
    assert firing["fingerprint"].tolist() == ["h", "g", "d"]
    assert len(filter_alerts(frame, [], only_firing=False)) == 8


def test_worst_firing_ignores_resolved(store: Store) -> None:
    worst = worst_firing(_frame(store))
    critical, info = SEVERITY_RANK["critical"], SEVERITY_RANK["info"]
    assert worst == {"checkout": critical, "payments": critical, "search": info}


def test_alert_frame_empty() -> None:
    frame = alert_frame([])
    assert len(frame) == 0
    assert feed_alerts(frame) == []
    assert worst_firing(frame) == {}


def test_read_feed_alert_whole_then_gone(store: Store) -> None:
    st.cache_data.clear()
    row = next(a for a in feed_alerts(_frame(store)) if a.fingerprint == "g")
    alert = read_feed_alert(row)
    assert alert is not None
    assert alert.fingerprint == "g"
    assert alert.labels == {"team": "core"}
    assert alert.raw == {"note": "g"}
    store.clear_feed()
    st.cache_data.clear()
    assert read_feed_alert(row) is None
