"""Awkward values through both backends: float edge cases, empty values, oversized items."""

from __future__ import annotations

import json
import math
import random
import string

import pytest

from opsforge_core.errors import StoreUnavailableError
from tests.store.conftest import dynamodb_store
from tests.store.factories import make_alert, make_knowledge, make_report


def _random_text(length: int, seed: int) -> str:
    # Incompressible on purpose: gzip cannot shrink it enough to fit 400 KB.
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + string.punctuation
    return "".join(rng.choices(alphabet, k=length))


def test_float_edge_values_round_trip(store):
    findings = {
        "anomaly_score": 30.40,
        "zscore": math.nan,
        "p_value": 1e-200,
        "confidence": 0.1,
        "ratio": 1 / 3,
        "count": 7,
        "grid": [[0.1, 0.2, 1.5e-7], [math.nan, 3.0, -2.5e300]],
        "huge": 1e200,
        "large": 9.87654321e125,
        "limit": math.inf,
    }
    store.put_incident(make_report("inc-num", findings=findings))
    loaded = store.get_incident("inc-num").results[0].findings
    assert loaded["anomaly_score"] == pytest.approx(30.4)
    assert "zscore" not in loaded
    assert "limit" not in loaded
    assert loaded["p_value"] == 0.0
    assert loaded["confidence"] == 0.1
    assert loaded["ratio"] == pytest.approx(1 / 3, rel=1e-15)
    assert loaded["count"] == 7
    assert loaded["grid"][0] == pytest.approx([0.1, 0.2, 1.5e-7])
    assert loaded["grid"][1][0] is None
    assert loaded["grid"][1][1] == 3
    assert loaded["grid"][1][2] == "-2.5e+300"
    assert loaded["huge"] == "1e+200"
    assert loaded["large"] == 9.87654321e125
    assert type(loaded["large"]) is float
    json.dumps(store.get_incident("inc-num").to_dict(), allow_nan=False)


def test_knowledge_numbers_serialize(store):
    store.put_knowledge(make_knowledge(value={"mean_ms": 12.345, "nan": math.nan, "n": 10}))
    value = store.get_knowledge("rootcause", "stats").value
    assert value == {"mean_ms": 12.345, "n": 10}
    assert type(value["n"]) is int
    json.dumps(value, allow_nan=False)


def test_empty_labels_and_sets(store):
    alert = make_alert("fp-empty", summary="")
    alert.labels = {}
    findings = {"tags": set(), "owners": frozenset({"b", "a"}), "note": ""}
    store.put_incident(make_report("inc-empty", alerts=[alert], findings=findings, services=()))
    loaded = store.get_incident("inc-empty")
    assert loaded.alerts[0].labels == {}
    assert loaded.alerts[0].summary == ""
    assert loaded.services == []
    assert loaded.results[0].findings == {"tags": [], "owners": ["a", "b"], "note": ""}


def test_three_thousand_raw_alerts_kept(store):
    alerts = [
        make_alert(
            f"fp-{i:04d}",
            service=f"svc-{i % 40}",
            raw={
                "labels": {"alertname": "HighLatency", "instance": f"10.0.{i % 250}.{i % 7}"},
                "annotations": {"description": "p99 latency above the objective " * 8},
                "generatorURL": f"http://prometheus:9090/graph?g0.expr=latency%7Bi%3D{i}%7D",
            },
        )
        for i in range(3000)
    ]
    report = make_report("inc-big", alerts=alerts)
    assert len(json.dumps(report.to_dict())) > 1_500_000
    store.put_incident(report)
    loaded = store.get_incident("inc-big")
    assert loaded.to_dict() == report.to_dict()
    assert loaded.notes == []
    (summary,) = store.list_incidents().items
    assert summary.alert_count == 3000


def test_oversized_llm_text(store, backend):
    text = _random_text(512_000, seed=7)
    report = make_report("inc-text", summary=text)
    store.put_incident(report)
    loaded = store.get_incident("inc-text")
    assert loaded.synthesis.root_cause == "payments"
    assert loaded.alerts[0].to_dict() == report.alerts[0].to_dict()
    assert loaded.results[0].to_dict() == report.results[0].to_dict()
    if backend == "sqlite":
        assert loaded.synthesis.summary == text
        assert loaded.notes == []
        return
    assert loaded.synthesis.summary.startswith(text[:4096])
    assert "more characters not stored" in loaded.synthesis.summary
    assert len(loaded.notes) == 1
    assert "400 KB" in loaded.notes[0]
    assert "$.synthesis.summary (512,000 characters)" in loaded.notes[0]
    # A later status change keeps the notes and trims nothing more.
    resolved = store.update_incident_status("inc-text", "resolved", notes="done")
    assert resolved.notes == loaded.notes
    assert store.get_incident("inc-text").notes == loaded.notes


def test_oversized_raw_payloads_dropped_first(store, backend):
    alerts = [
        make_alert(f"fp-{i:03d}", raw={"body": _random_text(2_000 + i, seed=i)}) for i in range(300)
    ]
    report = make_report("inc-raw", alerts=alerts)
    store.put_incident(report)
    loaded = store.get_incident("inc-raw")
    assert [a.fingerprint for a in loaded.alerts] == [a.fingerprint for a in alerts]
    assert loaded.synthesis.summary == report.synthesis.summary
    if backend == "sqlite":
        assert loaded.to_dict() == report.to_dict()
        return
    dropped = [a for a in loaded.alerts if a.raw is None]
    kept = [a for a in loaded.alerts if a.raw is not None]
    assert dropped
    assert kept
    # The largest payloads went first.
    assert max(len(a.raw["body"]) for a in kept) < min(
        len(alerts[int(a.fingerprint[3:])].raw["body"]) for a in dropped
    )
    assert any("removed the raw payloads" in note for note in loaded.notes)


def test_missing_tables_name_the_fix(backend, request, tmp_path):
    if backend == "sqlite":
        from opsforge_core.store.sqlite import SQLiteStore

        missing = SQLiteStore(tmp_path / "absent" / "opsforge.db")
    else:
        server = request.getfixturevalue("dynalite")
        missing = dynamodb_store(request.getfixturevalue("dynalite_client"), server.endpoint)
    with pytest.raises(StoreUnavailableError, match="store init"):
        missing.put_incident(make_report())
    with pytest.raises(StoreUnavailableError, match="store init"):
        missing.get_incident("inc-1")
    with pytest.raises(StoreUnavailableError, match="store init"):
        missing.check()
