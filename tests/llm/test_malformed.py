"""Provider replies that are neither an answer nor an API error, and secrets in errors."""

from __future__ import annotations

from tests.llm import fake_anthropic, fake_bedrock
from tests.llm.fakeserver import Reply, Stream


def test_non_json_body_is_provider_error(harness):
    garbage = Reply(200, b"<html>proxy error</html>", {"content-type": "application/json"})
    harness.server.add(garbage, garbage, harness.good())
    result = harness.synthesize()
    assert harness.attempts == 3
    assert result.fallback is False
    assert result.provider == harness.provider


def test_non_json_body_every_time_falls_back(harness):
    garbage = Reply(200, b"not json at all", {"content-type": "application/json"})
    harness.server.add(*[garbage] * 4)
    result = harness.synthesize()
    assert harness.attempts == 4
    assert result.fallback is True
    assert "malformed response" in result.fallback_reason
    assert result.summary


def test_garbage_stream_falls_back_named(harness):
    content_type = (
        "application/vnd.amazon.eventstream"
        if harness.provider == "bedrock"
        else "text/event-stream"
    )
    garbage = Stream([b"\x00\x01 this is no event stream \xff" * 4], content_type)
    harness.server.add(*[garbage] * 4)
    pieces: list[str] = []
    result = harness.synthesize(on_text=pieces.append)
    assert result.fallback is True
    assert harness.provider in result.fallback_reason.lower()
    assert result.summary


def test_echoed_key_is_redacted(harness, monkeypatch):
    secret = "sk-ant-api03-SECRETVALUE1234567890"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    text = f"invalid x-api-key {secret}"
    if harness.provider == "bedrock":
        reply = fake_bedrock.error(403, "AccessDeniedException", text)
    else:
        reply = fake_anthropic.error(401, "authentication_error", text)
    harness.server.add(reply)
    result = harness.synthesize()
    assert result.fallback is True
    assert secret not in result.fallback_reason
    assert "[redacted]" in result.fallback_reason
