"""DynamoDB backend specifics: paging, batch retries, errors and item sizes."""

from __future__ import annotations

import base64
import json
import logging
import random
import string

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from opsforge_core.config import Settings
from opsforge_core.errors import PartialWriteError, StoreUnavailableError, ValidationError
from opsforge_core.store import open_store
from opsforge_core.store.codec import item_size
from opsforge_core.store.dynamodb import DynamoDBStore, make_client
from opsforge_core.store.dynamodb_io import BATCH_ATTEMPTS, ITEM_BUDGET, serialize
from opsforge_core.store.records import alert_sort_key, incident_document, incident_index
from tests.conftest import free_port
from tests.store.conftest import dynamodb_store
from tests.store.factories import make_alert, make_pattern, make_report, make_series

NAMES = Settings(table_prefix="stub-").table_names


class NoCallClient:
    """A client that fails the test on any call: validation must happen before AWS."""

    def __getattr__(self, name: str):
        raise AssertionError(f"unexpected DynamoDB call {name}")


@pytest.fixture
def stubbed(aws_env):
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    with Stubber(client) as stubber:
        store = DynamoDBStore(client, NAMES, endpoint="stub")
        store.tables.sleep = lambda seconds: None
        yield store, stubber
        stubber.assert_no_pending_responses()


def _pattern_item(pattern_id: str) -> dict:
    return serialize(make_pattern(pattern_id, f"sig-{pattern_id}").to_dict() | {"last_seen": None})


def test_scan_pages_through_empty_page(stubbed):
    store, stubber = stubbed
    key = {"pattern_id": {"S": "pat-b"}}
    stubber.add_response(
        "scan", {"Items": [_pattern_item("pat-a"), _pattern_item("pat-b")], "LastEvaluatedKey": key}
    )
    stubber.add_response("scan", {"Items": [], "LastEvaluatedKey": {"pattern_id": {"S": "pat-x"}}})
    stubber.add_response("scan", {"Items": [_pattern_item("pat-c")]})
    page = store.list_patterns(limit=50)
    assert [p.pattern_id for p in page.items] == ["pat-a", "pat-b", "pat-c"]
    assert page.cursor is None


def test_query_all_pages_through_empty_page(stubbed):
    store, stubber = stubbed
    key = {"pattern_id": {"S": "k"}, "signature": {"S": "sig"}}
    stubber.add_response(
        "query",
        {"Items": [_pattern_item("pat-a"), _pattern_item("pat-b")], "LastEvaluatedKey": key},
    )
    stubber.add_response("query", {"Items": [], "LastEvaluatedKey": key})
    stubber.add_response("query", {"Items": [_pattern_item("pat-c")]})
    assert [p.pattern_id for p in store.find_patterns("sig")] == ["pat-a", "pat-b", "pat-c"]


def test_page_cursor_is_base64_json_of_last_key(stubbed):
    store, stubber = stubbed
    items = [_pattern_item("pat-a"), _pattern_item("pat-b"), _pattern_item("pat-c")]
    stubber.add_response("scan", {"Items": items})
    page = store.list_patterns(limit=2)
    assert [p.pattern_id for p in page.items] == ["pat-a", "pat-b"]
    padded = page.cursor + "=" * (-len(page.cursor) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {"pattern_id": "pat-b"}
    stubber.add_response(
        "scan",
        {"Items": [items[2]]},
        {
            "TableName": NAMES["patterns"],
            "Limit": 2,
            "ExclusiveStartKey": {"pattern_id": {"S": "pat-b"}},
        },
    )
    assert [p.pattern_id for p in store.list_patterns(limit=2, cursor=page.cursor).items] == [
        "pat-c"
    ]


def test_batch_write_retries_unprocessed(stubbed):
    store, stubber = stubbed
    delays: list[float] = []
    store.tables.sleep = delays.append
    series = [make_series(f"svc-{i}", points=3) for i in range(3)]
    first_item = {"PutRequest": {"Item": {"feed_id": {"S": "metrics"}, "ts": {"S": "x"}}}}
    stubber.add_response("batch_write_item", {"UnprocessedItems": {NAMES["feed"]: [first_item]}})
    stubber.add_response("batch_write_item", {"UnprocessedItems": {}})
    assert store.append_metrics(series) == 3
    assert len(delays) == 1
    assert 0 <= delays[0] <= 2.0


def test_batch_write_gives_up_naming_keys(stubbed):
    store, stubber = stubbed
    stuck = {"PutRequest": {"Item": {"feed_id": {"S": "metrics"}, "ts": {"S": "stuck-ts"}}}}
    for _ in range(BATCH_ATTEMPTS):
        stubber.add_response("batch_write_item", {"UnprocessedItems": {NAMES["feed"]: [stuck]}})
    with pytest.raises(PartialWriteError) as info:
        store.append_metrics([make_series(points=3)])
    assert info.value.unwritten == [{"feed_id": "metrics", "ts": "stuck-ts"}]
    assert "stuck-ts" in str(info.value)


def test_empty_key_rejected_before_any_call():
    store = DynamoDBStore(NoCallClient(), NAMES)
    with pytest.raises(ValidationError, match="incident_id"):
        store.put_incident(make_report(""))
    with pytest.raises(ValidationError, match="pattern_id"):
        store.get_pattern("")
    with pytest.raises(ValidationError, match="signature"):
        store.put_pattern(make_pattern("pat-1", ""))


def test_unreachable_endpoint_is_unavailable(aws_env):
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = Config(region_name="us-east-1", retries={"mode": "standard", "max_attempts": 1})
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=config)
    store = dynamodb_store(client, endpoint)
    with pytest.raises(StoreUnavailableError, match="could not be reached") as info:
        store.get_incident("inc-1")
    assert endpoint in str(info.value)
    assert "incident-memory" in str(info.value)


