"""dynalite killed in the middle of a batch of writes, then restarted on the same data."""

from __future__ import annotations

import signal

import pytest

from opsforge_core.errors import PartialWriteError
from opsforge_core.store.dynamodb_io import serialize
from opsforge_core.store.dynamodb_lock import LOCK_KEY
from tests.conftest import free_port
from tests.store.conftest import Dynalite, dynamodb_store
from tests.store.factories import make_alert, make_series

pytestmark = pytest.mark.server


@pytest.fixture
def server(aws_env, tmp_path):
    instance = Dynalite(free_port(), tmp_path / "dynalite-data")
    instance.start()
    yield instance
    instance.stop()


def _kill_after(server: Dynalite, client, event: str, calls: int) -> None:
    count = 0

    def handler(**_kwargs) -> None:
        nonlocal count
        count += 1
        if count == calls:
            server.stop(signal.SIGKILL)

    client.meta.events.register(f"after-call.dynamodb.{event}", handler)


def _feed_items(client, table: str, feed_id: str) -> list[dict]:
    items, start = [], {}
    while True:
        response = client.query(
            TableName=table,
            KeyConditionExpression="feed_id = :f",
            ExpressionAttributeValues=serialize({":f": feed_id}),
            **start,
        )
        items += response["Items"]
        if "LastEvaluatedKey" not in response:
            return items
        start = {"ExclusiveStartKey": response["LastEvaluatedKey"]}


def test_metric_batch_interrupted(server):
    client = server.client(max_attempts=2)
    store = dynamodb_store(client, server.endpoint)
    store.init()
    series = [make_series(f"svc-{i:03d}", "cpu", points=5) for i in range(120)]
    _kill_after(server, client, "BatchWriteItem", 3)  # 3 batches of 25 land, then the crash

    with pytest.raises(PartialWriteError) as info:
        store.append_metrics(series)
    assert "could not be reached" in str(info.value)
    unwritten = {key["ts"] for key in info.value.unwritten}
    assert len(unwritten) == 120 - 3 * 25

    server.start()
    fresh = server.client()
    stored = _feed_items(fresh, store.names["feed"], "metrics")
    stored_keys = {item["ts"]["S"] for item in stored}
    assert len(stored_keys) == 75
    assert stored_keys.isdisjoint(unwritten)
    for item in stored:
        document = item["doc"]["M"]
        assert len(document["t"]["L"]) == 5
        assert len(document["v"]["L"]) == 5
    reread = dynamodb_store(
        fresh, server.endpoint, prefix=store.names["feed"][: -len("event-feed")]
    )
    assert len(reread.recent_metrics()) == 75


def test_alert_upserts_interrupted(server):
    client = server.client(max_attempts=2)
    store = dynamodb_store(client, server.endpoint)
    store.init()
    # A short lease, so the retry below takes over the lock the crash left behind quickly.
    store.feed_lock.lease_seconds = 4.0
    # One call thread sends the batches of 25, 25 and 10 in order, so exactly two land.
    store.tables.threads = 1
    alerts = [make_alert(f"fp-{i:02d}", minutes=i) for i in range(60)]
    _kill_after(server, client, "BatchWriteItem", 2)

    with pytest.raises(PartialWriteError) as info:
        store.upsert_alerts(alerts)
    assert "could not be reached" in str(info.value)
    assert "fp-50" in str(info.value)
    assert len(info.value.unwritten) == 10

    server.start()
    fresh = server.client()
    lock_item = fresh.get_item(
        TableName=store.names["feed"], Key=serialize(LOCK_KEY), ConsistentRead=True
    )
    assert "Item" in lock_item  # the release failed while the server was down
    reread = dynamodb_store(
        fresh, server.endpoint, prefix=store.names["feed"][: -len("event-feed")]
    )
    stored = [a.fingerprint for a in reread.recent_alerts().items]
    assert stored == [f"fp-{i:02d}" for i in reversed(range(50))]
    # A retry of the whole delivery waits out the lease and completes it: the first fifty
    # count as repeats.
    changes = [r.change for r in reread.upsert_alerts(alerts)]
    assert changes == ["unchanged"] * 50 + ["new"] * 10
    assert len(reread.recent_alerts().items) == 60
    lock_item = fresh.get_item(
        TableName=store.names["feed"], Key=serialize(LOCK_KEY), ConsistentRead=True
    )
    assert "Item" not in lock_item


def test_alert_upserts_stop_after_first_failure(server):
    client = server.client(max_attempts=2)
    store = dynamodb_store(client, server.endpoint)
    store.init()
    # One call thread takes the ten reads in order, so the second one meets the dead server.
    store.tables.threads = 1
    queries = 0

    def count(**_kwargs) -> None:
        nonlocal queries
        queries += 1

    client.meta.events.register("before-call.dynamodb.Query", count)
    _kill_after(server, client, "Query", 1)
    alerts = [make_alert(f"fp-{i:04d}", minutes=i % 600) for i in range(1000)]

    with pytest.raises(PartialWriteError) as info:
        store.upsert_alerts(alerts)
    # The reads still queued were cancelled instead of each waiting out its timeouts. The call
    # thread can start one more before the failure reaches the delivery's thread.
    assert queries <= 3
    assert len(info.value.unwritten) == 1000
