"""Contract of the event feed, run against SQLite and dynalite."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from opsforge_core.errors import ValidationError
from opsforge_core.models import MetricSeries
from tests.store.factories import BASE_TIME, make_alert, make_series


def test_upsert_alert_changes(store):
    firing = make_alert("fp-1")
    results = store.upsert_alerts([firing, firing])
    assert [r.change for r in results] == ["new", "unchanged"]
    resolved = make_alert("fp-1", status="resolved")
    (result,) = store.upsert_alerts([resolved])
    assert result.change == "resolved"
    assert result.alert.ends_at == BASE_TIME + timedelta(minutes=7)
    (again,) = store.upsert_alerts([resolved])
    assert again.change == "unchanged"


def test_upsert_repeat_with_other_raw_unchanged(store):
    store.upsert_alerts([make_alert("fp-1", raw={"groupKey": "a"})])
    (result,) = store.upsert_alerts([make_alert("fp-1", raw={"groupKey": "b"})])
    assert result.change == "unchanged"


def test_upsert_late_firing_keeps_resolved(store):
    store.upsert_alerts([make_alert("fp-1", status="resolved")])
    (result,) = store.upsert_alerts([make_alert("fp-1")])
    assert result.change == "unchanged"
    assert result.alert.status == "resolved"
    (stored,) = store.recent_alerts().items
    assert stored.status == "resolved"


def test_upsert_other_field_updated(store):
    store.upsert_alerts([make_alert("fp-1")])
    (result,) = store.upsert_alerts([make_alert("fp-1", summary="p99 latency above 5 s")])
    assert result.change == "updated"
    (stored,) = store.recent_alerts().items
    assert stored.summary == "p99 latency above 5 s"


def test_upsert_new_start_time_is_new(store):
    store.upsert_alerts([make_alert("fp-1", status="resolved")])
    (result,) = store.upsert_alerts([make_alert("fp-1", minutes=30)])
    assert result.change == "new"
    assert len(store.recent_alerts().items) == 2


def test_upsert_empty_fingerprint_rejected(store):
    with pytest.raises(ValidationError, match="fingerprint"):
        store.upsert_alerts([make_alert("fp-ok"), make_alert("")])
    assert store.recent_alerts().items == []


def test_recent_alerts_window_and_pages(store):
    alerts = [make_alert(f"fp-{i}", minutes=i) for i in range(7)]
    store.upsert_alerts(alerts)
    collected, cursor = [], None
    while True:
        page = store.recent_alerts(limit=3, cursor=cursor)
        collected += [a.fingerprint for a in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert collected == [f"fp-{i}" for i in reversed(range(7))]
    window = store.recent_alerts(
        since=BASE_TIME + timedelta(minutes=2), until=BASE_TIME + timedelta(minutes=4)
    )
    assert [a.fingerprint for a in window.items] == ["fp-4", "fp-3", "fp-2"]


def test_recent_alerts_round_trip(store):
    alert = make_alert("fp-1", raw={"labels": {"alertname": "HighLatency"}, "value": 2.5})
    store.upsert_alerts([alert])
    (stored,) = store.recent_alerts().items
    assert stored.to_dict() == alert.to_dict()


def test_append_and_merge_metrics(store):
    first = make_series(points=10)
    second = make_series(points=10, start_minute=10)
    other = make_series("checkout", "errors", points=5)
    assert store.append_metrics([first, second, other]) == 3
    merged = {s.key: s for s in store.recent_metrics()}
    assert sorted(merged) == ["checkout/errors", "payments/latency_ms"]
    latency = merged["payments/latency_ms"]
    assert len(latency) == 20
    assert latency.unit == "ms"
    np.testing.assert_allclose(latency.values[:10], first.values)
    np.testing.assert_allclose(latency.timestamps[10:], second.timestamps)


def test_recent_metrics_window(store):
    store.append_metrics([make_series(points=60)])
    (series,) = store.recent_metrics(
        since=BASE_TIME + timedelta(minutes=20), until=BASE_TIME + timedelta(minutes=29)
    )
    assert len(series) == 10
    assert series.timestamps[0] == (BASE_TIME + timedelta(minutes=20)).timestamp()


def test_append_metrics_long_series_split(store):
    # 2,500 points one second apart: three batches of at most 1,000 points.
    timestamps = BASE_TIME.timestamp() + np.arange(2500, dtype=float)
    values = np.sin(np.arange(2500) / 10.0)
    values[17] = np.nan
    series = MetricSeries("api", "cpu", timestamps, values, unit="%")
    assert store.append_metrics([series]) == 3
    (loaded,) = store.recent_metrics()
    assert len(loaded) == 2500
    assert np.isnan(loaded.values[17])
    np.testing.assert_allclose(np.delete(loaded.values, 17), np.delete(values, 17))


def test_append_metrics_repeat_overwrites(store):
    series = make_series(points=5)
    store.append_metrics([series])
    changed = replace(series, values=series.values + 1)
    store.append_metrics([changed])
    (loaded,) = store.recent_metrics()
    np.testing.assert_allclose(loaded.values, changed.values)


def test_clear_feed_counts(store):
    store.upsert_alerts([make_alert("fp-1"), make_alert("fp-2")])
    store.append_metrics([make_series()])
    assert store.clear_feed() == 3
    assert store.recent_alerts().items == []
    assert store.recent_metrics() == []
    assert store.clear_feed() == 0


def test_alert_with_huge_raw_payload(store, backend):
    rng = np.random.default_rng(5)
    payload = {"body": "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789"), 1_000_000))}
    alert = make_alert("fp-huge", raw=payload)
    (result,) = store.upsert_alerts([alert])
    assert result.change == "new"
    (stored,) = store.recent_alerts().items
    assert stored.summary == alert.summary
    assert stored.labels == alert.labels
    if backend == "sqlite":
        assert stored.raw == payload
    else:
        assert set(stored.raw) == {"not_stored"}
        assert "400 KB" in stored.raw["not_stored"]
    (repeat,) = store.upsert_alerts([alert])
    assert repeat.change == "unchanged"
