"""Sustained alert ingestion against the HTTP API: ``python -m bench.load [--json]``.

Starts ``python -m opsforge_core serve`` (with ``--workers N`` if given, else serve's default
worker count) on a free loopback port with a fresh SQLite store. It then sends ``--rate``
requests per second for ``--duration`` seconds to ``POST /api/v1/events``, each carrying one
new firing alert. The generator is open-loop: request ``i`` is due at
``start + i / rate`` whether or not earlier ones have finished, and its latency counts from that
due time. A slow server therefore shows up as latency instead of a lower send rate (no
coordinated omission). In-flight requests are capped by ``--connections``, and requests still
open ``--drain`` seconds after the last one is due count as errors.

After the run the store is read back: every alert acknowledged with a 2xx must be in it.
Target: 500 requests per second for 60 s with p99 under 200 ms and no errors.

The generator runs on the same machine as the server, so the result also gives the CPU time of
both over the timed run. The server's is summed over its worker processes and given per request
and as a percentage of one core. The generator's own is given as a percentage of one core.

The alerts are ``warning`` by default. High and critical alerts start an analysis each, which
measures the orchestrator rather than ingestion (``--severity critical`` does that).
``--profile FILE`` samples the server with py-spy during the timed run and writes a speedscope
profile (open it at https://www.speedscope.app or with ``speedscope FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil

from bench.soak import git_commit, wait_healthy
from opsforge_core.cli import resolve_api_workers
from opsforge_core.config import Settings
from opsforge_core.store import open_store

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-load-token"
PATH = "/api/v1/events"
P99_TARGET_MS = 200.0
REQUEST_TIMEOUT_S = 10.0
# Due times and latencies use this clock rather than the event loop's, because uvloop's
# loop.time() has a resolution of one millisecond.
clock = time.perf_counter

T = TypeVar("T")


@dataclass
class LoadResult:
    rate: float
    duration_s: float
    connections: int
    severity: str
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    throughput_rps: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    max_send_lag_ms: float = 0.0
    cold_request_ms: float | None = None
    workers: int = 1
    server_cpu_percent: float | None = None
    server_cpu_ms_per_request: float | None = None
    server_rss_mb: float | None = None
    generator_cpu_percent: float | None = None
    stored_alerts: int | None = None
    passed: bool = False
    commit: str = ""
    machine: str = ""
    command: str = ""


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def alert_body(index: int, severity: str, started: datetime) -> bytes:
    alert = {
        "fingerprint": f"load-{started:%H%M%S}-{index:08d}",
        "name": "QueueDepthHigh",
        "service": f"svc-{index % 25:02d}",
        "severity": severity,
        "status": "firing",
        "summary": f"queue depth above 1000 on shard {index % 97}",
        "labels": {"shard": str(index % 97), "bench": "load"},
        "starts_at": started.isoformat(),
    }
    return json.dumps({"alerts": [alert]}).encode()


def http_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections, at most ``size`` open, one request at a time on each."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.idle: asyncio.Queue = asyncio.Queue()
        self.slots = asyncio.Semaphore(size)

    async def send(self, payload: bytes) -> int:
        """Send one request and return the response status; raise OSError on a broken link."""
        async with self.slots:
            if self.idle.empty():
                connection = await asyncio.open_connection("127.0.0.1", self.port)
            else:
                connection = self.idle.get_nowait()
            reader, writer = connection
            try:
                writer.write(payload)
                status, keep = await _read_response(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.put_nowait(connection)
            else:
                writer.close()
            return status

    def close(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"


async def warm_up(port: int, result: LoadResult, count: int = 20) -> None:
    """Send requests one at a time before the timed run; record the first one's latency.

    Each worker opens its store and builds its orchestrator at start-up. The first requests
    still pay for lazy imports and cold caches in each worker, which would otherwise land in the
    first second of the schedule. Each request goes on a new connection, so the kernel spreads
    them over every worker process.
    """
    pool = ConnectionPool(port, 1)
    started = datetime.now(UTC)
    for index in range(count):
        begin = clock()
        status = await pool.send(http_request(port, alert_body(-1 - index, "info", started)))
        if index == 0:
            result.cold_request_ms = round((clock() - begin) * 1000.0, 1)
        if not 200 <= status < 300:
            raise RuntimeError(f"warm-up request returned HTTP {status}")
        pool.close()


async def drive(port: int, result: LoadResult, drain_s: float) -> list[float]:
    """Send the open-loop schedule and return the latencies of the 2xx responses in ms."""
    pool = ConnectionPool(port, result.connections)
    latencies: list[float] = []
    total = int(result.rate * result.duration_s)
    started = datetime.now(UTC)

    async def one(index: int, due: float) -> None:
        payload = http_request(port, alert_body(index, result.severity, started))
        try:
            status = await asyncio.wait_for(pool.send(payload), REQUEST_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            kind = type(exc).__name__
            result.errors[kind] = result.errors.get(kind, 0) + 1
            return
        if 200 <= status < 300:
            result.ok += 1
            latencies.append((clock() - due) * 1000.0)
        else:
            result.errors[f"http {status}"] = result.errors.get(f"http {status}", 0) + 1

    tasks = []
    begin = clock()
    for index in range(total):
        due = begin + index / result.rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        result.max_send_lag_ms = max(result.max_send_lag_ms, (clock() - due) * 1000.0)
        tasks.append(asyncio.create_task(one(index, due)))
        result.sent += 1
    done, pending = await asyncio.wait(tasks, timeout=drain_s) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    if pending:
        result.errors["not finished"] = len(pending)
    result.elapsed_s = round(clock() - begin, 2)
    pool.close()
    return latencies


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on uvloop when it is installed, else on asyncio's own loop.

    The generator shares the cores with the server, so its own event loop should cost as little
    CPU, and add as little delay to the send times, as it can.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def start_server(folder: Path, port: int, workers: int | None) -> subprocess.Popen:
    env = {
        **os.environ,
        "OPSFORGE_STORE": "sqlite",
        "OPSFORGE_SQLITE_PATH": str(folder / "opsforge.db"),
        "OPSFORGE_LLM_PROVIDER": "offline",
        "OPSFORGE_API_TOKEN": TOKEN,
    }
    command = [sys.executable, "-m", "opsforge_core", "serve", "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    log = (folder / "server.log").open("w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def start_profiler(pid: int, output: str) -> subprocess.Popen:
    """Sample the server with py-spy into a speedscope file until ``stop_profiler``."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise RuntimeError("--profile needs py-spy; install it with `pip install py-spy`")
    command = [py_spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
    command += ["--format", "speedscope", "--output", output]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_profiler(profiler: subprocess.Popen) -> None:
    # py-spy writes its output file when interrupted.
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=30)
    except subprocess.TimeoutExpired:
        profiler.kill()


