"""OpsForge's own payloads: the plain shape, typed events, simulator lines and the
EventBridge envelopes of sources ``opsforge.alerts`` and ``opsforge.metrics``.

    {"alerts": [...], "metrics": [...]}                      plain shape
    {"type": "alerts" | "metrics" | "incident", ...}          typed event, same keys
    {"type": "scenario", "name", "seed", "ground_truth", "topology": [[caller, callee]]}
    {"source": "opsforge.alerts", "detail": {"alerts": [...]}} EventBridge envelope

A simulator scenario file is JSONL: one scenario line, then typed ``metrics`` and ``alerts``
lines.
"""

from __future__ import annotations

from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.ingest.fields import (
    ParseContext,
    check_text,
    collect,
    describe,
    index,
    join,
    preview,
    require_dict,
    require_list,
)
from opsforge_core.ingest.records import parse_alert, parse_series
from opsforge_core.models import IngestBatch

EVENT_TYPES = ("alerts", "metrics", "incident", "scenario")
EVENTBRIDGE_SOURCES = {"opsforge.alerts": "alerts", "opsforge.metrics": "metrics"}


def is_plain(obj: dict[str, Any]) -> bool:
    return ("alerts" in obj or "metrics" in obj) and not is_event(obj)


def is_event(obj: dict[str, Any]) -> bool:
    return obj.get("type") in EVENT_TYPES


def is_eventbridge(obj: dict[str, Any]) -> bool:
    source = obj.get("source")
    return isinstance(source, str) and source in EVENTBRIDGE_SOURCES and "detail" in obj


def parse_plain(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse ``{"alerts": [...], "metrics": [...], "topology": [...]}``, each key optional."""
    if "type" in obj:
        raise IngestError(
            join(path, "type"),
            f"unknown event type {preview(obj['type'])}; use one of {', '.join(EVENT_TYPES)}",
        )
    return _parse_body(obj, path, ctx)


def _parse_body(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    batch = IngestBatch(source="opsforge")
    if obj.get("alerts") is not None:
        _collect_alerts(batch, obj["alerts"], join(path, "alerts"), ctx)
    if obj.get("metrics") is not None:
        _collect_series(batch, obj["metrics"], join(path, "metrics"), ctx)
    if obj.get("topology") is not None:
        batch.topology = parse_topology(obj["topology"], join(path, "topology"), ctx)
    return batch


def parse_event(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse one typed event. An ``alerts`` or ``metrics`` event must carry that key."""
    kind = obj["type"]
    if kind == "scenario":
        return parse_scenario(obj, path, ctx)
    if kind in ("alerts", "metrics") and obj.get(kind) is None:
        raise IngestError(join(path, kind), f"is missing from a {kind!r} event")
    batch = _parse_body(obj, path, ctx)
    batch.source = "opsforge-event"
    return batch


def parse_eventbridge(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse an EventBridge envelope whose ``detail`` contains the plain shape."""
    detail_path = join(path, "detail")
    detail = require_dict(obj["detail"], detail_path)
    expected = EVENTBRIDGE_SOURCES[obj["source"]]
    if detail.get(expected) is None:
        raise IngestError(join(detail_path, expected), f"is missing from a {obj['source']!r} event")
    batch = _parse_body(detail, detail_path, ctx)
    batch.source = "eventbridge-opsforge"
    return batch


def parse_scenario(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse the simulator's scenario line into ``IngestBatch.scenario`` and ``.topology``."""
    check_text(obj.get("name"), join(path, "name"), ctx.limits)
    truth = obj.get("ground_truth")
    if truth is not None:
        truth = require_dict(truth, join(path, "ground_truth"))
        root_cause = truth.get("root_cause")
        if root_cause is not None:
            check_text(root_cause, join(path, "ground_truth.root_cause"), ctx.limits)
    batch = IngestBatch(source="simulator")
    batch.topology = parse_topology(obj.get("topology") or [], join(path, "topology"), ctx)
    batch.scenario = {k: v for k, v in obj.items() if k not in ("type", "topology")}
    return batch


def parse_topology(value: Any, path: str, ctx: ParseContext) -> list[tuple[str, str]]:
    """Read dependency edges ``[[caller, callee], ...]``."""
    pairs = require_list(value, path)
    edges: list[tuple[str, str]] = []
    for position, pair in enumerate(pairs):
        pair_path = index(path, position)
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise IngestError(pair_path, "must be a [caller, callee] pair of service names")
        caller = check_text(pair[0], index(pair_path, 0), ctx.limits)
        callee = check_text(pair[1], index(pair_path, 1), ctx.limits)
        edges.append((caller, callee))
    return edges


def _collect_alerts(batch: IngestBatch, value: Any, path: str, ctx: ParseContext) -> None:
    records = require_list(value, describe(path))
    ctx.count_alerts(len(records), path)
    collect(batch, records, path, lambda rec, p: parse_alert(rec, p, ctx), batch.alerts)


def _collect_series(batch: IngestBatch, value: Any, path: str, ctx: ParseContext) -> None:
    records = require_list(value, describe(path))
    ctx.count_series(len(records), path)
    collect(batch, records, path, lambda rec, p: parse_series(rec, p, ctx), batch.series)
