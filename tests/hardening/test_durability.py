"""Durability of acknowledged writes: the API process is killed right after its 2xx.

``python -m opsforge_core serve`` runs as a subprocess on a temporary SQLite file. Several
clients post alerts at once and the server gets SIGKILL the moment one of them reads a 2xx
status line. Every alert acknowledged before the kill must be in the store when it is reopened.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
from pathlib import Path

from opsforge_core.config import Settings
from opsforge_core.store import open_store
from tests.api.server import TOKEN, ServeProcess

CLIENTS = 6
ROUNDS = 3


def _request(port: int, fingerprint: str) -> bytes:
    alert = {
        "fingerprint": fingerprint,
        "name": "DiskFull",
        "service": "db",
        "severity": "warning",
        "status": "firing",
        "summary": "disk 97% full",
        "starts_at": "2026-11-20T10:00:00Z",
    }
    body = json.dumps({"alerts": [alert]}).encode()
    head = (
        f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _post_until_killed(
    server: ServeProcess, name: str, acked: list[str], kill_lock: threading.Lock
) -> None:
    """Post alerts one by one; kill the server as soon as a 2xx status line arrives."""
    for number in range(1000):
        fingerprint = f"{name}-{number:04d}"
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(_request(server.port, fingerprint))
                status_line = sock.makefile("rb").readline()
        except OSError:
            return
        if not status_line.startswith(b"HTTP/1.1 2"):
            return
        acked.append(fingerprint)
        # The first thread to get here kills the server; the others find it gone.
        if number >= 2 and kill_lock.acquire(blocking=False):
            server.kill()
            return


def test_acknowledged_alerts_survive_sigkill(tmp_path: Path) -> None:
    acked: list[str] = []
    logs = []
    for round_number in range(ROUNDS):
        # One process, so SIGKILL stops every process that could have acknowledged a write.
        server = ServeProcess(tmp_path, workers=1)
        kill_lock = threading.Lock()
        threads = [
            threading.Thread(
                target=_post_until_killed,
                args=(server, f"r{round_number}c{client}", acked, kill_lock),
            )
            for client in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        server.kill()
        logs.append(server.log())
        assert server.process.returncode == -signal.SIGKILL

    store = open_store(Settings(store="sqlite", sqlite_path=str(tmp_path / "opsforge.db")))
    stored = {alert.fingerprint for alert in store.recent_alerts(limit=5000).items}
    store.close()

    assert len(acked) >= ROUNDS * 3
    assert sorted(set(acked) - stored) == []
    for log in logs:
        assert TOKEN not in log
