"""The event feed on DynamoDB: alert upserts (in ``dynamodb_alerts``) and metric batches.

Alerts live in the ``alerts`` partition, keyed by start time and fingerprint. Metric batches
live in the ``metrics`` partition, keyed by first time and series key. Both carry
``expires_at`` for TTL. DynamoDB deletes expired items in the background, some time after they
expire, so reads filter them out.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from opsforge_core.models import MAX_FINGERPRINT_BYTES, Alert, MetricSeries, utcnow
from opsforge_core.store import dynamodb_alerts, records
from opsforge_core.store.base import ALERT_FEED, METRIC_FEED, AlertUpsert, Page
from opsforge_core.store.codec import check_key, check_limit, normalize, sort_time
from opsforge_core.store.dynamodb_alerts import FEED_KEY
from opsforge_core.store.dynamodb_io import Tables, serialize, unpack
from opsforge_core.store.dynamodb_lock import FeedLock

logger = logging.getLogger(__name__)


class FeedMixin:
    """Event-feed methods of ``DynamoDBStore``."""

    tables: Tables
    names: dict[str, str]
    feed_ttl_hours: int
    feed_lock: FeedLock

    def upsert_alerts(self, alerts: list[Alert]) -> list[AlertUpsert]:
        table = self.names["feed"]
        for alert in alerts:
            check_key(table, "fingerprint", alert.fingerprint, MAX_FINGERPRINT_BYTES)
        if not alerts:
            return []
        expiry = records.expires_at(utcnow(), self.feed_ttl_hours)
        return dynamodb_alerts.upsert_alerts(self.tables, self.feed_lock, table, alerts, expiry)

    def recent_alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[Alert]:
        check_limit(limit)
        low = sort_time(since) if since else None
        high = sort_time(until) + "~" if until else None
        items, next_cursor = self.tables.page(
            "query",
            self.names["feed"],
            "recent alerts",
            limit=limit,
            cursor=cursor,
            key_attrs=FEED_KEY,
            filtered=True,
            ScanIndexForward=False,
            **_feed_query(ALERT_FEED, low, high),
        )
        return Page([Alert.from_dict(unpack(i)) for i in items], next_cursor)

    def append_metrics(self, series: list[MetricSeries]) -> int:
        table = self.names["feed"]
        expiry = records.expires_at(utcnow(), self.feed_ttl_hours)
        requests = []
        for one in series:
            for ts, document in records.metric_batches(one):
                item = {
                    "feed_id": METRIC_FEED,
                    "ts": ts,
                    "expires_at": expiry,
                    "doc": normalize(document),
                }
                requests.append({"PutRequest": {"Item": serialize(item)}})
        return self.tables.batch_write(table, requests, FEED_KEY)

    def recent_metrics(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[MetricSeries]:
        low = records.metric_window_start(since)
        high = sort_time(until) + "~" if until else None
        items = self.tables.all_items(
            "query", self.names["feed"], "recent metrics", **_feed_query(METRIC_FEED, low, high)
        )
        return records.merge_metric_batches((unpack(i) for i in items), since, until)

    def clear_feed(self) -> int:
        table = self.names["feed"]
        deleted = 0
        for feed_id in (ALERT_FEED, METRIC_FEED):
            keys = self.tables.all_items(
                "query",
                table,
                f"clear {feed_id}",
                KeyConditionExpression="feed_id = :f",
                ExpressionAttributeValues=serialize({":f": feed_id}),
                ProjectionExpression="feed_id, ts",
            )
            requests = [{"DeleteRequest": {"Key": serialize(k)}} for k in keys]
            deleted += self.tables.batch_write(table, requests, FEED_KEY)
        return deleted


def _feed_query(feed_id: str, low: str | None, high: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {":f": feed_id, ":now": int(time.time())}
    condition = "feed_id = :f"
    if low is not None and high is not None:
        condition += " AND ts BETWEEN :low AND :high"
        values.update({":low": low, ":high": high})
    elif low is not None:
        condition += " AND ts >= :low"
        values[":low"] = low
    elif high is not None:
        condition += " AND ts <= :high"
        values[":high"] = high
    return {
        "KeyConditionExpression": condition,
        "FilterExpression": "expires_at > :now",
        "ExpressionAttributeValues": serialize(values),
    }
