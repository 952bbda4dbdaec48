"""OpsForge's own payloads: plain shape, typed events, lists, JSONL and simulator files."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from opsforge_core.errors import IngestError
from opsforge_core.ingest import parse_bytes, parse_file, parse_payload
from tests.ingest.samples import RECEIVED_AT, opsforge_alert, opsforge_series

START = datetime(2026, 11, 20, 10, 2, tzinfo=UTC)


def parse(payload):
    return parse_payload(payload, received_at=RECEIVED_AT)


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-20T10:02:00Z",
        "2026-11-20T12:02:00+02:00",
        "2026-11-20T10:02:00.000+0000",
        "2026-11-20T10:02:00",
        "2026-11-20 10:02:00",
        START.timestamp(),
        int(START.timestamp()),
        int(START.timestamp() * 1000),
        str(int(START.timestamp())),
    ],
)
def test_alert_timestamp_forms_become_utc(stamp):
    (alert,) = parse({"alerts": [opsforge_alert(starts_at=stamp)]}).alerts
    assert alert.starts_at == START
    assert alert.starts_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("stamp", "problem"),
    [
        ("1999-12-31T23:59:59Z", "before 2000-01-01"),
        ("0001-01-01T00:00:00Z", "before 2000-01-01"),
        (946684799, "before 2000-01-01"),
        ("2026-11-21T12:00:01Z", "more than 1 day after"),
        ("yesterday", "invalid timestamp"),
        (True, "must be an ISO 8601 string or epoch seconds"),
        (float("nan"), "not a finite number"),
        (10**30, "out of range"),
    ],
)
def test_bad_timestamp_rejected_with_reason(stamp, problem):
    batch = parse({"alerts": [opsforge_alert(starts_at=stamp)]})
    assert batch.alerts == []
    (rejection,) = batch.rejected
    assert rejection.field == "alerts[0].starts_at"
    assert problem in rejection.reason


def test_batch_keeps_good_alerts_around_bad_one():
    payload = {
        "alerts": [
            opsforge_alert(name="First"),
            opsforge_alert(name="Second", starts_at="not a time"),
            opsforge_alert(name="Third"),
        ]
    }
    batch = parse(payload)
    assert [a.name for a in batch.alerts] == ["First", "Third"]
    (rejection,) = batch.rejected
    assert rejection.index == 1
    assert rejection.field == "alerts[1].starts_at"
    assert rejection.record == payload["alerts"][1]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "alerts[0].name"),
        ({"service": None}, "alerts[0].service"),
        ({"severity": "urgent-ish"}, "alerts[0].severity"),
        ({"status": "open"}, "alerts[0].status"),
        ({"labels": ["a"]}, "alerts[0].labels"),
        ({"labels": {"team": {"nested": 1}}}, "alerts[0].labels.team"),
        ({"source": "carrier-pigeon"}, "alerts[0].source"),
        ({"summary": 42}, "alerts[0].summary"),
        ({"starts_at": None}, "alerts[0].starts_at"),
    ],
)
def test_invalid_alert_field_named(change, field):
    batch = parse({"alerts": [opsforge_alert(**change)]})
    assert batch.alerts == []
    assert [r.field for r in batch.rejected] == [field]


def test_alert_defaults_and_fields():
    record = opsforge_alert(severity="ERROR", source="simulator", fingerprint="fp-1")
    del record["status"]
    (alert,) = parse({"alerts": [record]}).alerts
    assert alert.severity == "high"
    assert alert.status == "firing"
    assert alert.source == "simulator"
    assert alert.fingerprint == "fp-1"
    assert alert.raw is record


def test_resolved_alert_end_times():
    given = opsforge_alert(status="resolved", ends_at="2026-11-20T10:12:00Z")
    missing = opsforge_alert(status="resolved")
    firing_with_end = opsforge_alert(ends_at="2026-11-20T10:12:00Z")
    alerts = parse({"alerts": [given, missing, firing_with_end]}).alerts
    assert alerts[0].duration_seconds == 600
    assert alerts[1].ends_at == RECEIVED_AT
    assert alerts[2].ends_at is None


def test_series_values_nan_and_order():
    points = [
        ["2026-11-20T10:02:00Z", None],
        ["2026-11-20T10:00:00Z", 1],
        ["2026-11-20T10:01:00Z", "2.5"],
        ["2026-11-20T10:01:00Z", float("inf")],
        [int(datetime(2026, 11, 20, 10, 3, tzinfo=UTC).timestamp() * 1000), "NaN"],
    ]
    (series,) = parse({"metrics": [opsforge_series(points)]}).series
    assert [t.minute for t in series.times()] == [0, 1, 1, 2, 3]
    assert series.values[:2].tolist() == [1.0, 2.5]
    assert np.isnan(series.values[2:]).all()


def test_non_numeric_value_rejects_only_that_series():
    bad = opsforge_series([["2026-11-20T10:00:00Z", 1.0], ["2026-11-20T10:01:00Z", "high"]])
    good = opsforge_series([["2026-11-20T10:00:00Z", 3.0]], metric="cpu")
    batch = parse({"metrics": [bad, good]})
    assert [s.key for s in batch.series] == ["payments/cpu"]
    (rejection,) = batch.rejected
    assert rejection.index == 0
    assert rejection.field == "metrics[0].points[1][1]"
    assert "not a number" in rejection.reason


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "histogram"}, "metrics[0].kind"),
        ({"points": None}, "metrics[0].points"),
        ({"points": [[1]]}, "metrics[0].points[0]"),
        ({"points": [["2026-11-20T10:00:00Z", True]]}, "metrics[0].points[0][1]"),
        ({"metric": ""}, "metrics[0].metric"),
    ],
)
def test_invalid_series_field_named(change, field):
    record = opsforge_series([])
    record.update(change)
    batch = parse({"metrics": [record]})
    assert batch.series == []
    assert [r.field for r in batch.rejected] == [field]


def test_typed_events():
    alerts = parse({"type": "alerts", "alerts": [opsforge_alert()]})
    metrics = parse({"type": "metrics", "metrics": [opsforge_series([])]})
    incident = parse(
        {"type": "incident", "alerts": [opsforge_alert()], "topology": [["web", "checkout"]]}
    )
    assert alerts.source == "opsforge-event"
    assert len(alerts.alerts) == 1
    assert len(metrics.series) == 1
    assert incident.topology == [("web", "checkout")]
    with pytest.raises(IngestError) as missing:
        parse({"type": "alerts", "metrics": []})
    assert missing.value.field == "alerts"
    with pytest.raises(IngestError) as unknown:
        parse({"type": "deploys", "alerts": []})
    assert unknown.value.field == "type"


def test_list_of_payloads_keeps_good_elements(load_event):
    payload = [load_event("alertmanager_webhook_mixed.json"), {"hello": "world"}, 7]
    payload.append(load_event("pagerduty_events_v2_trigger.json"))
    batch = parse(payload)
    assert [a.source for a in batch.alerts] == ["alertmanager", "alertmanager", "pagerduty"]
    assert [(r.index, r.field) for r in batch.rejected] == [(1, "[1]"), (2, "[2]")]
    assert "Alertmanager webhook" in batch.rejected[0].reason


def test_jsonl_line_errors_name_the_line():
    lines = [
        json.dumps({"type": "alerts", "alerts": [opsforge_alert()]}),
        "{not json",
        "",
        json.dumps({"type": "alerts", "alerts": [opsforge_alert(severity="loud")]}),
        json.dumps({"unknown": True}),
    ]
    batch = parse_bytes("\n".join(lines).encode(), received_at=RECEIVED_AT)
    assert batch.source == "jsonl"
    assert len(batch.alerts) == 1
    fields = [(r.index, r.field) for r in batch.rejected]
    assert fields == [(2, "line 2"), (0, "line 4.alerts[0].severity"), (5, "line 5")]
    assert batch.rejected[0].reason.startswith("invalid JSON at column 2")


def test_simulator_file_round_trip(tmp_path):
    generate = pytest.importorskip("simulator.generate").generate
    run = generate("memory_leak", seed=7)
    path = run.write_jsonl(tmp_path / "memory_leak.jsonl")
    batch = parse_file(path)
    assert batch.source == "simulator"
    assert batch.rejected == []
    assert batch.scenario["name"] == "memory_leak"
    assert batch.scenario["ground_truth"]["root_cause"] == run.ground_truth["root_cause"]
    assert sorted(batch.topology) == sorted(run.topology)
    assert [a.to_dict(include_raw=False) for a in batch.alerts] == [
        a.to_dict(include_raw=False) for a in run.alerts
    ]
    assert [s.key for s in batch.series] == [s.key for s in run.series]
    for parsed, original in zip(batch.series, run.series, strict=True):
        assert parsed.kind == original.kind
        # Timestamps pass through ISO strings with microsecond precision.
        assert np.allclose(parsed.timestamps, original.timestamps, rtol=0, atol=1e-6)
        assert np.array_equal(parsed.values, original.values, equal_nan=True)


def test_second_scenario_line_rejected():
    scenario = {"type": "scenario", "name": "s", "seed": 1, "topology": [["a", "b"]]}
    text = json.dumps(scenario) + "\n" + json.dumps({**scenario, "name": "t"}) + "\n"
    batch = parse_bytes(text, received_at=RECEIVED_AT)
    assert batch.scenario["name"] == "s"
    assert batch.topology == [("a", "b")]
    assert [(r.index, r.field) for r in batch.rejected] == [(2, "line 2")]
