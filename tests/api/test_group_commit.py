"""GroupCommitStore over a real SQLite store: grouping, outcomes and errors per caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsforge_core.errors import StoreUnavailableError, ValidationError
from opsforge_core.group_commit import GroupCommitStore
from opsforge_core.models import Alert
from opsforge_core.store.base import AlertUpsert
from opsforge_core.store.sqlite import SQLiteStore

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _alert(fingerprint: str, status: str = "firing") -> Alert:
    return Alert(
        fingerprint=fingerprint,
        source="api",
        name="QueueDepthHigh",
        service="checkout",
        severity="warning",
        status=status,
        summary=f"queue depth above 1000 ({fingerprint})",
        starts_at=START,
        ends_at=START + timedelta(minutes=5) if status == "resolved" else None,
    )


class RecordingStore(SQLiteStore):
    """A SQLite store that records each ``upsert_alerts`` call's size.

    While ``gate`` is clear, the first call waits for it, so later callers queue up behind the
    leader. ``failures`` maps a call's number (1 for the first) to the error it raises instead
    of writing.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.failures: dict[int, Exception] = {}

    def upsert_alerts(self, alerts: list[Alert]) -> list[AlertUpsert]:
        self.calls.append(len(alerts))
        if len(self.calls) == 1:
            self.entered.set()
            self.gate.wait(timeout=30)
        error = self.failures.get(len(self.calls))
        if error is not None:
            raise error
        return super().upsert_alerts(alerts)


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[RecordingStore]:
    store = RecordingStore(tmp_path / "opsforge.db")
    store.init()
    yield store
    store.close()


def _queued(wrapper: GroupCommitStore) -> int:
    with wrapper._lock:
        return len(wrapper._queue)


def _run_grouped(
    wrapper: GroupCommitStore, recording: RecordingStore, batches: list[list[Alert]]
) -> list[Future[list[AlertUpsert]]]:
    """Start one leader call, queue ``batches`` behind it, then let the leader write."""
    pool = ThreadPoolExecutor(max_workers=len(batches) + 1)
    leader = pool.submit(wrapper.upsert_alerts, [_alert("leader")])
    assert recording.entered.wait(timeout=10)
    futures = []
    for batch in batches:
        futures.append(pool.submit(wrapper.upsert_alerts, batch))
    deadline = time.monotonic() + 10
    while _queued(wrapper) < len(batches) and time.monotonic() < deadline:
        time.sleep(0.005)
    recording.gate.set()
    assert leader.result(timeout=10)[0].change == "new"
    pool.shutdown(wait=True)
    return futures


def test_group_commit_merges_queued_callers(recording: RecordingStore) -> None:
    wrapper = GroupCommitStore(recording)
    batches = [[_alert(f"a{i}"), _alert(f"b{i}")] for i in range(5)]
    futures = _run_grouped(wrapper, recording, batches)
    assert recording.calls == [1, 10]
    for index, future in enumerate(futures):
        result = future.result()
        assert [u.alert.fingerprint for u in result] == [f"a{index}", f"b{index}"]
        assert [u.change for u in result] == ["new", "new"]
    stored = {alert.fingerprint for alert in recording.recent_alerts().items}
    assert stored == {"leader"} | {f"{p}{i}" for p in "ab" for i in range(5)}


def test_group_commit_repeat_in_group_is_unchanged(recording: RecordingStore) -> None:
    wrapper = GroupCommitStore(recording)
    batches = [[_alert("same")], [_alert("same")], [_alert("same", "resolved")]]
    futures = _run_grouped(wrapper, recording, batches)
    assert recording.calls == [1, 3]
    changes = [future.result()[0].change for future in futures]
    assert changes == ["new", "unchanged", "resolved"]
    stored = [a for a in recording.recent_alerts().items if a.fingerprint == "same"]
    assert len(stored) == 1
    assert stored[0].status == "resolved"


def test_group_commit_invalid_key_fails_one_caller(recording: RecordingStore) -> None:
    wrapper = GroupCommitStore(recording)
    batches = [[_alert("good-1")], [_alert("x" * 1000)], [_alert("good-2")]]
    futures = _run_grouped(wrapper, recording, batches)
    assert futures[0].result()[0].change == "new"
    assert futures[2].result()[0].change == "new"
    with pytest.raises(ValidationError):
        futures[1].result()
    stored = {alert.fingerprint for alert in recording.recent_alerts().items}
    assert stored == {"leader", "good-1", "good-2"}


def test_group_commit_unavailable_fails_whole_group(recording: RecordingStore) -> None:
    wrapper = GroupCommitStore(recording)
    locked = StoreUnavailableError("feed: locked for longer than the busy timeout")
    recording.failures[2] = locked
    futures = _run_grouped(wrapper, recording, [[_alert(f"f{i}")] for i in range(3)])
    # The whole group fails at once, because writing each caller alone would wait out the lock
    # once per caller.
    assert recording.calls == [1, 3]
    for future in futures:
        with pytest.raises(StoreUnavailableError):
            future.result()
    # The lead was handed back, so the next call writes again.
    assert wrapper.upsert_alerts([_alert("f0")])[0].change == "new"
    assert recording.calls == [1, 3, 1]


def test_group_commit_many_threads_store_all(recording: RecordingStore) -> None:
    recording.gate.set()
    wrapper = GroupCommitStore(recording, max_group_alerts=7)
    fingerprints = [f"t{i:03d}" for i in range(200)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda fp: wrapper.upsert_alerts([_alert(fp)]), fingerprints))
    assert [r[0].alert.fingerprint for r in results] == fingerprints
    assert all(r[0].change == "new" for r in results)
    assert max(recording.calls) <= 7
    assert sum(recording.calls) == 200
    stored = recording.recent_alerts(limit=1000).items
    assert sorted(a.fingerprint for a in stored) == fingerprints


def test_group_commit_passes_other_calls_through(recording: RecordingStore) -> None:
    recording.gate.set()
    wrapper = GroupCommitStore(recording)
    assert wrapper.upsert_alerts([]) == []
    wrapper.upsert_alerts([_alert("through")])
    assert [a.fingerprint for a in wrapper.recent_alerts().items] == ["through"]
    wrapper.check()


def test_group_commit_rejects_empty_group_size(recording: RecordingStore) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommitStore(recording, max_group_alerts=0)
