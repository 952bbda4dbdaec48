"""Format detection and dispatch of decoded payloads to the sender parsers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsforge_core.ingest import (
    alertmanager,
    apigateway,
    cloudwatch,
    opsforge,
    pagerduty,
    sns,
)
from opsforge_core.ingest.fields import (
    ParseContext,
    UnknownFormatError,
    check_nesting,
    collect,
    describe,
    merge,
)
from opsforge_core.ingest.limits import IngestLimits, LimitExceededError
from opsforge_core.models import IngestBatch, utc, utcnow

logger = logging.getLogger(__name__)

Parser = Callable[[dict[str, Any], str, ParseContext], IngestBatch]


@dataclass(frozen=True, slots=True)
class PayloadFormat:
    name: str
    description: str
    matches: Callable[[dict[str, Any]], bool]
    parse: Parser


# Checked in order, and the first match parses the payload. Envelopes with distinctive keys come
# before OpsForge's plain shape, whose "alerts" key Alertmanager payloads also carry.
FORMATS: tuple[PayloadFormat, ...] = (
    PayloadFormat(
        "apigateway",
        "an API Gateway proxy request (payload 1.0 or 2.0) whose body is one of these",
        apigateway.matches,
        apigateway.parse,
    ),
    PayloadFormat(
        "sns",
        "an SNS notification (a CloudWatch alarm message, one of these, or plain text)",
        sns.matches,
        sns.parse,
    ),
    PayloadFormat(
        "cloudwatch",
        "an EventBridge 'CloudWatch Alarm State Change' event (source aws.cloudwatch)",
        cloudwatch.matches_eventbridge,
        cloudwatch.parse_eventbridge,
    ),
    PayloadFormat(
        "eventbridge-opsforge",
        "an EventBridge event of source opsforge.alerts or opsforge.metrics",
        opsforge.is_eventbridge,
        opsforge.parse_eventbridge,
    ),
    PayloadFormat(
        "alertmanager",
        "a Prometheus Alertmanager webhook (version 4)",
        alertmanager.matches,
        alertmanager.parse,
    ),
    PayloadFormat(
        "pagerduty",
        "a PagerDuty Events API v2 event",
        pagerduty.matches,
        pagerduty.parse,
    ),
    PayloadFormat(
        "cloudwatch-sns",
        "a CloudWatch alarm message as CloudWatch publishes it to SNS",
        cloudwatch.matches_sns_message,
        cloudwatch.parse_sns_message,
    ),
    PayloadFormat(
        "opsforge-event",
        'an OpsForge event {"type": "alerts" | "metrics" | "incident" | "scenario", ...}',
        opsforge.is_event,
        opsforge.parse_event,
    ),
    PayloadFormat(
        "opsforge",
        'an OpsForge payload {"alerts": [...], "metrics": [...]}',
        opsforge.is_plain,
        opsforge.parse_plain,
    ),
)
ACCEPTED = "; ".join(f.description for f in FORMATS) + "; or a JSON array of any of these"


def detect_format(obj: Any) -> str | None:
    """Name the format of a decoded payload (``"alertmanager"``, ``"list"``, ...), or None."""
    if isinstance(obj, list):
        return "list"
    if isinstance(obj, dict):
        for payload_format in FORMATS:
            if payload_format.matches(obj):
                return payload_format.name
    return None


def new_context(limits: IngestLimits | None, received_at: datetime | None) -> ParseContext:
    ctx = ParseContext(
        limits=limits or IngestLimits(),
        received_at=utc(received_at) if received_at is not None else utcnow(),
    )
    ctx.parse_embedded = lambda document, path: parse_embedded(document, path, ctx)
    return ctx


def parse_document(obj: Any, path: str, ctx: ParseContext) -> IngestBatch:
    """Check the nesting bound, then parse one decoded payload of any accepted format."""
    check_nesting(obj, path, ctx.limits)
    batch = _dispatch(obj, path, ctx)
    logger.debug(
        "parsed %s payload: %d alerts, %d series, %d rejected",
        batch.source,
        len(batch.alerts),
        len(batch.series),
        len(batch.rejected),
    )
    return batch


def parse_embedded(obj: Any, path: str, ctx: ParseContext) -> IngestBatch:
    """Parse a payload carried inside another, one level deeper."""
    if ctx.embedded_level >= ctx.limits.max_embedded_levels:
        raise LimitExceededError(
            describe(path),
            f"payloads are embedded more than {ctx.limits.max_embedded_levels} levels deep",
        )
    ctx.embedded_level += 1
    try:
        return parse_document(obj, path, ctx)
    finally:
        ctx.embedded_level -= 1


def _dispatch(obj: Any, path: str, ctx: ParseContext) -> IngestBatch:
    if isinstance(obj, list):
        return _parse_list(obj, path, ctx)
    if isinstance(obj, dict):
        for payload_format in FORMATS:
            if payload_format.matches(obj):
                return payload_format.parse(obj, path, ctx)
    raise UnknownFormatError(
        describe(path), f"is not a payload format OpsForge accepts; send {ACCEPTED}"
    )


def _parse_list(items: list[Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse each element. An invalid element becomes a rejection, and the rest are kept."""
    batch = IngestBatch(source="list")
    parsed: list[IngestBatch] = []
    collect(batch, items, path, ctx.embedded, parsed)
    for sub in parsed:
        merge(batch, sub)
    return batch
