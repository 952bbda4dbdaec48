"""Fixtures of the hardening tests, reusing the Lambda and dynalite fixtures of other folders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsforge_core.api import create_app
from opsforge_core.config import Settings
from opsforge_core.store import open_store
from opsforge_core.store.base import Store
from tests.api.server import TOKEN, api_settings
from tests.lambda_handler.conftest import handler_module, lambda_env  # noqa: F401
from tests.store.conftest import aws_env, dynalite, dynalite_client, dynamodb_store  # noqa: F401

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def no_cloud_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep real credentials and LLM endpoints out of every test."""
    for name in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_AUTH_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return api_settings(tmp_path)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings)
    yield opened
    opened.close()


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:
    """The API in-process, without auto-analysis, so a request costs only parse and store."""
    app = create_app(settings, store=store, analyze=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def recorded_events(events_dir: Path) -> dict[str, Any]:
    """Every recorded sender payload of the shared events folder, by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(events_dir.glob("*.json"))
    }


@pytest.fixture
def dynamodb_client(dynalite, dynalite_client) -> Iterator[tuple[TestClient, Store]]:  # noqa: F811
    """The API in-process on fresh DynamoDB tables of the session's dynalite server."""
    created = dynamodb_store(dynalite_client, dynalite.endpoint)
    created.init()
    settings = Settings(
        store="dynamodb",
        dynamodb_endpoint=dynalite.endpoint,
        table_prefix=created.names["feed"].removesuffix("event-feed"),
        api_token=TOKEN,
    )
    app = create_app(settings, store=created, analyze=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, created
