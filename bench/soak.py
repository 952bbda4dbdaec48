"""Memory soak of the console: ``python -m bench.soak [--minutes 30] [--json]``.

Starts the console the way ``make run`` does: Streamlit, the in-process live simulator and a
fresh SQLite file. It opens the Live page in headless Chromium and leaves it there, so the
page's feed fragment reruns every few seconds while the simulator writes a tick per second.
Every ``--interval`` seconds it samples the resident set size (RSS) of the console process and
its children. Growth is measured from the first sample after ``--warmup`` minutes to the last
one; the target is under 50 MB.

Needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright`` and ``psutil`` packages.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GROWTH_TARGET_MB = 50.0
START_TIMEOUT = 90.0
MB = 1024.0 * 1024.0


@dataclass
class Sample:
    """One reading: seconds since the page opened, RSS in MB, and what the page showed."""

    elapsed_s: float
    rss_mb: float
    page_ok: bool
    page_errors: int
    # The Live page's "Window ends ..." caption; it changes only when the feed fragment reruns.
    window_caption: str = ""


@dataclass
class SoakResult:
    minutes: float
    warmup_minutes: float
    interval_s: float
    speed: float
    samples: list[Sample] = field(default_factory=list)
    baseline_mb: float | None = None
    final_mb: float | None = None
    peak_mb: float | None = None
    growth_mb: float | None = None
    slope_mb_per_hour: float | None = None
    page_failures: int = 0
    refreshes_seen: int = 0
    passed: bool = False
    commit: str = ""
    machine: str = ""
    command: str = ""

    def summarize(self) -> None:
        """Fill the growth figures from the samples taken after the warm-up."""
        settled = [s for s in self.samples if s.elapsed_s >= self.warmup_minutes * 60.0]
        self.page_failures = sum(1 for s in self.samples if not s.page_ok or s.page_errors)
        captions = [s.window_caption for s in self.samples]
        self.refreshes_seen = sum(
            1 for before, after in zip(captions, captions[1:], strict=False) if after != before
        )
        if len(settled) < 2:
            return
        self.baseline_mb = settled[0].rss_mb
        self.final_mb = settled[-1].rss_mb
        self.peak_mb = max(s.rss_mb for s in settled)
        self.growth_mb = round(self.final_mb - self.baseline_mb, 1)
        self.slope_mb_per_hour = round(_slope(settled) * 3600.0, 1)
        # Each sample interval spans several fragment reruns, so every caption should differ.
        self.passed = (
            self.growth_mb < GROWTH_TARGET_MB
            and self.page_failures == 0
            and self.refreshes_seen == len(self.samples) - 1
        )


def _slope(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time, in MB per second."""
    xs = [s.elapsed_s for s in samples]
    ys = [s.rss_mb for s in samples]
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def git_commit() -> str:
    """Return the checked-out commit, with ``+dirty`` when tracked files have changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def tree_rss_mb(pid: int) -> float:
    """Return the RSS of a process and its children, in MB."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / MB


def start_console(folder: Path, port: int, speed: float) -> subprocess.Popen:
    """Start the console as ``make run`` does, on loopback, with a fresh SQLite store."""
    env = {
        **os.environ,
        "OPSFORGE_STORE": "sqlite",
        "OPSFORGE_SQLITE_PATH": str(folder / "opsforge.db"),
        "OPSFORGE_LLM_PROVIDER": "offline",
        "OPSFORGE_LIVE_SIMULATOR": "on",
        "OPSFORGE_LIVE_SPEED": str(speed),
    }
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    log = (folder / "console.log").open("w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(
    url: str,
    process: subprocess.Popen,
    timeout: float = START_TIMEOUT,
    path: str = "/_stcore/health",
) -> None:
    """Poll ``url + path`` until it returns 200; raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"console exited with {process.returncode} before it was healthy")
        try:
            if httpx.get(f"{url}{path}", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"console at {url} was not healthy after {timeout:.0f} s")


def _page_state(page: Any) -> tuple[bool, int, str]:
    """Return whether the Live page shows its feed, its error box count and window caption."""
    try:
        ok = page.get_by_text("Alerts in window").first.is_visible(timeout=5000)
        errors = page.locator('[data-testid="stException"]').count()
        caption = page.get_by_text("Window ends").first.inner_text(timeout=5000)
    except Exception:  # noqa: BLE001 - a dead page is a failed sample, not a crashed soak
        return False, 0, ""
    return ok, errors, caption


def run_soak(args: argparse.Namespace) -> SoakResult:
    from playwright.sync_api import sync_playwright

    from tests.conftest import free_port

    result = SoakResult(
        minutes=args.minutes,
        warmup_minutes=args.warmup,
        interval_s=args.interval,
        speed=args.speed,
        commit=git_commit(),
        machine=f"{os.cpu_count()} cores, {platform.platform()}",
        command="python -m bench.soak " + " ".join(sys.argv[1:]),
    )
    with tempfile.TemporaryDirectory(prefix="opsforge-soak-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        console = start_console(Path(tmp), port, args.speed)
        try:
            wait_healthy(url, console)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.get_by_text("Alerts in window").wait_for(timeout=90_000)
                _sample_loop(page, console, result, args)
                browser.close()
        finally:
            console.terminate()
            try:
                console.wait(timeout=15)
            except subprocess.TimeoutExpired:
                console.kill()
    result.summarize()
    return result


def _sample_loop(
    page: Any, console: subprocess.Popen, result: SoakResult, args: argparse.Namespace
) -> None:
    started = time.monotonic()
    end = started + args.minutes * 60.0
    while True:
        ok, errors, caption = _page_state(page)
        sample = Sample(
            elapsed_s=round(time.monotonic() - started, 1),
            rss_mb=round(tree_rss_mb(console.pid), 1),
            page_ok=ok,
            page_errors=errors,
            window_caption=caption,
        )
        result.samples.append(sample)
        if not args.json:
            print(
                f"{sample.elapsed_s:7.0f} s  rss {sample.rss_mb:7.1f} MB  "
                f"page {'ok' if ok else 'NOT SHOWN'}  errors {errors}",
                flush=True,
            )
        if console.poll() is not None:
            raise RuntimeError(f"console exited with {console.returncode} during the soak")
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        # The browser keeps running its fragment timer while this thread waits.
        page.wait_for_timeout(min(args.interval, remaining) * 1000.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak the console's Live page in Chromium.")
    parser.add_argument("--minutes", type=float, default=30.0, help="soak length in minutes")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="minutes before the baseline sample"
    )
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.warmup >= args.minutes:
        parser.error("--warmup must be shorter than --minutes")

    result = run_soak(args)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(
            f"RSS after warm-up {result.baseline_mb} MB, final {result.final_mb} MB, "
            f"peak {result.peak_mb} MB, growth {result.growth_mb} MB "
            f"({result.slope_mb_per_hour} MB/h), page failures {result.page_failures}, "
            f"refreshes seen {result.refreshes_seen} of {len(result.samples) - 1}; "
            f"target growth < {GROWTH_TARGET_MB:.0f} MB: {'met' if result.passed else 'MISSED'}"
        )
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
