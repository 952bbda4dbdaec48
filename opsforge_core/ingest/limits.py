"""Bounds on the work one inbound payload can cause, and the error raised when one is exceeded.

A record over a per-record bound (too many points, a string too long, too many labels) is
rejected and the rest of the batch is kept. A payload over a per-payload bound (too many
alerts, series or points in total, too many bytes, nested too deeply) raises
``LimitExceededError``, because the sender has to split it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsforge_core.errors import IngestError

if TYPE_CHECKING:
    from opsforge_core.config import Settings


DEFAULT_MAX_POINTS_PER_SERIES = 100_000


class LimitExceededError(IngestError):
    """A whole payload is over a bound. It is not truncated, so the sender must split it."""


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Maximum sizes accepted from one payload (a JSON document, a request body or a file)."""

    max_bytes: int = 32 * 1024 * 1024
    max_alerts: int = 5000
    max_series: int = 2000
    max_points_per_series: int = DEFAULT_MAX_POINTS_PER_SERIES
    max_total_points: int = 1_000_000
    max_string_length: int = 16_384
    max_labels: int = 64
    max_depth: int = 32
    # Payloads carried inside other payloads: a list element, an SNS message, an API
    # Gateway body. Each level decodes a new document, so it is bounded separately.
    max_embedded_levels: int = 4

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        """Build limits from the HTTP API settings (body size, alerts and points per request)."""
        return cls(
            max_bytes=settings.api_max_body_bytes,
            max_alerts=settings.api_max_alerts,
            max_total_points=settings.api_max_points,
            max_points_per_series=min(DEFAULT_MAX_POINTS_PER_SERIES, settings.api_max_points),
        )
