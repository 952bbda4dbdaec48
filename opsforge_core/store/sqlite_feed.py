"""The event feed on SQLite: alert upserts and metric batches, with expiry.

SQLite has no TTL, so writes delete expired rows at most once a minute and reads skip them.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

from opsforge_core.models import Alert, MetricSeries, utcnow
from opsforge_core.store import records
from opsforge_core.store.base import ALERT_FEED, METRIC_FEED, AlertUpsert, Page
from opsforge_core.store.codec import (
    check_key,
    check_limit,
    decode_cursor,
    dumps,
    encode_cursor,
    normalize,
    sort_time,
)
from opsforge_core.store.sqlite_db import Database

logger = logging.getLogger(__name__)

# Expired feed rows are deleted at most this often, by whichever write comes first.
_PURGE_INTERVAL_SECONDS = 60.0


class SQLiteFeedMixin:
    """Event-feed methods of ``SQLiteStore``."""

    db: Database
    names: dict[str, str]
    feed_ttl_hours: int
    _last_purge: float

    def _t(self, logical: str) -> str:
        return f'"{self.names[logical]}"'

    # -- event feed ------------------------------------------------------------------------------

    def upsert_alerts(self, alerts: list[Alert]) -> list[AlertUpsert]:
        table = self.names["feed"]
        for alert in alerts:
            check_key(table, "fingerprint", alert.fingerprint, 900)
        expiry = records.expires_at(utcnow(), self.feed_ttl_hours)
        results = []
        with self.db.writing(f"{table} {len(alerts)} alerts") as conn:
            self._purge_expired(conn)
            for alert in alerts:
                results.append(self._upsert_alert(conn, alert, expiry))
        return results

    def _upsert_alert(self, conn: Any, alert: Alert, expiry: int) -> AlertUpsert:
        ts = records.alert_sort_key(alert)
        row = conn.execute(
            f"SELECT digest, doc FROM {self._t('feed')} WHERE feed_id = ? AND ts = ? "
            "AND expires_at > ?",
            (ALERT_FEED, ts, int(time.time())),
        ).fetchone()
        stored = Alert.from_dict(json.loads(row[1])) if row else None
        decision = records.decide_upsert(stored, row[0] if row else None, alert)
        if not decision.write:
            return AlertUpsert(stored or alert, decision.change)
        conn.execute(
            f"INSERT OR REPLACE INTO {self._t('feed')} (feed_id, ts, expires_at, digest, doc) "
            "VALUES (?, ?, ?, ?, ?)",
            (ALERT_FEED, ts, expiry, records.alert_digest(alert), _alert_json(alert)),
        )
        return AlertUpsert(alert, decision.change)

    def recent_alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[Alert]:
        check_limit(limit)
        where = ["feed_id = ?", "expires_at > ?"]
        params: list[Any] = [ALERT_FEED, int(time.time())]
        if since is not None:
            where.append("ts >= ?")
            params.append(sort_time(since))
        if until is not None:
            where.append("ts <= ?")
            params.append(sort_time(until) + "~")
        if cursor:
            where.append("ts < ?")
            params.append(decode_cursor(cursor, {"feed_id", "ts"})["ts"])
        sql = (
            f"SELECT ts, doc FROM {self._t('feed')} WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC LIMIT ?"
        )
        with self.db.reading(f"{self.names['feed']} recent alerts") as conn:
            rows = conn.execute(sql, [*params, limit + 1]).fetchall()
        alerts = [Alert.from_dict(json.loads(row[1])) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor({"feed_id": ALERT_FEED, "ts": rows[limit - 1][0]})
        return Page(alerts, next_cursor)

    def append_metrics(self, series: list[MetricSeries]) -> int:
        expiry = records.expires_at(utcnow(), self.feed_ttl_hours)
        batches = [batch for s in series for batch in records.metric_batches(s)]
        with self.db.writing(f"{self.names['feed']} {len(batches)} metric batches") as conn:
            self._purge_expired(conn)
            conn.executemany(
                f"INSERT OR REPLACE INTO {self._t('feed')} (feed_id, ts, expires_at, digest, doc) "
                "VALUES (?, ?, ?, NULL, ?)",
                [(METRIC_FEED, ts, expiry, dumps(normalize(doc))) for ts, doc in batches],
            )
        return len(batches)

    def recent_metrics(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[MetricSeries]:
        where = ["feed_id = ?", "expires_at > ?"]
        params: list[Any] = [METRIC_FEED, int(time.time())]
        low = records.metric_window_start(since)
        if low is not None:
            where.append("ts >= ?")
            params.append(low)
        if until is not None:
            where.append("ts <= ?")
            params.append(sort_time(until) + "~")
        sql = f"SELECT doc FROM {self._t('feed')} WHERE {' AND '.join(where)} ORDER BY ts"
        with self.db.reading(f"{self.names['feed']} recent metrics") as conn:
            docs = [json.loads(row[0]) for row in conn.execute(sql, params)]
        return records.merge_metric_batches(docs, since, until)

    def clear_feed(self) -> int:
        with self.db.writing(f"{self.names['feed']} clear") as conn:
            cursor = conn.execute(f"DELETE FROM {self._t('feed')}")
        return cursor.rowcount

    def _purge_expired(self, conn: Any) -> None:
        now = time.time()
        if now - self._last_purge < _PURGE_INTERVAL_SECONDS:
            return
        self._last_purge = now
        deleted = conn.execute(
            f"DELETE FROM {self._t('feed')} WHERE expires_at <= ?", (int(now),)
        ).rowcount
        if deleted:
            logger.debug("deleted %d expired feed items", deleted)


def _alert_json(alert: Alert) -> str:
    return dumps(normalize(alert.to_dict()))
