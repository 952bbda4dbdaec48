"""Alert upserts on DynamoDB: concurrent deliveries, the feed lock and the stored item format."""

from __future__ import annotations

import threading
import time

import pytest

from opsforge_core.errors import PartialWriteError, StoreError
from opsforge_core.store.codec import normalize
from opsforge_core.store.dynamodb_io import serialize
from opsforge_core.store.dynamodb_lock import LOCK_KEY, Lease
from opsforge_core.store.records import alert_digest, alert_sort_key
from tests.store.conftest import dynamodb_store
from tests.store.factories import make_alert


@pytest.fixture
def feed(dynalite, dynalite_client):
    store = dynamodb_store(dynalite_client, dynalite.endpoint)
    store.init()
    yield store
    store.close()


def _twin(store, dynalite):
    """A second store on the same tables, as another process would open it."""
    prefix = store.names["feed"][: -len("event-feed")]
    return dynamodb_store(dynalite.client(), dynalite.endpoint, prefix=prefix)


def _raw_item(store, alert) -> dict:
    response = store.tables.client.get_item(
        TableName=store.names["feed"],
        Key=serialize({"feed_id": "alerts", "ts": alert_sort_key(alert)}),
        ConsistentRead=True,
    )
    return response["Item"]


def _run_together(*deliveries):
    """Run each (store, alerts) delivery on its own thread, released at the same moment."""
    barrier = threading.Barrier(len(deliveries))
    results: list = [None] * len(deliveries)

    def deliver(index: int, store, alerts) -> None:
        barrier.wait()
        results[index] = store.upsert_alerts(alerts)

    threads = [
        threading.Thread(target=deliver, args=(i, store, alerts))
        for i, (store, alerts) in enumerate(deliveries)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


# Deliveries of up to 100 keys are read before the lock is taken, bigger ones only under it.
@pytest.mark.parametrize("count", [40, 150])
def test_concurrent_new_alert_counted_once(feed, dynalite, count):
    other = _twin(feed, dynalite)
    for round_number in range(4):
        alerts = [make_alert(f"fp-{round_number}-{i:03d}", minutes=i) for i in range(count)]
        first, second = _run_together((feed, alerts), (other, list(reversed(alerts))))
        new = [u.alert.fingerprint for u in first + second if u.change == "new"]
        assert sorted(new) == sorted(a.fingerprint for a in alerts)
        repeats = [u for u in first + second if u.change == "unchanged"]
        assert len(repeats) == count
    assert len(feed.recent_alerts(limit=1000).items) == 4 * count
    other.close()


def test_concurrent_threads_one_store(feed):
    alerts = [make_alert(f"fp-{i:02d}", minutes=i) for i in range(30)]
    results = _run_together((feed, alerts), (feed, alerts), (feed, alerts))
    changes = [u.change for result in results for u in result]
    assert changes.count("new") == 30
    assert changes.count("unchanged") == 60


def test_repeat_delivery_takes_no_lock(feed):
    alerts = [make_alert(f"fp-{i:02d}", minutes=i) for i in range(30)]
    feed.upsert_alerts(alerts)
    _hold_lock(feed, time.time() + 60)
    feed.feed_lock.wait_seconds = 0.3
    changes = [r.change for r in feed.upsert_alerts(alerts)]
    assert changes == ["unchanged"] * 30
    with pytest.raises(PartialWriteError, match="held the alert feed lock") as info:
        feed.upsert_alerts(alerts[:29] + [make_alert("fp-29", minutes=29, status="resolved")])
    assert info.value.unwritten == [{"feed_id": "alerts", "ts": alert_sort_key(alerts[29])}]


def test_lock_released_after_delivery(feed):
    feed.upsert_alerts([make_alert("fp-1")])
    response = feed.tables.client.get_item(
        TableName=feed.names["feed"], Key=serialize(LOCK_KEY), ConsistentRead=True
    )
    assert "Item" not in response


def _hold_lock(store, lease_until: float) -> None:
    item = {**LOCK_KEY, "holder": "another-writer", "lease_until": lease_until}
    store.tables.client.put_item(TableName=store.names["feed"], Item=serialize(item))


def test_held_lock_times_out(feed):
    _hold_lock(feed, time.time() + 60)
    feed.feed_lock.wait_seconds = 0.3
    alert = make_alert("fp-1")
    with pytest.raises(PartialWriteError, match="held the alert feed lock") as info:
        feed.upsert_alerts([alert])
    assert info.value.unwritten == [{"feed_id": "alerts", "ts": alert_sort_key(alert)}]
    assert feed.recent_alerts().items == []


def test_thread_waiting_in_process_times_out(feed):
    feed.feed_lock.wait_seconds = 0.3
    errors: list[Exception] = []

    def deliver() -> None:
        try:
            feed.upsert_alerts([make_alert("fp-1")])
        except PartialWriteError as exc:
            errors.append(exc)

    with feed.feed_lock.held():
        thread = threading.Thread(target=deliver)
        thread.start()
        thread.join(timeout=30)
    assert len(errors) == 1
    assert "held the alert feed lock" in str(errors[0])
    assert feed.recent_alerts().items == []


def test_expired_lock_taken_over(feed):
    _hold_lock(feed, time.time() - 1)
    (result,) = feed.upsert_alerts([make_alert("fp-1")])
    assert result.change == "new"
    assert [a.fingerprint for a in feed.recent_alerts().items] == ["fp-1"]


def test_lease_check_after_half_lease():
    lease = Lease("t-event-feed", "me", time.monotonic() - 6.0, lease_seconds=10.0)
    with pytest.raises(StoreError, match="over half of its 10 s lease"):
        lease.check()
    Lease("t-event-feed", "me", time.monotonic() - 4.0, lease_seconds=10.0).check()


def test_alert_stored_as_json_text(feed):
    alert = make_alert("fp-1", raw={"labels": {"alertname": "HighLatency"}, "value": 30.0})
    feed.upsert_alerts([alert])
    item = _raw_item(feed, alert)
    assert set(item) == {"feed_id", "ts", "expires_at", "digest", "doc_json"}
    assert item["digest"]["S"] == alert_digest(alert)
    (stored,) = feed.recent_alerts().items
    assert stored.raw == {"labels": {"alertname": "HighLatency"}, "value": 30.0}


def test_large_alert_compressed(feed):
    raw = {"body": "connection reset by peer; " * 20_000}  # about 520 KB of JSON
    alert = make_alert("fp-big", raw=raw)
    (result,) = feed.upsert_alerts([alert])
    assert result.change == "new"
    item = _raw_item(feed, alert)
    assert "doc_gz" in item
    assert "doc_json" not in item
    (stored,) = feed.recent_alerts().items
    assert stored.raw == raw


def test_map_document_item_still_read(feed):
    # Items written with the document as a map attribute, as earlier versions did.
    alert = make_alert("fp-old")
    item = {
        "feed_id": "alerts",
        "ts": alert_sort_key(alert),
        "expires_at": int(time.time()) + 3600,
        "digest": alert_digest(alert),
        "doc": normalize(alert.to_dict()),
    }
    feed.tables.client.put_item(TableName=feed.names["feed"], Item=serialize(item))
    (stored,) = feed.recent_alerts().items
    assert stored.to_dict() == alert.to_dict()
    (repeat,) = feed.upsert_alerts([alert])
    assert repeat.change == "unchanged"
    (resolved,) = feed.upsert_alerts([make_alert("fp-old", status="resolved")])
    assert resolved.change == "resolved"
    assert "doc_json" in _raw_item(feed, alert)


def test_repeat_inside_delivery_decided_in_order(feed):
    firing = make_alert("fp-1")
    resolved = make_alert("fp-1", status="resolved")
    results = feed.upsert_alerts([firing, resolved, firing, make_alert("fp-2", minutes=1)])
    assert [r.change for r in results] == ["new", "resolved", "unchanged", "new"]
    assert results[2].alert.status == "resolved"
    statuses = {a.fingerprint: a.status for a in feed.recent_alerts().items}
    assert statuses == {"fp-1": "resolved", "fp-2": "firing"}


def test_delivery_over_one_chunk(feed):
    alerts = [make_alert(f"fp-{i:03d}", minutes=i) for i in range(260)]
    first = feed.upsert_alerts(alerts)
    assert [r.change for r in first] == ["new"] * 260
    assert [r.alert.fingerprint for r in first] == [a.fingerprint for a in alerts]
    changed = [make_alert(f"fp-{i:03d}", minutes=i, status="resolved") for i in range(0, 260, 2)]
    second = feed.upsert_alerts(alerts[1::2] + changed)
    assert [r.change for r in second] == ["unchanged"] * 130 + ["resolved"] * 130
    stored = feed.recent_alerts(limit=1000).items
    assert len(stored) == 260
    resolved = sorted(a.fingerprint for a in stored if a.status == "resolved")
    assert resolved == [f"fp-{i:03d}" for i in range(0, 260, 2)]


def test_crowded_range_read_by_key(feed):
    # 300 stored alerts lie between the first and last key of the delivery below, so its range
    # read stops early and the keys after that point are read by key.
    feed.upsert_alerts([make_alert(f"fp-{i:03d}", minutes=i) for i in range(300)])
    delivery = [
        make_alert("fp-000", minutes=0),
        make_alert("fp-new", minutes=150),
        make_alert("fp-299", minutes=299, status="resolved"),
        make_alert("fp-298", minutes=298),
    ]
    results = feed.upsert_alerts(delivery)
    assert [r.change for r in results] == ["unchanged", "new", "resolved", "unchanged"]
    assert results[3].alert.fingerprint == "fp-298"
    assert len(feed.recent_alerts(limit=1000).items) == 301
