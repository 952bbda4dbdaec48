"""The DynamoDB store: production persistence through boto3, for EC2 and Lambda alike.

Items contain a normalized document (``doc``) beside the attributes that keys and indexes
read. A document that would make an item larger than DynamoDB's 400 KB limit is stored gzip
compressed (``doc_gz``). Only a document that does not fit even then is trimmed, with notes on
what the stored copy lost (see ``trim``). Table layout and creation are in ``dynamodb_schema``,
calls, paging and error mapping in ``dynamodb_io``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import boto3
from botocore.config import Config

from opsforge_core.config import Settings
from opsforge_core.errors import ConflictError, StoreError, ValidationError
from opsforge_core.models import IncidentReport, IncidentSummary, utcnow
from opsforge_core.store import dynamodb_schema as schema
from opsforge_core.store import records
from opsforge_core.store.base import IncidentFilter, Page, Store, TableInfo
from opsforge_core.store.codec import check_key, check_limit, normalize, sort_time
from opsforge_core.store.dynamodb_feed import FeedMixin
from opsforge_core.store.dynamodb_io import (
    CALL_THREADS,
    LIMIT_TEXT,
    Tables,
    pack,
    serialize,
    unpack,
)
from opsforge_core.store.dynamodb_lock import FeedLock
from opsforge_core.store.dynamodb_memory import MemoryMixin
from opsforge_core.store.trim import trim_incident

logger = logging.getLogger(__name__)

# Optimistic updates of an incident re-read and retry this often when another write wins.
UPDATE_ATTEMPTS = 8
# Open connections kept per client: the call threads plus as many threads of the caller.
MAX_POOL_CONNECTIONS = 2 * CALL_THREADS


def client_config(region: str, retry_mode: str = "standard") -> Config:
    """Return the botocore settings of the store's DynamoDB client.

    ``standard`` mode retries throttling and transient errors with exponential backoff;
    ``adaptive`` also slows the client down while DynamoDB throttles it. The connection pool
    keeps a connection open for each call thread and for several threads of the caller, so
    calls reuse connections instead of opening new ones.
    """
    return Config(
        region_name=region,
        retries={"mode": retry_mode, "max_attempts": 5},
        connect_timeout=3,
        read_timeout=10,
        tcp_keepalive=True,
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )


def make_client(settings: Settings, retry_mode: str = "standard") -> Any:
    """Build a DynamoDB client with bounded retries and timeouts (see ``client_config``)."""
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=settings.dynamodb_endpoint,
        config=client_config(settings.region, retry_mode),
    )


class DynamoDBStore(FeedMixin, MemoryMixin, Store):
    """Store on four DynamoDB tables; the client may be injected (tests, local endpoints)."""

    def __init__(
        self,
        client: Any,
        names: dict[str, str],
        feed_ttl_hours: int = 72,
        endpoint: str | None = None,
    ) -> None:
        self.tables = Tables(client, endpoint)
        self.names = dict(names)
        self.feed_ttl_hours = feed_ttl_hours
        self.feed_lock = FeedLock(self.tables, self.names["feed"])

    @classmethod
    def from_settings(cls, settings: Settings, client: Any | None = None) -> DynamoDBStore:
        client = client if client is not None else make_client(settings)
        return cls(
            client, settings.table_names, settings.feed_ttl_hours, settings.dynamodb_endpoint
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def init(self) -> list[str]:
        return schema.create_tables(self.tables, self.names)

    def close(self) -> None:
        self.tables.close()

    def check(self) -> None:
        for name in self.names.values():
            self.tables.call("describe_table", name, "check", TableName=name)

    def describe_tables(self) -> list[TableInfo]:
        return schema.describe(self.tables, self.names)

    # -- incident memory -----------------------------------------------------------------------

    def _incident_item(self, report: IncidentReport) -> dict[str, Any]:
        fixed = {**records.incident_index(report), "version": uuid.uuid4().hex}
        document = trim_incident(
            records.incident_document(report),
            lambda doc: pack(fixed, doc) is not None,
            LIMIT_TEXT,
        )
        item = pack(fixed, document)
        assert item is not None  # trim_incident raised if nothing fits
        return item

    def put_incident(self, report: IncidentReport) -> None:
        table = self.names["incidents"]
        check_key(table, "incident_id", report.incident_id)
        item = self._incident_item(report)
        self.tables.call(
            "put_item",
            table,
            f"incident_id={report.incident_id!r}",
            TableName=table,
            Item=serialize(item),
        )

    def get_incident(self, incident_id: str) -> IncidentReport | None:
        table = self.names["incidents"]
        check_key(table, "incident_id", incident_id)
        item = self.tables.get(table, {"incident_id": incident_id})
        return IncidentReport.from_dict(unpack(item)) if item else None

    def list_incidents(
        self,
        filters: IncidentFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[IncidentSummary]:
        check_limit(limit)
        filters = filters or IncidentFilter()

        # A status filter narrows the key range of the status index; otherwise the constant
        # partition of the newest-first index covers every incident.
        if filters.status:
            index, partition, value = "by-status", "status", filters.status
        else:
            index, partition, value = "by-created", "listing", records.LISTING_PARTITION
        names = {"#p": partition}
        values: dict[str, Any] = {":p": value}
        condition = "#p = :p" + _time_condition(filters, values)
        if filters.since or filters.until:
            names["#c"] = "created_at"

        filter_expression = _incident_filter(filters, names, values)
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
            "ScanIndexForward": False,
        }
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression

        items, next_cursor = self.tables.page(
            "query",
            self.names["incidents"],
            f"list index {index}",
            limit=limit,
            cursor=cursor,
            key_attrs=["incident_id", partition, "created_at"],
            filtered=bool(filter_expression),
            **kwargs,
        )
        return Page([records.summary_from_index(i) for i in items], next_cursor)

    def _change_incident(
        self, incident_id: str, change: Any, expected_status: str | None = None
    ) -> IncidentReport:
        """Read, change and write back one incident, conditional on its version.

        ``change`` edits the report in place. A lost race re-reads and retries; a stored
        status other than ``expected_status`` raises ``ConflictError``.
        """
        table = self.names["incidents"]
        target = f"incident_id={incident_id!r}"
        for _ in range(UPDATE_ATTEMPTS):
            item = self.tables.get(table, {"incident_id": incident_id})
            if item is None:
                raise StoreError(f"{table}: incident {incident_id!r} not found")
            report = IncidentReport.from_dict(unpack(item))
            if expected_status is not None and report.status != expected_status:
                raise ConflictError(
                    f"{table} {target}: status is {report.status!r}, expected {expected_status!r}"
                )
            change(report)
            try:
                self.tables.call(
                    "put_item",
                    table,
                    target,
                    TableName=table,
                    Item=serialize(self._incident_item(report)),
                    **_unchanged_since_read(item, expected_status),
                )
            except ConflictError:
                logger.debug("%s %s changed while updating; retrying", table, target)
                continue
            return report
        raise ConflictError(f"{table} {target}: changed by other writers {UPDATE_ATTEMPTS} times")

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
        now = utcnow()
        return self._change_incident(
            incident_id,
            lambda report: records.apply_status(report, status, notes, now),
            expected_status,
        )

    def set_feedback(self, incident_id: str, feedback: dict[str, Any]) -> IncidentReport:
        check_key(self.names["incidents"], "incident_id", incident_id)
        value = normalize(feedback)

        def change(report: IncidentReport) -> None:
            report.feedback = value

        return self._change_incident(incident_id, change)

    def find_open_incidents_for(self, fingerprints: list[str]) -> list[IncidentSummary]:
        # NOTE: reads the index entry of every open incident and matches fingerprints here.
        # That is one small query while open incidents number in the hundreds; a per-alert
        # index would be needed beyond that.
        requested = {f for f in fingerprints if f}
        if not requested:
            return []
        table = self.names["incidents"]
        items = self.tables.all_items(
            "query",
            table,
            "open incidents",
            IndexName="by-status",
            KeyConditionExpression="#s = :open",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=serialize({":open": "open"}),
            ScanIndexForward=False,
        )
        found = [i for i in items if requested.intersection(i.get("fingerprints") or [])]
        return [records.summary_from_index(i) for i in found]


def _unchanged_since_read(item: dict[str, Any], expected_status: str | None) -> dict[str, Any]:
    """Build the condition that the stored incident still has the version (and status) read."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    if item.get("version") is None:
        condition = "attribute_not_exists(version)"
    else:
        condition = "version = :version"
        values[":version"] = item["version"]
    if expected_status is not None:
        condition += " AND #status = :expected"
        names["#status"] = "status"
        values[":expected"] = expected_status
    kwargs: dict[str, Any] = {"ConditionExpression": condition}
    if names:
        kwargs["ExpressionAttributeNames"] = names
    if values:
        kwargs["ExpressionAttributeValues"] = serialize(values)
    return kwargs


def _time_condition(filters: IncidentFilter, values: dict[str, Any]) -> str:
    if filters.since and filters.until:
        values[":since"] = sort_time(filters.since)
        values[":until"] = sort_time(filters.until)
        return " AND #c BETWEEN :since AND :until"
    if filters.since:
        values[":since"] = sort_time(filters.since)
        return " AND #c >= :since"
    if filters.until:
        values[":until"] = sort_time(filters.until)
        return " AND #c <= :until"
    return ""


def _incident_filter(filters: IncidentFilter, names: dict[str, str], values: dict[str, Any]) -> str:
    # NOTE: severity, service and text are filter expressions on the index query, so DynamoDB
    # reads (and bills) the entries they drop. Status and time narrow the key range itself.
    parts = []
    if filters.severity:
        names["#severity"] = "severity"
        values[":severity"] = filters.severity
        parts.append("#severity = :severity")
    if filters.service:
        names["#services"] = "services"
        values[":service"] = filters.service
        parts.append("contains(#services, :service)")
    if filters.text:
        names["#search"] = "search_text"
        values[":text"] = filters.text.lower()
        parts.append("contains(#search, :text)")
    return " AND ".join(parts)
