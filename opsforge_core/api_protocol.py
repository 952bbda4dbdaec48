"""uvicorn's httptools protocol with the two limits that its h11 protocol already applies.

httptools parses requests in C and costs less CPU per request than h11, but uvicorn 0.55 runs
it without two checks that h11 makes:

- A request head (request line and headers) that is still arriving is buffered without limit,
  so one client can grow the server's memory by sending an endless header. h11 closes the
  connection once an incomplete head passes 16 KiB (uvicorn's ``h11_max_incomplete_event_size``
  default). This protocol responds with 431 and closes the connection at the same size.
- A request line without an HTTP version (HTTP/0.9) is served. This protocol responds with 400,
  as h11 does.

Neither parser limits how long a request head may take to arrive, so a client that sends part of
a head and stalls keeps its connection open for good. This protocol responds with 408 and closes
the connection when a head is still incomplete ``HEAD_TIMEOUT_SECONDS`` after the connection
opened or after the head's first byte (nginx's ``client_header_timeout`` does the same in front).

``serve`` uses this class when httptools is installed and h11 otherwise.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger(__name__)

# The default of uvicorn's h11_max_incomplete_event_size, so both parsers accept the same heads.
MAX_INCOMPLETE_HEAD_BYTES = 16 * 1024
SUPPORTED_HTTP_VERSIONS = frozenset({"1.0", "1.1"})
# Read when each timer starts, so a test can shorten it.
HEAD_TIMEOUT_SECONDS = 15.0


class UnsupportedHTTPVersionError(Exception):
    """A request named an HTTP version other than 1.0 or 1.1."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that limits an incomplete request head and rejects HTTP/0.9."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Bytes are counted only while a head is incomplete. A chunk that also completes the
        # head resets the count, so body bytes never count against the limit.
        if self._awaiting_head:
            if self._head_timer is None:
                self._start_head_timer()
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._awaiting_head
            and self._head_bytes > MAX_INCOMPLETE_HEAD_BYTES
            and not self.transport.is_closing()
        ):
            self._reject_large_head()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        self._stop_head_timer()
        version = self.parser.get_http_version()
        if version not in SUPPORTED_HTTP_VERSIONS:
            # httptools turns an error raised here into HttpParserError, and uvicorn handles that
            # by sending 400 and closing the connection.
            raise UnsupportedHTTPVersionError(f"HTTP/{version} is not supported")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        super().on_message_complete()

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._awaiting_head or self.transport.is_closing():
            return
        logger.warning(
            "closed connection from %s: request head incomplete after %.0f s (%d bytes)",
            self._client_text(),
            HEAD_TIMEOUT_SECONDS,
            self._head_bytes,
        )
        self._respond_and_close(408, "Request Timeout", "Request head timed out.\n")

    def _reject_large_head(self) -> None:
        logger.warning(
            "closed connection from %s: request head still incomplete after %d bytes",
            self._client_text(),
            self._head_bytes,
        )
        message = f"Request head is larger than {MAX_INCOMPLETE_HEAD_BYTES} bytes.\n"
        self._respond_and_close(431, "Request Header Fields Too Large", message)

    def _client_text(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "-"

    def _respond_and_close(self, status: int, reason: str, message: str) -> None:
        body = message.encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\n".encode()
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: "
            + str(len(body)).encode("ascii")
            + b"\r\n"
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()
