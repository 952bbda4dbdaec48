"""Alert upserts on the DynamoDB event feed, read and written in batches.

The writer of a delivery takes the feed lock (``dynamodb_lock``), reads the delivery's keys (a
Query per key range, see ``_read_range``), decides each alert against its stored copy and writes
the changed ones with BatchWriteItem. Holding the lock from that read to the last write does
what a conditional write per alert would do. No concurrent delivery can change an item between
the read that decides and the write, so a new alert delivered twice at once is stored once and
counted once as new. The calls run on the call threads of ``Tables.submit``, and the reads and
writes of different chunks overlap (see ``_LockedWriter``).

A delivery of up to 100 keys is read once before the lock is taken as well. When all of its
alerts repeat their stored copies unchanged, it is done without the two calls of the lock. Else
it reads the range of the keys it writes again under the lock, which costs one more small call.
A bigger delivery takes the lock first, because its chunks then overlap from the first read on.

An alert item stores the alert as compact JSON text (``doc_json``), the text the SQLite backend
stores too, or that text gzip compressed (``doc_gz``) when the item would be over the limit.
Sending a string costs far less than a map attribute with one entry per field, both in
botocore and in the server. Items written as a map (``doc``) before are still read.

NOTE: the one lock serializes every delivery that brings a new or changed alert, across all
writers (Lambda invocations, API workers). At real DynamoDB's latency that caps such deliveries
at a few dozen per second whatever their size, so a storm of one-alert EventBridge events waits
on the lock. TODO: on AWS, write each chunk with TransactWriteItems carrying an
``attribute_not_exists`` condition per new alert (dynalite does not implement it, which is why
the lock exists) and drop the lock there."""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Iterable
from concurrent.futures import Future, as_completed, wait
from typing import Any

from opsforge_core.errors import PartialWriteError, StoreError
from opsforge_core.models import Alert
from opsforge_core.store import records
from opsforge_core.store.base import ALERT_FEED, AlertUpsert
from opsforge_core.store.codec import dumps, item_size
from opsforge_core.store.dynamodb_io import (
    BATCH_GET_SIZE,
    BATCH_SIZE,
    ITEM_BUDGET,
    LIMIT_TEXT,
    Tables,
    describe_key,
    deserialize,
    serialize,
    unpack,
)
from opsforge_core.store.dynamodb_lock import FeedLock, Lease

logger = logging.getLogger(__name__)

FEED_KEY = ["feed_id", "ts"]
# A range read stops after this many items per key it looks for, so a range crowded with other
# alerts costs at most twice the items a read by key would return.
RANGE_READ_ITEMS_PER_KEY = 2


class AlertDelivery:
    """The alerts of one ``upsert_alerts`` call, grouped by feed key in first-seen order."""

    def __init__(self, table: str, alerts: list[Alert], expiry: int) -> None:
        self.table = table
        self.alerts = alerts
        self.expiry = expiry
        self.groups: dict[str, list[int]] = {}
        for position, alert in enumerate(alerts):
            self.groups.setdefault(records.alert_sort_key(alert), []).append(position)
        self.results: list[AlertUpsert | None] = [None] * len(alerts)
        self._rows: list[tuple[str, str] | None] = [None] * len(alerts)

    def row(self, position: int) -> tuple[str, str]:
        """Return the alert's digest and JSON text, computed once per delivery."""
        row = self._rows[position]
        if row is None:
            row = self._rows[position] = records.alert_row(self.alerts[position])
        return row

    def decide(
        self, ts: str, stored_item: dict[str, Any] | None, now: float
    ) -> tuple[list[AlertUpsert], int | None]:
        """Decide the alerts of key ``ts`` in delivery order, each against the copy before it.

        Return their upserts and the position of the alert to write, None when the stored
        copy stays as it is. An expired item counts as absent.
        """
        current, digest = None, None
        if stored_item is not None and int(stored_item.get("expires_at", 0)) > now:
            current = Alert.from_dict(unpack(stored_item))
            digest = stored_item.get("digest")
        upserts = []
        to_write = None
        for position in self.groups[ts]:
            alert = self.alerts[position]
            alert_digest = self.row(position)[0]
            decision = records.decide_upsert(current, digest, alert, alert_digest)
            if decision.write:
                current, digest, to_write = alert, alert_digest, position
            upserts.append(AlertUpsert(current if current is not None else alert, decision.change))
        return upserts, to_write

    def settle(self, ts: str, upserts: list[AlertUpsert]) -> None:
        for position, upsert in zip(self.groups[ts], upserts, strict=True):
            self.results[position] = upsert

    def item(self, ts: str, position: int) -> dict[str, Any]:
        """Build the serialized feed item that stores the alert at ``position`` under ``ts``."""
        digest, text = self.row(position)
        fixed = {"feed_id": ALERT_FEED, "ts": ts, "expires_at": self.expiry, "digest": digest}
        budget = ITEM_BUDGET - item_size(fixed)
        document = _fitting_document(text, budget)
        if document is None:
            # The raw payload is the only unbounded part the operator can do without: the
            # parsed fields stay, with a note where the payload was.
            fields = json.loads(text)
            size = len(str(fields.get("raw")))
            fields["raw"] = {
                "not_stored": f"raw payload of about {size:,} bytes was over {LIMIT_TEXT}"
            }
            document = _fitting_document(dumps(fields), budget)
        if document is None:
            raise StoreError(
                f"{self.table} {describe_key({'feed_id': ALERT_FEED, 'ts': ts})}: the alert is "
                f"over {LIMIT_TEXT} even without its raw payload"
            )
        return {
            "feed_id": {"S": ALERT_FEED},
            "ts": {"S": ts},
            "expires_at": {"N": str(self.expiry)},
            "digest": {"S": digest},
            **document,
        }

    def unwritten_error(self, positions: Iterable[int], exc: StoreError) -> PartialWriteError:
        alerts = [self.alerts[p] for p in sorted(positions)]
        keys = [{"feed_id": ALERT_FEED, "ts": records.alert_sort_key(a)} for a in alerts]
        names = ", ".join(a.fingerprint for a in alerts[:3])
        more = f" and {len(alerts) - 3} more" if len(alerts) > 3 else ""
        logger.error("%s: %d alerts not written: %s", self.table, len(alerts), exc)
        return PartialWriteError(
            f"{self.table}: {len(alerts)} of {len(self.alerts)} alerts not written (fingerprints "
            f"{names}{more}); the others were written or already stored: {exc}",
            keys,
        )


