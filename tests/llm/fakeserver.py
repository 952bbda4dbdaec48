"""A scripted HTTP server on 127.0.0.1 for the provider tests.

Each request takes the next action of the script: a reply, a streamed reply, or a stall that
outlasts the client's read timeout. Every request is recorded so tests can count attempts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int
    body: bytes | dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    """A 200 response written in chunks, each flushed, then the connection is closed."""

    chunks: list[bytes]
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stall:
    """Send nothing for ``seconds``, then a reply the client has given up on."""

    seconds: float


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class ScriptedServer:
    """Serve ``script`` actions in order; a request past the end gets a 500."""

    def __init__(self, check=None) -> None:
        self.script: deque[Reply | Stream | Stall] = deque()
        self.requests: list[Recorded] = []
        self.problems: list[str] = []
        self._check = check
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add(self, *actions: Reply | Stream | Stall) -> None:
        self.script.extend(actions)

    def _next(self, recorded: Recorded) -> Reply | Stream | Stall:
        with self._lock:
            self.requests.append(recorded)
            if self._check is not None:
                problem = self._check(recorded)
                if problem:
                    self.problems.append(problem)
            if not self.script:
                return Reply(500, {"message": "script exhausted"})
            return self.script.popleft()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                action = server._next(Recorded("POST", self.path, headers, body))
                try:
                    self._perform(action)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _perform(self, action: Reply | Stream | Stall) -> None:
                if isinstance(action, Stall):
                    time.sleep(action.seconds)
                    action = Reply(200, {"late": True})
                if isinstance(action, Reply):
                    body = action.body
                    if isinstance(body, dict):
                        body = json.dumps(body).encode()
                    self.send_response(action.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in action.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", action.content_type)
                for name, value in action.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                for chunk in action.chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler
