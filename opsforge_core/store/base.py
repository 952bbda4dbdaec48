"""The Store interface: incident memory, pattern library, agent knowledge and event feed.

Two backends implement it (``sqlite.py`` and ``dynamodb.py``) and pass one contract test
suite. Tables and keys (DynamoDB names; SQLite uses the same):

    {prefix}incident-memory   incident_id (HASH)
    {prefix}pattern-library   pattern_id (HASH)
    {prefix}agent-knowledge   agent_name (HASH), knowledge_key (RANGE)
    {prefix}event-feed        feed_id (HASH), ts (RANGE)

Lists return a ``Page`` whose ``cursor`` is an opaque string to pass back for the next page;
None means there is no further page. Backends raise only ``StoreError`` and its subclasses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from opsforge_core.models import (
    Alert,
    IncidentReport,
    IncidentSummary,
    KnowledgeItem,
    MetricSeries,
    Pattern,
    iso,
)

T = TypeVar("T")

# Event feed partitions. Alerts are keyed by start time and fingerprint, so a repeated delivery
# of the same alert lands on the same item.
ALERT_FEED = "alerts"
METRIC_FEED = "metrics"

# Fields of each tuple that ``Store.recent_alert_rows`` returns, in order. Times are ISO 8601
# UTC text as ``Alert.to_dict`` writes them, and ``ends_at`` is None while an alert is firing.
ALERT_ROW_FIELDS = (
    "fingerprint",
    "name",
    "service",
    "severity",
    "status",
    "summary",
    "starts_at",
    "ends_at",
)


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    cursor: str | None = None


@dataclass(slots=True)
class IncidentFilter:
    """Filters for ``list_incidents``; every field is optional and they combine with AND."""

    status: str | None = None
    service: str | None = None
    severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None  # case-insensitive substring of title, root cause or services


@dataclass(slots=True)
class AlertUpsert:
    """The outcome of recording one alert delivery in the feed.

    ``change`` is ``new`` (first delivery), ``unchanged`` (a repeat), ``resolved`` (a firing
    alert is now resolved) or ``updated`` (another field changed).
    """

    alert: Alert
    change: str


@dataclass(slots=True)
class TableInfo:
    name: str
    key_schema: list[dict[str, str]]
    item_count: int
    indexes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Store(ABC):
    """Persistence for OpsForge. Every method is safe to call from several threads."""

    # -- lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    def init(self) -> list[str]:
        """Create missing tables and wait until they are usable; return the names created.

        Running it again creates nothing and returns an empty list.
        """

    @abstractmethod
    def check(self) -> None:
        """Raise ``StoreUnavailableError`` with the fix when the backend or a table is missing."""

    @abstractmethod
    def describe_tables(self) -> list[TableInfo]:
        """Return each table's name, key schema, indexes and (approximate) item count."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default does nothing."""

    # -- incident memory ---------------------------------------------------------------------

    @abstractmethod
    def put_incident(self, report: IncidentReport) -> None:
        """Insert or replace the whole report."""

    @abstractmethod
    def get_incident(self, incident_id: str) -> IncidentReport | None: ...

    @abstractmethod
    def list_incidents(
        self,
        filters: IncidentFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[IncidentSummary]:
        """Return incidents newest first, filtered, one page at a time."""

    @abstractmethod
    def update_incident_status(
        self,
        incident_id: str,
        status: str,
        notes: str | None = None,
        expected_status: str | None = None,
    ) -> IncidentReport:
        """Set status (and resolution notes) atomically.

        With ``expected_status`` the write happens only if the stored status equals it,
        else ``ConflictError``. A missing incident raises ``StoreError``.
        """

    @abstractmethod
    def set_feedback(self, incident_id: str, feedback: dict[str, Any]) -> IncidentReport:
        """Store operator feedback on the root cause (``correct`` bool, ``root_cause`` str)."""

    @abstractmethod
    def find_open_incidents_for(self, fingerprints: list[str]) -> list[IncidentSummary]:
        """Return open incidents that contain any alert with one of ``fingerprints``."""

    # -- pattern library ---------------------------------------------------------------------

    @abstractmethod
    def put_pattern(self, pattern: Pattern) -> None: ...

    @abstractmethod
    def get_pattern(self, pattern_id: str) -> Pattern | None: ...

    @abstractmethod
    def find_patterns(self, signature: str) -> list[Pattern]:
        """Return patterns with exactly this signature (served by an index, not a scan)."""

    @abstractmethod
    def list_patterns(self, limit: int = 50, cursor: str | None = None) -> Page[Pattern]: ...

    @abstractmethod
    def record_pattern_occurrence(
        self, pattern: Pattern, incident_id: str, when: datetime
    ) -> Pattern:
        """Create the pattern if new, else add one to ``occurrences`` atomically.

        Concurrent calls never lose an increment. Returns the stored pattern after the update.
        """

    @abstractmethod
    def add_pattern_feedback(
        self, pattern_id: str, confirmed: bool, root_cause: str | None
    ) -> Pattern:
        """Count one confirmation or rejection atomically; a rejection with a ``root_cause``
        replaces the pattern's root cause."""

    @abstractmethod
    def delete_pattern(self, pattern_id: str) -> bool:
        """Delete the pattern; return False if it did not exist."""

    # -- agent knowledge ---------------------------------------------------------------------

    @abstractmethod
    def put_knowledge(self, item: KnowledgeItem) -> None: ...

    @abstractmethod
    def get_knowledge(self, agent_name: str, knowledge_key: str) -> KnowledgeItem | None: ...

    @abstractmethod
    def list_knowledge(
        self, agent_name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[KnowledgeItem]:
        """Items of one agent (a key query), or of all agents when ``agent_name`` is None."""

    @abstractmethod
    def delete_knowledge(self, agent_name: str, knowledge_key: str) -> bool: ...

    # -- event feed ----------------------------------------------------------------------------

    @abstractmethod
    def upsert_alerts(self, alerts: list[Alert]) -> list[AlertUpsert]:
        """Record alert deliveries in the feed, deduplicated by fingerprint and start time.

        Returns one ``AlertUpsert`` per input alert, in order. Raises ``PartialWriteError``
        naming the alerts not written when a batch gives up.
        """

    @abstractmethod
    def recent_alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[Alert]:
        """Alerts from the feed, newest start time first."""

    def recent_alert_rows(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[tuple[str | None, ...]]:
        """Alerts from the feed as tuples of ``ALERT_ROW_FIELDS``, newest start time first.

        The window, page size and cursor work as in ``recent_alerts``. This default reads whole
        alerts. A backend can override it to read only these fields, for lists that show no
        labels, description or raw payload.
        """
        page = self.recent_alerts(since=since, until=until, limit=limit, cursor=cursor)
        rows = [
            (
                a.fingerprint,
                a.name,
                a.service,
                a.severity,
                a.status,
                a.summary,
                iso(a.starts_at),
                iso(a.ends_at),
            )
            for a in page.items
        ]
        return Page(rows, page.cursor)

    @abstractmethod
    def append_metrics(self, series: list[MetricSeries]) -> int:
        """Store metric batches in the feed; return the number of batches written."""

    @abstractmethod
    def recent_metrics(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[MetricSeries]:
        """Metric points from the feed in the window, merged into one series per key."""

    @abstractmethod
    def clear_feed(self) -> int:
        """Delete every item of the event feed; return how many were deleted."""
