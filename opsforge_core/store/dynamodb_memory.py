"""Pattern library and agent knowledge on DynamoDB: the methods ``DynamoDBStore`` mixes in."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from opsforge_core.errors import ConflictError, StoreError, ValidationError
from opsforge_core.models import KnowledgeItem, Pattern, iso
from opsforge_core.store.base import Page
from opsforge_core.store.codec import check_key, check_limit, item_size, normalize
from opsforge_core.store.dynamodb_io import (
    ITEM_BUDGET,
    LIMIT_TEXT,
    Tables,
    deserialize,
    pack,
    serialize,
    unpack,
)

logger = logging.getLogger(__name__)


class MemoryMixin:
    """Pattern-library and agent-knowledge methods of ``DynamoDBStore``."""

    tables: Tables
    names: dict[str, str]

    # -- pattern library -----------------------------------------------------------------------

    def _pattern_item(self, pattern: Pattern) -> dict[str, Any]:
        table = self.names["patterns"]
        check_key(table, "pattern_id", pattern.pattern_id)
        check_key(table, "signature", pattern.signature)
        item = normalize(pattern.to_dict())
        if item_size(item) > ITEM_BUDGET:
            raise ValidationError(f"{table} pattern_id={pattern.pattern_id!r}: over {LIMIT_TEXT}")
        return item

    def put_pattern(self, pattern: Pattern) -> None:
        table = self.names["patterns"]
        item = self._pattern_item(pattern)
        self.tables.call(
            "put_item",
            table,
            f"pattern_id={pattern.pattern_id!r}",
            TableName=table,
            Item=serialize(item),
        )

    def get_pattern(self, pattern_id: str) -> Pattern | None:
        table = self.names["patterns"]
        check_key(table, "pattern_id", pattern_id)
        item = self.tables.get(table, {"pattern_id": pattern_id})
        return Pattern.from_dict(item) if item else None

    def find_patterns(self, signature: str) -> list[Pattern]:
        # NOTE: the index is eventually consistent on AWS: a pattern recorded a moment ago
        # may be missing from the result for up to about a second.
        if not signature:
            return []
        table = self.names["patterns"]
        items = self.tables.all_items(
            "query",
            table,
            f"signature={signature!r}",
            IndexName="by-signature",
            KeyConditionExpression="signature = :s",
            ExpressionAttributeValues=serialize({":s": signature}),
        )
        return sorted((Pattern.from_dict(i) for i in items), key=lambda p: p.pattern_id)

    def list_patterns(self, limit: int = 50, cursor: str | None = None) -> Page[Pattern]:
        check_limit(limit)
        items, next_cursor = self.tables.page(
            "scan",
            self.names["patterns"],
            "list",
            limit=limit,
            cursor=cursor,
            key_attrs=["pattern_id"],
        )
        return Page([Pattern.from_dict(i) for i in items], next_cursor)

    def record_pattern_occurrence(
        self, pattern: Pattern, incident_id: str, when: datetime
    ) -> Pattern:
        table = self.names["patterns"]
        item = self._pattern_item(pattern)
        response = self.tables.call(
            "update_item",
            table,
            f"pattern_id={pattern.pattern_id!r}",
            TableName=table,
            Key=serialize({"pattern_id": pattern.pattern_id}),
            ReturnValues="ALL_NEW",
            **_occurrence_update(item, incident_id, when),
        )
        return Pattern.from_dict(_attributes(response))

    def add_pattern_feedback(
        self, pattern_id: str, confirmed: bool, root_cause: str | None
    ) -> Pattern:
        table = self.names["patterns"]
        check_key(table, "pattern_id", pattern_id)
        expression = "ADD #count :one"
        names = {"#count": "confirmed" if confirmed else "rejected"}
        values: dict[str, Any] = {":one": 1}
        if not confirmed and root_cause:
            expression += " SET #root_cause = :root_cause"
            names["#root_cause"] = "root_cause"
            values[":root_cause"] = root_cause
        try:
            response = self.tables.call(
                "update_item",
                table,
                f"pattern_id={pattern_id!r}",
                TableName=table,
                Key=serialize({"pattern_id": pattern_id}),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pattern_id)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize(values),
                ReturnValues="ALL_NEW",
            )
        except ConflictError as exc:
            raise StoreError(f"{table}: pattern {pattern_id!r} not found") from exc
        return Pattern.from_dict(_attributes(response))

    def delete_pattern(self, pattern_id: str) -> bool:
        table = self.names["patterns"]
        check_key(table, "pattern_id", pattern_id)
        response = self.tables.call(
            "delete_item",
            table,
            f"pattern_id={pattern_id!r}",
            TableName=table,
            Key=serialize({"pattern_id": pattern_id}),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    # -- agent knowledge -----------------------------------------------------------------------

    def _knowledge_key(self, agent_name: str, knowledge_key: str) -> dict[str, str]:
        table = self.names["knowledge"]
        check_key(table, "agent_name", agent_name)
        check_key(table, "knowledge_key", knowledge_key, 1024)
        return {"agent_name": agent_name, "knowledge_key": knowledge_key}

    def put_knowledge(self, item: KnowledgeItem) -> None:
        table = self.names["knowledge"]
        key = self._knowledge_key(item.agent_name, item.knowledge_key)
        doc = normalize(item.to_dict())
        fixed = {**key, "updated_at": doc["updated_at"]}
        packed = pack(fixed, doc.get("value", {}), "value")
        if packed is None:
            raise ValidationError(f"{table} {key}: the value is over {LIMIT_TEXT} compressed")
        self.tables.call("put_item", table, f"{key}", TableName=table, Item=serialize(packed))

    def get_knowledge(self, agent_name: str, knowledge_key: str) -> KnowledgeItem | None:
        key = self._knowledge_key(agent_name, knowledge_key)
        item = self.tables.get(self.names["knowledge"], key)
        return _knowledge(item) if item else None

    def list_knowledge(
        self, agent_name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[KnowledgeItem]:
        check_limit(limit)
        table = self.names["knowledge"]
        key_attrs = ["agent_name", "knowledge_key"]
        if agent_name is None:
            items, next_cursor = self.tables.page(
                "scan", table, "list", limit=limit, cursor=cursor, key_attrs=key_attrs
            )
        else:
            check_key(table, "agent_name", agent_name)
            items, next_cursor = self.tables.page(
                "query",
                table,
                f"agent_name={agent_name!r}",
                limit=limit,
                cursor=cursor,
                key_attrs=key_attrs,
                KeyConditionExpression="agent_name = :a",
                ExpressionAttributeValues=serialize({":a": agent_name}),
            )
        return Page([_knowledge(i) for i in items], next_cursor)

    def delete_knowledge(self, agent_name: str, knowledge_key: str) -> bool:
        table = self.names["knowledge"]
        key = self._knowledge_key(agent_name, knowledge_key)
        response = self.tables.call(
            "delete_item",
            table,
            f"{key}",
            TableName=table,
            Key=serialize(key),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))


# Fields a new pattern takes from the caller and an existing one keeps, because operators may
# have corrected its root cause since it was first stored.
_FIRST_WRITE_FIELDS = (
    "signature",
    "root_cause",
    "fault_kind",
    "fix",
    "alert_names",
    "services",
    "confirmed",
    "rejected",
)


def _occurrence_update(item: dict[str, Any], incident_id: str, when: datetime) -> dict[str, Any]:
    """Build an UpdateItem expression that creates the pattern or counts one occurrence.

    ``ADD`` increments atomically and starts a missing counter at zero, so a new pattern has
    one occurrence whatever count the caller's copy carried.
    """
    fields = [*_FIRST_WRITE_FIELDS, "occurrences", "last_seen"]
    names = {f"#{field}": field for field in fields}
    names["#last_id"] = "last_incident_id"
    values = {f":{field}": item.get(field, "") for field in _FIRST_WRITE_FIELDS}
    values[":one"] = 1
    values[":when"] = iso(when)
    values[":last_id"] = incident_id
    sets = [f"#{field} = if_not_exists(#{field}, :{field})" for field in _FIRST_WRITE_FIELDS]
    sets.append("#last_seen = :when")
    sets.append("#last_id = :last_id")
    return {
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD #occurrences :one",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": serialize(values),
    }


def _attributes(response: dict[str, Any]) -> dict[str, Any]:
    return deserialize(response.get("Attributes", {}))


def _knowledge(item: dict[str, Any]) -> KnowledgeItem:
    doc = {
        "agent_name": item["agent_name"],
        "knowledge_key": item["knowledge_key"],
        "updated_at": item["updated_at"],
        "value": unpack(item, "value") or {},
    }
    return KnowledgeItem.from_dict(doc)
