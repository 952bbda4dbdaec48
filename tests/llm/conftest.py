"""Fixtures of the LLM tests: fake Bedrock and Anthropic servers on 127.0.0.1, SDK clients."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anthropic
import boto3
import pytest

from opsforge_core.config import Settings
from opsforge_core.llm import synthesize
from opsforge_core.llm.bedrock import client_config
from opsforge_core.llm.ratelimit import RateLimiter
from opsforge_core.llm.retry import RetryPolicy

from . import fake_anthropic, fake_bedrock
from .fakeserver import ScriptedServer
from .helpers import make_request

MODEL_ID = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def sent_model_id(provider: str) -> str:
    """Return the model id each provider sends for ``MODEL_ID`` (the API's name for Anthropic)."""
    from opsforge_core.llm.anthropic_api import anthropic_model_name

    return anthropic_model_name(MODEL_ID) if provider == "anthropic" else MODEL_ID


GOOD_ANSWER = {
    "summary": "The db connection pool is exhausted; api and web time out waiting on it.",
    "root_cause": "db",
    "confidence": 0.82,
    "severity": "critical",
    "actions": ["Check active connections and blocked queries on db."],
    "evidence": ["rootcause.ranking[0]", "predictiveops.anomalies[1]"],
}


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep real credentials and endpoints out of every test; never query instance metadata."""
    for name in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_AUTH_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


class Harness:
    """One provider's fake server, client and scripted replies behind one vocabulary."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        if provider == "bedrock":
            self.server = ScriptedServer(
                check=lambda r: fake_bedrock.check_sigv4(r, self.server.url)
            )
        else:
            self.server = ScriptedServer(check=_check_anthropic)
        self.server.start()
        self.sleeps: list[float] = []

    # Scripted replies, in each API's own shape.
    def answer(self, text: str, stop_reason: str = "end_turn"):
        module = fake_bedrock if self.provider == "bedrock" else fake_anthropic
        return module.message(text, stop_reason)

    def good(self):
        return self.answer(json.dumps(GOOD_ANSWER))

    def stream(self, pieces: list[str], stop_reason: str = "end_turn"):
        module = fake_bedrock if self.provider == "bedrock" else fake_anthropic
        return module.stream(pieces, stop_reason)

    def throttled(self, retry_after: str | None = None):
        if self.provider == "bedrock":
            return fake_bedrock.error(429, "ThrottlingException", "Too many requests", retry_after)
        return fake_anthropic.error(429, "rate_limit_error", "Too many requests", retry_after)

    def access_denied(self):
        if self.provider == "bedrock":
            text = "You don't have access to the model with the specified model ID."
            return fake_bedrock.error(403, "AccessDeniedException", text)
        return fake_anthropic.error(403, "permission_error", "Your key has no access")

    def invalid_request(self):
        if self.provider == "bedrock":
            return fake_bedrock.error(400, "ValidationException", "messages: content is empty")
        return fake_anthropic.error(400, "invalid_request_error", "messages: content is empty")

    def client(self, settings: Settings) -> Any:
        if self.provider == "bedrock":
            return boto3.client(
                "bedrock-runtime",
                region_name=fake_bedrock.REGION,
                endpoint_url=self.server.url,
                aws_access_key_id=fake_bedrock.ACCESS_KEY,
                aws_secret_access_key=fake_bedrock.SECRET_KEY,
                config=client_config(settings),
            )
        return anthropic.Anthropic(
            api_key="sk-test",
            base_url=self.server.url,
            max_retries=0,
            timeout=anthropic.Timeout(settings.llm_read_timeout, connect=2.0),
        )

    def settings(self, **overrides: Any) -> Settings:
        base = Settings(
            llm_provider=self.provider,
            model_id=MODEL_ID,
            region=fake_bedrock.REGION,
            llm_max_attempts=4,
            model_prices={"sonnet": (3.0, 15.0)},
        )
        return dataclasses.replace(base, **overrides)

    def policy(self, settings: Settings) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=settings.llm_max_attempts,
            base_delay=0.01,
            max_delay=0.05,
            max_retry_after=settings.llm_max_retry_after,
            sleep=self._sleep,
        )

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def synthesize(self, request=None, on_text=None, **overrides: Any):
        settings = self.settings(**overrides)
        return synthesize(
            request or make_request(),
            settings,
            on_text=on_text,
            client=self.client(settings),
            retry_policy=self.policy(settings),
            limiter=RateLimiter(10_000, 100_000_000),
        )

    @property
    def attempts(self) -> int:
        return len(self.server.requests)


def _check_anthropic(recorded) -> str | None:
    if recorded.path != "/v1/messages":
        return f"unexpected path {recorded.path}"
    # SDK releases send the key as x-api-key or as a bearer token.
    keys = {recorded.headers.get("x-api-key"), recorded.headers.get("authorization")}
    if not keys & {"sk-test", "Bearer sk-test"}:
        return "missing API key"
    if "anthropic-version" not in recorded.headers:
        return "missing anthropic-version header"
    return None


@pytest.fixture(params=["bedrock", "anthropic"])
def harness(request: pytest.FixtureRequest):
    rig = Harness(request.param)
    yield rig
    rig.server.stop()
    assert rig.server.problems == []


@pytest.fixture()
def bedrock():
    rig = Harness("bedrock")
    yield rig
    rig.server.stop()
    assert rig.server.problems == []


@pytest.fixture()
def anthropic_rig():
    rig = Harness("anthropic")
    yield rig
    rig.server.stop()
    assert rig.server.problems == []
