"""A lease lock that lets one writer at a time decide and write the alert feed's items.

An alert delivery is written with BatchWriteItem, which takes no condition expressions, and
dynalite 4 has no TransactWriteItems. So the writer keeps this lock from the read that decides
which alerts are new until its last batch is written. Two deliveries of the same new alert then
cannot both read it as absent, and it is stored once and counted once as new.

The lock is one item in the feed table (``feed_id`` ``lock``), created with a conditional
PutItem and deleted on release. It carries a lease, so a writer that dies while holding it
blocks the others for at most ``LEASE_SECONDS``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opsforge_core.errors import ConflictError, StoreError, StoreUnavailableError
from opsforge_core.store.dynamodb_io import Tables, describe_key, serialize

logger = logging.getLogger(__name__)

LOCK_KEY = {"feed_id": "lock", "ts": "alerts"}
# A holder stops writing once half of its lease has passed, so its last request has the other
# half to land before another writer may take the lock over.
LEASE_SECONDS = 20.0
# How long a writer waits for the lock before it gives up on the delivery.
WAIT_SECONDS = 25.0
_FIRST_POLL_DELAY = 0.01
_MAX_POLL_DELAY = 0.2
# An abandoned lock item is deleted by the table's TTL this long after its lease ended.
_TTL_AFTER_LEASE = 3600


@dataclass(slots=True)
class Lease:
    """The lock held by one writer: its owner token and when it was requested (monotonic)."""

    table: str
    owner: str
    requested_at: float
    lease_seconds: float

    def check(self) -> None:
        """Raise ``StoreError`` when half of the lease has passed, before any further write."""
        # NOTE: a write sent just before half the lease can still land after the lease ends if
        # botocore keeps retrying it on a stalled server (``make_client`` allows 5 attempts of
        # up to 10 s each). A writer that took the lock over by then may count a new alert twice.
        held = time.monotonic() - self.requested_at
        if held > self.lease_seconds / 2:
            raise StoreError(
                f"{self.table}: the alert feed lock was held for {held:.1f} s, over half of its "
                f"{self.lease_seconds:.0f} s lease, so the remaining alerts were not written; "
                "retry the delivery"
            )


class FeedLock:
    """The alert feed's write lock on one DynamoDB table.

    Threads of one process queue on a local lock first, so only one of them polls DynamoDB.
    """

    def __init__(
        self,
        tables: Tables,
        table: str,
        lease_seconds: float = LEASE_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self.tables = tables
        self.table = table
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self._local = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[Lease]:
        """Hold the lock for the body of the ``with`` block.

        Raises ``StoreUnavailableError`` when another writer keeps it for ``wait_seconds``.
        """
        deadline = time.monotonic() + self.wait_seconds
        if not self._local.acquire(timeout=self.wait_seconds):
            raise self._timed_out()
        try:
            lease = self._acquire(deadline)
            try:
                yield lease
            finally:
                self._release(lease)
        finally:
            self._local.release()

    def _acquire(self, deadline: float) -> Lease:
        delay = _FIRST_POLL_DELAY
        owner = uuid.uuid4().hex
        while True:
            requested_at = time.monotonic()
            if self._try_put(owner):
                return Lease(self.table, owner, requested_at, self.lease_seconds)
            if time.monotonic() + delay > deadline:
                raise self._timed_out()
            self.tables.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, _MAX_POLL_DELAY)

    def _timed_out(self) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"{self.table}: another writer held the alert feed lock ({describe_key(LOCK_KEY)}) "
            f"for over {self.wait_seconds:.0f} s; retry the delivery"
        )

    def _try_put(self, owner: str) -> bool:
        # NOTE: leases compare the wall clocks of different hosts. A waiter whose clock runs
        # more than half a lease ahead of the holder's can take the lock while the holder writes.
        now = time.time()
        lease_until = now + self.lease_seconds
        item = {
            **LOCK_KEY,
            "holder": owner,
            "lease_until": round(lease_until, 3),
            "expires_at": int(lease_until) + _TTL_AFTER_LEASE,
        }
        try:
            self.tables.call(
                "put_item",
                self.table,
                describe_key(LOCK_KEY),
                TableName=self.table,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(ts) OR lease_until < :now",
                ExpressionAttributeValues=serialize({":now": round(now, 3)}),
            )
        except ConflictError:
            return False
        return True

    def _release(self, lease: Lease) -> None:
        try:
            self.tables.call(
                "delete_item",
                self.table,
                describe_key(LOCK_KEY),
                TableName=self.table,
                Key=serialize(LOCK_KEY),
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues=serialize({":holder": lease.owner}),
            )
        except ConflictError:
            logger.warning(
                "%s: the alert feed lock's lease ran out while held, and another writer took it",
                self.table,
            )
        except StoreError as exc:
            logger.warning(
                "%s: the alert feed lock was not released (%s); it frees itself in %.0f s",
                self.table,
                exc,
                self.lease_seconds,
            )
