"""Decoding of raw bytes into JSON values, with errors that name the field and position."""

from __future__ import annotations

import json
from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.ingest.limits import IngestLimits, LimitExceededError


def decode_utf8(
    data: bytes | bytearray | memoryview | str, field: str, limits: IngestLimits
) -> str:
    """Decode ``data`` as UTF-8, or raise ``IngestError`` naming ``field`` when it is invalid."""
    if len(data) > limits.max_bytes:
        raise LimitExceededError(
            field,
            f"is {len(data)} bytes long, more than the limit of {limits.max_bytes}; "
            "split it into smaller payloads",
        )
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IngestError(
                field, f"invalid UTF-8 at byte {exc.start}; send the payload encoded as UTF-8"
            ) from exc
    return text.removeprefix("\ufeff")  # a byte order mark some Windows tools write


def loads(text: str, field: str) -> Any:
    """Parse one JSON document, or raise ``IngestError`` naming ``field`` and the position."""
    if not text.strip():
        raise IngestError(field, "is empty; send a JSON document")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(
            field,
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
            "send a valid JSON document",
        ) from exc
    except ValueError as exc:  # an integer literal beyond Python's digit limit
        raise IngestError(field, f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise LimitExceededError(field, "JSON nested too deeply to parse") from exc
