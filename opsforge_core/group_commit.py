"""Group commit of alert upserts: concurrent requests share one SQLite write transaction.

SQLite lets one connection write at a time. When many API threads each open their own
``BEGIN IMMEDIATE``, the losers wait in SQLite's busy handler, which sleeps in steps of up to
100 ms, so a burst of small writes turns into a long latency tail. ``GroupCommitStore`` queues
the alerts of concurrent ``upsert_alerts`` calls instead. One caller, the leader, writes the whole
queue with a single ``upsert_alerts`` call on the wrapped store while the others wait. Each
caller returns only after the transaction that contains its alerts has committed, so an API
request that returns 2xx afterwards returns it only for stored alerts.

The combined call gives each alert the outcome it would get from separate calls made in queue
order. The backend reads the stored copies once and then follows its own writes, so a repeat of
an alert queued earlier in the same group is reported as ``unchanged``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from opsforge_core.errors import StoreUnavailableError
from opsforge_core.models import Alert
from opsforge_core.store.base import AlertUpsert, Store

logger = logging.getLogger(__name__)

# Upper bound of alerts written in one transaction. A single call larger than this is still
# written whole, in its own transaction.
DEFAULT_MAX_GROUP_ALERTS = 5000


@dataclass
class _Pending:
    """One caller's alerts, its outcome, and the event that wakes it.

    The event is set when the alerts are written or when the caller is made the leader.
    """

    alerts: list[Alert]
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    written: bool = False
    result: list[AlertUpsert] | None = None
    error: BaseException | None = None


class GroupCommitStore:
    """Wrap ``store`` so that concurrent ``upsert_alerts`` calls commit together.

    Every other attribute is the wrapped store's own, so the wrapper can replace the store.
    """

    def __init__(self, store: Store, max_group_alerts: int = DEFAULT_MAX_GROUP_ALERTS) -> None:
        if max_group_alerts < 1:
            raise ValueError(f"max_group_alerts={max_group_alerts} must be at least 1")
        self.wrapped = store
        self.max_group_alerts = max_group_alerts
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leader_active = False

    def __getattr__(self, name: str) -> Any:
        if name == "wrapped":
            # Reached only before __init__ has run (copy and pickle do that).
            raise AttributeError(name)
        return getattr(self.wrapped, name)

    def upsert_alerts(self, alerts: list[Alert]) -> list[AlertUpsert]:
        """Record ``alerts`` as the wrapped store does, in a transaction shared with others."""
        if not alerts:
            return self.wrapped.upsert_alerts(alerts)
        pending = _Pending(list(alerts))
        with self._lock:
            self._queue.append(pending)
            if not self._leader_active:
                self._leader_active = True
                pending.lead = True
        if not pending.lead:
            pending.wake.wait()
        if pending.lead:
            self._lead(pending)
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _lead(self, own: _Pending) -> None:
        """Write groups from the queue until ``own`` is written, then pass the lead on.

        The lead passes to the oldest waiting caller, so no caller writes for the others longer
        than it takes to reach its own alerts.
        """
        try:
            while not own.written:
                with self._lock:
                    group = self._take_group()
                self._commit(group)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.wake.set()
                else:
                    self._leader_active = False

    def _take_group(self) -> list[_Pending]:
        """Remove and return the oldest callers whose alerts fit in one group (at least one)."""
        alert_count = len(self._queue[0].alerts)
        group_size = 1
        while group_size < len(self._queue):
            size = len(self._queue[group_size].alerts)
            if alert_count + size > self.max_group_alerts:
                break
            alert_count += size
            group_size += 1
        group = self._queue[:group_size]
        del self._queue[:group_size]
        return group

    def _commit(self, group: list[_Pending]) -> None:
        """Write ``group`` in one transaction, or each caller alone if the group is rejected."""
        combined = [alert for pending in group for alert in pending.alerts]
        try:
            results = self.wrapped.upsert_alerts(combined)
        except StoreUnavailableError as exc:
            # The store itself is down or locked, so writing each caller alone would only wait
            # out the busy timeout once per caller.
            for pending in group:
                pending.error = exc
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
            else:
                # One caller's invalid alert (a key too long, say) must not fail the others.
                logger.debug("group of %d writes failed (%s); writing each alone", len(group), exc)
                self._commit_each(group)
        else:
            start = 0
            for pending in group:
                end = start + len(pending.alerts)
                pending.result = results[start:end]
                start = end
        for pending in group:
            pending.written = True
            if pending.lead:
                continue  # the leader is the running thread, not a waiting one
            pending.wake.set()

    def _commit_each(self, group: list[_Pending]) -> None:
        for pending in group:
            try:
                pending.result = self.wrapped.upsert_alerts(pending.alerts)
            except Exception as exc:
                pending.error = exc
