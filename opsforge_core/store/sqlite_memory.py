"""Pattern library and agent knowledge on SQLite: the methods ``SQLiteStore`` mixes in."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from opsforge_core.errors import StoreError
from opsforge_core.models import KnowledgeItem, Pattern
from opsforge_core.store.base import Page
from opsforge_core.store.codec import (
    check_key,
    check_limit,
    decode_cursor,
    dumps,
    encode_cursor,
    normalize,
)
from opsforge_core.store.sqlite_db import Database

logger = logging.getLogger(__name__)


class SQLiteMemoryMixin:
    """Pattern-library and agent-knowledge methods of ``SQLiteStore``."""

    db: Database
    names: dict[str, str]

    def _t(self, logical: str) -> str:
        return f'"{self.names[logical]}"'

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
        check_limit(limit)
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
            stored = self._read_pattern(conn, pattern.pattern_id)
            # A new pattern starts at one occurrence, as DynamoDB's ADD does.
            doc = stored or {**normalize(pattern.to_dict()), "occurrences": 0}
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
        check_limit(limit)
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


def _check_pattern(table: str, pattern: Pattern) -> None:
    check_key(table, "pattern_id", pattern.pattern_id)
    check_key(table, "signature", pattern.signature)
