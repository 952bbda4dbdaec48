"""Replies of a fake Anthropic Messages API: JSON messages, server-sent events and errors."""

from __future__ import annotations

import json
from typing import Any

from .fakeserver import Reply, Stream


def message(text: str, stop_reason: str = "end_turn", tokens: tuple[int, int] = (1500, 250)):
    body = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
    }
    return Reply(200, body, {"request-id": "req_01"})


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def stream(pieces: list[str], stop_reason: str = "end_turn", tokens=(1500, 250)) -> Stream:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_02",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": tokens[0], "output_tokens": 1},
        },
    }
    events = [
        start,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in pieces
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": tokens[1]},
        },
        {"type": "message_stop"},
    ]
    return Stream([_sse(e) for e in events], "text/event-stream", {"cache-control": "no-cache"})


def error(status: int, kind: str, text: str, retry_after: str | None = None) -> Reply:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return Reply(status, {"type": "error", "error": {"type": kind, "message": text}}, headers)
