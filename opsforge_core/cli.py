"""Command-line interface: ``python -m opsforge_core analyze|store|serve``.

Errors print one line naming the problem and the fix, and exit with status 2 for bad input
and 1 for a failing backend; no traceback reaches the user unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from opsforge_core.config import Settings
from opsforge_core.errors import ConfigError, IngestError, OpsForgeError
from opsforge_core.models import IncidentReport
from opsforge_core.report_text import format_report

logger = logging.getLogger(__name__)

# The default worker count is one per CPU up to this many. Every worker waits for the same
# SQLite write lock and keeps its own store and orchestrator (about 150 MB in bench.load), so
# more processes add memory and lock waits sooner than they add throughput.
MAX_DEFAULT_API_WORKERS = 4
# Each worker keeps its own store connection and orchestrator, so more than this is a mistake.
MAX_API_WORKERS = 64


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m opsforge_core",
        description="OpsForge incident analysis from the command line.",
    )
    parser.add_argument("--debug", action="store_true", help="log at debug level, show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    analyze = commands.add_parser(
        "analyze",
        help="analyze a file of events, or a PetShop issue folder",
        description="Analyze FILE (JSON or JSONL in any supported format: OpsForge, "
        "Alertmanager, CloudWatch, SNS, PagerDuty, simulator scenario) or a PetShop issue "
        "folder holding metrics.csv and target.json.",
    )
    analyze.add_argument("path", help="events file, or PetShop issue folder")
    analyze.add_argument(
        "--agents", help="comma-separated agents to run instead of the selector's choice"
    )
    analyze.add_argument("--json", action="store_true", help="print the report as JSON")
    analyze.add_argument(
        "--no-store", action="store_true", help="analyze without storing the incident"
    )

    store = commands.add_parser("store", help="manage the store's tables")
    store.add_argument("action", choices=["init", "describe"], help="create tables or list them")

    serve = commands.add_parser("serve", help="run the HTTP ingestion API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="TCP port to listen on")
    serve.add_argument(
        "--workers",
        type=int,
        help="uvicorn worker processes (default: OPSFORGE_API_WORKERS, else one per CPU, "
        f"at most {MAX_DEFAULT_API_WORKERS})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings.from_env()
        if args.command == "analyze":
            return _analyze(args, settings)
        if args.command == "store":
            return _store(args.action, settings)
        return _serve(args.host, args.port, resolve_api_workers(args.workers))
    except (IngestError, ConfigError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OpsForgeError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _load_input(path: Path) -> dict[str, Any]:
    """Read alerts, series, graph, symptom and ground truth from a file or PetShop folder."""
    if path.is_dir():
        from opsforge_core import petshop

        for name in ("metrics.csv", "target.json"):
            if not (path / name).is_file():
                raise IngestError(
                    str(path), f"folder has no {name}; give a PetShop issue folder (issue_N)"
                )
        series, graph, symptom, truth = petshop.load_issue(path)
        # An issue contains only a few rows around the symptom, too few for a baseline. So the
        # scenario's normal-operation rows are prepended as history, as the benchmark does.
        normal, source = petshop.normal_for(path.parent.parent)
        if normal is None:
            print(
                "note: no normal-operation data found; analyzing the issue rows alone",
                file=sys.stderr,
            )
        else:
            series = petshop.with_history(series, normal, symptom["ts"])
            print(f"note: history from {source}/noissue prepended to each series", file=sys.stderr)
        return {
            "alerts": [],
            "series": series,
            "graph": graph,
            "symptom": symptom,
            "truth": truth,
            "rejected": [],
        }
    if not path.is_file():
        raise IngestError(str(path), "file not found")

    from opsforge_core.ingest import parse_file
    from opsforge_core.topology import ServiceGraph

    batch = parse_file(path)
    graph = ServiceGraph.from_pairs(batch.topology) if batch.topology else None
    truth = (batch.scenario or {}).get("ground_truth")
    return {
        "alerts": batch.alerts,
        "series": batch.series,
        "graph": graph,
        "symptom": None,
        "truth": truth,
        "rejected": batch.rejected,
    }


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    from opsforge_core.orchestrator import Orchestrator

    loaded = _load_input(Path(args.path))
    for rejection in loaded["rejected"]:
        print(
            f"rejected record {rejection.index}: {rejection.field}: {rejection.reason}",
            file=sys.stderr,
        )
    if not loaded["alerts"] and not loaded["series"]:
        raise IngestError(args.path, "no valid alerts or metric series in the input")

    agents = [a.strip() for a in args.agents.split(",") if a.strip()] if args.agents else None
    orchestrator = Orchestrator(settings=settings)

    def progress(step: str, detail: str, fraction: float) -> None:
        if not args.json:
            print(f"[{fraction:4.0%}] {step}: {detail}", file=sys.stderr)

    report = orchestrator.handle_incident(
        loaded["alerts"],
        loaded["series"],
        agents,
        graph=loaded["graph"],
        symptom=loaded["symptom"],
        progress=progress,
        persist=not args.no_store,
    )
    _print_report(report, loaded["truth"], args.json)
    unsaved = [note for note in report.notes if note.startswith("not stored")]
    if unsaved and not args.no_store:
        print(f"error: the incident was analyzed but {unsaved[0]}", file=sys.stderr)
        return 1
    return 0


def _print_report(report: IncidentReport, truth: dict[str, Any] | None, as_json: bool) -> None:
    if as_json:
        data = report.to_dict()
        for alert in data["alerts"]:
            alert.pop("raw", None)
        if truth is not None:
            data["ground_truth"] = truth
        print(json.dumps(data, indent=2, default=str))
        return
    print(format_report(report))
    if truth is not None:
        print(f"\nGround truth in the input: {json.dumps(truth, default=str)}")


def _store(action: str, settings: Settings) -> int:
    from opsforge_core.store import cli as store_cli

    if action == "init":
        created = store_cli.init_tables(settings)
        names = ", ".join(created) if created else "none (all tables already exist)"
        print(f"store {settings.store}: created {names}")
        return 0
    from opsforge_core.store import open_store

    for table in open_store(settings).describe_tables():
        keys = ", ".join(f"{k['AttributeName']} ({k['KeyType']})" for k in table.key_schema)
        indexes = f"; indexes: {', '.join(table.indexes)}" if table.indexes else ""
        # DynamoDB refreshes ItemCount about every six hours, so a new table may show 0.
        count = f"about {table.item_count}" if settings.store == "dynamodb" else table.item_count
        print(f"{table.name}: {count} items; key: {keys}{indexes}")
    return 0


def default_api_workers() -> int:
    """Return one worker per CPU this process may run on, at most MAX_DEFAULT_API_WORKERS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_API_WORKERS))


def resolve_api_workers(flag: int | None) -> int:
    """Return the worker count: ``--workers``, else OPSFORGE_API_WORKERS, else the default."""
    if flag is not None:
        value, source = flag, "--workers"
    else:
        raw = os.environ.get("OPSFORGE_API_WORKERS", "").strip()
        if not raw:
            return default_api_workers()
        if not (raw.isascii() and raw.isdigit()):
            raise ConfigError(
                f"OPSFORGE_API_WORKERS={raw!r} is invalid; use a whole number from 1 to "
                f"{MAX_API_WORKERS}"
            )
        value, source = int(raw), "OPSFORGE_API_WORKERS"
    if not 1 <= value <= MAX_API_WORKERS:
        raise ConfigError(
            f"{source}={value} is invalid; run from 1 to {MAX_API_WORKERS} workers "
            "(one or two per CPU is plenty: each holds its own store connection)"
        )
    return value


def _serve(host: str, port: int, workers: int) -> int:
    from opsforge_core.api_server import serve

    serve(host, port, workers)
    return 0
