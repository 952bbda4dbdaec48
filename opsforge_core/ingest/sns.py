"""SNS notifications as a Lambda receives them: ``{"Records": [{"Sns": {...}}]}``.

``Sns.Message`` is a string. A CloudWatch alarm message, or any other payload OpsForge
accepts, arrives JSON-encoded inside it. Any other message becomes one generic alert, and
its first line is the summary.
"""

from __future__ import annotations

from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.ingest import cloudwatch
from opsforge_core.ingest.fields import (
    ParseContext,
    UnknownFormatError,
    check_text,
    collect,
    fingerprint_for,
    join,
    merge,
    require_dict,
    require_list,
    text,
)
from opsforge_core.ingest.jsontext import decode_utf8, loads
from opsforge_core.ingest.timestamps import parse_time
from opsforge_core.models import Alert, IngestBatch


def matches(obj: dict[str, Any]) -> bool:
    records = obj.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], dict)
        and "Sns" in records[0]
    )


def parse(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse every record. An invalid record becomes a rejection, and the others are kept."""
    records_path = join(path, "Records")
    records = require_list(obj["Records"], records_path)
    batch = IngestBatch(source="sns")
    parsed: list[IngestBatch] = []
    collect(batch, records, records_path, lambda rec, p: _parse_record(rec, p, ctx), parsed)
    for sub in parsed:
        merge(batch, sub)
    return batch


def _parse_record(record: Any, path: str, ctx: ParseContext) -> IngestBatch:
    rec = require_dict(record, path)
    sns_path = join(path, "Sns")
    sns = require_dict(rec.get("Sns"), sns_path)
    message_path = join(sns_path, "Message")
    message = sns.get("Message")
    if not isinstance(message, str):
        raise IngestError(message_path, "must be a string")
    decode_utf8(message, message_path, ctx.limits)  # checks the size bound
    if message.lstrip().startswith(("{", "[")):
        try:
            document = loads(message, message_path)
        except IngestError:
            document = None  # text that only looks like JSON: keep it as a plain message
        if isinstance(document, dict) and cloudwatch.matches_sns_message(document):
            return cloudwatch.parse_sns_message(document, message_path, ctx)
        if document is not None:
            try:
                return ctx.embedded(document, message_path)
            except UnknownFormatError:
                pass  # JSON of no known format: keep it as a plain message
    return _plain_alert(sns, sns_path, ctx)


def _plain_alert(sns: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    limits = ctx.limits
    message = check_text(sns["Message"], join(path, "Message"), limits, required=False)
    topic = text(sns, "TopicArn", path, limits, required=False).rsplit(":", 1)[-1].strip()
    name = text(sns, "Subject", path, limits, required=False).strip() or "SNS notification"
    service = topic or "sns"
    labels = {"topic": topic} if topic else {}
    starts_at = ctx.received_at
    if sns.get("Timestamp") is not None:
        starts_at = parse_time(sns["Timestamp"], join(path, "Timestamp"), ctx.received_at)

    ctx.count_alerts(1, path)
    batch = IngestBatch(source="sns")
    batch.alerts.append(
        Alert(
            fingerprint=fingerprint_for(name, service, labels),
            source="sns",
            name=name,
            service=service,
            # A plain-text SNS message has no severity field, so it is taken as a warning.
            severity="warning",
            status="firing",
            summary=message.strip().split("\n", 1)[0],
            description=message,
            labels=labels,
            starts_at=starts_at,
            raw=sns,
        )
    )
    return batch
