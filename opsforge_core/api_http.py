"""HTTP pieces of the API: the error type, JSON responses and reading a JSON body."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from opsforge_core.models import json_safe


class ApiError(Exception):
    """An error response: HTTP status, the request field at fault, what failed and the fix."""

    def __init__(
        self,
        status: int,
        error: str,
        field: str | None = None,
        fix: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.field = field
        self.fix = fix
        self.headers = headers
        super().__init__(error)


class SafeJSONResponse(JSONResponse):
    """JSON response that also encodes Decimal (how DynamoDB returns numbers) and sets."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(
            json_safe(content), default=_encode_extra, allow_nan=False, separators=(",", ":")
        )
        return text.encode("utf-8")


def _encode_extra(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(json_safe(list(value)), key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_JSON_MEDIA_TYPES = {"application/json", "text/json"}


def _check_content_type(request: Request) -> None:
    """Reject a declared media type that is not JSON; a missing one is read as JSON.

    Alertmanager, EventBridge API destinations and curl all send ``application/json``; a form
    or plain-text body is a client mistake worth naming rather than parsing.
    """
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type in _JSON_MEDIA_TYPES or media_type.endswith("+json"):
        return
    raise ApiError(
        415,
        f"unsupported Content-Type {media_type or declared!r}",
        "Content-Type",
        "send the body as application/json",
    )


async def read_json(request: Request, limit: int) -> Any:
    """Read the body, counting bytes against ``limit``, and decode it as JSON."""
    _check_content_type(request)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid Content-Length header", "Content-Length")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    # Chunked uploads carry no Content-Length, so the streamed bytes are counted as well.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise ApiError(400, "request body is empty", "body", "send a JSON object")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(
            400, f"request body is not valid JSON: {exc}", "body", "send a JSON object"
        ) from exc
    except RecursionError as exc:
        raise ApiError(
            400, "request body is nested too deeply", "body", "flatten the JSON document"
        ) from exc


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"request body is larger than {limit} bytes",
        "body",
        "split the payload, or raise OPSFORGE_API_MAX_BODY_BYTES on the server",
    )
