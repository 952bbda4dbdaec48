"""Public entry points: parse a decoded payload, raw bytes, or a JSON or JSONL file."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.ingest.dispatch import new_context, parse_document
from opsforge_core.ingest.fields import ParseContext, merge
from opsforge_core.ingest.jsontext import decode_utf8, loads
from opsforge_core.ingest.limits import IngestLimits, LimitExceededError
from opsforge_core.models import IngestBatch, Rejection

logger = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def parse_payload(
    obj: Any,
    *,
    received_at: datetime | None = None,
    limits: IngestLimits | None = None,
) -> IngestBatch:
    """Parse one decoded JSON payload of any accepted format into an ``IngestBatch``.

    An invalid alert or series becomes a ``Rejection`` and the rest are kept. A payload
    that cannot be read at all, or is over a bound in ``limits``, raises ``IngestError``
    naming the field. ``received_at`` (default now) bounds how far ahead timestamps may be.
    """
    ctx = new_context(limits, received_at)
    return ctx.repair_raw(parse_document(obj, "", ctx))


def parse_bytes(
    data: bytes | bytearray | memoryview | str,
    *,
    received_at: datetime | None = None,
    limits: IngestLimits | None = None,
    jsonl: bool | None = None,
) -> IngestBatch:
    """Parse a UTF-8 JSON document, or JSONL (one payload per line), into an ``IngestBatch``.

    With ``jsonl=None`` the layout is detected: a document followed by more JSON values is
    JSONL. In JSONL a line that is invalid or of no known format becomes a rejection whose
    field names the line (``line 3``) and whose index is the line number. Invalid UTF-8 or
    JSON in a single document raises ``IngestError`` with field ``body``.
    """
    ctx = new_context(limits, received_at)
    text = decode_utf8(data, "body", ctx.limits)
    if jsonl:
        return ctx.repair_raw(_parse_lines(text, ctx))
    try:
        document = loads(text, "body")
    except IngestError as exc:
        cause = exc.__cause__
        is_extra_data = isinstance(cause, json.JSONDecodeError) and cause.msg == "Extra data"
        if jsonl is None and is_extra_data:
            return ctx.repair_raw(_parse_lines(text, ctx))
        raise
    return ctx.repair_raw(parse_document(document, "", ctx))


def parse_file(
    path: str | Path,
    *,
    received_at: datetime | None = None,
    limits: IngestLimits | None = None,
) -> IngestBatch:
    """Parse a JSON or JSONL file. Files named ``.jsonl`` or ``.ndjson`` are read as JSONL."""
    file_path = Path(path)
    limits = limits or IngestLimits()
    try:
        size = file_path.stat().st_size
        if size > limits.max_bytes:
            raise LimitExceededError(
                str(file_path),
                f"is {size} bytes long, more than the limit of {limits.max_bytes}; "
                "split it into smaller files",
            )
        data = file_path.read_bytes()
    except OSError as exc:
        raise IngestError(str(file_path), f"cannot be read: {exc.strerror or exc}") from exc
    jsonl = True if file_path.suffix.lower() in JSONL_SUFFIXES else None
    batch = parse_bytes(data, received_at=received_at, limits=limits, jsonl=jsonl)
    logger.debug("parsed %s: %d alerts, %d series", file_path, len(batch.alerts), len(batch.series))
    return batch


def _parse_lines(text: str, ctx: ParseContext) -> IngestBatch:
    """Parse JSONL, where each line is a payload of its own and a bad line becomes a rejection."""
    batch = IngestBatch(source="jsonl")
    # Split on "\n" only: str.splitlines would also split on U+2028, which JSON allows
    # unescaped inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        field = f"line {number}"
        try:
            document = json.loads(line)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON at column {exc.colno}: {exc.msg}"
            batch.rejected.append(Rejection(number, field, reason, line))
            continue
        except ValueError as exc:  # an integer literal beyond Python's digit limit
            batch.rejected.append(Rejection(number, field, f"invalid JSON: {exc}", line))
            continue
        except RecursionError:
            reason = "JSON nested too deeply to parse"
            batch.rejected.append(Rejection(number, field, reason, line))
            continue
        try:
            sub = ctx.embedded(document, field)
            if sub.scenario is not None and batch.scenario is not None:
                raise IngestError(
                    field, "is a second scenario line; a scenario file contains exactly one"
                )
        except LimitExceededError:
            raise
        except IngestError as exc:
            batch.rejected.append(Rejection(number, exc.field, exc.problem, line))
            continue
        merge(batch, sub)
    if batch.scenario is not None:
        batch.source = "simulator"
    return batch
