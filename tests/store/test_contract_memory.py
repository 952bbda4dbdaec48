"""Contract of the pattern library and agent knowledge, run against SQLite and dynalite."""

from __future__ import annotations

import threading

import pytest

from opsforge_core.errors import StoreError, ValidationError
from tests.store.factories import BASE_TIME, make_knowledge, make_pattern


def _all_items(list_page, limit=2, **kwargs):
    items, cursor = [], None
    while True:
        page = list_page(limit=limit, cursor=cursor, **kwargs)
        assert len(page.items) <= limit
        items += page.items
        cursor = page.cursor
        if cursor is None:
            return items


def test_pattern_round_trip(store):
    pattern = make_pattern()
    store.put_pattern(pattern)
    assert store.get_pattern("pat-1") == pattern
    assert store.get_pattern("pat-absent") is None


def test_find_patterns_by_signature(store):
    store.put_pattern(make_pattern("pat-1", "sig-a"))
    store.put_pattern(make_pattern("pat-2", "sig-a"))
    store.put_pattern(make_pattern("pat-3", "sig-b"))
    assert [p.pattern_id for p in store.find_patterns("sig-a")] == ["pat-1", "pat-2"]
    assert [p.pattern_id for p in store.find_patterns("sig-b")] == ["pat-3"]
    assert store.find_patterns("sig-none") == []
    assert store.find_patterns("") == []


def test_list_patterns_pages(store):
    for i in range(7):
        store.put_pattern(make_pattern(f"pat-{i}", f"sig-{i}"))
    items = _all_items(store.list_patterns, limit=3)
    assert sorted(p.pattern_id for p in items) == [f"pat-{i}" for i in range(7)]


def test_record_occurrence_creates_then_counts(store):
    first = store.record_pattern_occurrence(make_pattern(), "inc-1", BASE_TIME)
    assert first.occurrences == 1
    assert first.last_incident_id == "inc-1"
    assert first.last_seen == BASE_TIME
    second = store.record_pattern_occurrence(make_pattern(), "inc-2", BASE_TIME)
    assert second.occurrences == 2
    assert second.last_incident_id == "inc-2"
    assert store.get_pattern("pat-1").occurrences == 2


def test_record_occurrence_new_starts_at_one(store):
    pattern = make_pattern()
    pattern.occurrences = 9
    assert store.record_pattern_occurrence(pattern, "inc-1", BASE_TIME).occurrences == 1


def test_record_occurrence_keeps_corrected_root_cause(store):
    store.record_pattern_occurrence(make_pattern(), "inc-1", BASE_TIME)
    store.add_pattern_feedback("pat-1", confirmed=False, root_cause="database")
    again = store.record_pattern_occurrence(make_pattern(), "inc-2", BASE_TIME)
    assert again.root_cause == "database"
    assert again.rejected == 1


def test_record_occurrence_threads_lose_nothing(store):
    threads_count, per_thread = 4, 8
    barrier = threading.Barrier(threads_count)
    errors: list[Exception] = []

    def record() -> None:
        barrier.wait()
        for n in range(per_thread):
            try:
                store.record_pattern_occurrence(make_pattern(), f"inc-{n}", BASE_TIME)
            except StoreError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.get_pattern("pat-1").occurrences == threads_count * per_thread


def test_pattern_feedback_counts(store):
    store.put_pattern(make_pattern())
    store.add_pattern_feedback("pat-1", confirmed=True, root_cause=None)
    updated = store.add_pattern_feedback("pat-1", confirmed=False, root_cause="dns")
    assert updated.confirmed == 1
    assert updated.rejected == 1
    assert updated.root_cause == "dns"
    assert store.get_pattern("pat-1").root_cause == "dns"


def test_pattern_feedback_missing(store):
    with pytest.raises(StoreError, match="not found"):
        store.add_pattern_feedback("pat-absent", confirmed=True, root_cause=None)
    assert store.get_pattern("pat-absent") is None


def test_delete_pattern(store):
    store.put_pattern(make_pattern())
    assert store.delete_pattern("pat-1") is True
    assert store.delete_pattern("pat-1") is False
    assert store.get_pattern("pat-1") is None


def test_pattern_empty_keys_rejected(store):
    with pytest.raises(ValidationError, match="pattern_id"):
        store.put_pattern(make_pattern(""))
    with pytest.raises(ValidationError, match="signature"):
        store.record_pattern_occurrence(make_pattern("pat-1", ""), "inc-1", BASE_TIME)


def test_knowledge_round_trip(store):
    item = make_knowledge(value={"runs": 3, "rate": 0.25, "nested": {"list": [1, 2.5]}})
    store.put_knowledge(item)
    assert store.get_knowledge("rootcause", "stats") == item
    assert store.get_knowledge("rootcause", "absent") is None


def test_list_knowledge_by_agent_and_all(store):
    for key in ("a", "b", "c"):
        store.put_knowledge(make_knowledge("alertops", key))
    store.put_knowledge(make_knowledge("rootcause", "z"))
    by_agent = _all_items(store.list_knowledge, limit=2, agent_name="alertops")
    assert [i.knowledge_key for i in by_agent] == ["a", "b", "c"]
    everything = _all_items(store.list_knowledge, limit=2)
    assert sorted((i.agent_name, i.knowledge_key) for i in everything) == [
        ("alertops", "a"),
        ("alertops", "b"),
        ("alertops", "c"),
        ("rootcause", "z"),
    ]


def test_delete_knowledge(store):
    store.put_knowledge(make_knowledge())
    assert store.delete_knowledge("rootcause", "stats") is True
    assert store.delete_knowledge("rootcause", "stats") is False
    assert store.get_knowledge("rootcause", "stats") is None


def test_knowledge_empty_key_rejected(store):
    with pytest.raises(ValidationError, match="knowledge_key"):
        store.put_knowledge(make_knowledge("rootcause", ""))
    with pytest.raises(ValidationError, match="agent_name"):
        store.get_knowledge("", "stats")
