"""Running the API as a service: ``python -m opsforge_core serve`` under uvicorn."""

from __future__ import annotations

import importlib.util
import logging

from fastapi import FastAPI

from opsforge_core import api, handlers

logger = logging.getLogger(__name__)


def create_service_app() -> FastAPI:
    """Build the API for ``serve``: settings from the environment, request logs at INFO.

    uvicorn calls this factory in each worker process, which starts with no logging set up.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # A service logs its requests and handled errors at INFO even when the CLI set WARNING.
    # uvicorn.error carries a worker's start, death and shutdown, which an operator needs.
    for name in (__name__, api.__name__, handlers.__name__, "uvicorn.error"):
        service_logger = logging.getLogger(name)
        if service_logger.getEffectiveLevel() > logging.INFO:
            service_logger.setLevel(logging.INFO)
    return api.create_app()


def serve(host: str, port: int, workers: int = 1) -> None:
    """Run the API under uvicorn with ``workers`` processes until interrupted.

    Each worker reads its settings from the environment and opens the store itself.
    """
    import uvicorn

    for name in (__name__, "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.INFO)
    # uvicorn logs "Uvicorn running on ..." once the port is bound.
    logger.info(
        "starting the OpsForge API on http://%s:%d with %d workers (event loop %s, HTTP parser %s)",
        host,
        port,
        workers,
        "uvloop" if _installed("uvloop") else "asyncio",
        "httptools" if _installed("httptools") else "h11",
    )
    # uvicorn picks uvloop by itself when it is installed ("auto").
    # The request log replaces uvicorn's access log, which would print query strings.
    uvicorn.run(
        f"{__name__}:create_service_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        http=http_protocol(),
    )


def _installed(module: str) -> bool:
    """Tell whether ``module`` can be imported."""
    return importlib.util.find_spec(module) is not None


def http_protocol() -> str:
    """Return uvicorn's HTTP protocol: httptools with the limits of ``api_protocol``, else h11.

    An import string, because uvicorn passes it to each worker process.
    """
    if _installed("httptools"):
        return "opsforge_core.api_protocol:BoundedHttpToolsProtocol"
    return "h11"
