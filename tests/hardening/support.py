"""Hostile values, payload mutation and store checks shared by the hardening tests."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from opsforge_core.ingest import IngestLimits
from opsforge_core.ingest.fields import ALERT_STATUSES
from opsforge_core.ingest.timestamps import EARLIEST, MAX_AHEAD
from opsforge_core.models import SEVERITIES, IngestBatch
from opsforge_core.store.base import Store
from opsforge_core.store.dynamodb import DynamoDBStore

HOSTILE_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


far_times = st.sampled_from(
    [
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "1999-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z",
        "2200-01-01T00:00:00+14:00",
        "2026-02-30T00:00:00Z",
        "-1",
        -(10**18),
        10**18,
        1e308,
        -1e308,
    ]
)
special_floats = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324])
huge = st.sampled_from(
    [
        "x" * 200_000,
        "\u00e9" * 50_000,
        "\ud800 lone surrogate",
        "\x00nul\x00",
        "a\r\nInjected-Header: 1",
        "<script>alert(1)</script>",
        "'; DROP TABLE alerts; --",
        list(range(20_000)),
        {f"k{i}": i for i in range(5_000)},
        nested(60),
    ]
)
wrong_types = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
arbitrary_json = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
hostile_values = far_times | special_floats | huge | wrong_types | arbitrary_json


def paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    """List the path of every value inside ``document``, the root excluded."""
    found = []
    if isinstance(document, dict):
        items = list(document.items())
    elif isinstance(document, list):
        items = list(enumerate(document))
    else:
        return found
    for key, value in items:
        found.append((*prefix, key))
        found.extend(paths(value, (*prefix, key)))
    return found


def replace(document: Any, path: tuple, value: Any) -> None:
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@st.composite
def mutated(draw: st.DrawFn, document: Any, max_changes: int = 3) -> Any:
    """Draw a copy of ``document`` with up to ``max_changes`` values made hostile."""
    result = copy.deepcopy(document)
    for _ in range(draw(st.integers(min_value=1, max_value=max_changes))):
        candidates = paths(result)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        action = draw(st.sampled_from(["replace", "replace", "delete"]))
        if action == "delete":
            parent = result
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        else:
            # A copy, because the sampled hostile values are shared between examples.
            replace(result, path, copy.deepcopy(draw(hostile_values)))
    return result


def check_batch(batch: IngestBatch, received_at: datetime, limits: IngestLimits) -> None:
    """Assert that every accepted record of ``batch`` is whole and within the bounds."""
    latest = received_at + MAX_AHEAD
    for alert in batch.alerts:
        assert alert.fingerprint
        assert alert.severity in SEVERITIES
        assert alert.status in ALERT_STATUSES
        assert alert.starts_at.tzinfo is not None
        assert alert.starts_at.utcoffset() == timedelta(0)
        assert EARLIEST <= alert.starts_at <= latest
        if alert.ends_at is not None:
            assert alert.ends_at.utcoffset() == timedelta(0)
        for text in (alert.name, alert.service, alert.summary, alert.description):
            assert isinstance(text, str)
            assert len(text) <= limits.max_string_length
            text.encode("utf-8")  # a lone surrogate would fail here and later in the store
        assert len(alert.labels) <= limits.max_labels
    for series in batch.series:
        assert series.timestamps.size <= limits.max_points_per_series
        assert all(math.isfinite(t) for t in series.timestamps)
        assert all(EARLIEST.timestamp() <= t <= latest.timestamp() for t in series.timestamps)
        assert not any(math.isinf(v) for v in series.values)
        series.service.encode("utf-8")
        series.metric.encode("utf-8")
    for rejection in batch.rejected:
        assert rejection.field is not None
        assert rejection.reason


def table_counts(store: Store) -> dict[str, int]:
    """Count the items of every table, expired feed items included."""
    if isinstance(store, DynamoDBStore):
        # DynamoDB's ItemCount is refreshed about every six hours, so count with a scan.
        return {name: _scan_count(store.tables.client, name) for name in store.names.values()}
    return {info.name: info.item_count for info in store.describe_tables()}


def _scan_count(client: Any, table: str) -> int:
    total = 0
    request: dict[str, Any] = {"TableName": table, "Select": "COUNT", "ConsistentRead": True}
    while True:
        page = client.scan(**request)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def now() -> datetime:
    return datetime.now(UTC)
