"""Contract of ``recent_alert_rows``, run against SQLite and dynalite.

Each row must equal the same fields of the alert that ``recent_alerts`` returns, in the same
order, window and pages.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from opsforge_core.models import iso
from opsforge_core.store.base import ALERT_ROW_FIELDS
from tests.store.factories import BASE_TIME, make_alert


def _fields(alert) -> tuple:
    values = [getattr(alert, name) for name in ALERT_ROW_FIELDS]
    return (*values[:-2], iso(alert.starts_at), iso(alert.ends_at))


def _all_rows(store, **window) -> list[tuple]:
    rows, cursor = [], None
    while True:
        page = store.recent_alert_rows(limit=3, cursor=cursor, **window)
        rows += page.items
        cursor = page.cursor
        if cursor is None:
            return rows


def _stored_alerts(store):
    alerts = [
        make_alert("fp-0", minutes=0),
        make_alert("fp-1", minutes=1, status="resolved"),
        make_alert("fp-2", minutes=2, summary="", raw={"summary": "in the raw payload only"}),
        make_alert("fp-3", minutes=3, service="payments"),
        # Same start as fp-3: the fingerprint orders them, newest first means larger first.
        make_alert("fp-4", minutes=3, status="resolved"),
        replace(make_alert("fp-5", minutes=4), starts_at=BASE_TIME + timedelta(seconds=240.5)),
        make_alert("fp-6", minutes=6),
    ]
    store.upsert_alerts(alerts)
    return alerts


def test_alert_rows_match_recent_alerts(store):
    _stored_alerts(store)
    expected = [_fields(a) for a in store.recent_alerts().items]
    assert _all_rows(store) == expected
    assert [row[0] for row in expected] == ["fp-6", "fp-5", "fp-4", "fp-3", "fp-2", "fp-1", "fp-0"]


def test_alert_rows_fields_and_times(store):
    alerts = {a.fingerprint: a for a in _stored_alerts(store)}
    rows = {row[0]: dict(zip(ALERT_ROW_FIELDS, row, strict=True)) for row in _all_rows(store)}
    assert rows["fp-1"]["status"] == "resolved"
    assert rows["fp-1"]["ends_at"] == iso(alerts["fp-1"].ends_at)
    assert rows["fp-0"]["ends_at"] is None
    assert rows["fp-2"]["summary"] == ""
    assert rows["fp-3"]["service"] == "payments"
    assert rows["fp-5"]["starts_at"] == "2026-03-01T12:04:00.500000Z"
    assert rows["fp-0"]["severity"] == "critical"
    assert rows["fp-0"]["name"] == "HighLatency"


def test_alert_rows_window_matches_recent_alerts(store):
    _stored_alerts(store)
    window = {"since": BASE_TIME + timedelta(minutes=2), "until": BASE_TIME + timedelta(minutes=3)}
    rows = _all_rows(store, **window)
    assert [row[0] for row in rows] == ["fp-4", "fp-3", "fp-2"]
    assert rows == [_fields(a) for a in store.recent_alerts(**window).items]


def test_alert_rows_empty_feed(store):
    page = store.recent_alert_rows()
    assert page.items == []
    assert page.cursor is None
