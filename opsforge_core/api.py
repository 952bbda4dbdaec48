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

import asyncio
import contextvars
import functools
import hmac
import logging
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsforge_core import handlers
from opsforge_core.api_http import ApiError, SafeJSONResponse, read_json
from opsforge_core.config import Settings
from opsforge_core.errors import (
    ConfigError,
    ConflictError,
    IngestError,
    OpsForgeError,
    StoreError,
    ValidationError,
)

if TYPE_CHECKING:
    from opsforge_core.orchestrator import Orchestrator
    from opsforge_core.store.base import Store

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Threads that run the blocking core calls of one app: the store writes and the analyses that
# serious alerts start. Forty is the limit of the anyio thread pool these calls used before.
HANDLER_THREADS = 40


class _Runtime:
    """The settings, store, orchestrator and handler threads of one app.

    The server's start-up opens the store (``prepare``). If the store is down then, the first
    use opens it instead, so the server still starts and /healthz reports the cause. A SQLite
    store is wrapped in ``GroupCommitStore``.
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
        self._store = _with_group_commit(store) if store is not None else None
        self._orchestrator = orchestrator
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="opsforge-api")

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                from opsforge_core.store import open_store

                opened = open_store(self.settings)
                self._store = _with_group_commit(opened)
            return self._store

    @property
    def orchestrator(self) -> Orchestrator:
        store = self.store
        with self._lock:
            if self._orchestrator is None:
                from opsforge_core.orchestrator import Orchestrator

                self._orchestrator = Orchestrator(store=store, settings=self.settings)
            return self._orchestrator

    def prepare(self) -> None:
        """Open the store, and build the orchestrator if analyses are on, before any request.

        Building the orchestrator imports the analysis libraries, which takes seconds in a new
        process, and the first requests would otherwise wait for it.
        A failure is logged and left to the first request that needs the store.
        """
        try:
            _ = self.store
            orchestrator = self.orchestrator if self.analyze else None
        except OpsForgeError as exc:
            logger.warning("the store or orchestrator is not ready at startup: %s", exc)
            return
        logger.info(
            "ready: %s store, analyses %s",
            self.settings.store,
            "on" if orchestrator is not None else "off",
        )


def _with_group_commit(store: Store) -> Store:
    """Wrap a SQLite store so that concurrent alert writes share a transaction.

    Other stores are returned unchanged. DynamoDB has no single writer lock, so its writes gain
    nothing from waiting for each other.
    """
    from opsforge_core.group_commit import GroupCommitStore
    from opsforge_core.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return GroupCommitStore(store)  # type: ignore[return-value]
    return store


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
    # A request id must be unique, not unguessable. ``uuid4`` reads the OS random source on
    # every call, which costs more than the rest of the id handling together.
    return f"{random.getrandbits(128):032x}"


def _error_body(exc: ApiError, request: Request) -> dict[str, Any]:
    return {
        "error": exc.error,
        "field": exc.field,
        "fix": exc.fix,
        "request_id": getattr(request.state, "request_id", None),
    }


async def _authorize(request: Request) -> None:
    """Check ``Authorization: Bearer <token>`` against OPSFORGE_API_TOKEN in constant time.

    The check is a coroutine because FastAPI runs a plain function dependency on a worker
    thread, and that hop costs more than the check.
    """
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
    """Run a blocking core call on the handler threads, turning unexpected errors into a 500."""
    try:
        runtime: _Runtime = request.app.state.runtime
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(runtime.executor, call)
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
    runtime = _Runtime(settings, store, orchestrator, analyze)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(runtime.executor, runtime.prepare)
        yield
        # uvicorn has finished the open requests by now, so no call is waiting for a thread.
        runtime.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="OpsForge ingestion API",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(RequestLogMiddleware)
    _add_error_handlers(app)
    _add_routes(app)
    return app


def _add_routes(app: FastAPI) -> None:
    protected = [Depends(_authorize)]

    @app.post("/api/v1/alerts/alertmanager", dependencies=protected)
    async def alertmanager_webhook(request: Request) -> JSONResponse:
        runtime: _Runtime = request.app.state.runtime
        payload = await read_json(request, runtime.settings.api_max_body_bytes)
        result = await _call(request, _alerts, runtime, payload, "alertmanager")
        return SafeJSONResponse(result.to_dict(), status_code=result.status_code)

    @app.post("/api/v1/events", dependencies=protected)
    async def events(request: Request) -> JSONResponse:
        runtime: _Runtime = request.app.state.runtime
        payload = await read_json(request, runtime.settings.api_max_body_bytes)
        result = await _call(request, _events, runtime, payload)
        return SafeJSONResponse(result.to_dict(), status_code=result.status_code)

    @app.post("/api/v1/analyze", dependencies=protected)
    async def analyze(request: Request) -> JSONResponse:
        runtime: _Runtime = request.app.state.runtime
        payload = await read_json(request, runtime.settings.api_max_body_bytes)
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

    @app.exception_handler(ValidationError)
    async def unstorable(request: Request, exc: ValidationError) -> JSONResponse:
        # A value the store cannot hold comes from the request: retrying it cannot help.
        return respond(request, ApiError(400, str(exc), None, "correct the value and resend"))

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