def upsert_alerts(
    tables: Tables, lock: FeedLock, table: str, alerts: list[Alert], expiry: int
) -> list[AlertUpsert]:
    """Record one delivery in the feed; see ``Store.upsert_alerts`` for the contract."""
    delivery = AlertDelivery(table, alerts, expiry)
    pending = sorted(delivery.groups)
    if len(pending) <= BATCH_GET_SIZE:
        try:
            stored = _read_range(tables, table, pending)
        except StoreError as exc:
            raise delivery.unwritten_error(range(len(alerts)), exc) from exc
        pending = _settle_unchanged(delivery, pending, stored)
        if not pending:
            return [r for r in delivery.results if r is not None]
    try:
        with lock.held() as lease:
            writer = _LockedWriter(tables, delivery, lease)
            writer.run(pending)
    except StoreError as exc:
        positions = [p for ts in pending for p in delivery.groups[ts]]
        raise delivery.unwritten_error(positions, exc) from exc
    if writer.error is not None:
        positions = [p for ts in writer.unwritten for p in delivery.groups[ts]]
        raise delivery.unwritten_error(positions, writer.error) from writer.error
    return [r for r in delivery.results if r is not None]


def _settle_unchanged(
    delivery: AlertDelivery, keys: list[str], stored: dict[str, dict[str, Any]]
) -> list[str]:
    """Settle the keys whose alerts need no write; return the others."""
    now = time.time()
    pending = []
    for ts in keys:
        upserts, to_write = delivery.decide(ts, stored.get(ts), now)
        if to_write is None:
            delivery.settle(ts, upserts)
        else:
            pending.append(ts)
    return pending


def _chunks(keys: list[str]) -> list[list[str]]:
    return [keys[i : i + BATCH_GET_SIZE] for i in range(0, len(keys), BATCH_GET_SIZE)]


