"""A real uvicorn server on a loopback port, run in a thread for the duration of a test."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn

from opsforge_core.api import create_app
from opsforge_core.api_server import http_protocol
from opsforge_core.config import Settings
from tests.conftest import free_port

TOKEN = "test-token-5f2c"


def api_settings(tmp_path: Path, token: str | None = TOKEN, **overrides: object) -> Settings:
    """Settings for a temporary SQLite store and the offline synthesis."""
    env = {
        "OPSFORGE_STORE": "sqlite",
        "OPSFORGE_SQLITE_PATH": str(tmp_path / "opsforge.db"),
        "OPSFORGE_LLM_PROVIDER": "offline",
    }
    if token is not None:
        env["OPSFORGE_API_TOKEN"] = token
    env.update({key: str(value) for key, value in overrides.items()})
    return Settings.from_env(env)


class ApiServer:
    """Start ``create_app(settings, ...)`` under uvicorn; ``url`` is its base address.

    The server parses HTTP with the protocol that ``serve`` uses.
    """

    def __init__(self, settings: Settings, **app_options: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, **app_options)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            http=http_protocol(),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
