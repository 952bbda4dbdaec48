"""Alert upserts on the DynamoDB event feed, read and written in batches.

A delivery takes the feed lock (``dynamodb_lock``), reads its keys with BatchGetItem, decides
each alert against the stored copy and writes the changed ones with BatchWriteItem. Holding the
lock from the read to the last write does what a conditional write per alert would do. No
concurrent delivery can change an item between the read that decides and the write, so a new
alert delivered twice at once is stored once and counted once as new. Chunks of up to 100 keys
are read, decided and written on the call threads of ``Tables.map``.

A repeat delivery that changes nothing takes the lock too. Reading first without the lock would
spare it that, but every delivery with a new alert would then read its keys twice, and new
alerts are what a storm of alerts consists of.

An alert item stores the alert as compact JSON text (``doc_json``), the text the SQLite backend
stores too, or that text gzip compressed (``doc_gz``) when the item would be over the limit.
Sending a string costs far less than a map attribute with one entry per field, both in
botocore and in the server. Items written as a map (``doc``) before are still read.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsforge_core.errors import PartialWriteError, StoreError
from opsforge_core.models import Alert
from opsforge_core.store import records
from opsforge_core.store.base import ALERT_FEED, AlertUpsert
from opsforge_core.store.codec import dumps, item_size
from opsforge_core.store.dynamodb_io import (
    BATCH_GET_SIZE,
    ITEM_BUDGET,
    LIMIT_TEXT,
    Tables,
    describe_key,
    unpack,
)
from opsforge_core.store.dynamodb_lock import FeedLock, Lease

logger = logging.getLogger(__name__)

FEED_KEY = ["feed_id", "ts"]


@dataclass(slots=True)
class _ChunkOutcome:
    """The result of reading and writing one chunk of keys: settled upserts and unwritten keys."""

    settled: dict[str, list[AlertUpsert]] = field(default_factory=dict)
    unwritten: list[str] = field(default_factory=list)
    error: StoreError | None = None


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

        Returns their upserts and the position of the alert to write, None when the stored
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
    """Record one delivery in the feed; see ``Store.upsert_alerts`` for the contract.

    The feed lock is held from the first read to the last write, and chunks of up to 100 keys
    are read, decided and written concurrently.
    """
    delivery = AlertDelivery(table, alerts, expiry)
    keys = list(delivery.groups)
    chunks = [keys[i : i + BATCH_GET_SIZE] for i in range(0, len(keys), BATCH_GET_SIZE)]
    try:
        with lock.held() as lease:
            outcomes = tables.map(
                lambda chunk: _write_chunk(tables, delivery, chunk, lease), chunks
            )
    except StoreError as exc:
        raise delivery.unwritten_error(range(len(alerts)), exc) from exc
    first_error = None
    unwritten: list[int] = []
    for outcome in outcomes:
        for ts, upserts in outcome.settled.items():
            delivery.settle(ts, upserts)
        unwritten += [p for ts in outcome.unwritten for p in delivery.groups[ts]]
        first_error = first_error or outcome.error
    if first_error is not None:
        raise delivery.unwritten_error(unwritten, first_error) from first_error
    return [r for r in delivery.results if r is not None]


def _read_chunk(tables: Tables, table: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Read the items of ``keys`` (range keys in the alert partition), by range key."""
    items = tables.batch_get(table, [{"feed_id": ALERT_FEED, "ts": ts} for ts in keys], FEED_KEY)
    return {ts: item for (_, ts), item in items.items()}


def _write_chunk(
    tables: Tables, delivery: AlertDelivery, keys: list[str], lease: Lease
) -> _ChunkOutcome:
    """Read ``keys``, decide and write the changed ones; errors go in the outcome."""
    outcome = _ChunkOutcome()
    try:
        stored = _read_chunk(tables, delivery.table, keys)
    except StoreError as exc:
        return _ChunkOutcome(unwritten=list(keys), error=exc)
    now = time.time()
    requests = []
    waiting: dict[str, list[AlertUpsert]] = {}
    for ts in keys:
        upserts, to_write = delivery.decide(ts, stored.get(ts), now)
        if to_write is None:
            outcome.settled[ts] = upserts
            continue
        try:
            item = delivery.item(ts, to_write)
        except StoreError as exc:
            outcome.unwritten.append(ts)
            outcome.error = outcome.error or exc
            continue
        requests.append({"PutRequest": {"Item": item}})
        waiting[ts] = upserts
    try:
        tables.batch_write(delivery.table, requests, FEED_KEY, before_call=lease.check)
    except PartialWriteError as exc:
        failed = {key["ts"] for key in exc.unwritten}
        outcome.unwritten += [ts for ts in waiting if ts in failed]
        outcome.settled.update({ts: u for ts, u in waiting.items() if ts not in failed})
        outcome.error = outcome.error or exc
    else:
        outcome.settled.update(waiting)
    return outcome


def _fitting_document(text: str, budget: int) -> dict[str, Any] | None:
    """Return the document attribute for JSON ``text``, compressed if needed, or None."""
    data = text.encode()
    if len("doc_json") + len(data) <= budget:
        return {"doc_json": {"S": text}}
    packed = gzip.compress(data, compresslevel=6)
    if len("doc_gz") + len(packed) <= budget:
        return {"doc_gz": {"B": packed}}
    return None
