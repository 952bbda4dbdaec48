"""Contract of the incident memory, run against SQLite and dynalite alike."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from opsforge_core.errors import ConflictError, StoreError, ValidationError
from opsforge_core.store.base import IncidentFilter
from tests.store.factories import BASE_TIME, make_alert, make_report


def _all_pages(store, filters=None, limit=3):
    ids, cursor, pages = [], None, 0
    while True:
        page = store.list_incidents(filters, limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        ids += [summary.incident_id for summary in page.items]
        pages += 1
        cursor = page.cursor
        if cursor is None:
            return ids, pages
        assert isinstance(cursor, str)


def test_init_twice_creates_nothing(store):
    assert store.init() == []
    store.check()
    names = [info.name for info in store.describe_tables()]
    assert names == list(store.names.values())


def test_describe_tables_key_schemas(store):
    keys = {info.name: info.key_schema for info in store.describe_tables()}
    assert keys[store.names["incidents"]] == [{"AttributeName": "incident_id", "KeyType": "HASH"}]
    assert keys[store.names["knowledge"]] == [
        {"AttributeName": "agent_name", "KeyType": "HASH"},
        {"AttributeName": "knowledge_key", "KeyType": "RANGE"},
    ]
    assert keys[store.names["feed"]][1] == {"AttributeName": "ts", "KeyType": "RANGE"}


def test_incident_round_trip(store):
    report = make_report("inc-round")
    store.put_incident(report)
    loaded = store.get_incident("inc-round")
    assert loaded is not None
    assert loaded.to_dict() == report.to_dict()


def test_get_missing_incident_is_none(store):
    assert store.get_incident("inc-absent") is None


def test_put_incident_replaces(store):
    store.put_incident(make_report("inc-r", title="first"))
    store.put_incident(make_report("inc-r", title="second"))
    assert store.get_incident("inc-r").title == "second"
    titles = [s.title for s in store.list_incidents().items]
    assert titles == ["second"]


def test_list_incidents_pages_newest_first(store):
    for i in range(8):
        store.put_incident(make_report(f"inc-{i:02d}", minutes=i))
    ids, pages = _all_pages(store, limit=3)
    assert ids == [f"inc-{i:02d}" for i in reversed(range(8))]
    assert pages >= 3


def test_list_incidents_summary_fields(store):
    store.put_incident(make_report("inc-s", services=("api", "db"), severity="high"))
    (summary,) = store.list_incidents().items
    assert summary.incident_id == "inc-s"
    assert summary.created_at == BASE_TIME
    assert summary.severity == "high"
    assert summary.services == ["api", "db"]
    assert summary.root_cause == "payments"
    assert summary.alert_count == 1
    assert summary.status == "open"


def test_list_incidents_filters(store):
    store.put_incident(make_report("inc-a", minutes=0, services=("checkout",), severity="warning"))
    store.put_incident(make_report("inc-b", minutes=10, services=("search",), title="Search slow"))
    store.put_incident(make_report("inc-c", minutes=20, status="resolved", services=("checkout",)))

    def ids(**kwargs):
        return [s.incident_id for s in store.list_incidents(IncidentFilter(**kwargs)).items]

    assert ids(status="open") == ["inc-b", "inc-a"]
    assert ids(status="resolved") == ["inc-c"]
    assert ids(service="checkout") == ["inc-c", "inc-a"]
    assert ids(severity="warning") == ["inc-a"]
    assert ids(text="SEARCH slow") == ["inc-b"]
    assert ids(text="PAYMENTS") == ["inc-c", "inc-b", "inc-a"]  # root cause
    assert ids(since=BASE_TIME + timedelta(minutes=10)) == ["inc-c", "inc-b"]
    assert ids(until=BASE_TIME + timedelta(minutes=10)) == ["inc-b", "inc-a"]
    assert ids(status="open", service="checkout", until=BASE_TIME) == ["inc-a"]
    assert ids(service="nothing") == []


def test_list_incidents_sparse_filter_pages(store):
    for i in range(12):
        service = "rare" if i % 4 == 0 else "common"
        store.put_incident(make_report(f"inc-{i:02d}", minutes=i, services=(service,)))
    ids, _ = _all_pages(store, IncidentFilter(service="rare"), limit=1)
    assert ids == ["inc-08", "inc-04", "inc-00"]


def test_list_incidents_invalid_cursor(store):
    with pytest.raises(ValidationError):
        store.list_incidents(cursor="not-a-cursor")


def test_update_status_resolves(store):
    store.put_incident(make_report("inc-u"))
    report = store.update_incident_status("inc-u", "resolved", notes="rolled back")
    assert report.status == "resolved"
    assert report.resolution_notes == "rolled back"
    assert report.resolved_at is not None
    loaded = store.get_incident("inc-u")
    assert loaded.status == "resolved"
    assert loaded.resolution_notes == "rolled back"
    assert [
        s.incident_id for s in store.list_incidents(IncidentFilter(status="resolved")).items
    ] == ["inc-u"]
    assert store.list_incidents(IncidentFilter(status="open")).items == []


def test_update_status_expected_mismatch(store):
    store.put_incident(make_report("inc-x", status="resolved"))
    with pytest.raises(ConflictError):
        store.update_incident_status("inc-x", "open", expected_status="open")
    assert store.get_incident("inc-x").status == "resolved"


def test_update_status_missing_incident(store):
    with pytest.raises(StoreError, match="not found"):
        store.update_incident_status("inc-none", "resolved")


def test_update_status_invalid_status(store):
    store.put_incident(make_report("inc-v"))
    with pytest.raises(ValidationError):
        store.update_incident_status("inc-v", "closed")


def test_update_status_race_one_winner(store):
    store.put_incident(make_report("inc-race"))
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def resolve(n: int) -> None:
        barrier.wait()
        try:
            store.update_incident_status("inc-race", "resolved", f"by {n}", expected_status="open")
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=resolve, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("won") == 1
    assert outcomes.count("conflict") == 5
    assert store.get_incident("inc-race").status == "resolved"


def test_set_feedback_round_trip(store):
    store.put_incident(make_report("inc-f"))
    report = store.set_feedback("inc-f", {"correct": False, "root_cause": "db"})
    assert report.feedback == {"correct": False, "root_cause": "db"}
    assert store.get_incident("inc-f").feedback == {"correct": False, "root_cause": "db"}


def test_set_feedback_missing_incident(store):
    with pytest.raises(StoreError, match="not found"):
        store.set_feedback("inc-none", {"correct": True})


def test_find_open_incidents_for(store):
    a = make_report("inc-1", minutes=1, alerts=[make_alert("fp-a"), make_alert("fp-b")])
    b = make_report("inc-2", minutes=2, alerts=[make_alert("fp-b")])
    c = make_report("inc-3", minutes=3, alerts=[make_alert("fp-c")], status="resolved")
    for report in (a, b, c):
        store.put_incident(report)
    found = store.find_open_incidents_for(["fp-b", "fp-c"])
    assert sorted(s.incident_id for s in found) == ["inc-1", "inc-2"]
    assert [s.incident_id for s in store.find_open_incidents_for(["fp-a"])] == ["inc-1"]
    assert store.find_open_incidents_for(["fp-zzz"]) == []
    assert store.find_open_incidents_for([]) == []


@pytest.mark.parametrize("incident_id", ["", "   "])
def test_empty_incident_id_rejected(store, incident_id):
    with pytest.raises(ValidationError, match="incident_id"):
        store.put_incident(make_report(incident_id))
    with pytest.raises(ValidationError):
        store.get_incident(incident_id)
