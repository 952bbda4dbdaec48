"""Pattern signatures stay within DynamoDB's index key limit however large the incident."""

from __future__ import annotations

from datetime import UTC, datetime

from opsforge_core.agents.grouping import MAX_SIGNATURE_BYTES, signature_of
from opsforge_core.models import Alert


def _alert(name: str, service: str) -> Alert:
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    return Alert(f"{name}-{service}", "api", name, service, "high", "firing", "", start)


def test_storm_signature_is_bounded_and_stable():
    alerts = [_alert("HighLatency", f"service-{i:04d}") for i in range(2000)]
    signature = signature_of(alerts)
    assert len(signature.encode()) <= MAX_SIGNATURE_BYTES
    assert "#sha256:" in signature
    assert signature == signature_of(list(reversed(alerts)))


def test_storms_differing_in_one_service_differ():
    alerts = [_alert("HighLatency", f"service-{i:04d}") for i in range(2000)]
    changed = alerts[:-1] + [_alert("HighLatency", "service-other")]
    assert signature_of(alerts) != signature_of(changed)


def test_small_signature_is_readable():
    signature = signature_of([_alert("HighCPU", "orders"), _alert("HighLatency", "api")])
    assert signature == "alerts=HighCPU,HighLatency;services=api,orders"
