"""CloudWatch alarm state changes, from EventBridge (source ``aws.cloudwatch``) or from the
JSON message CloudWatch publishes to SNS.

Both routes become the same alert: ALARM is firing, OK is resolved and INSUFFICIENT_DATA is a
firing info alert. The labels hold only what both routes carry (namespace, metric, dimensions,
account, region code), so one alarm gets one fingerprint whichever way it arrives.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.ingest.fields import (
    ParseContext,
    check_text,
    fingerprint_for,
    finish_alert,
    join,
    optional_dict,
    preview,
    require_dict,
    text,
)
from opsforge_core.ingest.regions import region_code
from opsforge_core.ingest.timestamps import parse_time
from opsforge_core.models import Alert, IngestBatch

logger = logging.getLogger(__name__)

STATE_CHANGE = "CloudWatch Alarm State Change"
STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")
# Dimensions that name the resource, most specific first. Values such as a load balancer's
# "app/checkout-alb/50dc6c495c0c9188" are reduced to the name by ``_resource_name``.
SERVICE_DIMENSIONS = (
    "ServiceName",
    "FunctionName",
    "DBInstanceIdentifier",
    "DBClusterIdentifier",
    "TableName",
    "QueueName",
    "TopicName",
    "StateMachineArn",
    "ApiName",
    "LoadBalancer",
    "TargetGroup",
    "CacheClusterId",
    "ClusterName",
    "AutoScalingGroupName",
    "StreamName",
    "BucketName",
    "DomainName",
    "InstanceId",
)
# Only unambiguous severity words count in an alarm name: "high" and "low" there usually
# describe the threshold ("disk-space-low"), not the severity.
NAME_SEVERITY_WORDS = {
    "critical": "critical",
    "crit": "critical",
    "p1": "critical",
    "sev1": "critical",
    "p2": "high",
    "sev2": "high",
    "warning": "warning",
    "warn": "warning",
    "p3": "warning",
    "sev3": "warning",
    "info": "info",
}


@dataclass
class AlarmChange:
    """The fields of one alarm state change that both delivery routes carry."""

    name: str
    state: str
    changed_at: datetime
    previous_state: str | None = None
    previous_changed_at: datetime | None = None
    description: str = ""
    reason: str = ""
    detail: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    dimensions: dict[str, str] = field(default_factory=dict)


def matches_eventbridge(obj: dict[str, Any]) -> bool:
    return obj.get("source") == "aws.cloudwatch"


def matches_sns_message(obj: dict[str, Any]) -> bool:
    return "AlarmName" in obj and "NewStateValue" in obj


def parse_eventbridge(obj: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse an EventBridge ``CloudWatch Alarm State Change`` event into one alert."""
    kind = obj.get("detail-type")
    if kind != STATE_CHANGE:
        raise IngestError(
            join(path, "detail-type"),
            f"unsupported CloudWatch event {preview(kind)}; only {STATE_CHANGE!r} is accepted",
        )

    detail_path = join(path, "detail")
    detail = require_dict(obj.get("detail"), detail_path)
    state_path = join(detail_path, "state")
    state = require_dict(detail.get("state"), state_path)
    previous = optional_dict(detail, "previousState", detail_path)
    configuration = optional_dict(detail, "configuration", detail_path)
    limits = ctx.limits
    change = AlarmChange(
        name=text(detail, "alarmName", detail_path, limits),
        state=_state(state.get("value"), join(state_path, "value")),
        changed_at=_state_time(state, obj, state_path, path, ctx),
        description=text(
            configuration, "description", join(detail_path, "configuration"), limits, required=False
        ),
        reason=text(state, "reason", state_path, limits, required=False),
        detail=_reason_data(
            state.get("reasonData"), join(state_path, "reasonData"), limits.max_string_length
        ),
    )
    _add_previous_state(change, previous, join(detail_path, "previousState"), ctx)
    metrics = configuration.get("metrics")
    for metric in metrics if isinstance(metrics, list) else []:
        stat = metric.get("metricStat") if isinstance(metric, dict) else None
        spec = stat.get("metric") if isinstance(stat, dict) else None
        if isinstance(spec, dict):
            _add_metric(change, spec.get("namespace"), spec.get("name"), spec.get("dimensions"))

    change.labels.update(account=obj.get("account"), region=obj.get("region"))
    return _batch(change, obj, detail_path, ctx)


