"""``python -m opsforge_core serve``: the worker count setting and a server with two workers."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import psutil
import pytest

from opsforge_core import cli
from opsforge_core.config import Settings
from opsforge_core.store import open_store

from .server import TOKEN, ServeProcess

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("count", ["0", "65"])
def test_serve_rejects_worker_count_out_of_range(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--workers", count]) == 2
    assert f"--workers={count} is invalid; run from 1 to 64 workers" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["two", "-1", "1.5", "\uff12"])
def test_serve_rejects_invalid_worker_setting(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPSFORGE_API_WORKERS", value)
    assert cli.main(["serve"]) == 2
    assert f"OPSFORGE_API_WORKERS={value!r} is invalid" in capsys.readouterr().err


def test_worker_count_flag_beats_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSFORGE_API_WORKERS", "3")
    assert cli.resolve_api_workers(2) == 2
    assert cli.resolve_api_workers(None) == 3
    monkeypatch.delenv("OPSFORGE_API_WORKERS")
    assert cli.resolve_api_workers(None) == cli.default_api_workers()


def test_default_workers_one_per_cpu_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    for cpus, expected in [(1, 1), (2, 2), (4, 4), (16, cli.MAX_DEFAULT_API_WORKERS)]:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)))
        assert cli.default_api_workers() == expected


def _alert(index: int) -> dict[str, object]:
    return {
        "fingerprint": f"two-workers-{index:03d}",
        "name": "DiskFull",
        "service": "db",
        "severity": "warning",
        "status": "firing",
        "summary": "disk 97% full",
        "starts_at": "2026-11-20T10:00:00Z",
    }


@pytest.mark.slow
def test_two_workers_store_every_alert(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, workers=2)
    url = f"http://127.0.0.1:{server.port}"
    try:
        workers = psutil.Process(server.process.pid).children(recursive=True)
        # A new connection per request, so the kernel hands requests to both workers.
        statuses = []
        for index in range(40):
            response = httpx.post(
                f"{url}/api/v1/events", json={"alerts": [_alert(index)]}, headers=AUTH, timeout=10
            )
            statuses.append(response.status_code)
        repeat = httpx.post(
            f"{url}/api/v1/events", json={"alerts": [_alert(7)]}, headers=AUTH, timeout=10
        )
    finally:
        server.stop()

    # Two workers; a multiprocessing resource tracker may run beside them.
    assert len(workers) >= 2
    assert statuses == [200] * 40
    assert repeat.json()["deduplicated"] == ["two-workers-007"]
    store = open_store(Settings(store="sqlite", sqlite_path=str(tmp_path / "opsforge.db")))
    try:
        stored = {alert.fingerprint for alert in store.recent_alerts(limit=100).items}
    finally:
        store.close()
    assert stored == {f"two-workers-{index:03d}" for index in range(40)}
    log = server.log()
    assert "with 2 workers" in log
    # Each worker sets up its own logging, so request lines come from worker processes too.
    assert log.count("POST /api/v1/events 200") == 41
    assert TOKEN not in log
    # The workers, and multiprocessing's resource tracker, exit after the supervisor.
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert alive == []
