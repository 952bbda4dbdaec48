"""HTTP ingestion API of the EC2 stack (FastAPI under uvicorn).

    POST /api/v1/alerts/alertmanager   Alertmanager webhook (version 4)
    POST /api/v1/events                any format ``ingest.parse_payload`` detects
    POST /api/v1/analyze               analyze the given alerts and metrics now
    GET  /api/v1/incidents/{id}        one stored incident report
    GET  /healthz, /api/healthz        store check, no token needed

Every ``/api/v1`` route requires ``Authorization: Bearer <OPSFORGE_API_TOKEN>``. Without a
configured token those routes return 503 and say to set it. Bodies over
``api_max_body_bytes`` return 413. Errors are JSON objects with ``error``, ``field`` and
``fix``, and never carry a stack trace. A 2xx is sent only after the store writes finished.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsforge_core import handlers
from opsforge_core.config import Settings
from opsforge_core.errors import (
    ConfigError,
    ConflictError,
    IngestError,
    OpsForgeError,
    StoreError,
)
from opsforge_core.models import json_safe

if TYPE_CHECKING:
    from opsforge_core.orchestrator import Orchestrator
    from opsforge_core.store.base import Store

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


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


class _Runtime:
    """The settings, store and orchestrator of one app; the store opens on first use.

    Opening lazily lets the server start, and /healthz report the cause, while the store is
    down.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store | None,
        orchestrator: Orchestrator | None,
        analyze: bool,
    ) -> None:
        self.settings = settings
        self.analyze = analyze
        self._store = store
        self._orchestrator = orchestrator
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                from opsforge_core.store import open_store

                self._store = open_store(self.settings)
            return self._store

    @property
    def orchestrator(self) -> Orchestrator:
        store = self.store
        with self._lock:
            if self._orchestrator is None:
                from opsforge_core.orchestrator import Orchestrator

                self._orchestrator = Orchestrator(store=store, settings=self.settings)
            return self._orchestrator


# -- request plumbing --------------------------------------------------------------------------


class RequestLogMiddleware:
    """Tag each request with an id (``X-Request-Id``) and log one line when it ends.

    The line contains the method, path, status, duration and client, never headers or bodies.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client") or ("-", 0)
            logger.info(
                "%s %s %d %.1fms request_id=%s client=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000.0,
                request_id,
                client[0],
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return uuid.uuid4().hex


_JSON_MEDIA_TYPES = {"application/json", "text/json"}


def _error_body(exc: ApiError, request: Request) -> dict[str, Any]:
    return {
        "error": exc.error,
        "field": exc.field,
        "fix": exc.fix,
        "request_id": getattr(request.state, "request_id", None),
    }


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


async def _read_json(request: Request, limit: int) -> Any:
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


def _authorize(request: Request) -> None:
    """Check ``Authorization: Bearer <token>`` against OPSFORGE_API_TOKEN in constant time."""
    runtime: _Runtime = request.app.state.runtime
    expected = runtime.settings.api_token
    if not expected:
        raise ApiError(
            503,
            "the API is disabled because no token is configured",
            "Authorization",
            "set OPSFORGE_API_TOKEN on the server and restart it",
        )
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not supplied.strip():
        raise ApiError(
            401,
            "missing bearer token",
            "Authorization",
            "send the header 'Authorization: Bearer <OPSFORGE_API_TOKEN>'",
            challenge,
        )
    if not hmac.compare_digest(supplied.strip().encode(), expected.encode()):
        raise ApiError(
            401,
            "invalid bearer token",
            "Authorization",
            "send the token configured in OPSFORGE_API_TOKEN on the server",
            challenge,
        )


async def _call(request: Request, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking core call in the thread pool, turning unexpected errors into a 500."""
    try:
        return await run_in_threadpool(function, *args, **kwargs)
    except (ApiError, OpsForgeError):
        raise
    except Exception as exc:
        logger.exception(
            "unexpected error, request_id=%s", getattr(request.state, "request_id", None)
        )
        raise ApiError(
            500, f"internal error ({type(exc).__name__})", None, "retry later; see server logs"
        ) from exc