def _add_previous_state(
    change: AlarmChange, previous: dict[str, Any], path: str, ctx: ParseContext
) -> None:
    if previous.get("value") is None:
        return
    change.previous_state = _state(previous["value"], join(path, "value"))
    if previous.get("timestamp") is not None:
        change.previous_changed_at = _time(previous["timestamp"], join(path, "timestamp"), ctx)


def parse_sns_message(message: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    """Parse the alarm message CloudWatch publishes to SNS (already decoded from JSON)."""
    limits = ctx.limits
    change = AlarmChange(
        name=text(message, "AlarmName", path, limits),
        state=_state(message.get("NewStateValue"), join(path, "NewStateValue")),
        changed_at=_time(message.get("StateChangeTime"), join(path, "StateChangeTime"), ctx),
        description=text(message, "AlarmDescription", path, limits, required=False),
        reason=text(message, "NewStateReason", path, limits, required=False),
    )
    if message.get("OldStateValue") is not None:
        change.previous_state = _state(message["OldStateValue"], join(path, "OldStateValue"))
    trigger = optional_dict(message, "Trigger", path)
    _add_metric(
        change, trigger.get("Namespace"), trigger.get("MetricName"), trigger.get("Dimensions")
    )
    metrics = trigger.get("Metrics")
    for metric in metrics if isinstance(metrics, list) else []:
        stat = metric.get("MetricStat") if isinstance(metric, dict) else None
        spec = stat.get("Metric") if isinstance(stat, dict) else None
        if isinstance(spec, dict):
            _add_metric(
                change, spec.get("Namespace"), spec.get("MetricName"), spec.get("Dimensions")
            )
    change.detail = _threshold_text(None, trigger.get("Threshold"))
    change.labels.update(account=message.get("AWSAccountId"), region=_sns_region(message))
    return _batch(change, message, path, ctx)


def _batch(change: AlarmChange, raw: dict[str, Any], path: str, ctx: ParseContext) -> IngestBatch:
    ctx.count_alerts(1, path)
    batch = IngestBatch(source="cloudwatch")
    batch.alerts.append(_alert(change, raw, path, ctx))
    return batch


def _alert(change: AlarmChange, raw: dict[str, Any], path: str, ctx: ParseContext) -> Alert:
    labels = _clean_labels(change, path, ctx)
    service = _service(change.dimensions) or change.name
    starts_at, ends_at, status = change.changed_at, None, "firing"
    if change.state == "OK":
        status, ends_at = "resolved", change.changed_at
        if change.previous_state == "ALARM" and change.previous_changed_at is not None:
            starts_at = change.previous_changed_at
        # NOTE: the SNS route carries no previous-state time. A resolved alarm from SNS
        # therefore starts and ends at the OK transition, and its duration comes out as zero.
    summary = change.description or f"{change.name} is in state {change.state}"
    if change.detail and not change.description:
        summary = f"{summary} ({change.detail})"
    alert = Alert(
        fingerprint=fingerprint_for(change.name, service, labels),
        source="cloudwatch",
        name=change.name,
        service=service,
        severity=_severity(change),
        status=status,
        summary=summary,
        description=change.reason,
        labels=labels,
        starts_at=starts_at,
        ends_at=ends_at,
        raw=raw,
    )
    return finish_alert(alert, path)


def _state(value: Any, path: str) -> str:
    if isinstance(value, str) and value in STATES:
        return value
    raise IngestError(path, f"invalid alarm state {preview(value)}; use one of {STATES}")


def _time(value: Any, path: str, ctx: ParseContext) -> datetime:
    if value is None:
        raise IngestError(path, "is missing; send the state change time")
    return parse_time(value, path, ctx.received_at)


def _state_time(
    state: dict[str, Any], event: dict[str, Any], state_path: str, path: str, ctx: ParseContext
) -> datetime:
    """Read the state change time, or the event's ``time`` when the state lacks one."""
    if state.get("timestamp") is not None:
        return _time(state["timestamp"], join(state_path, "timestamp"), ctx)
    return _time(event.get("time"), join(path, "time"), ctx)


def _add_metric(change: AlarmChange, namespace: Any, name: Any, dimensions: Any) -> None:
    """Add one metric's namespace, name and dimensions. The first value of each key wins."""
    for key, value in (("namespace", namespace), ("metric_name", name)):
        if isinstance(value, str) and value:
            change.labels.setdefault(key, value)
    if isinstance(dimensions, dict):  # EventBridge: {"Name": "value"}
        pairs = list(dimensions.items())
    elif isinstance(dimensions, list):  # SNS: [{"name": "Name", "value": "value"}]
        pairs = [(d.get("name"), d.get("value")) for d in dimensions if isinstance(d, dict)]
    else:
        pairs = []
    for key, value in pairs:
        if isinstance(key, str) and key and isinstance(value, str):
            change.dimensions.setdefault(key, value)


def _clean_labels(change: AlarmChange, path: str, ctx: ParseContext) -> dict[str, str]:
    labels = {k: v for k, v in change.labels.items() if isinstance(v, str) and v}
    for key, value in change.dimensions.items():
        labels.setdefault(key, value)
    if len(labels) > ctx.limits.max_labels:
        raise IngestError(
            path,
            f"the alarm has {len(labels)} labels, more than the limit of {ctx.limits.max_labels}",
        )
    for key, value in labels.items():
        check_text(key, join(path, "dimensions"), ctx.limits)
        check_text(value, join(path, f"dimensions.{key}"), ctx.limits)
    return labels


def _service(dimensions: dict[str, str]) -> str | None:
    for key in SERVICE_DIMENSIONS:
        value = dimensions.get(key, "").strip()
        if value:
            return _resource_name(key, value)
    return None


def _resource_name(key: str, value: str) -> str:
    if key in ("LoadBalancer", "TargetGroup"):
        parts = value.split("/")  # app/<name>/<id>, net/<name>/<id>, targetgroup/<name>/<id>
        return parts[1] if len(parts) >= 3 and parts[1] else value
    if key == "StateMachineArn":
        return value.rsplit(":", 1)[-1] or value
    return value


def _severity(change: AlarmChange) -> str:
    if change.state == "INSUFFICIENT_DATA":
        return "info"
    for word in re.split(r"[^a-z0-9]+", change.name.lower()):
        if word in NAME_SEVERITY_WORDS:
            return NAME_SEVERITY_WORDS[word]
    # CloudWatch alarms carry no severity, so an alarm someone set up is taken as high.
    return "high"


def _reason_data(value: Any, path: str, limit: int) -> str:
    """Describe the latest datapoint and threshold from ``reasonData``, a JSON string.

    ``reasonData`` is optional detail; an undecodable one is logged and skipped, so the
    alarm itself is still accepted.
    """
    if value is None:
        return ""
    try:
        data = json.loads(value) if isinstance(value, str) and len(value) <= limit else None
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        logger.warning("%s is not a JSON object; ignoring it", path)
        return ""
    recent = data.get("recentDatapoints")
    latest = recent[-1] if isinstance(recent, list) and recent else None
    return _threshold_text(latest, data.get("threshold"))


def _threshold_text(latest: Any, threshold: Any) -> str:
    parts = []
    if _finite(latest):
        parts.append(f"latest {latest}")
    if _finite(threshold):
        parts.append(f"threshold {threshold}")
    return ", ".join(parts)


def _finite(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        return False


def _sns_region(message: dict[str, Any]) -> str | None:
    arn = message.get("AlarmArn")
    if isinstance(arn, str) and arn.count(":") >= 5:
        return arn.split(":")[3]  # arn:aws:cloudwatch:<region>:<account>:alarm:<name>
    region = message.get("Region")
    return region_code(region) if isinstance(region, str) else None