def test_init_without_ttl_support_logs(dynalite, dynalite_client, caplog):
    store = dynamodb_store(dynalite_client, dynalite.endpoint)
    with caplog.at_level(logging.WARNING):
        created = store.init()
    assert len(created) == 4
    assert "does not support TTL" in caplog.text
    assert store.init() == []
    tables = {t.name: t for t in store.describe_tables()}
    incidents = tables[store.names["incidents"]]
    assert sorted(incidents.indexes) == ["by-created", "by-status"]
    assert incidents.extra["billing_mode"] == "PAY_PER_REQUEST"
    assert tables[store.names["patterns"]].indexes == ["by-signature"]


def test_item_size_estimate_under_server_limit(dynalite, dynalite_client):
    store = dynamodb_store(dynalite_client, dynalite.endpoint)
    store.init()
    report = make_report("inc-edge")
    fixed = {**incident_index(report), "version": "0" * 32}
    base = item_size({**fixed, "doc": incident_document(report)})
    # Random text does not compress, and one just under the budget must go in uncompressed.
    rng = random.Random(3)
    report.synthesis.summary = "".join(
        rng.choices(string.ascii_letters, k=ITEM_BUDGET - base - 64 + len(report.synthesis.summary))
    )
    store.put_incident(report)
    raw = dynalite_client.get_item(
        TableName=store.names["incidents"], Key={"incident_id": {"S": "inc-edge"}}
    )["Item"]
    assert "doc" in raw
    assert store.get_incident("inc-edge").synthesis.summary == report.synthesis.summary


def test_make_client_config(aws_env):
    client = make_client(
        Settings(store="dynamodb", dynamodb_endpoint="http://127.0.0.1:9", region="eu-west-1")
    )
    config = client.meta.config
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert config.retries["mode"] == "standard"
    assert config.connect_timeout == 3
    assert config.read_timeout == 10


def test_open_store_dynamodb_uses_injected_client():
    settings = Settings(store="dynamodb", table_prefix="x-")
    store = open_store(settings, client=NoCallClient())
    assert isinstance(store, DynamoDBStore)
    assert store.names["feed"] == "x-event-feed"


def test_update_item_without_version(dynalite, dynalite_client):
    store = dynamodb_store(dynalite_client, dynalite.endpoint)
    store.init()
    report = make_report("inc-old")
    item = {**incident_index(report), "doc": incident_document(report)}
    dynalite_client.put_item(TableName=store.names["incidents"], Item=serialize(item))
    resolved = store.update_incident_status("inc-old", "resolved", expected_status="open")
    assert resolved.status == "resolved"
    assert store.get_incident("inc-old").status == "resolved"


def test_upsert_retries_unprocessed_keys(stubbed):
    store, stubber = stubbed
    alerts = [make_alert("fp-1"), make_alert("fp-2", minutes=1)]
    first = {"feed_id": "alerts", "ts": alert_sort_key(alerts[0])}
    key = serialize({"feed_id": "alerts", "ts": alert_sort_key(alerts[1])})
    # The range read stops after the first key, as in a range crowded with other alerts, so
    # the second key is read by key.
    stubber.add_response("query", {"Items": [], "LastEvaluatedKey": serialize(first)})
    stubber.add_response(
        "batch_get_item",
        {"Responses": {NAMES["feed"]: []}, "UnprocessedKeys": {NAMES["feed"]: {"Keys": [key]}}},
        {"RequestItems": {NAMES["feed"]: {"Keys": [key], "ConsistentRead": True}}},
    )
    stubber.add_response(
        "batch_get_item",
        {"Responses": {NAMES["feed"]: []}},
        {"RequestItems": {NAMES["feed"]: {"Keys": [key], "ConsistentRead": True}}},
    )
    # Both are new: the writer takes the feed lock, reads their range again, writes both in one
    # batch and releases the lock.
    stubber.add_response("put_item", {})
    stubber.add_response("query", {"Items": []})
    stubber.add_response("batch_write_item", {"UnprocessedItems": {}})
    stubber.add_response("delete_item", {})
    assert [r.change for r in store.upsert_alerts(alerts)] == ["new", "new"]


def test_upsert_gives_up_on_unprocessed_keys(stubbed):
    store, stubber = stubbed
    alert = make_alert("fp-1")
    key = serialize({"feed_id": "alerts", "ts": alert_sort_key(alert)})
    earlier = serialize({"feed_id": "alerts", "ts": "2026-01-01T00:00:00.000000Z#fp-0"})
    stubber.add_response("query", {"Items": [], "LastEvaluatedKey": earlier})
    for _ in range(BATCH_ATTEMPTS):
        stubber.add_response(
            "batch_get_item",
            {"Responses": {}, "UnprocessedKeys": {NAMES["feed"]: {"Keys": [key]}}},
        )
    with pytest.raises(PartialWriteError, match="unprocessed") as info:
        store.upsert_alerts([alert])
    assert info.value.unwritten == [{"feed_id": "alerts", "ts": alert_sort_key(alert)}]
