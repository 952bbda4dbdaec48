"""Field readers shared by the sender parsers.

Each reader takes the dotted path of the value it reads (``alerts[2].starts_at``) and raises
``IngestError`` with that path and the fix when the value is invalid, so a rejection always
names the field at fault.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from opsforge_core.errors import IngestError
from opsforge_core.ingest.limits import IngestLimits, LimitExceededError
from opsforge_core.ingest.timestamps import MAX_AHEAD
from opsforge_core.models import (
    MAX_FINGERPRINT_BYTES,
    SEVERITIES,
    Alert,
    IngestBatch,
    Rejection,
    utcnow,
)

ALERT_SOURCES = ("simulator", "alertmanager", "cloudwatch", "api", "pagerduty", "sns")
ALERT_STATUSES = ("firing", "resolved")
# Types that ``check_nesting`` counts as a level of nesting.
_CONTAINERS = (dict, list, tuple)

# Severity words of common senders, lower-cased, mapped onto OpsForge's four levels.
SEVERITY_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ("critical", "crit", "fatal", "emergency", "emerg", "alert", "page", "disaster"),
        "critical",
    ),
    **dict.fromkeys(("p1", "sev1", "sev-1", "s1"), "critical"),
    **dict.fromkeys(("high", "error", "err", "major", "p2", "sev2", "sev-2", "s2"), "high"),
    **dict.fromkeys(
        ("warning", "warn", "minor", "medium", "moderate", "average", "p3", "sev3", "s3"),
        "warning",
    ),
    **dict.fromkeys(
        ("info", "informational", "information", "notice", "low", "debug", "none", "ok"),
        "info",
    ),
    **dict.fromkeys(("p4", "p5", "sev4", "sev5", "s4", "s5"), "info"),
}


class UnknownFormatError(IngestError):
    """A payload matches none of the accepted formats. The message lists them."""


@dataclass
class ParseContext:
    """State of one ``parse_*`` call: the limits, the receive time and running totals."""

    limits: IngestLimits = field(default_factory=IngestLimits)
    received_at: datetime = field(default_factory=utcnow)
    alerts_seen: int = 0
    series_seen: int = 0
    points_seen: int = 0
    embedded_level: int = 0
    # Parses a payload embedded in another (a list element, an SNS message, a request body).
    # Set by the dispatcher, so sender modules need not import it.
    parse_embedded: Callable[[Any, str], IngestBatch] | None = None
    # Original records whose every string a parser has already checked for unpaired
    # surrogates, by id. The record itself is the value, so its id cannot be reused while
    # the context lives.
    unicode_checked: dict[int, Any] = field(default_factory=dict)

    @cached_property
    def latest_time(self) -> datetime:
        """Latest accepted timestamp: one day after ``received_at``."""
        return self.received_at + MAX_AHEAD

    def mark_unicode_checked(self, record: Any) -> None:
        """Record that ``record`` contains no unpaired surrogate, so ``repair_raw`` skips it."""
        self.unicode_checked[id(record)] = record

    def repair_raw(self, batch: IngestBatch) -> IngestBatch:
        """Repair unpaired surrogates in every kept original record, whatever parser kept it."""
        for alert in batch.alerts:
            if self.unicode_checked.get(id(alert.raw)) is not alert.raw:
                alert.raw = valid_unicode(alert.raw)
        return batch

    def embedded(self, document: Any, path: str) -> IngestBatch:
        """Parse a payload carried inside another one, through the dispatcher."""
        if self.parse_embedded is None:
            raise RuntimeError("ParseContext.parse_embedded is unset; use parse_payload")
        return self.parse_embedded(document, path)

    def count_alerts(self, count: int, path: str) -> None:
        self.alerts_seen += count
        if self.alerts_seen > self.limits.max_alerts:
            raise LimitExceededError(
                describe(path),
                f"the payload holds more than {self.limits.max_alerts} alerts; "
                "split it into smaller payloads",
            )

    def count_series(self, count: int, path: str) -> None:
        self.series_seen += count
        if self.series_seen > self.limits.max_series:
            raise LimitExceededError(
                describe(path),
                f"the payload holds more than {self.limits.max_series} metric series; "
                "split it into smaller payloads",
            )

    def count_points(self, count: int, path: str) -> None:
        self.points_seen += count
        if self.points_seen > self.limits.max_total_points:
            raise LimitExceededError(
                describe(path),
                f"the payload holds more than {self.limits.max_total_points} metric points "
                "in total; split it into smaller payloads",
            )


def preview(value: Any) -> str:
    """Return a short ``repr`` of an invalid value for an error message."""
    if isinstance(value, str):
        return repr(value[:64])
    try:
        rendered = repr(value)
    except ValueError:  # an integer beyond Python's digit limit for str()
        return f"<{type(value).__name__}>"
    return rendered if len(rendered) <= 64 else rendered[:61] + "..."


def join(path: str, key: str) -> str:
    """Return the dotted path of ``key`` inside ``path`` (the root path is empty)."""
    return f"{path}.{key}" if path else key


def index(path: str, position: int) -> str:
    return f"{path}[{position}]"


def describe(path: str) -> str:
    """Name the root of a payload ``payload`` in messages, where its path is empty."""
    return path or "payload"


def require_dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise IngestError(describe(path), f"must be a JSON object, not {_json_type(value)}")
    return value


def require_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise IngestError(describe(path), f"must be a JSON array, not {_json_type(value)}")
    return value


def optional_dict(record: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """Return ``record[key]`` as a dict, or an empty dict when it is missing or null."""
    value = record.get(key)
    return {} if value is None else require_dict(value, join(path, key))


def text(
    record: dict[str, Any],
    key: str,
    path: str,
    limits: IngestLimits,
    *,
    required: bool = True,
) -> str:
    """Read the string ``record[key]``. A missing or null optional value gives ``""``."""
    value = record.get(key)
    if type(value) is str and is_valid_text(value, limits.max_string_length, required):
        return value  # the common case, without building the field path
    if value is None or (value == "" and not required):
        if required:
            raise IngestError(join(path, key), "is missing; send a non-empty string")
        return ""
    return check_text(value, join(path, key), limits, required=required)


def fingerprint_text(
    record: dict[str, Any], key: str, path: str, limits: IngestLimits, *, required: bool = False
) -> str:
    """Read the optional identifier ``record[key]`` that becomes the alert's fingerprint.

    A longer one than the stores can key by rejects the record here, with the rest of the
    batch kept, instead of failing the whole delivery at the store.
    """
    value = text(record, key, path, limits, required=required).strip()
    size = len(value.encode())
    if size > MAX_FINGERPRINT_BYTES:
        raise IngestError(
            join(path, key),
            f"is {size} bytes; the limit is {MAX_FINGERPRINT_BYTES}: send a shorter "
            "identifier (a hash of it will do)",
        )
    return value


def is_valid_text(value: str, max_length: int, required: bool) -> bool:
    """Return whether ``check_text`` accepts the string ``value`` as it is.

    Parsers call this first and ``check_text`` only for a string it declines, so the field
    path of the error message is built only when there is an error.
    """
    if len(value) > max_length or (required and (not value or value.isspace())):
        return False
    # ASCII text cannot hold a surrogate, and checking that is much cheaper than encoding.
    return value.isascii() or _encodes(value)


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: Any, path: str, limits: IngestLimits, *, required: bool = True) -> str:
    """Validate one string: its type, its length and that it is valid Unicode."""
    if type(value) is str and is_valid_text(value, limits.max_string_length, required):
        return value
    if not isinstance(value, str):
        raise IngestError(path, f"must be a string, not {_json_type(value)}")
    if required and not value.strip():
        raise IngestError(path, "is empty; send a non-empty string")
    if len(value) > limits.max_string_length:
        raise IngestError(
            path,
            f"is {len(value)} characters long, more than the limit of "
            f"{limits.max_string_length}; shorten it",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise IngestError(path, "contains an unpaired surrogate; send valid Unicode") from exc
    return value


def labels_of(value: Any, path: str, limits: IngestLimits) -> dict[str, str]:
    """Read a label map. Numbers and booleans become strings, and null values are dropped."""
    if value is None:
        return {}
    mapping = require_dict(value, path)
    if len(mapping) > limits.max_labels:
        raise IngestError(
            path, f"has {len(mapping)} labels, more than the limit of {limits.max_labels}"
        )
    if _plain_labels(mapping, limits.max_string_length):
        return dict(mapping)
    labels: dict[str, str] = {}
    for key, item in mapping.items():
        check_text(key, f"{path} key {preview(key)}", limits)
        item_path = join(path, key)
        if item is None:
            continue
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, (int, float)):
            item = _number_text(item, item_path)
        labels[key] = check_text(item, item_path, limits, required=False)
    return labels


def _plain_labels(mapping: dict[Any, Any], max_length: int) -> bool:
    """Return whether every key and value is a string that ``check_text`` accepts as it is.

    Most label maps are such maps, and ``labels_of`` copies them without per-label checks and
    field paths. Any other map takes the full loop, which names the failing label.
    """
    try:
        keys, values = "".join(mapping), "".join(mapping.values())
    except TypeError:  # a key or value that is not a string
        return False
    # Each string is no longer than all of them together, so the loops over lengths run only
    # for a map with long text.
    if len(keys) > max_length and max(map(len, mapping)) > max_length:
        return False
    if len(values) > max_length and max(map(len, mapping.values())) > max_length:
        return False
    if not all(mapping) or any(map(str.isspace, mapping)):  # an empty or blank key
        return False
    # One encode for all the text: a surrogate in any key or value makes it fail.
    return (keys.isascii() or _encodes(keys)) and (values.isascii() or _encodes(values))


def _number_text(number: int | float, path: str) -> str:
    if isinstance(number, float) and not math.isfinite(number):
        raise IngestError(path, f"label value {number!r} is not a finite number")
    try:
        return str(number)
    except ValueError as exc:  # int too long to convert (Python's digit limit)
        raise IngestError(path, "is a number too long to use as a label value") from exc


def severity_of(value: Any, path: str, *, default: str, strict: bool) -> str:
    """Map a sender's severity word onto critical, high, warning or info.

    A missing value gives ``default``. An unknown word raises when ``strict`` (for formats
    that define their vocabulary), else it gives ``default``.
    """
    if value is None or value == "":
        return default
    if isinstance(value, str):
        mapped = SEVERITY_WORDS.get(value.strip().lower())
        if mapped is not None:
            return mapped
    if strict:
        raise IngestError(
            path, f"unknown severity {preview(value)}; use one of {', '.join(SEVERITIES)}"
        )
    return default


def status_of(value: Any, path: str, default: str | None = "firing") -> str:
    if value is None:
        if default is not None:
            return default
        raise IngestError(path, f"is missing; use one of {', '.join(ALERT_STATUSES)}")
    if isinstance(value, str) and value.strip().lower() in ALERT_STATUSES:
        return value.strip().lower()
    raise IngestError(
        path, f"invalid status {preview(value)}; use one of {', '.join(ALERT_STATUSES)}"
    )


def fingerprint_for(name: str, service: str, labels: dict[str, str]) -> str:
    """Hash the alert's identity, so repeat deliveries of one alert get one fingerprint.

    The start time is left out on purpose: a re-sent alert keeps its identity even when a
    sender restamps it.
    """
    identity = json.dumps([name, service, sorted(labels.items())], ensure_ascii=True)
    return hashlib.sha256(identity.encode("ascii")).hexdigest()[:16]


def check_nesting(value: Any, path: str, limits: IngestLimits) -> None:
    """Raise ``LimitExceededError`` when ``value`` nests deeper than ``limits.max_depth``.

    Iterative, so a hostile document cannot exhaust the interpreter's recursion limit.
    """
    # Breadth first, one level at a time: ``level`` contains the containers at ``depth``.
    level = [value] if isinstance(value, _CONTAINERS) else []
    depth = 1
    while level:
        if depth > limits.max_depth:
            raise LimitExceededError(
                describe(path), f"is nested more than {limits.max_depth} levels deep"
            )
        # Scalars cannot nest, so only containers go on to the next level. Most children are
        # strings, and ruling those out with type() first is far cheaper than isinstance().
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if type(child) is not str and isinstance(child, _CONTAINERS)
        ]
        depth += 1


def valid_unicode(value: Any) -> Any:
    """Return ``value`` with unpaired surrogates in its strings replaced by U+FFFD.

    JSON may escape a lone surrogate (``"\\ud800"``); Python decodes it into a string that no
    store can encode as UTF-8. The checked fields reject such strings; the kept original
    record is repaired instead, so the alert is not lost over a field OpsForge does not read.
    A value without such strings is returned as it is, not copied.
    """
    if not _has_surrogate(value):
        return value
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {valid_unicode(k): valid_unicode(v) for k, v in value.items()}
    return [valid_unicode(item) for item in value]


def _has_surrogate(value: Any) -> bool:
    """Return whether a string in ``value``, its dict keys, values and list items, has one."""
    texts: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    # One encode for all the text: a surrogate anywhere makes it fail.
    joined = "".join(texts)
    return not (joined.isascii() or _encodes(joined))


def finish_alert(alert: Alert, end_path: str) -> Alert:
    """Check the invariants every parser's alert must meet, and return it.

    A firing alert has no end time; a resolved one ends at or after its start.
    """
    if alert.status == "firing":
        alert.ends_at = None
    elif alert.ends_at is not None and alert.ends_at < alert.starts_at:
        raise IngestError(
            end_path, "the end time is before the start time; send the alert's real end time"
        )
    return alert


def collect(
    batch: IngestBatch,
    records: list[Any],
    path: str,
    parse_one: Callable[[Any, str], Any],
    target: list[Any],
) -> None:
    """Parse each record into ``target``. An invalid record becomes a rejection."""
    for position, record in enumerate(records):
        record_path = index(path, position)
        try:
            target.append(parse_one(record, record_path))
        except LimitExceededError:
            raise
        except IngestError as exc:
            batch.rejected.append(Rejection(position, exc.field, exc.problem, record))


def merge(batch: IngestBatch, other: IngestBatch) -> None:
    """Append ``other``'s records to ``batch``. Rejections keep their own field paths."""
    batch.alerts.extend(other.alerts)
    batch.series.extend(other.series)
    batch.rejected.extend(other.rejected)
    batch.topology.extend(other.topology)
    if batch.scenario is None:
        batch.scenario = other.scenario


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
