"""The Lambda handler under hostile events and under store writes that fail at awkward points.

Every event gets a response with an integer status below 500 (or, for a store failure on a
retried source, ``EventRetryError``), a 4xx leaves the store unchanged, and EventBridge's
retry of a failed delivery stores each alert once.
"""

from __future__ import annotations

import copy
import json
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsforge_core.config import Settings
from opsforge_core.errors import StoreUnavailableError
from opsforge_core.store import open_store
from opsforge_core.store.base import Store

from .support import HOSTILE_SETTINGS, hostile_values, mutated, table_counts

# API Gateway events start an analysis each, which is slow, so these examples skip them.
CHEAP_EVENTS = (
    "alertmanager_webhook_mixed.json",
    "cloudwatch_alarm_sns.json",
    "cloudwatch_alarm_state_change.json",
    "eventbridge_opsforge_alerts.json",
    "eventbridge_opsforge_metrics.json",
    "pagerduty_events_v2_trigger.json",
)


def _context(name: str = "hardening") -> SimpleNamespace:
    return SimpleNamespace(aws_request_id=f"req-{name}", function_name="opsforge")


@pytest.fixture
def quiet_lambda(lambda_env: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The handler without auto-analysis, so one invocation costs only parse and store."""
    monkeypatch.setenv("OPSFORGE_AUTO_ANALYZE", "false")
    lambda_env.set_runtime()
    return lambda_env


def _invoke_checked(module: ModuleType, event: Any) -> dict[str, Any]:
    store = module._get_runtime().store
    before = table_counts(store)
    response = module.lambda_handler(event, _context())
    after = table_counts(store)
    assert isinstance(response["statusCode"], int)
    assert response["statusCode"] < 500, response["body"]
    body = json.loads(response["body"])
    if response["statusCode"] >= 400:
        assert body["error"]
        assert after == before, "a rejected event changed the store"
    return body


@HOSTILE_SETTINGS
@given(data=st.data())
def test_lambda_mutated_events(
    data: st.DataObject, quiet_lambda: ModuleType, recorded_events: dict[str, Any]
) -> None:
    event = recorded_events[data.draw(st.sampled_from(CHEAP_EVENTS))]
    _invoke_checked(quiet_lambda, data.draw(mutated(event)))


@HOSTILE_SETTINGS
@given(value=hostile_values)
def test_lambda_arbitrary_events(value: Any, quiet_lambda: ModuleType) -> None:
    _invoke_checked(quiet_lambda, value)
    _invoke_checked(quiet_lambda, {"type": "alerts", "alerts": value})
    _invoke_checked(
        quiet_lambda,
        {
            "version": "0",
            "id": "e",
            "detail-type": "x",
            "source": "opsforge.alerts",
            "detail": value,
        },
    )
    _invoke_checked(quiet_lambda, {"Records": [{"Sns": {"Message": value}}]})


@HOSTILE_SETTINGS
@given(body=st.binary(max_size=2000) | st.text(max_size=2000), encoded=st.booleans())
def test_lambda_gateway_arbitrary_body(
    body: bytes | str, encoded: bool, quiet_lambda: ModuleType, recorded_events: dict[str, Any]
) -> None:
    event = copy.deepcopy(recorded_events["apigw_v1_analyze.json"])
    event["body"] = body.decode("latin-1") if isinstance(body, bytes) else body
    event["isBase64Encoded"] = encoded
    _invoke_checked(quiet_lambda, event)


def test_lambda_gateway_body_over_limit_413(
    quiet_lambda: ModuleType, recorded_events: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFORGE_API_MAX_BODY_BYTES", "2048")
    quiet_lambda.set_runtime()
    event = copy.deepcopy(recorded_events["apigw_v1_analyze.json"])
    event["body"] = json.dumps({"alerts": [], "padding": "x" * 4096})

    response = quiet_lambda.lambda_handler(event, _context())

    assert response["statusCode"] == 413
    assert table_counts(quiet_lambda._get_runtime().store) == {
        name: 0 for name in table_counts(quiet_lambda._get_runtime().store)
    }


def test_lambda_too_many_alerts_413(
    quiet_lambda: ModuleType, recorded_events: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFORGE_API_MAX_ALERTS", "3")
    quiet_lambda.set_runtime()
    event = copy.deepcopy(recorded_events["eventbridge_opsforge_alerts.json"])
    template = event["detail"]["alerts"][0]
    event["detail"]["alerts"] = [dict(template, service=f"svc-{i}") for i in range(4)]

    response = quiet_lambda.lambda_handler(event, _context())

    assert response["statusCode"] == 413
    assert sum(table_counts(quiet_lambda._get_runtime().store).values()) == 0


# -- retries after store failures ----------------------------------------------------------------


class FailingStore:
    """Wrap a store so that chosen calls fail once, before or after the real write."""

    def __init__(self, inner: Store, method: str, after_write: bool) -> None:
        self.inner = inner
        self.method = method
        self.after_write = after_write
        self.failures_left = 1

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name != self.method:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.failures_left and not self.after_write:
                self.failures_left -= 1
                raise StoreUnavailableError(f"{name} failed: connection reset")
            result = attribute(*args, **kwargs)
            if self.failures_left:
                self.failures_left -= 1
                raise StoreUnavailableError(f"{name} timed out after the write")
            return result

        return call


def _retry_twice(module: ModuleType, store: FailingStore, event: dict[str, Any]) -> dict:
    settings = Settings.from_env()
    module.set_runtime(settings, store, analyze=True)
    with pytest.raises(module.EventRetryError):
        module.lambda_handler(copy.deepcopy(event), _context("attempt-1"))
    response = module.lambda_handler(copy.deepcopy(event), _context("attempt-2"))
    assert response["statusCode"] == 200, response["body"]
    return json.loads(response["body"])


def _stored_fingerprints(store: Store) -> list[str]:
    return sorted(alert.fingerprint for alert in store.recent_alerts().items)


@pytest.mark.parametrize("after_write", [False, True], ids=["before-write", "ack-lost"])
def test_lambda_retry_alert_write_no_duplicate(
    lambda_env: ModuleType, recorded_events: dict[str, Any], after_write: bool
) -> None:
    real = open_store(Settings.from_env())
    event = recorded_events["eventbridge_opsforge_alerts.json"]

    _retry_twice(lambda_env, FailingStore(real, "upsert_alerts", after_write), event)

    fingerprints = _stored_fingerprints(real)
    assert len(fingerprints) == len(event["detail"]["alerts"])
    assert len(set(fingerprints)) == len(fingerprints)


def test_lambda_retry_metric_write_no_duplicate(
    lambda_env: ModuleType, recorded_events: dict[str, Any]
) -> None:
    real = open_store(Settings.from_env())
    event = recorded_events["eventbridge_opsforge_metrics.json"]

    _retry_twice(lambda_env, FailingStore(real, "append_metrics", after_write=True), event)

    counts = table_counts(real)
    assert counts["opsforge-event-feed"] == len(event["detail"]["metrics"])


def test_lambda_incident_write_failure_not_lost(
    lambda_env: ModuleType, recorded_events: dict[str, Any]
) -> None:
    real = open_store(Settings.from_env())
    failing = FailingStore(real, "put_incident", after_write=False)
    lambda_env.set_runtime(Settings.from_env(), failing, analyze=True)
    event = recorded_events["eventbridge_opsforge_alerts.json"]

    # Either the invocation raises, so EventBridge delivers the event again, or its 2xx
    # means the incident is stored. Both end with one stored incident.
    try:
        lambda_env.lambda_handler(copy.deepcopy(event), _context("attempt-1"))
    except lambda_env.EventRetryError:
        lambda_env.lambda_handler(copy.deepcopy(event), _context("attempt-2"))

    assert len(_stored_fingerprints(real)) == len(event["detail"]["alerts"])
    assert len(real.list_incidents().items) == 1