# -- the app -----------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    orchestrator: Orchestrator | None = None,
    analyze: bool | None = None,
) -> FastAPI:
    """Build the API; ``analyze`` defaults to OPSFORGE_AUTO_ANALYZE (true when unset)."""
    settings = settings or Settings.from_env()
    if analyze is None:
        analyze = handlers.auto_analyze_enabled()
    app = FastAPI(
        title="OpsForge ingestion API",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = _Runtime(settings, store, orchestrator, analyze)
    app.add_middleware(RequestLogMiddleware)
    _add_error_handlers(app)
    _add_routes(app)
    return app


def _add_routes(app: FastAPI) -> None:
    protected = [Depends(_authorize)]

    @app.post("/api/v1/alerts/alertmanager", dependencies=protected)
    async def alertmanager_webhook(request: Request) -> JSONResponse:
        runtime: _Runtime = request.app.state.runtime
        payload = await _read_json(request, runtime.settings.api_max_body_bytes)
        result = await _call(request, _alerts, runtime, payload, "alertmanager")
        return SafeJSONResponse(result.to_dict(), status_code=result.status_code)

    @app.post("/api/v1/events", dependencies=protected)
    async def events(request: Request) -> JSONResponse:
        runtime: _Runtime = request.app.state.runtime
        payload = await _read_json(request, runtime.settings.api_max_body_bytes)
        result = await _call(request, _events, runtime, payload)
        return SafeJSONResponse(result.to_dict(), status_code=result.status_code)

    @app.post("/api/v1/analyze", dependencies=protected)
    async def analyze(request: Request) -> JSONResponse:
        runtime: _Runtime = request.app.state.runtime
        payload = await _read_json(request, runtime.settings.api_max_body_bytes)
        result = await _call(request, _analyze, runtime, payload)
        return SafeJSONResponse(result.to_dict(), status_code=result.status_code)

    @app.get("/api/v1/incidents/{incident_id}", dependencies=protected)
    async def get_incident(incident_id: str, request: Request) -> JSONResponse:
        runtime: _Runtime = request.app.state.runtime
        report = await _call(request, lambda: runtime.store.get_incident(incident_id))
        if report is None:
            raise ApiError(404, f"incident {incident_id!r} not found", "incident_id")
        return SafeJSONResponse(report.to_dict())

    @app.get("/healthz")
    @app.get("/api/healthz")
    async def healthz(request: Request) -> JSONResponse:
        runtime: _Runtime = request.app.state.runtime
        try:
            await _call(request, lambda: runtime.store.check())
        except StoreError as exc:
            logger.warning("health check failed: %s", exc)
            body = {"status": "unavailable", "store": runtime.settings.store, "error": str(exc)}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "store": runtime.settings.store})


def _alerts(runtime: _Runtime, payload: Any, source: str) -> handlers.HandlerResult:
    return handlers.handle_alerts(
        payload,
        store=runtime.store,
        orchestrator=runtime.orchestrator if runtime.analyze else None,
        settings=runtime.settings,
        analyze=runtime.analyze,
        expected_source=source,
    )


def _events(runtime: _Runtime, payload: Any) -> handlers.HandlerResult:
    return handlers.handle_events(
        payload,
        store=runtime.store,
        orchestrator=runtime.orchestrator if runtime.analyze else None,
        settings=runtime.settings,
        analyze=runtime.analyze,
    )


def _analyze(runtime: _Runtime, payload: Any) -> handlers.HandlerResult:
    return handlers.handle_incident(
        payload,
        store=runtime.store,
        orchestrator=runtime.orchestrator,
        settings=runtime.settings,
    )


def _add_error_handlers(app: FastAPI) -> None:
    def respond(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status >= 500:
            logger.error("request failed with %d: %s", exc.status, exc.error)
        return JSONResponse(_error_body(exc, request), exc.status, headers=exc.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return respond(request, exc)

    @app.exception_handler(IngestError)
    async def ingest_error(request: Request, exc: IngestError) -> JSONResponse:
        status = 413 if isinstance(exc, handlers.PayloadTooLargeError) else 400
        return respond(request, ApiError(status, exc.problem, exc.field, _ingest_fix(exc)))

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return respond(request, ApiError(409, str(exc), None, "reload the incident and retry"))

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        fix = "retry later; GET /healthz shows the store's state"
        return respond(request, ApiError(503, f"store unavailable: {exc}", None, fix))

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, exc: ConfigError) -> JSONResponse:
        return respond(request, ApiError(500, str(exc), None, "fix the server's settings"))

    @app.exception_handler(OpsForgeError)
    async def opsforge_error(request: Request, exc: OpsForgeError) -> JSONResponse:
        return respond(request, ApiError(400, str(exc), None, None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ApiError(exc.status_code, str(exc.detail), None, None, exc.headers)
        return respond(request, error)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Errors outside ``_call`` land here. Starlette logs the traceback after this response.
        fix = "retry later; see server logs"
        return respond(request, ApiError(500, f"internal error ({type(exc).__name__})", None, fix))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())) or None
        return respond(request, ApiError(400, first.get("msg", "invalid request"), where))


def _ingest_fix(exc: IngestError) -> str:
    if isinstance(exc, handlers.PayloadTooLargeError):
        return "split the payload into smaller batches"
    return f"correct '{exc.field}' and send the payload again"


def serve(host: str, port: int, settings: Settings | None = None) -> None:
    """Run the API under uvicorn until interrupted."""
    import uvicorn

    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # A service logs its requests and handled errors at INFO even when the CLI set WARNING.
    for name in (__name__, handlers.__name__):
        service_logger = logging.getLogger(name)
        if service_logger.getEffectiveLevel() > logging.INFO:
            service_logger.setLevel(logging.INFO)
    app = create_app(settings)
    logger.info("serving the OpsForge API on http://%s:%d", host, port)
    # The request log above replaces uvicorn's access log, which would print query strings.
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None)
