"""The Lambda handler on the DynamoDB store it uses in production, served by dynalite."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from opsforge_core.config import Settings
from opsforge_core.store import open_store
from tests.conftest import free_port
from tests.store.conftest import DUMMY_CREDENTIALS, Dynalite

from .lambda_events import body_of, context, load_event

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def dynalite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dynalite]:
    server = Dynalite(free_port(), tmp_path_factory.mktemp("dynalite"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dynamodb_env(
    lambda_env: ModuleType, dynalite: Dynalite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """The handler on fresh DynamoDB tables, created as ``store init`` creates them."""
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPSFORGE_STORE", "dynamodb")
    monkeypatch.setenv("OPSFORGE_DYNAMODB_ENDPOINT", dynalite.endpoint)
    monkeypatch.setenv("OPSFORGE_TABLE_PREFIX", f"t{uuid.uuid4().hex[:10]}-")
    open_store(Settings.from_env()).init()
    lambda_env.set_runtime()
    yield lambda_env


def test_analyze_on_dynamodb(dynamodb_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "apigw_v1_analyze.json")

    response = dynamodb_env.lambda_handler(event, context())
    body = body_of(response)

    assert response["statusCode"] == 200
    incident_id = body["incident"]["incident_id"]
    stored = open_store(Settings.from_env()).get_incident(incident_id)
    assert stored is not None
    assert stored.synthesis.root_cause == body["incident"]["synthesis"]["root_cause"]
    # A report read back from DynamoDB serializes like the one the handler returned.
    assert json.loads(dynamodb_env.response(200, stored.to_dict())["body"])["incident_id"] == (
        incident_id
    )


def test_eventbridge_retry_on_dynamodb(dynamodb_env: ModuleType, events_dir: Path) -> None:
    event = load_event(events_dir, "eventbridge_opsforge_alerts.json")

    first = body_of(dynamodb_env.lambda_handler(event, context("first")))
    repeat = body_of(dynamodb_env.lambda_handler(copy.deepcopy(event), context("retry")))

    assert len(first["new"]) == 2
    assert len(first["incidents_opened"]) == 1
    assert repeat["new"] == []
    assert len(repeat["deduplicated"]) == 2
    assert repeat["incidents_opened"] == []
    store = open_store(Settings.from_env())
    assert len(store.recent_alerts().items) == 2
    assert len(store.list_incidents().items) == 1


def test_missing_table_raises_for_eventbridge(
    dynamodb_env: ModuleType, events_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFORGE_TABLE_PREFIX", f"missing{uuid.uuid4().hex[:6]}-")
    dynamodb_env.set_runtime()
    alerts = load_event(events_dir, "eventbridge_opsforge_alerts.json")
    analyze = load_event(events_dir, "apigw_v1_analyze.json")

    with pytest.raises(dynamodb_env.EventRetryError):
        dynamodb_env.lambda_handler(alerts, context())
    response = dynamodb_env.lambda_handler(analyze, context())

    assert response["statusCode"] == 503
    assert "does not exist" in body_of(response)["error"]
