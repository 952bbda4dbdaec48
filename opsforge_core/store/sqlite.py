"""The SQLite store: the embedded default, one file shared by the console, API and simulator.

Each table keeps the full record as a JSON document beside the columns that keys, listings and
filters read. Connections, transactions and error mapping live in ``sqlite_db``.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from opsforge_core.errors import ConflictError, StoreError, StoreUnavailableError, ValidationError
from opsforge_core.models import (
    Alert,
    IncidentReport,
    IncidentSummary,
    KnowledgeItem,
    MetricSeries,
    Pattern,
    utcnow,
)
from opsforge_core.store import records
from opsforge_core.store.base import (
    ALERT_FEED,
    METRIC_FEED,
    AlertUpsert,
    IncidentFilter,
    Page,
    Store,
    TableInfo,
)
from opsforge_core.store.codec import (
    check_key,
    decode_cursor,
    dumps,
    encode_cursor,
    normalize,
    sort_time,
)
from opsforge_core.store.sqlite_db import INIT_HINT, Database, schema

logger = logging.getLogger(__name__)

_KEYS = {
    "incidents": [("incident_id", "HASH")],
    "patterns": [("pattern_id", "HASH")],
    "knowledge": [("agent_name", "HASH"), ("knowledge_key", "RANGE")],
    "feed": [("feed_id", "HASH"), ("ts", "RANGE")],
}
_SUMMARY_COLUMNS = (
    "incident_id, created_at, title, severity, status, services, root_cause, alert_count"
)
# Expired feed rows are deleted at most this often, by whichever write comes first.
_PURGE_INTERVAL_SECONDS = 60.0


class SQLiteStore(Store):
    """Store on one SQLite file; safe across threads and processes (WAL, busy timeout)."""

    def __init__(
        self,
        path: str | Path,
        table_prefix: str = "opsforge-",
        feed_ttl_hours: int = 72,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.db = Database(path, busy_timeout_ms)
        self.names = {
            "incidents": f"{table_prefix}incident-memory",
            "patterns": f"{table_prefix}pattern-library",
            "knowledge": f"{table_prefix}agent-knowledge",
            "feed": f"{table_prefix}event-feed",
        }
        self.feed_ttl_hours = feed_ttl_hours
        self._last_purge = 0.0

    def _t(self, logical: str) -> str:
        return f'"{self.names[logical]}"'

    # -- lifecycle -----------------------------------------------------------------------------

    def init(self) -> list[str]:
        with self.db.writing(f"create tables in {self.db.path}", create=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            created = []
            for logical, statements in schema(self.names).items():
                for statement in statements:
                    conn.execute(statement)
                if self.names[logical] not in existing:
                    created.append(self.names[logical])
        if created:
            logger.info("created tables %s in %s", ", ".join(created), self.db.path)
        return created

    def check(self) -> None:
        with self.db.reading(f"check {self.db.path}") as conn:
            existing = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        missing = [name for name in self.names.values() if name not in existing]
        if missing:
            raise StoreUnavailableError(
                f"tables {', '.join(missing)} are missing in {self.db.path}; {INIT_HINT}"
            )

    def describe_tables(self) -> list[TableInfo]:
        infos = []
        with self.db.reading(f"describe tables in {self.db.path}") as conn:
            for logical, name in self.names.items():
                count = conn.execute(f"SELECT COUNT(*) FROM {self._t(logical)}").fetchone()[0]
                indexes = [
                    row[1]
                    for row in conn.execute(f"PRAGMA index_list({self._t(logical)})")
                    if not row[1].startswith("sqlite_autoindex")
                ]
                key_schema = [{"AttributeName": a, "KeyType": k} for a, k in _KEYS[logical]]
                infos.append(
                    TableInfo(name, key_schema, count, indexes, {"path": str(self.db.path)})
                )
        return infos

    def close(self) -> None:
        self.db.close()

    # -- incident memory -----------------------------------------------------------------------

    def put_incident(self, report: IncidentReport) -> None:
        table = self.names["incidents"]
        check_key(table, "incident_id", report.incident_id)
        with self.db.writing(f"{table} incident_id={report.incident_id!r}") as conn:
            self._write_incident(conn, report)

    def _write_incident(self, conn: Any, report: IncidentReport) -> None:
        index = records.incident_index(report)
        conn.execute(
            f"""INSERT INTO {self._t("incidents")} (incident_id, created_at, status, severity,
                title, root_cause, alert_count, services, search_text, fingerprints, version, doc)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
            ON CONFLICT (incident_id) DO UPDATE SET created_at = excluded.created_at,
                status = excluded.status, severity = excluded.severity, title = excluded.title,
                root_cause = excluded.root_cause, alert_count = excluded.alert_count,
                services = excluded.services, search_text = excluded.search_text,
                fingerprints = excluded.fingerprints, version = version + 1, doc = excluded.doc""",
            (
                index["incident_id"],
                index["created_at"],
                index["status"],
                index["severity"],
                index["title"],
                index["root_cause"],
                index["alert_count"],
                json.dumps(index["services"]),
                index["search_text"],
                json.dumps(index["fingerprints"]),
                dumps(records.incident_document(report)),
            ),
        )

    def get_incident(self, incident_id: str) -> IncidentReport | None:
        table = self.names["incidents"]
        check_key(table, "incident_id", incident_id)
        with self.db.reading(f"{table} incident_id={incident_id!r}") as conn:
            row = conn.execute(
                f"SELECT doc FROM {self._t('incidents')} WHERE incident_id = ?", (incident_id,)
            ).fetchone()
        return IncidentReport.from_dict(json.loads(row[0])) if row else None

    def list_incidents(
        self,
        filters: IncidentFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[IncidentSummary]:
        _check_limit(limit)
        where, params = _incident_where(filters or IncidentFilter())
        if cursor:
            last = decode_cursor(cursor, {"created_at", "incident_id"})
            where.append("(created_at, incident_id) < (?, ?)")
            params += [last["created_at"], last["incident_id"]]
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM {self._t('incidents')}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, incident_id DESC LIMIT ?"
        with self.db.reading(f"{self.names['incidents']} list") as conn:
            rows = conn.execute(sql, [*params, limit + 1]).fetchall()
        summaries = [_summary(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last_row = rows[limit - 1]
            next_cursor = encode_cursor({"created_at": last_row[1], "incident_id": last_row[0]})
        return Page(summaries, next_cursor)

    def update_incident_status(
        self,
        incident_id: str,
        status: str,
        notes: str | None = None,
        expected_status: str | None = None,
    ) -> IncidentReport:
        table = self.names["incidents"]
        check_key(table, "incident_id", incident_id)
        if status not in records.INCIDENT_STATUSES:
            raise ValidationError(f"{table} incident_id={incident_id!r}: invalid status {status!r}")
        with self.db.writing(f"{table} incident_id={incident_id!r}") as conn:
            report = self._load_incident(conn, incident_id)
            if expected_status is not None and report.status != expected_status:
                raise ConflictError(
                    f"{table} incident_id={incident_id!r}: status is {report.status!r}, "
                    f"expected {expected_status!r}"
                )
            records.apply_status(report, status, notes, utcnow())
            self._write_incident(conn, report)
        return report

    def set_feedback(self, incident_id: str, feedback: dict[str, Any]) -> IncidentReport:
        table = self.names["incidents"]
        check_key(table, "incident_id", incident_id)
        with self.db.writing(f"{table} incident_id={incident_id!r}") as conn:
            report = self._load_incident(conn, incident_id)
            report.feedback = normalize(feedback)
            self._write_incident(conn, report)
        return report

    def _load_incident(self, conn: Any, incident_id: str) -> IncidentReport:
        row = conn.execute(
            f"SELECT doc FROM {self._t('incidents')} WHERE incident_id = ?", (incident_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"{self.names['incidents']}: incident {incident_id!r} not found")
        return IncidentReport.from_dict(json.loads(row[0]))

    def find_open_incidents_for(self, fingerprints: list[str]) -> list[IncidentSummary]:
        wanted = sorted({f for f in fingerprints if f})
        found: dict[str, IncidentSummary] = {}
        columns = ", ".join(f"i.{c.strip()}" for c in _SUMMARY_COLUMNS.split(","))
        with self.db.reading(f"{self.names['incidents']} open incidents") as conn:
            # Chunks stay below SQLite's default limit of host parameters in one statement.
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"""SELECT DISTINCT {columns} FROM {self._t("incidents")} AS i,
                        json_each(i.fingerprints) AS f
                    WHERE i.status = 'open' AND f.value IN ({marks})""",
                    chunk,
                ).fetchall()
                for row in rows:
                    found[row[0]] = _summary(row)
        return sorted(found.values(), key=lambda s: (s.created_at, s.incident_id), reverse=True)

    # -- pattern library -----------------------------------------------------------------------

    def put_pattern(self, pattern: Pattern) -> None:
        table = self.names["patterns"]
        _check_pattern(table, pattern)
        with self.db.writing(f"{table} pattern_id={pattern.pattern_id!r}") as conn:
            self._write_pattern(conn, normalize(pattern.to_dict()))

    def _write_pattern(self, conn: Any, doc: dict[str, Any]) -> None:
        conn.execute(
            f"INSERT OR REPLACE INTO {self._t('patterns')} (pattern_id, signature, doc) "
            "VALUES (?, ?, ?)",
            (doc["pattern_id"], doc["signature"], dumps(doc)),
        )

    def _read_pattern(self, conn: Any, pattern_id: str) -> dict[str, Any] | None:
        row = conn.execute(
            f"SELECT doc FROM {self._t('patterns')} WHERE pattern_id = ?", (pattern_id,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def get_pattern(self, pattern_id: str) -> Pattern | None:
        table = self.names["patterns"]
        check_key(table, "pattern_id", pattern_id)
        with self.db.reading(f"{table} pattern_id={pattern_id!r}") as conn:
            doc = self._read_pattern(conn, pattern_id)
        return Pattern.from_dict(doc) if doc else None

    def find_patterns(self, signature: str) -> list[Pattern]:
        table = self.names["patterns"]
        if not signature:
            return []
        with self.db.reading(f"{table} signature={signature!r}") as conn:
            rows = conn.execute(
                f"SELECT doc FROM {self._t('patterns')} WHERE signature = ? ORDER BY pattern_id",
                (signature,),
            ).fetchall()
        return [Pattern.from_dict(json.loads(row[0])) for row in rows]

    def list_patterns(self, limit: int = 50, cursor: str | None = None) -> Page[Pattern]:
        _check_limit(limit)
        after = decode_cursor(cursor, {"pattern_id"})["pattern_id"] if cursor else ""
        with self.db.reading(f"{self.names['patterns']} list") as conn:
            rows = conn.execute(
                f"SELECT pattern_id, doc FROM {self._t('patterns')} WHERE pattern_id > ? "
                "ORDER BY pattern_id LIMIT ?",
                (after, limit + 1),
            ).fetchall()
        items = [Pattern.from_dict(json.loads(row[1])) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor({"pattern_id": rows[limit - 1][0]})
        return Page(items, next_cursor)

    def record_pattern_occurrence(
        self, pattern: Pattern, incident_id: str, when: datetime
    ) -> Pattern:
        table = self.names["patterns"]
        _check_pattern(table, pattern)
        with self.db.writing(f"{table} pattern_id={pattern.pattern_id!r}") as conn:
            doc = self._read_pattern(conn, pattern.pattern_id) or normalize(pattern.to_dict())
            doc["occurrences"] = int(doc.get("occurrences") or 0) + 1
            doc["last_seen"] = normalize(when)
            doc["last_incident_id"] = incident_id
            self._write_pattern(conn, doc)
        return Pattern.from_dict(doc)

    def add_pattern_feedback(
        self, pattern_id: str, confirmed: bool, root_cause: str | None
    ) -> Pattern:
        table = self.names["patterns"]
        check_key(table, "pattern_id", pattern_id)
        with self.db.writing(f"{table} pattern_id={pattern_id!r}") as conn:
            doc = self._read_pattern(conn, pattern_id)
            if doc is None:
                raise StoreError(f"{table}: pattern {pattern_id!r} not found")
            field = "confirmed" if confirmed else "rejected"
            doc[field] = int(doc.get(field) or 0) + 1
            if not confirmed and root_cause:
                doc["root_cause"] = root_cause
            self._write_pattern(conn, doc)
        return Pattern.from_dict(doc)

    def delete_pattern(self, pattern_id: str) -> bool:
        table = self.names["patterns"]
        check_key(table, "pattern_id", pattern_id)
        with self.db.writing(f"{table} pattern_id={pattern_id!r}") as conn:
            cursor = conn.execute(
                f"DELETE FROM {self._t('patterns')} WHERE pattern_id = ?", (pattern_id,)
            )
        return cursor.rowcount > 0

    # -- agent knowledge -----------------------------------------------------------------------

    def put_knowledge(self, item: KnowledgeItem) -> None:
        table = self.names["knowledge"]
        check_key(table, "agent_name", item.agent_name)
        check_key(table, "knowledge_key", item.knowledge_key, 1024)
        doc = normalize(item.to_dict())
        with self.db.writing(f"{table} {item.agent_name}/{item.knowledge_key}") as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO {self._t('knowledge')} (agent_name, knowledge_key, doc) "
                "VALUES (?, ?, ?)",
                (item.agent_name, item.knowledge_key, dumps(doc)),
            )

    def get_knowledge(self, agent_name: str, knowledge_key: str) -> KnowledgeItem | None:
        table = self.names["knowledge"]
        check_key(table, "agent_name", agent_name)
        check_key(table, "knowledge_key", knowledge_key, 1024)
        with self.db.reading(f"{table} {agent_name}/{knowledge_key}") as conn:
            row = conn.execute(
                f"SELECT doc FROM {self._t('knowledge')} "
                "WHERE agent_name = ? AND knowledge_key = ?",
                (agent_name, knowledge_key),
            ).fetchone()
        return KnowledgeItem.from_dict(json.loads(row[0])) if row else None

    def list_knowledge(
        self, agent_name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[KnowledgeItem]:
        _check_limit(limit)
        where, params = [], []
        if agent_name is not None:
            where.append("agent_name = ?")
            params.append(agent_name)
        if cursor:
            last = decode_cursor(cursor, {"agent_name", "knowledge_key"})
            where.append("(agent_name, knowledge_key) > (?, ?)")
            params += [last["agent_name"], last["knowledge_key"]]
        sql = f"SELECT agent_name, knowledge_key, doc FROM {self._t('knowledge')}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY agent_name, knowledge_key LIMIT ?"
        with self.db.reading(f"{self.names['knowledge']} list") as conn:
            rows = conn.execute(sql, [*params, limit + 1]).fetchall()
        items = [KnowledgeItem.from_dict(json.loads(row[2])) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            agent, key, _ = rows[limit - 1]
            next_cursor = encode_cursor({"agent_name": agent, "knowledge_key": key})
        return Page(items, next_cursor)

    def delete_knowledge(self, agent_name: str, knowledge_key: str) -> bool:
        table = self.names["knowledge"]
        check_key(table, "agent_name", agent_name)
        check_key(table, "knowledge_key", knowledge_key, 1024)
        with self.db.writing(f"{table} {agent_name}/{knowledge_key}") as conn:
            cursor = conn.execute(
                f"DELETE FROM {self._t('knowledge')} WHERE agent_name = ? AND knowledge_key = ?",
                (agent_name, knowledge_key),
            )
        return cursor.rowcount > 0

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
        _check_limit(limit)
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


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"limit must be a positive integer, got {limit!r}")


def _check_pattern(table: str, pattern: Pattern) -> None:
    check_key(table, "pattern_id", pattern.pattern_id)
    check_key(table, "signature", pattern.signature)


def _summary(row: tuple) -> IncidentSummary:
    names = [c.strip() for c in _SUMMARY_COLUMNS.split(",")]
    attrs = dict(zip(names, row, strict=True))
    attrs["services"] = json.loads(attrs["services"])
    return records.summary_from_index(attrs)


def _incident_where(filters: IncidentFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if filters.status:
        where.append("status = ?")
        params.append(filters.status)
    if filters.severity:
        where.append("severity = ?")
        params.append(filters.severity)
    if filters.since:
        where.append("created_at >= ?")
        params.append(sort_time(filters.since))
    if filters.until:
        where.append("created_at <= ?")
        params.append(sort_time(filters.until))
    if filters.service:
        where.append("EXISTS (SELECT 1 FROM json_each(services) WHERE value = ?)")
        params.append(filters.service)
    if filters.text:
        where.append("instr(search_text, ?) > 0")
        params.append(filters.text.lower())
    return where, params


def _alert_json(alert: Alert) -> str:
    return dumps(normalize(alert.to_dict()))
