"""Alert ingest into SQLite: the feed file's layout, one delivery's outcomes, stored text."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsforge_core.config import Settings
from opsforge_core.handlers import handle_alerts
from opsforge_core.models import Alert, utcnow
from opsforge_core.store import records
from opsforge_core.store.codec import dumps, sort_time
from opsforge_core.store.sqlite import SQLiteStore


def _alert(fingerprint: str, status: str = "firing", minutes: int = 0) -> Alert:
    starts_at = utcnow().replace(microsecond=0) - timedelta(hours=1) + timedelta(minutes=minutes)
    return Alert(
        fingerprint=fingerprint,
        source="api",
        name="HighLatency",
        service="checkout",
        severity="high",
        status=status,
        summary="p99 above 2 s",
        starts_at=starts_at,
        labels={"team": "shop"},
        ends_at=starts_at + timedelta(minutes=5) if status == "resolved" else None,
    )


def _record(alert: Alert) -> dict:
    return alert.to_dict(include_raw=False)


def _store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store.init()
    return store


def test_new_file_uses_wal(tmp_path: Path):
    store = _store(tmp_path / "feed.db")
    conn = store.db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_feed_table_has_rowid(tmp_path: Path):
    store = _store(tmp_path / "feed.db")
    sql = (
        store.db.connection()
        .execute("SELECT sql FROM sqlite_master WHERE name = ?", (store.names["feed"],))
        .fetchone()[0]
    )
    assert "WITHOUT ROWID" not in sql.upper()
    store.close()


def test_older_file_keeps_its_layout(tmp_path: Path):
    path = tmp_path / "old.db"
    names = SQLiteStore(path).names
    with sqlite3.connect(path) as conn:
        conn.execute(
            f'CREATE TABLE "{names["feed"]}" (feed_id TEXT NOT NULL, ts TEXT NOT NULL, '
            "expires_at INTEGER NOT NULL, digest TEXT, doc TEXT NOT NULL, "
            "PRIMARY KEY (feed_id, ts)) WITHOUT ROWID"
        )
    store = _store(path)
    first, repeat = store.upsert_alerts([_alert("fp-1"), _alert("fp-1")])
    assert first.change == "new"
    assert repeat.change == "unchanged"
    assert [a.fingerprint for a in store.recent_alerts().items] == ["fp-1"]
    store.close()


def test_delivery_outcomes_follow_own_writes(tmp_path: Path):
    store = _store(tmp_path / "feed.db")
    firing = _alert("fp-1")
    resolved = replace(firing, status="resolved", ends_at=firing.starts_at + timedelta(minutes=3))
    outcomes = store.upsert_alerts([firing, _alert("fp-2", minutes=1), firing, resolved, firing])
    assert [u.change for u in outcomes] == ["new", "new", "unchanged", "resolved", "unchanged"]
    # The late firing repeat leaves the resolved copy alone and reports that copy.
    assert outcomes[4].alert.status == "resolved"
    stored = {a.fingerprint: a for a in store.recent_alerts().items}
    assert stored["fp-1"].status == "resolved"
    assert stored["fp-1"].ends_at == resolved.ends_at
    assert len(stored) == 2
    store.close()


def test_stored_repeat_reports_stored_copy(tmp_path: Path):
    store = _store(tmp_path / "feed.db")
    alert = _alert("fp-1")
    store.upsert_alerts([replace(alert, raw={"first": True})])
    (outcome,) = store.upsert_alerts([replace(alert, raw={"second": True})])
    assert outcome.change == "unchanged"
    assert outcome.alert.raw == {"first": True}
    store.close()


def test_stored_text_matches_alert_row(tmp_path: Path):
    store = _store(tmp_path / "feed.db")
    alert = _alert("fp-1", status="resolved")
    alert = replace(alert, raw=_record(alert))
    store.upsert_alerts([alert])
    digest, doc = (
        store.db.connection()
        .execute(f"SELECT digest, doc FROM {store._t('feed')} WHERE feed_id = 'alerts'")
        .fetchone()
    )
    assert (digest, doc) == records.alert_row(alert)
    assert digest == records.alert_digest(alert)
    assert json.loads(doc) == records.alert_record(alert)[1]
    store.close()


def test_handle_alerts_counts_repeat_delivery(tmp_path: Path):
    store = _store(tmp_path / "feed.db")
    settings = replace(Settings.from_env(), store="sqlite", llm_provider="offline")
    payload = {"alerts": [_record(_alert(f"fp-{i}", minutes=i)) for i in range(5)]}
    first = handle_alerts(payload, store=store, orchestrator=None, settings=settings)
    again = handle_alerts(payload, store=store, orchestrator=None, settings=settings)
    assert len(first.new) == 5
    assert first.deduplicated == []
    assert again.new == []
    assert len(again.deduplicated) == 5
    assert len(store.recent_alerts().items) == 5
    store.close()


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 20, 10, 2, tzinfo=UTC),
        datetime(2026, 11, 20, 10, 2, 3, 450, tzinfo=UTC),
        datetime(2026, 11, 20, 12, 2, tzinfo=UTC).astimezone(),
        datetime(2026, 11, 20, 10, 2),
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_sort_time_matches_strftime(moment: datetime):
    as_utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    assert sort_time(moment) == as_utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize(
    "document",
    [{"a": "é\u2028", "n": 1.5, "l": [None, True]}, [], {}, 'x"y\\', 3, {"k": {"d": [1, 2]}}],
)
def test_dumps_is_compact_json(document):
    expected = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert dumps(document) == expected


def test_dumps_rejects_nan():
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
