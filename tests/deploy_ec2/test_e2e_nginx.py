"""The EC2 stack end to end: console, API and one SQLite store behind a real nginx.

The console and the API run as the systemd units start them, on free loopback ports, and the
shipped nginx site is rendered for those ports. Requests go through nginx only: basic auth on
the console, the WebSocket upgrade on /_stcore/stream, headless Chromium on the Live page,
the Alertmanager webhook with and without the bearer token, and the security headers.

Clients reach nginx under the name ``opsforge.test`` with the port in the Host header, as a
browser does on a real host. Streamlit accepts a WebSocket only when its Origin matches the
Host it receives, or when the Origin is localhost, so 127.0.0.1 alone would hide a site that
drops the port.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsforge_core.config import Settings
from opsforge_core.store import open_store
from tests.conftest import REPO_ROOT, free_port
from tests.deploy_ec2.nginx_site import NGINX, render_site, start_nginx
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, _shoot, _wait_healthy

pytestmark = [
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(NGINX).exists(), reason=f"nginx is not installed at {NGINX}"),
]

HOSTNAME = "opsforge.test"
USER = "admin"
PASSWORD = "e2e-console-pw"
TOKEN = "e2e-api-token-7c1d"
FIRING = "c4f1a9d02b7e3f51"
RESOLVED = "9ab2e6c1f0d47733"
LIVE_FINGERPRINT = "e2e0live0000a1b2"
# Debian's group of the nobody user. The setup script gives it read access to htpasswd.
WORKER_GROUP = "nogroup"
START_TIMEOUT = 60.0
# The nginx site adds these to every response, 401s and API responses included.
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass
class Stack:
    """The running stack: the three ports, the store settings and an HTTP client for nginx."""

    port: int
    console_port: int
    api_port: int
    settings: Settings
    client: httpx.Client

    @property
    def origin(self) -> str:
        return f"http://{HOSTNAME}:{self.port}"


def _environment(folder: Path) -> dict[str, str]:
    # The console and the API share one store, as on EC2 where both read opsforge.env.
    env = {
        **os.environ,
        "OPSFORGE_STORE": "sqlite",
        "OPSFORGE_SQLITE_PATH": str(folder / "opsforge.db"),
        "OPSFORGE_LLM_PROVIDER": "offline",
        "OPSFORGE_API_TOKEN": TOKEN,
        "OPSFORGE_LIVE_SIMULATOR": "off",
    }
    env.pop("OPSFORGE_DYNAMODB_ENDPOINT", None)
    return env


def _spawn(
    processes: ExitStack, command: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    processes.callback(_stop, process)
    return process


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_api(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"API exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"API not healthy after {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def _start_console(processes: ExitStack, folder: Path, env: dict[str, str]) -> int:
    port = free_port()
    log = folder / "console.log"
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    process = _spawn(processes, command, env, log)
    _wait_healthy(f"http://127.0.0.1:{port}", process, log)
    return port


def _start_api(processes: ExitStack, folder: Path, env: dict[str, str]) -> int:
    port = free_port()
    log = folder / "api.log"
    command = [
        sys.executable, "-m", "opsforge_core", "serve", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    process = _spawn(processes, command, env, log)
    _wait_api(f"http://127.0.0.1:{port}", process, log)
    return port


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start the API, the console and nginx, and stop all three when the module ends."""
    folder = tmp_path_factory.mktemp("ec2-stack")
    env = _environment(folder)
    # Nothing creates the tables up front, as on EC2: the processes open the SQLite file.
    settings = Settings.from_env(env)
    with ExitStack() as processes:
        api_port = _start_api(processes, folder, env)
        console_port = _start_console(processes, folder, env)
        port = free_port()
        site = render_site(folder / "nginx", port, console_port, api_port, USER, PASSWORD)
        processes.callback(_stop, start_nginx(site))
        # Every request names opsforge.test in its Host header but connects to loopback.
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Host": f"{HOSTNAME}:{port}"},
            timeout=60.0,
            trust_env=False,
        )
        processes.callback(client.close)
        yield Stack(port, console_port, api_port, settings, client)


@pytest.fixture
def webhook(events_dir: Path) -> dict[str, Any]:
    return json.loads((events_dir / "alertmanager_webhook_mixed.json").read_text())


def _assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, f"{name} on {response.request.url}"
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'self'" in policy
    # server_tokens off: nginx names itself without its version.
    assert response.headers.get("server") == "nginx"


def test_console_without_credentials_is_401(stack: Stack) -> None:
    missing = stack.client.get("/")
    wrong = stack.client.get("/", auth=(USER, "not-the-password"))
    health = stack.client.get("/_stcore/health")

    for response in (missing, wrong, health):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="OpsForge"'
        _assert_security_headers(response)


def test_console_health_with_credentials_is_200(stack: Stack) -> None:
    health = stack.client.get("/_stcore/health", auth=(USER, PASSWORD))
    index = stack.client.get("/", auth=(USER, PASSWORD))

    assert health.status_code == 200
    assert health.text == "ok"
    assert index.status_code == 200
    assert "<title>" in index.text
    _assert_security_headers(index)


def _websocket_connect(stack: Stack, headers: dict[str, str]) -> Any:
    from websockets.sync.client import connect

    # The URI sets the Host header, while the socket connects to nginx on loopback.
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    return connect(
        f"ws://{HOSTNAME}:{stack.port}/_stcore/stream",
        sock=sock,
        origin=stack.origin,
        subprotocols=["streamlit"],
        additional_headers=headers,
        proxy=None,
        open_timeout=30,
    )


