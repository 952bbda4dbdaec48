"""The event feed on SQLite: alert upserts and metric batches, with expiry.

SQLite has no TTL, so writes delete expired rows at most once a minute and reads skip them.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

from opsforge_core.models import MAX_FINGERPRINT_BYTES, Alert, MetricSeries, utcnow
from opsforge_core.store import records
from opsforge_core.store.base import (
    ALERT_FEED,
    ALERT_ROW_FIELDS,
    METRIC_FEED,
    AlertUpsert,
    Page,
)
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
_KEYS_PER_READ = 500


def _row_column(name: str) -> str:
    # ``Alert.from_dict`` reads a missing or null summary as "".
    if name == "summary":
        return "coalesce(json_extract(doc, '$.summary'), '')"
    return f"json_extract(doc, '$.{name}')"


_ALERT_ROW_COLUMNS = ", ".join(_row_column(name) for name in ALERT_ROW_FIELDS)


def _decide(
    alerts: list[Alert],
    keys: list[str],
    serialized: list[tuple[str, str]],
    stored: dict[str, tuple[str, str]],
    expiry: int,
) -> tuple[list[AlertUpsert], list[tuple[str, str, int, str, str]]]:
    """Decide each delivery against ``stored`` (updated in place); return outcomes and rows.

    ``serialized`` contains each alert's ``records.alert_row``. The rows to write come one per key,
    the last write of the delivery for a key that it repeats.
    """
    results: list[AlertUpsert] = []
    rows: dict[str, tuple[str, str, int, str, str]] = {}
    for ts, alert, (digest, text) in zip(keys, alerts, serialized, strict=True):
        row = stored.get(ts)
        if row is None:  # no stored copy, so the alert is new, as decide_upsert returns
            change = "new"
        else:
            previous = Alert.from_dict(json.loads(row[1]))
            decision = records.decide_upsert(previous, row[0], alert, digest)
            if not decision.write:
                results.append(AlertUpsert(previous, decision.change))
                continue
            change = decision.change
        stored[ts] = (digest, text)
        rows[ts] = (ALERT_FEED, ts, expiry, digest, text)
        results.append(AlertUpsert(alert, change))
    return results, list(rows.values())


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
            check_key(table, "fingerprint", alert.fingerprint, MAX_FINGERPRINT_BYTES)
        expiry = records.expires_at(utcnow(), self.feed_ttl_hours)
        keys = [records.alert_sort_key(alert) for alert in alerts]
        # Serialized before the transaction, so the write lock is held only for the SQL.
        serialized = [records.alert_row(alert) for alert in alerts]
        with self.db.writing(f"{table} {len(alerts)} alerts") as conn:
            self._purge_expired(conn)
            # One read for the whole delivery; ``_decide`` then follows this delivery's own
            # writes, so a repeat inside it sees the copy written before it.
            stored = self._stored_alerts(conn, keys)
            results, rows = _decide(alerts, keys, serialized, stored, expiry)
            conn.executemany(
                f"INSERT OR REPLACE INTO {self._t('feed')} (feed_id, ts, expires_at, digest, doc) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return results

    def _stored_alerts(self, conn: Any, keys: list[str]) -> dict[str, tuple[str, str]]:
        """Return (digest, document) of the unexpired stored alerts among ``keys``."""
        found: dict[str, tuple[str, str]] = {}
        unique = list(dict.fromkeys(keys))
        now = int(time.time())
        # SQLite builds before 3.32 allow at most 999 bound parameters in one statement.
        for start in range(0, len(unique), _KEYS_PER_READ):
            chunk = unique[start : start + _KEYS_PER_READ]
            marks = ", ".join("?" * len(chunk))
            cursor = conn.execute(
                f"SELECT ts, digest, doc FROM {self._t('feed')} WHERE feed_id = ? "
                f"AND expires_at > ? AND ts IN ({marks})",
                (ALERT_FEED, now, *chunk),
            )
            found.update((ts, (digest, doc)) for ts, digest, doc in cursor)
        return found

    def recent_alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[Alert]:
        rows, next_cursor = self._alert_page("doc", since, until, limit, cursor)
        return Page([Alert.from_dict(json.loads(row[1])) for row in rows], next_cursor)

    def recent_alert_rows(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[tuple[str | None, ...]]:
        # json_extract reads only these fields, which costs about half of parsing each whole
        # document and building an Alert.
        rows, next_cursor = self._alert_page(_ALERT_ROW_COLUMNS, since, until, limit, cursor)
        return Page([row[1:] for row in rows], next_cursor)

    def _alert_page(
        self,
        columns: str,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[tuple], str | None]:
        """Read one page of alert rows as ``(ts, *columns)``, newest first, and the next cursor."""
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
            f"SELECT ts, {columns} FROM {self._t('feed')} WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC LIMIT ?"
        )
        with self.db.reading(f"{self.names['feed']} recent alerts") as conn:
            rows = conn.execute(sql, [*params, limit + 1]).fetchall()
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor({"feed_id": ALERT_FEED, "ts": rows[limit - 1][0]})
        return rows[:limit], next_cursor

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
