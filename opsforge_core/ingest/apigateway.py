"""API Gateway proxy requests (REST payload 1.0 and HTTP API payload 2.0) whose body
contains one of the other payloads.

Without a JSON content type, API Gateway base64-encodes the body and sets
``isBase64Encoded``. A request with no body carries ``"body": null``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.ingest.fields import ParseContext, join
from opsforge_core.ingest.jsontext import decode_utf8, loads
from opsforge_core.models import IngestBatch


def matches(obj: dict[str, Any]) -> bool:
    return "requestContext" in obj and ("httpMethod" in obj or "routeKey" in obj)


def parse(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Decode the request body and parse the payload inside it."""
    body_path = join(path, "body")
    body = obj.get("body")
    if body is None:
        raise IngestError(body_path, "is missing; send a JSON payload as the request body")
    if not isinstance(body, str):
        raise IngestError(body_path, "must be a string, as API Gateway delivers it")
    if obj.get("isBase64Encoded") is True:
        try:
            data: bytes | str = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise IngestError(body_path, "is marked isBase64Encoded but is not base64") from exc
    else:
        data = body
    document = loads(decode_utf8(data, body_path, ctx.limits), body_path)
    batch = ctx.embedded(document, body_path)
    batch.source = "apigateway"
    return batch
