"""Timeouts, overload, deadlines and the SDK clients the providers build themselves."""

from __future__ import annotations

import json

import pytest

from opsforge_core.config import Settings
from opsforge_core.llm import synthesize
from opsforge_core.llm.anthropic_api import AnthropicProvider
from opsforge_core.llm.bedrock import BedrockProvider, client_config
from opsforge_core.llm.ratelimit import RateLimiter

from . import fake_anthropic, fake_bedrock
from .conftest import GOOD_ANSWER, sent_model_id
from .fakeserver import Stall
from .helpers import make_alert, make_request


def test_read_timeout_retried_then_falls_back(harness):
    harness.server.add(Stall(1.5), Stall(1.5))
    result = harness.synthesize(llm_read_timeout=0.3, llm_max_attempts=2)
    assert harness.attempts == 2
    assert result.fallback is True
    assert "timed out" in result.fallback_reason
    assert result.provider == "offline"


def test_read_timeout_then_success(harness):
    harness.server.add(Stall(1.0), harness.good())
    result = harness.synthesize(llm_read_timeout=0.3)
    assert harness.attempts == 2
    assert result.fallback is False
    assert result.root_cause == "db"


def test_deadline_ends_slow_call(harness):
    harness.server.add(Stall(3.0))
    result = harness.synthesize(llm_deadline_seconds=1.0, llm_read_timeout=10.0)
    assert harness.attempts == 1
    assert result.fallback is True
    # The run's deadline, not the 10 s read timeout, ended the call.
    assert "before the run deadline" in result.fallback_reason


def test_anthropic_overload_529_retried(anthropic_rig):
    overloaded = fake_anthropic.error(529, "overloaded_error", "Overloaded")
    anthropic_rig.server.add(overloaded, overloaded, anthropic_rig.good())
    result = anthropic_rig.synthesize()
    assert anthropic_rig.attempts == 3
    assert result.fallback is False
    assert result.provider == "anthropic"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "ServiceUnavailableException"),
        (429, "ModelNotReadyException"),
        (500, "InternalServerException"),
    ],
)
def test_bedrock_transient_errors_retried(bedrock, status, code):
    bedrock.server.add(fake_bedrock.error(status, code, "try again"), bedrock.good())
    result = bedrock.synthesize()
    assert bedrock.attempts == 2
    assert result.fallback is False


def test_bedrock_body_valid_for_empty_descriptions(bedrock):
    alerts = [
        make_alert("db", "ConnectionPoolSaturated", "critical", 1, description=""),
        make_alert("api", "ErrorRate", "high", 2, description=None, summary=""),
    ]
    bedrock.server.add(bedrock.answer(""), bedrock.good())
    bedrock.synthesize(request=make_request(alerts=alerts))
    assert bedrock.attempts == 2
    for recorded in bedrock.server.requests:
        body = recorded.json()
        assert body["anthropic_version"] == "bedrock-2023-05-31"
        assert isinstance(body["max_tokens"], int)
        assert "model" not in body
        assert "stream" not in body
        assert body["system"].strip()
        assert body["messages"]
        for message in body["messages"]:
            assert isinstance(message["content"], str)
            assert message["content"].strip()
    assert bedrock.server.requests[0].path.endswith("/invoke")


def test_bedrock_stream_uses_stream_endpoint(bedrock):
    bedrock.server.add(bedrock.stream([json.dumps(GOOD_ANSWER)]))
    received: list[str] = []
    result = bedrock.synthesize(on_text=received.append)
    assert bedrock.server.requests[0].path.endswith("/invoke-with-response-stream")
    assert "stream" not in bedrock.server.requests[0].json()
    assert result.input_tokens == 1200
    assert "".join(received) == json.dumps(GOOD_ANSWER)


def test_bedrock_stream_exception_retried(bedrock):
    broken = bedrock.stream(['{"summary": "partial'])
    # Cut the stream after the first delta and end it with a throttling exception event.
    broken.chunks = broken.chunks[:3] + [
        fake_bedrock.exception_event("throttlingException", "Too many tokens")
    ]
    bedrock.server.add(broken, bedrock.stream([json.dumps(GOOD_ANSWER)]))
    received: list[str] = []
    result = bedrock.synthesize(on_text=received.append)
    assert bedrock.attempts == 2
    assert result.fallback is False
    assert result.root_cause == "db"
    assert received[-1] == json.dumps(GOOD_ANSWER)


def test_bedrock_default_client_from_env(bedrock, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock.server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", fake_bedrock.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", fake_bedrock.SECRET_KEY)
    settings = bedrock.settings(llm_max_attempts=1)
    provider = BedrockProvider(settings)
    config = provider.client.meta.config
    assert config.read_timeout == 300.0
    assert config.connect_timeout == 10.0
    assert config.retries["total_max_attempts"] == 1
    assert provider.client.meta.region_name == "eu-west-3"
    # One attempt of our own layer is exactly one HTTP request: botocore does not retry.
    bedrock.server.add(fake_bedrock.error(500, "InternalServerException", "boom"), bedrock.good())
    result = synthesize(make_request(), settings, provider, limiter=RateLimiter(1000, 10**8))
    assert bedrock.attempts == 1
    assert result.fallback is True


def test_anthropic_default_client_from_env(anthropic_rig, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_rig.server.url)
    settings = anthropic_rig.settings(llm_max_attempts=1)
    provider = AnthropicProvider(settings)
    assert provider.client.max_retries == 0
    anthropic_rig.server.add(fake_anthropic.error(529, "overloaded_error", "Overloaded"))
    result = synthesize(make_request(), settings, provider, limiter=RateLimiter(1000, 10**8))
    assert anthropic_rig.attempts == 1
    assert result.fallback is True
    assert "overloaded_error" in result.fallback_reason
    assert anthropic_rig.server.requests[0].json()["model"] == sent_model_id("anthropic")


def test_bedrock_config_defaults_outlast_botocore():
    config = client_config(Settings())
    # botocore's default read timeout is 60 s; long answers need more.
    assert config.read_timeout > 60
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
