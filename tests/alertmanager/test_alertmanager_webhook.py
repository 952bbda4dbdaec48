"""A real Prometheus Alertmanager delivering its webhook to the OpsForge API."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsforge_core.models import Alert
from opsforge_core.store import open_store
from tests.api.server import TOKEN, ApiServer, api_settings
from tests.conftest import free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        not Path(ALERTMANAGER).exists(), reason="prometheus-alertmanager is not installed"
    ),
]

CONFIG = """\
route:
  receiver: opsforge
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: opsforge
    webhook_configs:
      - url: {url}/api/v1/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(api_settings(tmp_path)) as server:
        yield server


@pytest.fixture
def alertmanager(tmp_path: Path, api: ApiServer) -> Iterator[str]:
    """Start Alertmanager on a loopback port, its webhook pointed at ``api``."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(url=api.url, token=TOKEN))
    storage = tmp_path / "alertmanager-data"
    storage.mkdir()
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _ready(url), 20, f"Alertmanager at {url} (see {log.name})")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def _post_alert(url: str, starts_at: datetime, ends_at: datetime | None) -> None:
    alert: dict[str, Any] = {
        "labels": {
            "alertname": "QueueBacklog",
            "service": "billing",
            "severity": "critical",
            "instance": "billing-1:9100",
        },
        "annotations": {"summary": "billing queue backlog above 10k for 5m"},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
    }
    if ends_at is not None:
        alert["endsAt"] = ends_at.isoformat().replace("+00:00", "Z")
    response = httpx.post(f"{url}/api/v2/alerts", json=[alert], timeout=5)
    assert response.status_code == 200, response.text


def _stored(api: ApiServer) -> list[Alert]:
    store = open_store(api.app.state.runtime.settings)
    return [a for a in store.recent_alerts().items if a.name == "QueueBacklog"]


def test_alertmanager_delivers_and_resolves(api: ApiServer, alertmanager: str) -> None:
    starts_at = datetime.now(UTC).replace(microsecond=250000) - timedelta(minutes=3)
    _post_alert(alertmanager, starts_at, None)

    stored = _wait_for(lambda: _stored(api), 20, "the firing alert to reach OpsForge")
    assert len(stored) == 1
    assert stored[0].source == "alertmanager"
    assert stored[0].status == "firing"
    assert stored[0].ends_at is None
    assert stored[0].starts_at == starts_at
    store = open_store(api.app.state.runtime.settings)
    incidents = _wait_for(lambda: store.list_incidents().items, 20, "the analysis")
    assert len(incidents) == 1

    # Posting the same alert again is a repeat: Alertmanager keeps one alert, and OpsForge
    # keeps one alert and one incident even if a notification goes out again.
    _post_alert(alertmanager, starts_at, None)
    time.sleep(2.5)
    assert len(_stored(api)) == 1
    assert len(store.list_incidents().items) == 1

    ends_at = datetime.now(UTC).replace(microsecond=500000) - timedelta(seconds=5)
    _post_alert(alertmanager, starts_at, ends_at)

    resolved = _wait_for(
        lambda: [a for a in _stored(api) if a.status == "resolved"],
        20,
        "the resolution to reach OpsForge",
    )
    assert len(resolved) == 1
    assert len(_stored(api)) == 1
    assert resolved[0].ends_at == ends_at
    assert resolved[0].duration_seconds == pytest.approx((ends_at - starts_at).total_seconds())
    incident = _wait_for(
        lambda: store.get_incident(incidents[0].incident_id).status == "resolved",
        10,
        "the incident to close",
    )
    assert incident
    assert len(store.list_incidents().items) == 1