def server_cpu_seconds(process: psutil.Process) -> float:
    """Return the user and system CPU seconds of the server and its worker processes so far."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def count_alerts(sqlite_path: Path, exclude_severity: str) -> int:
    store = open_store(Settings(store="sqlite", sqlite_path=str(sqlite_path)))
    try:
        total = 0
        cursor = None
        while True:
            page = store.recent_alerts(limit=1000, cursor=cursor)
            total += sum(1 for alert in page.items if alert.severity != exclude_severity)
            cursor = page.cursor
            if cursor is None:
                return total
    finally:
        store.close()


def measure_cpu(result: LoadResult, server_cpu: float, generator_cpu: float) -> None:
    """Record CPU use over the timed run. 100% is one core, so two busy cores show 200%."""
    if not result.elapsed_s:
        return
    result.server_cpu_percent = round(100.0 * server_cpu / result.elapsed_s, 1)
    result.generator_cpu_percent = round(100.0 * generator_cpu / result.elapsed_s, 1)
    if result.sent:
        result.server_cpu_ms_per_request = round(1000.0 * server_cpu / result.sent, 3)


def summarize(result: LoadResult, latencies: list[float]) -> None:
    latencies.sort()
    if latencies:
        result.p50_ms = round(percentile(latencies, 0.50), 1)
        result.p95_ms = round(percentile(latencies, 0.95), 1)
        result.p99_ms = round(percentile(latencies, 0.99), 1)
        result.max_ms = round(latencies[-1], 1)
    result.throughput_rps = round(result.ok / result.elapsed_s, 1) if result.elapsed_s else 0.0
    result.passed = (
        not result.errors
        and result.p99_ms is not None
        and result.p99_ms < P99_TARGET_MS
        and result.stored_alerts == result.ok
    )


def run_load(args: argparse.Namespace) -> LoadResult:
    from tests.conftest import free_port

    result = LoadResult(
        rate=args.rate,
        duration_s=args.duration,
        connections=args.connections,
        severity=args.severity,
        workers=resolve_api_workers(args.workers),
        commit=git_commit(),
        machine=f"{os.cpu_count()} cores, {platform.platform()}",
        command="python -m bench.load " + " ".join(sys.argv[1:]),
    )
    with tempfile.TemporaryDirectory(prefix="opsforge-load-") as tmp:
        folder = Path(tmp)
        port = free_port()
        server = start_server(folder, port, args.workers)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", server, timeout=60.0, path="/healthz")
            process = psutil.Process(server.pid)
            run_async(warm_up(port, result, count=20 * result.workers))
            profiler = start_profiler(server.pid, args.profile) if args.profile else None
            server_before = server_cpu_seconds(process)
            generator_before = time.process_time()
            latencies = run_async(drive(port, result, args.drain))
            generator_cpu = time.process_time() - generator_before
            server_cpu = server_cpu_seconds(process) - server_before
            if profiler is not None:
                stop_profiler(profiler)
            measure_cpu(result, server_cpu, generator_cpu)
            members = [process, *process.children(recursive=True)]
            rss = sum(member.memory_info().rss for member in members)
            result.server_rss_mb = round(rss / 1024 / 1024, 1)
        finally:
            server.terminate()
            server.wait(timeout=15)
        # The warm-up alerts are info severity and are not part of the result.
        result.stored_alerts = count_alerts(folder / "opsforge.db", exclude_severity="info")
    summarize(result, latencies)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Drive sustained alert ingestion at the API.")
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument(
        "--connections", type=int, default=64, help="maximum concurrent connections"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="uvicorn worker processes of the server (default: as serve chooses them)",
    )
    parser.add_argument(
        "--drain", type=float, default=15.0, help="seconds to wait for the last responses"
    )
    parser.add_argument(
        "--severity",
        default="warning",
        choices=["warning", "high", "critical"],
        help="severity of the posted alerts; high and critical start an analysis each",
    )
    parser.add_argument(
        "--profile", help="write a py-spy speedscope profile of the server to this file"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    workers_invalid = args.workers is not None and args.workers < 1
    if args.rate <= 0 or args.duration <= 0 or args.connections < 1 or workers_invalid:
        parser.error(
            "--rate and --duration must be above 0, --connections and --workers at least 1"
        )

    result = run_load(args)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(
            f"{result.ok}/{result.sent} ok in {result.elapsed_s} s ({result.throughput_rps} "
            f"req/s); latency p50 {result.p50_ms} ms, p95 {result.p95_ms} ms, "
            f"p99 {result.p99_ms} ms, max {result.max_ms} ms; errors {result.errors or 'none'}; "
            f"stored {result.stored_alerts}; CPU of one core: server "
            f"{result.server_cpu_percent}% ({result.server_cpu_ms_per_request} ms per request), "
            f"load generator {result.generator_cpu_percent}%; "
            f"target {'met' if result.passed else 'MISSED'}"
        )
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