def _read_range(tables: Tables, table: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Read the stored items of sorted ``keys`` with one Query over their key range.

    Alerts arrive roughly in time order, so a chunk's range contains few items besides its own
    keys, and a range read costs the server one scan instead of a lookup per key. DynamoDB
    bills it by the size of the items read, not at least one unit per key. The keys beyond
    where a crowded range stopped are read by key instead.
    """
    response = tables.call(
        "query",
        table,
        f"alerts from ts={keys[0]!r} to ts={keys[-1]!r}",
        TableName=table,
        KeyConditionExpression="feed_id = :feed AND ts BETWEEN :low AND :high",
        ExpressionAttributeValues=serialize(
            {":feed": ALERT_FEED, ":low": keys[0], ":high": keys[-1]}
        ),
        ConsistentRead=True,
        Limit=RANGE_READ_ITEMS_PER_KEY * len(keys),
    )
    requested = set(keys)
    found = {}
    for item in response.get("Items", []):
        ts = item["ts"]["S"]
        if ts in requested:
            found[ts] = deserialize(item)
    last = response.get("LastEvaluatedKey")
    rest = [ts for ts in keys if ts > last["ts"]["S"]] if last else []
    if rest:
        stored = tables.batch_get(
            table, [{"feed_id": ALERT_FEED, "ts": ts} for ts in rest], FEED_KEY
        )
        found.update({ts: item for (_, ts), item in stored.items()})
    return found


class _LockedWriter:
    """The locked reads and writes of one delivery, run on the call threads.

    The keys are read in chunks of up to 100 (see ``_read_range``). As each read returns, its
    alerts are decided on this thread and their items go out in BatchWriteItem calls of 25,
    so reads, decisions and writes overlap. Errors are collected, not raised, so that every
    call has finished before the lock is released.
    """

    def __init__(self, tables: Tables, delivery: AlertDelivery, lease: Lease) -> None:
        self.tables = tables
        self.delivery = delivery
        self.lease = lease
        self.unwritten: list[str] = []
        self.error: StoreError | None = None
        self.stopped = False
        self._reads: dict[Future, list[str]] = {}
        self._writes: dict[Future, list[tuple[str, list[AlertUpsert]]]] = {}

    def run(self, keys: list[str]) -> None:
        """Read the sorted ``keys``, decide their alerts and write the ones that change."""
        table = self.delivery.table
        reads = self._reads = {
            self.tables.submit(_read_range, self.tables, table, chunk): chunk
            for chunk in _chunks(keys)
        }
        try:
            for future in as_completed(reads):
                if future.cancelled() or self.stopped:
                    self._fail(reads[future], self.error)
                    continue
                try:
                    stored = future.result()
                except StoreError as exc:
                    self._fail(reads[future], exc)
                    continue
                self._decide(reads[future], stored)
            for future, entries in self._writes.items():
                if future.cancelled():
                    self._fail([ts for ts, _ in entries], self.error)
                    continue
                self._collect(future, entries)
        finally:
            # A bug above must not release the lock while writes are still in flight.
            wait([*reads, *self._writes])

    def _decide(self, keys: list[str], stored: dict[str, dict[str, Any]]) -> None:
        """Settle the alerts that need no write and send the others' items in batches."""
        now = time.time()
        requests: list[dict[str, Any]] = []
        entries: list[tuple[str, list[AlertUpsert]]] = []
        for ts in keys:
            upserts, to_write = self.delivery.decide(ts, stored.get(ts), now)
            if to_write is None:
                self.delivery.settle(ts, upserts)
                continue
            try:
                item = self.delivery.item(ts, to_write)
            except StoreError as exc:
                # This alert alone cannot be stored (too large); the others go on.
                self._fail([ts], exc, stop=False)
                continue
            requests.append({"PutRequest": {"Item": item}})
            entries.append((ts, upserts))
        for start in range(0, len(requests), BATCH_SIZE):
            future = self.tables.submit(
                self.tables.batch_write,
                self.delivery.table,
                requests[start : start + BATCH_SIZE],
                FEED_KEY,
                self.lease.check,
            )
            self._writes[future] = entries[start : start + BATCH_SIZE]

    def _collect(self, future: Future, entries: list[tuple[str, list[AlertUpsert]]]) -> None:
        try:
            future.result()
        except PartialWriteError as exc:
            failed = {key["ts"] for key in exc.unwritten}
            self._fail([ts for ts, _ in entries if ts in failed], exc)
            entries = [(ts, upserts) for ts, upserts in entries if ts not in failed]
        for ts, upserts in entries:
            self.delivery.settle(ts, upserts)

    def _fail(self, keys: list[str], exc: StoreError | None, stop: bool = True) -> None:
        """Count ``keys`` as unwritten and, with ``stop``, cancel the calls not started yet.

        After one call has failed, past botocore's own retries, the server is most likely down,
        and every queued call would wait out its own timeouts first: a delivery of 10,000
        alerts took minutes to fail. The sender retries the whole delivery instead.
        """
        self.unwritten += keys
        self.error = self.error or exc
        if not stop:
            return
        self.stopped = True
        for future in [*self._reads, *self._writes]:
            future.cancel()


def _fitting_document(text: str, budget: int) -> dict[str, Any] | None:
    """Return the document attribute for JSON ``text``, compressed if needed, or None."""
    data = text.encode()
    if len("doc_json") + len(data) <= budget:
        return {"doc_json": {"S": text}}
    packed = gzip.compress(data, compresslevel=6)
    if len("doc_gz") + len(packed) <= budget:
        return {"doc_gz": {"B": packed}}
    return None
