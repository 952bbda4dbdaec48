"""Throughput of both store backends: ``python -m bench.store_bench [--json]``.

Measures alert upserts (new and repeated), incident puts and gets, newest-first list pages,
metric batch appends and pattern counter increments from one thread, in wall seconds and in CPU
seconds of this process (a local server's own CPU is not counted). It runs on a fresh SQLite
file and on a dynalite server that it starts on a free loopback port, which needs
``node_modules`` (run ``npm install`` first). ``--endpoint`` uses another DynamoDB-compatible
server instead.

dynalite is a Node.js emulator on LevelDB, so its figures say how the store code behaves
against a local server, not how fast DynamoDB itself is.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import numpy as np
from botocore.config import Config

from opsforge_core.config import Settings
from opsforge_core.models import (
    AgentChoice,
    AgentResult,
    Alert,
    IncidentReport,
    MetricSeries,
    Pattern,
    Synthesis,
)
from opsforge_core.store.base import Store
from opsforge_core.store.dynamodb import DynamoDBStore, client_config
from opsforge_core.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
DYNALITE = ROOT / "node_modules" / ".bin" / "dynalite"
START = datetime(2026, 1, 1, tzinfo=UTC)


def _alert(n: int, status: str = "firing") -> Alert:
    starts = START + timedelta(seconds=n)
    return Alert(
        fingerprint=f"fp-{n:06d}",
        source="simulator",
        name="HighLatency",
        service=f"svc-{n % 20}",
        severity="critical",
        status=status,
        summary="p99 latency above 2 s",
        starts_at=starts,
        labels={"service": f"svc-{n % 20}", "env": "prod"},
        raw={"labels": {"alertname": "HighLatency"}, "annotations": {"summary": "slow"}},
    )


def _report(n: int) -> IncidentReport:
    created = START + timedelta(minutes=n)
    return IncidentReport(
        incident_id=f"inc-{n:06d}",
        created_at=created,
        window_start=created - timedelta(minutes=30),
        window_end=created,
        alerts=[_alert(n * 10 + i) for i in range(10)],
        series_keys=["payments/latency"],
        agents=[AgentChoice("rootcause", 80, "graph", True)],
        results=[AgentResult("rootcause", findings={"ranking": [{"service": "payments"}]})],
        synthesis=Synthesis("offline", "rules", "payments slowed checkout", "payments", 0.7),
        title=f"Incident {n}",
        services=["checkout", "payments"],
    )


def _series(n: int) -> MetricSeries:
    timestamps = START.timestamp() + 60.0 * np.arange(60)
    return MetricSeries(f"svc-{n}", "latency_ms", timestamps, np.random.default_rng(n).random(60))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _dynalite() -> Iterator[str]:
    if not DYNALITE.exists():
        raise SystemExit("dynalite is missing: run `npm install` in the project folder first")
    port = _free_port()
    with tempfile.TemporaryDirectory() as data:
        process = subprocess.Popen(
            [
                str(DYNALITE),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--path",
                data,
                "--createTableMs",
                "10",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(port)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_for(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"dynalite did not listen on port {port} within {timeout:.0f} s")


def _dynamodb_store(endpoint: str) -> DynamoDBStore:
    # A local endpoint gets dummy credentials, so no real AWS credentials are ever sent to it.
    # The store's own client settings (connection pool, retries), with more time for a slow
    # local server to respond.
    config = client_config("us-east-1").merge(Config(read_timeout=30))
    client = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=endpoint, config=config)
    settings = Settings(store="dynamodb", table_prefix=f"bench{uuid.uuid4().hex[:8]}-")
    return DynamoDBStore(client, settings.table_names, endpoint=endpoint)


def _timed(name: str, count: int, action: Callable[[], object]) -> dict[str, object]:
    """Time ``action``: wall seconds, and this process's CPU seconds (not the server's)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    action()
    seconds = time.perf_counter() - started
    return {
        "operation": name,
        "count": count,
        "seconds": round(seconds, 3),
        "per_second": round(count / seconds, 1) if seconds else None,
        "cpu_seconds": round(time.process_time() - cpu_started, 3),
    }


def _list_all(store: Store) -> int:
    pages, cursor = 0, None
    while True:
        page = store.list_incidents(limit=50, cursor=cursor)
        pages += 1
        cursor = page.cursor
        if cursor is None:
            return pages


def run_backend(store: Store, count: int) -> list[dict[str, object]]:
    """Run every measured operation against an initialized, empty store."""
    alerts = [_alert(n) for n in range(count)]
    incidents = [_report(n) for n in range(count // 5)]
    chunks = [alerts[i : i + 50] for i in range(0, len(alerts), 50)]
    pattern = Pattern("pat-bench", "HighLatency@checkout", "payments")
    results = [
        _timed("alert upsert (new)", count, lambda: [store.upsert_alerts(c) for c in chunks]),
        _timed("alert upsert (repeat)", count, lambda: [store.upsert_alerts(c) for c in chunks]),
        _timed("incident put", len(incidents), lambda: [store.put_incident(r) for r in incidents]),
        _timed(
            "incident get",
            len(incidents),
            lambda: [store.get_incident(r.incident_id) for r in incidents],
        ),
    ]
    pages = -(-len(incidents) // 50)
    results.append(_timed("incident list page (50)", pages, lambda: _list_all(store)))
    series = [_series(n) for n in range(count // 5)]
    results.append(_timed("metric batch append", len(series), lambda: store.append_metrics(series)))
    results.append(
        _timed(
            "pattern occurrence",
            count // 5,
            lambda: [
                store.record_pattern_occurrence(pattern, f"inc-{n}", START)
                for n in range(count // 5)
            ],
        )
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure store throughput on both backends.")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--count", type=int, default=500, help="alerts written (incidents: 1/5)")
    parser.add_argument("--backends", default="sqlite,dynamodb", help="comma-separated backends")
    parser.add_argument("--endpoint", help="a running DynamoDB-compatible endpoint to use")
    args = parser.parse_args(argv)

    report: dict[str, list[dict[str, object]]] = {}
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as folder:
            store = SQLiteStore(Path(folder) / "bench.db")
            store.init()
            report["sqlite"] = run_backend(store, args.count)
            store.close()
    if "dynamodb" in backends:
        with _endpoint(args.endpoint) as endpoint:
            store = _dynamodb_store(endpoint)
            store.init()
            report["dynamodb (dynalite)" if not args.endpoint else "dynamodb"] = run_backend(
                store, args.count
            )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)
    return 0


@contextmanager
def _endpoint(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    with _dynalite() as endpoint:
        yield endpoint


def _print_table(report: dict[str, list[dict[str, object]]]) -> None:
    print(
        f"{'backend':<20} {'operation':<26} {'count':>6} {'seconds':>8} {'per second':>11} "
        f"{'CPU s':>7}"
    )
    for backend, rows in report.items():
        for row in rows:
            print(
                f"{backend:<20} {row['operation']:<26} {row['count']:>6} "
                f"{row['seconds']:>8} {row['per_second']:>11} {row['cpu_seconds']:>7}"
            )


if __name__ == "__main__":
    sys.exit(main())