def test_websocket_handshake_through_nginx_is_101(stack: Stack) -> None:
    credentials = httpx.BasicAuth(USER, PASSWORD)
    request = next(credentials.auth_flow(httpx.Request("GET", stack.origin)))
    headers = {"Authorization": request.headers["Authorization"]}

    with _websocket_connect(stack, headers) as websocket:
        response = websocket.response
        assert response.status_code == 101
        assert response.headers["Upgrade"].lower() == "websocket"
        assert websocket.subprotocol == "streamlit"
        # A pong from Streamlit shows that nginx relays frames, not only the handshake.
        websocket.ping().wait(timeout=10)


def test_websocket_without_credentials_is_401(stack: Stack) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        _websocket_connect(stack, {})

    assert refused.value.response.status_code == 401


def _post_fresh_alert(stack: Stack, webhook: dict[str, Any]) -> None:
    # The Live page shows the last hour, and the shared webhook is older than that.
    alert = copy.deepcopy(webhook["alerts"][0])
    alert["fingerprint"] = LIVE_FINGERPRINT
    started = datetime.now(UTC) - timedelta(minutes=2)
    alert["startsAt"] = started.isoformat().replace("+00:00", "Z")
    body = {**webhook, "alerts": [alert]}
    response = stack.client.post(
        "/api/v1/alerts/alertmanager", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text


def _metric_value(page: Any, label: str) -> Any:
    metric = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    )
    return metric.get_by_test_id("stMetricValue")


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"chromium is not installed at {CHROMIUM}")
def test_browser_shows_live_page_through_nginx(stack: Stack, webhook: dict[str, Any]) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    _post_fresh_alert(stack, webhook)
    # Chromium resolves opsforge.test to loopback, so its Origin names the host and port.
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOSTNAME} 127.0.0.1"]
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            context = browser.new_context(
                viewport={"width": 1400, "height": 1000},
                http_credentials={"username": USER, "password": PASSWORD},
            )
            page = context.new_page()
            page.goto(stack.origin)
            page.get_by_role("heading", name="Live", exact=True).wait_for(timeout=60_000)
            firing = _metric_value(page, "Firing")
            playwright_api.expect(firing).to_have_text("1", timeout=30_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
            _shoot(page, "nginx_live")
            assert _metric_value(page, "Alerts in window").inner_text() == "1"
            assert page.get_by_text("Connecting").count() == 0
        finally:
            browser.close()


def _read_feed(stack: Stack) -> dict[str, Any]:
    store = open_store(stack.settings)
    try:
        return {alert.fingerprint: alert for alert in store.recent_alerts().items}
    finally:
        store.close()


def test_alertmanager_webhook_needs_bearer_token(stack: Stack, webhook: dict[str, Any]) -> None:
    path = "/api/v1/alerts/alertmanager"
    missing = stack.client.post(path, json=webhook)
    wrong = stack.client.post(path, json=webhook, headers={"Authorization": "Bearer nope"})

    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        _assert_security_headers(response)
    before = _read_feed(stack)
    assert FIRING not in before
    assert RESOLVED not in before

    accepted = stack.client.post(path, json=webhook, headers={"Authorization": f"Bearer {TOKEN}"})

    assert accepted.status_code == 200, accepted.text
    assert sorted(accepted.json()["new"]) == sorted([FIRING, RESOLVED])
    _assert_security_headers(accepted)
    feed = _read_feed(stack)
    assert FIRING in feed
    assert RESOLVED in feed
    assert feed[FIRING].source == "alertmanager"
    assert feed[FIRING].status == "firing"
    assert feed[FIRING].ends_at is None
    assert feed[RESOLVED].status == "resolved"


def test_healthz_through_nginx_needs_no_login(stack: Stack) -> None:
    response = stack.client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": "sqlite"}
    _assert_security_headers(response)


def _run_setup(base: Path) -> str:
    """Run ec2_setup.sh on a copy of the checkout under ``base`` and return the login password."""
    source = base / "src"
    shutil.copytree(REPO_ROOT / "deploy", source / "deploy")
    shutil.copy(REPO_ROOT / "app.py", source / "app.py")
    shutil.copy(REPO_ROOT / "requirements.txt", source / "requirements.txt")
    env = {
        **os.environ,
        "OPSFORGE_ROOT": str(base / "root"),
        "OPSFORGE_SKIP_SYSTEM": "1",
        "OPSFORGE_NGINX_GROUP": WORKER_GROUP,
    }
    setup = source / "deploy" / "ec2" / "ec2_setup.sh"
    result = subprocess.run(["bash", str(setup)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    found = re.search(r"console login: admin / (\S+) \(", result.stdout)
    assert found, result.stdout
    return found.group(1)


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    # pytest's tmp_path sits below a folder that only its owner may enter, so the nobody user
    # could not reach files there.
    base = Path(tempfile.mkdtemp(prefix="opsforge-setup-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx switches its workers to nobody only as root")
@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_setup_login_works_for_unprivileged_workers(stack: Stack, world_readable_dir: Path) -> None:
    password = _run_setup(world_readable_dir)
    auth_dir = world_readable_dir / "root" / "etc" / "nginx" / "opsforge"
    port = free_port()
    site = render_site(
        world_readable_dir / "nginx",
        port,
        stack.console_port,
        stack.api_port,
        "admin",
        password,
        auth_dir=auth_dir,
        worker=f"nobody {WORKER_GROUP}",
    )
    nginx = start_nginx(site)
    try:
        url = f"http://127.0.0.1:{port}/_stcore/health"
        accepted = httpx.get(url, auth=("admin", password), trust_env=False)
        rejected = httpx.get(url, auth=("admin", "not-the-password"), trust_env=False)
    finally:
        _stop(nginx)

    # A password file the workers cannot open gives 500 for every request.
    assert accepted.status_code == 200, (site.folder / "error.log").read_text()
    assert accepted.text == "ok"
    assert rejected.status_code == 401
