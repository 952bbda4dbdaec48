"""Parse inbound payloads from every supported sender into an ``IngestBatch``.

The format is detected automatically. Accepted are OpsForge's own shape and typed events,
the simulator's JSONL scenario files, and EventBridge envelopes (``opsforge.alerts``,
``opsforge.metrics`` and CloudWatch alarm state changes). So are Prometheus Alertmanager
webhooks (version 4), CloudWatch alarms and plain messages through SNS, PagerDuty Events
API v2, API Gateway proxy requests carrying any of these, and JSON arrays of them.

Every timestamp comes out as aware UTC. Invalid records become ``Rejection`` entries that
name the field, and an unreadable payload raises ``IngestError``.
"""

from opsforge_core.ingest.dispatch import FORMATS, detect_format
from opsforge_core.ingest.fields import UnknownFormatError
from opsforge_core.ingest.limits import IngestLimits, LimitExceededError
from opsforge_core.ingest.reader import parse_bytes, parse_file, parse_payload

__all__ = [
    "FORMATS",
    "IngestLimits",
    "LimitExceededError",
    "UnknownFormatError",
    "detect_format",
    "parse_bytes",
    "parse_file",
    "parse_payload",
]
