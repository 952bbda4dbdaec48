"""Browser test: the console as `make run` starts it, driven by Debian's Chromium.

Walks Live -> Analyze -> run -> Incidents, saves a screenshot of each page under
tests/artifacts/, and checks that HTML markup in alerts and in the LLM's synthesis shows as
text with no script run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsforge_core.config import Settings
from opsforge_core.store import open_store
from tests.conftest import REPO_ROOT, free_port
from tests.ui import c2_data

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
START_TIMEOUT = 60.0
RUN_TIMEOUT_MS = 120_000
SHOT_HEIGHT = 3200


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"console exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"console not healthy after {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def console_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the console with the command `make run` uses, on a free loopback port."""
    folder = tmp_path_factory.mktemp("console")
    env = {
        **os.environ,
        "OPSFORGE_STORE": "sqlite",
        "OPSFORGE_SQLITE_PATH": str(folder / "opsforge.db"),
        "OPSFORGE_LLM_PROVIDER": "offline",
    }
    store = open_store(Settings.from_env(env))
    store.init()
    c2_data.store_c2_records(store)
    store.close()

    port = free_port()
    log = folder / "console.log"
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )

    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser_page(console_url: str):
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        yield page
        browser.close()


def _shoot(page, name: str) -> None:
    # Streamlit scrolls inside its main block, so a full-page shot needs a tall viewport.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": SHOT_HEIGHT})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def _go(page, title: str) -> None:
    page.get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=30_000)


def test_console_walk_live_analyze_incidents(console_url: str, browser_page) -> None:
    page = browser_page
    page.goto(console_url)
    page.get_by_role("heading", name="Live", exact=True).wait_for(timeout=60_000)
    page.get_by_text("Alerts in window").wait_for(timeout=30_000)
    page.get_by_text("Simulator", exact=True).wait_for(timeout=30_000)
    # The live simulator writes a tick per second; give the feed a refresh to show it.
    page.wait_for_timeout(6000)
    _shoot(page, "live")
    assert page.get_by_text("Anomalous series").is_visible()
    assert page.locator(".js-plotly-plot").count() >= 1

    _go(page, "Analyze")
    page.get_by_text("Agents to run").wait_for(timeout=60_000)
    page.get_by_role("button", name="Run analysis").click()
    done = page.get_by_text("Analysis complete")
    done.wait_for(timeout=RUN_TIMEOUT_MS)
    incident_id = done.inner_text().split(":")[-1].strip()
    page.get_by_text("Recommended actions").wait_for(timeout=30_000)
    _shoot(page, "analyze")
    assert incident_id.startswith("inc-")
    assert page.get_by_text("Synthesis", exact=True).is_visible()

    _go(page, "Incidents")
    page.get_by_text(incident_id).first.wait_for(timeout=30_000)
    _shoot(page, "incidents")
    page.get_by_text("Resolve or give feedback").click()
    assert page.get_by_role("button", name="Resolve incident").is_visible()
    assert page.dialogs == []


def test_console_shows_markup_as_text(console_url: str, browser_page) -> None:
    page = browser_page
    page.goto(console_url)
    page.get_by_role("heading", name="Live", exact=True).wait_for(timeout=60_000)
    _go(page, "Incidents")
    search = page.get_by_label("Search title, root cause, services")
    search.fill("c2-probe")
    search.press("Enter")
    page.get_by_text(c2_data.LLM_ANSWER).wait_for(timeout=30_000)
    _shoot(page, "incident-markup")
    assert page.get_by_text(c2_data.LLM_ANSWER).is_visible()
    assert page.get_by_role("heading", name=c2_data.TITLE).is_visible()
    detail = f"1 alert on checkout: {c2_data.SUMMARY} (team {c2_data.LABEL})"
    page.get_by_role("tab", name="alertops").click()
    assert page.get_by_text(detail).is_visible()
    # No tag from the records became an element, so no script ran.
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("b", has_text="Checkout").count() == 0
    injected = "() => [...document.scripts].filter(s => s.text.includes('alert(')).length"
    assert page.evaluate(injected) == 0
    assert page.dialogs == []
