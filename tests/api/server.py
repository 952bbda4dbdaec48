"""Real API servers on loopback ports: uvicorn in a thread, or the serve command in a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from opsforge_core.api import create_app
from opsforge_core.api_server import http_protocol
from opsforge_core.config import Settings
from tests.conftest import REPO_ROOT, free_port

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


class ServeProcess:
    """``python -m opsforge_core serve`` on a loopback port with its output in a file."""

    def __init__(self, folder: Path, token: str = TOKEN, workers: int = 1) -> None:
        self.port = free_port()
        self.log_path = folder / f"serve-{self.port}.log"
        self.env = {
            **os.environ,
            "OPSFORGE_STORE": "sqlite",
            "OPSFORGE_SQLITE_PATH": str(folder / "opsforge.db"),
            "OPSFORGE_LLM_PROVIDER": "offline",
            "OPSFORGE_API_TOKEN": token,
            "OPSFORGE_AUTO_ANALYZE": "false",
            "OPSFORGE_API_WORKERS": str(workers),
        }
        command = [sys.executable, "-m", "opsforge_core", "serve", "--port", str(self.port)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}: {self.log()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"serve did not answer /healthz within {timeout} s")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
