"""The scale storm: exact sizes, a known root cause and the same noise machinery."""

from __future__ import annotations

from collections import Counter

import pytest

from simulator.rules import fingerprint, fingerprints_varying
from simulator.storm import SHARED, generate_storm


@pytest.fixture(scope="module")
def storm():
    return generate_storm(n_alerts=6000, n_series=400, points=90, seed=5)


def test_storm_has_requested_sizes(storm) -> None:
    assert len(storm.alerts) == 6000
    assert len(storm.series) == 400
    assert {len(s) for s in storm.series} == {90}
    assert len({s.key for s in storm.series}) == 400


def test_storm_root_cause_is_shared_database(storm) -> None:
    truth = storm.ground_truth
    assert truth["root_cause"] == SHARED
    assert truth["fault_kind"] == "db_connection_pool_exhaustion"
    root_alerts = [a for a in storm.alerts if a.service == SHARED]
    assert "DBConnectionPoolExhausted" in {a.name for a in root_alerts}
    assert min(a.starts_at for a in storm.alerts if a.fingerprint in
               set(truth["incident_fingerprints"])) >= truth["start"]  # fmt: skip


def test_storm_spreads_to_many_cells(storm) -> None:
    incident = set(storm.ground_truth["incident_fingerprints"])
    services = {a.service for a in storm.alerts if a.fingerprint in incident}
    cells = {s.rsplit("-c", 1)[1] for s in services if "-c" in s}
    assert len(cells) >= 3
    assert len(incident) > len(storm.alerts) // 2


@pytest.mark.parametrize("n_series", [20, 200, 400])
def test_storm_keeps_database_callers(n_series) -> None:
    # Each cell reaches users-db only through its users service; a cell observed without it is
    # cut off from the root cause.
    run = generate_storm(n_alerts=200, n_series=n_series, points=60, seed=3)
    services = {s.service for s in run.series}
    cells = {s.rsplit("-", 1)[1] for s in services if s != SHARED}
    assert SHARED in services
    assert cells
    assert {f"users-{cell}" for cell in cells} <= services


def test_storm_has_instances_repeats_and_noise(storm) -> None:
    deliveries = Counter((a.fingerprint, a.starts_at) for a in storm.alerts)
    assert max(deliveries.values()) >= 2
    instances = {a.labels["instance"] for a in storm.alerts if a.service == SHARED}
    assert len(instances) > 1
    assert storm.ground_truth["noise_fingerprints"]


def test_storm_rejects_invalid_sizes() -> None:
    with pytest.raises(ValueError, match="points"):
        generate_storm(n_alerts=10, n_series=10, points=5)


def test_storm_fingerprints_hash_full_label_set(storm) -> None:
    for alert in storm.alerts:
        assert alert.fingerprint == fingerprint(alert.labels)
    assert len({a.labels["instance"] for a in storm.alerts}) > 100


def test_fingerprint_ignores_label_order() -> None:
    labels = {"alertname": "HighCPU", "service": "search", "instance": "a:9100"}
    assert fingerprint(labels) == fingerprint(dict(reversed(labels.items())))
    assert fingerprint(labels) != fingerprint({**labels, "instance": "b:9100"})
    assert fingerprints_varying(labels, "instance", ["a:9100", "b:9100"]) == [
        fingerprint(labels),
        fingerprint({**labels, "instance": "b:9100"}),
    ]
