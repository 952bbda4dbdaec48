"""DynamoDB table definitions, creation and description.

All four tables use on-demand capacity (PAY_PER_REQUEST). Secondary indexes exist where a
listing needs them:

- incidents ``by-status``: status, created_at. Serves status filters and open incidents.
- incidents ``by-created``: a constant ``listing`` partition, created_at. Serves newest-first
  listings without a scan. Every incident lands in one index partition, which is fine at
  incident write rates: the Developer Guide ("warm throughput" page) limits a partition to
  1,000 write units per second, and the index entries stay small because both indexes
  project only the summary attributes.
- patterns ``by-signature``: signature. Serves ``find_patterns``.

Agent knowledge needs no index because its key is (agent_name, knowledge_key). The event feed
has TTL on ``expires_at``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from opsforge_core.errors import StoreError, StoreUnavailableError
from opsforge_core.store.base import TableInfo
from opsforge_core.store.dynamodb_io import Tables

logger = logging.getLogger(__name__)

# Attributes that incident listings read from the indexes, so a listing never loads reports.
INCIDENT_INDEX_ATTRS = [
    "title",
    "severity",
    "root_cause",
    "alert_count",
    "services",
    "search_text",
    "fingerprints",
]
KEY_ATTRS = {
    "incidents": ["incident_id"],
    "patterns": ["pattern_id"],
    "knowledge": ["agent_name", "knowledge_key"],
    "feed": ["feed_id", "ts"],
}
TTL_ATTRIBUTE = "expires_at"


def _key(hash_name: str, range_name: str | None = None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_name, "KeyType": "HASH"}]
    if range_name:
        schema.append({"AttributeName": range_name, "KeyType": "RANGE"})
    return schema


def _strings(*names: str) -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": "S"} for name in names]


def _index(name: str, hash_name: str, range_name: str | None, projection: dict) -> dict:
    return {"IndexName": name, "KeySchema": _key(hash_name, range_name), "Projection": projection}


def table_definitions(names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Return the CreateTable arguments of each table by logical name."""
    return {
        "incidents": {
            "KeySchema": _key("incident_id"),
            "AttributeDefinitions": _strings("incident_id", "status", "created_at", "listing"),
            "GlobalSecondaryIndexes": [
                _index(
                    "by-status",
                    "status",
                    "created_at",
                    {"ProjectionType": "INCLUDE", "NonKeyAttributes": INCIDENT_INDEX_ATTRS},
                ),
                _index(
                    "by-created",
                    "listing",
                    "created_at",
                    {
                        "ProjectionType": "INCLUDE",
                        "NonKeyAttributes": ["status", *INCIDENT_INDEX_ATTRS],
                    },
                ),
            ],
        },
        "patterns": {
            "KeySchema": _key("pattern_id"),
            "AttributeDefinitions": _strings("pattern_id", "signature"),
            "GlobalSecondaryIndexes": [
                _index("by-signature", "signature", None, {"ProjectionType": "ALL"}),
            ],
        },
        "knowledge": {
            "KeySchema": _key("agent_name", "knowledge_key"),
            "AttributeDefinitions": _strings("agent_name", "knowledge_key"),
        },
        "feed": {
            "KeySchema": _key("feed_id", "ts"),
            "AttributeDefinitions": _strings("feed_id", "ts"),
        },
    }


def create_tables(
    tables: Tables, names: dict[str, str], timeout: float = 300.0, poll: float = 0.5
) -> list[str]:
    """Create the missing tables, wait until they and their indexes are ACTIVE, enable TTL.

    Returns the names created. Running it again creates nothing; a table that another
    process creates at the same moment counts as existing.
    """
    created = []
    for logical, definition in table_definitions(names).items():
        name = names[logical]
        if _exists(tables, name):
            continue
        try:
            tables.client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **definition)
        except tables.client.exceptions.ResourceInUseException:
            logger.info("table %s is being created by another process", name)
            continue
        except Exception as exc:  # noqa: BLE001 - mapped to StoreError below
            raise _mapped(tables, exc, name, "create table") from exc
        created.append(name)
        logger.info("creating table %s", name)
    for name in names.values():
        _wait_active(tables, name, timeout, poll)
    enable_ttl(tables, names["feed"])
    return created


def _mapped(tables: Tables, exc: Exception, table: str, target: str) -> StoreError:
    if isinstance(exc, ClientError):
        return tables.client_error(exc, table, target)
    return StoreError(f"{table} {target}: {exc}")


def _exists(tables: Tables, name: str) -> bool:
    try:
        tables.call("describe_table", name, "describe", TableName=name)
    except StoreUnavailableError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    return True


def _wait_active(tables: Tables, name: str, timeout: float, poll: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        table = tables.call("describe_table", name, "describe", TableName=name)["Table"]
        statuses = [table["TableStatus"]]
        statuses += [
            i.get("IndexStatus", "ACTIVE") for i in table.get("GlobalSecondaryIndexes", [])
        ]
        if all(status == "ACTIVE" for status in statuses):
            return
        if time.monotonic() > deadline:
            raise StoreUnavailableError(
                f"table {name} is not ACTIVE after {timeout:.0f} s (statuses {statuses}); "
                "check it in the DynamoDB console and run store init again"
            )
        time.sleep(poll)


def enable_ttl(tables: Tables, name: str) -> None:
    """Turn on TTL for the feed's ``expires_at`` unless it is already on.

    dynalite (4.x) has no UpdateTimeToLive and returns UnknownOperationException; the store
    then works the same, except that nothing deletes expired feed items. Reads skip them.
    """
    try:
        described = tables.client.describe_time_to_live(TableName=name)
        status = described.get("TimeToLiveDescription", {}).get("TimeToLiveStatus")
        if status in ("ENABLED", "ENABLING"):
            return
        tables.client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
        logger.info("enabled TTL on %s.%s", name, TTL_ATTRIBUTE)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("UnknownOperationException", "UnrecognizedClientException"):
            logger.warning(
                "%s: the endpoint %s does not support TTL (%s); expired feed items are skipped "
                "on read but not deleted",
                name,
                tables.endpoint,
                code,
            )
            return
        raise tables.client_error(exc, name, "enable TTL") from exc


def describe(tables: Tables, names: dict[str, str]) -> list[TableInfo]:
    infos = []
    for name in names.values():
        table = tables.call("describe_table", name, "describe", TableName=name)["Table"]
        indexes = [i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])]
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        extra = {
            "status": table.get("TableStatus"),
            "billing_mode": billing,
            "size_bytes": table.get("TableSizeBytes", 0),
        }
        infos.append(
            TableInfo(name, table["KeySchema"], int(table.get("ItemCount", 0)), indexes, extra)
        )
    return infos
