"""A fake bedrock-runtime endpoint: SigV4 checks, JSON replies and AWS event streams.

The streaming reply uses the AWS event-stream binary framing: a prelude of total length and
headers length (big-endian uint32), the prelude's CRC32, string headers, the payload, and a
CRC32 of the whole message. Each chunk's payload is ``{"bytes": base64(json event)}``.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .fakeserver import Recorded, Reply, Stream

ACCESS_KEY = "AKIDOPSFORGETEST"
SECRET_KEY = "opsforge-test-secret-key"
REGION = "eu-west-3"

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})"
)


def check_sigv4(recorded: Recorded, host_url: str) -> str | None:
    """Return a problem when the request's SigV4 signature is missing or does not verify."""
    match = _AUTH.fullmatch(recorded.headers.get("authorization", ""))
    if match is None:
        return f"missing or malformed SigV4 Authorization on {recorded.path}"
    if match["key"] != ACCESS_KEY or match["region"] != REGION or match["service"] != "bedrock":
        return f"wrong credential scope {match.group(0)[:120]}"
    signed = match["signed"].split(";")
    headers = {name: recorded.headers[name] for name in signed if name in recorded.headers}
    request = AWSRequest(
        method=recorded.method, url=host_url + recorded.path, headers=headers, data=recorded.body
    )
    request.context["timestamp"] = recorded.headers.get("x-amz-date", "")
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", REGION)
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if expected != match["sig"]:
        return f"SigV4 signature mismatch on {urlsplit(recorded.path).path}"
    return None


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """Return one AWS event-stream message with string headers (type 7)."""
    encoded = b""
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        encoded += struct.pack(">B", len(name_bytes)) + name_bytes
        encoded += struct.pack(">BH", 7, len(value_bytes)) + value_bytes
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def chunk_event(event: dict[str, Any]) -> bytes:
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()})
    headers = {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_event(headers, payload.encode())


def exception_event(kind: str, text: str) -> bytes:
    """Return an event-stream exception message, as Bedrock sends mid-stream."""
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_event(headers, json.dumps({"message": text}).encode())


def message(text: str, stop_reason: str = "end_turn", tokens: tuple[int, int] = (1200, 300)):
    """Return the JSON reply of ``invoke_model`` for an Anthropic model."""
    body = {
        "id": "msg_bdrk_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
    }
    return Reply(200, body, {"x-amzn-requestid": "req-1"})


def stream(pieces: list[str], stop_reason: str = "end_turn", tokens=(1200, 300)) -> Stream:
    """Return the event-stream reply of ``invoke_model_with_response_stream``."""
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_bdrk_02",
                "type": "message",
                "role": "assistant",
                "content": [],
                "usage": {"input_tokens": tokens[0], "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
        for p in pieces
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": tokens[1]},
        },
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": tokens[0],
                "outputTokenCount": tokens[1],
            },
        },
    ]
    return Stream(
        [chunk_event(e) for e in events],
        "application/vnd.amazon.eventstream",
        {"x-amzn-bedrock-content-type": "application/json"},
    )


def error(status: int, code: str, text: str, retry_after: str | None = None) -> Reply:
    headers = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    return Reply(status, {"message": text}, headers)
