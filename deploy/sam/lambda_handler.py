"""AWS Lambda entry point of OpsForge.

Routes by the shape of the event:

    {"type": "alerts" | "metrics" | "incident", ...}    direct invocation
    API Gateway POST /analyze                            REST (payload 1.0) and HTTP API (2.0)
    EventBridge opsforge.alerts, opsforge.metrics        OpsForge's own shape under ``detail``
    EventBridge aws.cloudwatch                           CloudWatch Alarm State Change
    SNS Records[].Sns                                    CloudWatch alarm notifications

Every return value has an integer ``statusCode`` and a JSON string ``body``. Bad input returns
400 naming the field, and an unexpected exception returns 500. A store failure while handling
an EventBridge or SNS event raises instead, so Lambda's asynchronous retry delivers the event
again. The repeat stores nothing twice because alerts are deduplicated by fingerprint.
Logs are JSON lines carrying Lambda's ``aws_request_id`` and API Gateway's ``requestId``.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import datetime as dt
import json
import logging
import math
import os
import threading
from decimal import Decimal
from typing import Any

from opsforge_core import handlers
from opsforge_core.config import Settings
from opsforge_core.errors import ConfigError, IngestError, OpsForgeError, StoreError

logger = logging.getLogger("opsforge.lambda")

EVENTBRIDGE_SOURCES = ("opsforge.alerts", "opsforge.metrics", "aws.cloudwatch")
DIRECT_TYPES = ("alerts", "metrics", "incident")

_request_ids: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "opsforge_request_ids", default=None
)


class EventRetryError(RuntimeError):
    """A store write failed for an event that the sender retries (EventBridge, SNS)."""


# -- logging -----------------------------------------------------------------------------------


class JsonLogFormatter(logging.Formatter):
    """Format records as one JSON object per line, with the ids of the current invocation."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_request_ids.get() or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Make every root handler write JSON lines; add a stderr handler if there is none."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonLogFormatter())
    root.setLevel(level)


# -- runtime -----------------------------------------------------------------------------------


class _Runtime:
    def __init__(self, settings: Settings, store: Any, orchestrator: Any, analyze: bool) -> None:
        self.settings = settings
        self.store = store
        self.orchestrator = orchestrator
        self.analyze = analyze


_runtime: _Runtime | None = None
_runtime_lock = threading.Lock()


def _get_runtime() -> _Runtime:
    """Build the settings, store and orchestrator once per execution environment."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            from opsforge_core.orchestrator import Orchestrator
            from opsforge_core.store import open_store

            settings = Settings.from_env()
            store = open_store(settings)
            orchestrator = Orchestrator(store=store, settings=settings)
            _runtime = _Runtime(settings, store, orchestrator, handlers.auto_analyze_enabled())
        return _runtime


def _current_settings() -> Settings:
    """Return the runtime's settings without opening the store."""
    runtime = _runtime
    return runtime.settings if runtime is not None else Settings.from_env()


def set_runtime(
    settings: Settings | None = None,
    store: Any = None,
    orchestrator: Any = None,
    analyze: bool | None = None,
) -> None:
    """Replace the cached runtime; with no store, the next event builds one from the env."""
    global _runtime
    with _runtime_lock:
        if store is None:
            _runtime = None
            return
        settings = settings or Settings.from_env()
        if orchestrator is None:
            from opsforge_core.orchestrator import Orchestrator

            orchestrator = Orchestrator(store=store, settings=settings)
        if analyze is None:
            analyze = handlers.auto_analyze_enabled()
        _runtime = _Runtime(settings, store, orchestrator, analyze)


# -- responses ---------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` for ``json.dumps``: Decimal to int or float, NaN to None, sets to lists.

    DynamoDB returns every number as Decimal, which ``json.dumps`` rejects.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_jsonable(item) for item in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return to_jsonable(value.item())
    return value


def response(status: int, body: Any) -> dict[str, Any]:
    """Build the API Gateway proxy response: integer status, JSON string body."""
    headers = {"Content-Type": "application/json"}
    request_id = (_request_ids.get() or {}).get("request_id")
    if request_id:
        headers["X-Request-Id"] = request_id
    text = json.dumps(to_jsonable(body), allow_nan=False, default=str)
    return {"statusCode": int(status), "headers": headers, "body": text}


