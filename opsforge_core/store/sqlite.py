"""The SQLite store: the embedded default, one file shared by the console, API and simulator.

Each table keeps the full record as a JSON document beside the columns that keys, listings and
filters read. Connections, transactions and error mapping live in ``sqlite_db``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from opsforge_core.errors import ConflictError, StoreError, StoreUnavailableError, ValidationError
from opsforge_core.models import IncidentReport, IncidentSummary, utcnow
from opsforge_core.store import records
from opsforge_core.store.base import IncidentFilter, Page, Store, TableInfo
from opsforge_core.store.codec import (
    check_key,
    check_limit,
    decode_cursor,
    dumps,
    encode_cursor,
    normalize,
    sort_time,
)
from opsforge_core.store.sqlite_db import INIT_HINT, Database, schema
from opsforge_core.store.sqlite_feed import SQLiteFeedMixin
from opsforge_core.store.sqlite_memory import SQLiteMemoryMixin

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


class SQLiteStore(SQLiteFeedMixin, SQLiteMemoryMixin, Store):
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
        check_limit(limit)
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
        requested = sorted({f for f in fingerprints if f})
        found: dict[str, IncidentSummary] = {}
        columns = ", ".join(f"i.{c.strip()}" for c in _SUMMARY_COLUMNS.split(","))
        with self.db.reading(f"{self.names['incidents']} open incidents") as conn:
            # Chunks stay below SQLite's default limit of host parameters in one statement.
            for start in range(0, len(requested), 500):
                chunk = requested[start : start + 500]
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
