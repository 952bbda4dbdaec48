"""The event feed on DynamoDB: alert upserts with conditional writes, metric batches.

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

from opsforge_core.errors import ConflictError, PartialWriteError, StoreError
from opsforge_core.models import Alert, MetricSeries, utcnow
from opsforge_core.store import records
from opsforge_core.store.base import ALERT_FEED, METRIC_FEED, AlertUpsert, Page
from opsforge_core.store.codec import check_key, check_limit, normalize, sort_time
from opsforge_core.store.dynamodb_io import Tables, describe_key, pack, serialize, unpack

logger = logging.getLogger(__name__)

FEED_KEY = ["feed_id", "ts"]
# A conditional alert write that loses a race re-reads and decides again this often.
UPSERT_ATTEMPTS = 5


class FeedMixin:
    """Event-feed methods of ``DynamoDBStore``."""

    tables: Tables
    names: dict[str, str]
    feed_ttl_hours: int

    def upsert_alerts(self, alerts: list[Alert]) -> list[AlertUpsert]:
        table = self.names["feed"]
        for alert in alerts:
            check_key(table, "fingerprint", alert.fingerprint, 900)
        expiry = records.expires_at(utcnow(), self.feed_ttl_hours)
        keys = [{"feed_id": ALERT_FEED, "ts": records.alert_sort_key(a)} for a in alerts]
        # One read for the whole delivery: most deliveries repeat alerts already stored, and
        # those then need no write at all.
        try:
            fetched = self.tables.batch_get(table, keys, FEED_KEY)
        except StoreError as exc:
            raise _unwritten_alerts(table, alerts, exc) from exc
        results: list[AlertUpsert] = []
        for position, (alert, key) in enumerate(zip(alerts, keys, strict=True)):
            try:
                results.append(self._upsert_alert(alert, key, expiry, fetched))
            except StoreError as exc:
                raise _unwritten_alerts(table, alerts[position:], exc) from exc
        return results

    def _upsert_alert(
        self, alert: Alert, key: dict[str, str], expiry: int, fetched: dict[tuple, dict]
    ) -> AlertUpsert:
        """Write one alert if it changes the stored copy, conditional on that copy.

        ``fetched`` contains the items read before the first attempt and is updated after each
        write, so a repeat within the same delivery sees it. A lost race reads again.
        """
        table = self.names["feed"]
        cache_key = (key["feed_id"], key["ts"])
        target = describe_key(key)
        for attempt in range(UPSERT_ATTEMPTS):
            if attempt == 0:
                stored_item = fetched.get(cache_key)
            else:
                stored_item = self.tables.get(table, key)
            stored, digest = None, None
            if stored_item and int(stored_item.get("expires_at", 0)) > time.time():
                stored = Alert.from_dict(unpack(stored_item))
                digest = stored_item.get("digest")
            decision = records.decide_upsert(stored, digest, alert)
            if not decision.write:
                return AlertUpsert(stored or alert, decision.change)
            item = self._alert_item(key, alert, expiry)
            if stored_item is None:
                condition = {"ConditionExpression": "attribute_not_exists(ts)"}
            else:
                condition = {
                    "ConditionExpression": "digest = :digest",
                    "ExpressionAttributeValues": serialize({":digest": stored_item.get("digest")}),
                }
            try:
                self.tables.call(
                    "put_item", table, target, TableName=table, Item=serialize(item), **condition
                )
            except ConflictError:
                logger.debug("%s %s changed while upserting; deciding again", table, target)
                continue
            fetched[cache_key] = item
            return AlertUpsert(alert, decision.change)
        raise ConflictError(f"{table} {target}: changed by other writers {UPSERT_ATTEMPTS} times")

    def _alert_item(self, key: dict[str, str], alert: Alert, expiry: int) -> dict[str, Any]:
        fixed = {**key, "expires_at": expiry, "digest": records.alert_digest(alert)}
        document = normalize(alert.to_dict())
        item = pack(fixed, document)
        if item is None:
            # The raw payload is the only unbounded part the operator can do without: the
            # parsed fields stay, with a note where the payload was.
            size = len(str(document.get("raw")))
            document["raw"] = {
                "not_stored": f"raw payload of about {size:,} bytes was over "
                "DynamoDB's 400 KB item limit"
            }
            item = pack(fixed, document)
        if item is None:
            raise StoreError(
                f"{self.names['feed']} {describe_key(key)}: the alert is over DynamoDB's "
                "400 KB item limit even without its raw payload"
            )
        return item

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


def _unwritten_alerts(table: str, alerts: list[Alert], exc: StoreError) -> PartialWriteError:
    keys = [{"feed_id": ALERT_FEED, "ts": records.alert_sort_key(a)} for a in alerts]
    names = ", ".join(a.fingerprint for a in alerts[:3])
    more = f" and {len(alerts) - 3} more" if len(alerts) > 3 else ""
    logger.error("%s: %d alerts not written: %s", table, len(alerts), exc)
    return PartialWriteError(
        f"{table}: {len(alerts)} alerts not written (fingerprints {names}{more}); the ones "
        f"before them were written: {exc}",
        keys,
    )