def error_response(status: int, error: str, field: str | None, fix: str | None) -> dict[str, Any]:
    return response(status, {"error": error, "field": field, "fix": fix})


class BadEventError(Exception):
    """The event cannot be handled as sent; ``status`` is the HTTP status of the response."""

    def __init__(self, status: int, field: str | None, error: str, fix: str | None = None):
        self.status = status
        self.field = field
        self.error = error
        self.fix = fix
        super().__init__(error)


# -- entry point -------------------------------------------------------------------------------


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Handle one invocation; raise only to make EventBridge or SNS retry a store failure."""
    ids = {"aws_request_id": getattr(context, "aws_request_id", None) or "-"}
    ids.update(_gateway_ids(event))
    token = _request_ids.set(ids)
    try:
        return _dispatch(event)
    except EventRetryError:
        raise
    except BadEventError as exc:
        logger.warning("rejected event: %s (field %s)", exc.error, exc.field)
        return error_response(exc.status, exc.error, exc.field, exc.fix)
    except Exception as exc:  # noqa: BLE001 - return a 500 response, never fail the invocation
        logger.exception("unexpected error handling event")
        return error_response(
            500, f"internal error ({type(exc).__name__})", None, "retry later; see the logs"
        )
    finally:
        _request_ids.reset(token)


def _gateway_ids(event: Any) -> dict[str, str]:
    """Return API Gateway's requestId, or EventBridge's event id, which a retry keeps."""
    if not isinstance(event, dict):
        return {}
    request_context = event.get("requestContext")
    if isinstance(request_context, dict) and request_context.get("requestId"):
        return {"request_id": str(request_context["requestId"])}
    if "detail-type" in event and event.get("id"):
        return {"event_id": str(event["id"])}
    return {}


def _dispatch(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise BadEventError(400, "event", f"expected a JSON object, got {type(event).__name__}")
    if "httpMethod" in event or "routeKey" in event:
        return _api_gateway(event)
    if "detail-type" in event and "source" in event:
        return _eventbridge(event)
    if isinstance(event.get("Records"), list):
        return _sns(event)
    if "type" in event:
        return _direct(event)
    # Anything else may still be a payload that the ingest layer parses, such as an
    # Alertmanager webhook or a PagerDuty event sent straight to the function. Others get 400.
    return _handle("events", event, retry_store_errors=False)


# -- routes ------------------------------------------------------------------------------------


def _api_gateway(event: dict[str, Any]) -> dict[str, Any]:
    context = event.get("requestContext") or {}
    if not isinstance(context, dict):
        raise BadEventError(400, "requestContext", "expected an object")
    http = context.get("http") or {}
    if not isinstance(http, dict):
        raise BadEventError(400, "requestContext.http", "expected an object")
    method = str(event.get("httpMethod") or http.get("method") or "").upper()
    path = str(event.get("path") or event.get("rawPath") or http.get("path") or "")
    if not path.rstrip("/").endswith("/analyze"):
        raise BadEventError(404, "path", f"no route for {path!r}", "POST to /analyze")
    if method != "POST":
        raise BadEventError(
            405, "httpMethod", f"{method or 'no method'} is not allowed", "use POST"
        )
    payload = _gateway_body(event, _current_settings().api_max_body_bytes)
    return _handle("incident", payload, retry_store_errors=False)


def _gateway_body(event: dict[str, Any], limit: int) -> dict[str, Any]:
    """Decode the body: base64 when ``isBase64Encoded``, then JSON; it must be an object."""
    body = event.get("body")
    if body is None:
        raise BadEventError(400, "body", "request body is missing", "send a JSON object")
    if not isinstance(body, str):
        raise BadEventError(400, "body", f"expected a string, got {type(body).__name__}")
    raw: bytes | str = body
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise BadEventError(400, "isBase64Encoded", f"expected true or false, got {encoded!r}")
    if encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadEventError(
                400, "body", "isBase64Encoded is true but the body is not base64"
            ) from exc
    if len(raw) > limit:
        raise BadEventError(
            413,
            "body",
            f"request body is larger than {limit} bytes",
            "split the payload into smaller batches",
        )
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEventError(
            400, "body", f"request body is not valid JSON: {exc}", "send a JSON object"
        ) from exc
    except RecursionError as exc:
        raise BadEventError(
            400, "body", "request body is nested too deeply", "flatten the JSON document"
        ) from exc
    if not isinstance(payload, dict):
        raise BadEventError(
            400,
            "body",
            f"expected a JSON object, got {type(payload).__name__}",
            'send {"alerts": [...], "metrics": [...]}',
        )
    return payload


def _eventbridge(event: dict[str, Any]) -> dict[str, Any]:
    source = event.get("source")
    if source not in EVENTBRIDGE_SOURCES:
        raise BadEventError(
            400,
            "source",
            f"unknown EventBridge source {source!r}",
            f"send events from one of: {', '.join(EVENTBRIDGE_SOURCES)}",
        )
    if source == "aws.cloudwatch":
        # The alarm parser reads the whole event: alarm ARN, region and time sit outside detail.
        return _handle("alerts", event, retry_store_errors=True)
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadEventError(400, "detail", "expected an object", "put the records under detail")
    kind = "alerts" if source == "opsforge.alerts" else "metrics"
    return _handle(kind, detail, retry_store_errors=True)


def _sns(event: dict[str, Any]) -> dict[str, Any]:
    records = event["Records"]
    if not records or not all(
        isinstance(r, dict) and isinstance(r.get("Sns"), dict) for r in records
    ):
        raise BadEventError(400, "Records", "expected SNS records with an 'Sns' object")
    return _handle("alerts", event, retry_store_errors=True)


def _direct(event: dict[str, Any]) -> dict[str, Any]:
    kind = event.get("type")
    if kind not in DIRECT_TYPES:
        raise BadEventError(
            400, "type", f"unknown event type {kind!r}", f"use one of: {', '.join(DIRECT_TYPES)}"
        )
    return _handle(kind, event, retry_store_errors=False)


def _handle(kind: str, payload: Any, *, retry_store_errors: bool) -> dict[str, Any]:
    try:
        runtime = _get_runtime()
        common = {"store": runtime.store, "settings": runtime.settings}
        if kind == "incident":
            result = handlers.handle_incident(payload, orchestrator=runtime.orchestrator, **common)
        elif kind == "metrics":
            result = handlers.handle_metrics(payload, **common)
        elif kind == "events":
            orchestrator = runtime.orchestrator if runtime.analyze else None
            result = handlers.handle_events(
                payload, orchestrator=orchestrator, analyze=runtime.analyze, **common
            )
        else:
            orchestrator = runtime.orchestrator if runtime.analyze else None
            result = handlers.handle_alerts(
                payload, orchestrator=orchestrator, analyze=runtime.analyze, **common
            )
    except IngestError as exc:
        status = 413 if isinstance(exc, handlers.PayloadTooLargeError) else 400
        raise BadEventError(status, exc.field, exc.problem, f"correct '{exc.field}'") from exc
    except StoreError as exc:
        if retry_store_errors:
            logger.error("store write failed, raising so the event is retried: %s", exc)
            raise EventRetryError(f"store write failed: {exc}") from exc
        logger.error("store unavailable, returning 503: %s", exc)
        return error_response(503, f"store unavailable: {exc}", None, "retry later")
    except ConfigError as exc:
        # A bad setting is the function's fault, not the sender's: EventBridge and SNS must
        # retry (and dead-letter) the event, and API Gateway callers get a 500.
        if retry_store_errors:
            logger.error("invalid configuration, raising so the event is retried: %s", exc)
            raise EventRetryError(f"invalid configuration: {exc}") from exc
        logger.error("invalid configuration, returning 500: %s", exc)
        return error_response(500, f"invalid configuration: {exc}", None, "fix the setting")
    except OpsForgeError as exc:
        raise BadEventError(400, None, str(exc)) from exc
    body = result.to_dict()
    logger.info(
        "handled %s from %s: %d accepted, %d rejected, %d repeats, opened %s, closed %s",
        kind,
        result.source or "-",
        len(result.accepted),
        len(result.rejected),
        len(result.deduplicated),
        result.incidents_opened,
        result.incidents_closed,
    )
    return response(result.status_code, body)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    configure_logging()
