"""Cached queries the pages share: the event feed, simulator scenarios and uploaded files.

Results are cached with ``st.cache_data`` and a time to live, keyed on the environment (so a
changed store setting never serves another store's rows) and on the query's own arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import streamlit as st

from console._shared import env_key, get_simulator, get_store, simulator_enabled
from opsforge_core.models import (
    Alert,
    IncidentReport,
    IncidentSummary,
    MetricSeries,
    Rejection,
    utcnow,
)
from opsforge_core.store.base import IncidentFilter, Page

logger = logging.getLogger(__name__)

FEED_TTL_SECONDS = 5
FEED_PAGE = 1000
MAX_FEED_ALERTS = 20000  # newest first; the rest of a larger window is reported as cut


@dataclass
class AnalysisInput:
    """The alerts, series and topology the operator chose, ready for a run."""

    label: str
    alerts: list[Alert]
    series: list[MetricSeries]
    pairs: list[tuple[str, str]] = field(default_factory=list)
    truth: dict[str, Any] | None = None
    rejected: list[Rejection] = field(default_factory=list)
    cut: bool = False


def feed_end() -> datetime:
    """Return the end of the feed window: now, or the live simulator's clock when it is ahead.

    The simulator runs in simulated time (speed 60 is one simulated minute per second), so
    its newest samples are later than the wall clock.
    """
    now = utcnow()
    simulator = get_simulator() if simulator_enabled() else None
    if simulator is None:
        return now
    return max(now, simulator.clock)


def rounded_end(moment: datetime) -> datetime:
    """Round ``moment`` down to a whole refresh interval.

    Windows that end within one interval then share one cache entry.
    """
    return moment - timedelta(seconds=moment.timestamp() % FEED_TTL_SECONDS)


def read_newest(read_page: Callable[..., Page], since: datetime) -> tuple[list, bool]:
    """Read pages from ``read_page(since=, limit=, cursor=)`` until ``MAX_FEED_ALERTS`` items.

    Return the items, newest first, and whether the window contains more than were read.
    """
    items: list = []
    cursor: str | None = None
    while True:
        page = read_page(since=since, limit=FEED_PAGE, cursor=cursor)
        items.extend(page.items)
        cursor = page.cursor
        if cursor is None or len(items) >= MAX_FEED_ALERTS:
            break
    return items[:MAX_FEED_ALERTS], cursor is not None or len(items) > MAX_FEED_ALERTS


@st.cache_data(ttl=FEED_TTL_SECONDS, show_spinner=False, max_entries=8)
def _feed(key: tuple[tuple[str, str], ...], minutes: int, end: datetime) -> dict[str, Any]:
    store = get_store()
    since = end - timedelta(minutes=minutes)
    alerts, cut = read_newest(store.recent_alerts, since)
    series = store.recent_metrics(since=since)
    return {
        "alerts": alerts,
        "cut": cut,
        "series": series,
        "end": end,
    }


def scan_series(series: list[MetricSeries]) -> dict[str, dict]:
    """Run the PredictiveOps detector on each series and return its verdicts as dicts by key."""
    from opsforge_core.agents.base import AnalysisContext
    from opsforge_core.agents.detect import scan_all

    if not series:
        return {}
    found = scan_all(AnalysisContext(alerts=[], series=series))
    return {name: asdict(anomaly) for name, anomaly in found.items()}


def load_feed(minutes: int, end: datetime | None = None) -> dict[str, Any]:
    """Read the feed's whole alerts (newest first, at most ``MAX_FEED_ALERTS``) and metrics.

    The window is the ``minutes`` before ``end`` (default ``feed_end()``), cut to whole
    refresh intervals so that reruns within one interval reuse the cached read.
    """
    return _feed(env_key(), minutes, rounded_end(end or feed_end()))


def scenario_names() -> list[str]:
    """Return the simulator's fault scenario names, sorted."""
    from simulator.scenarios import SCENARIOS

    return sorted(SCENARIOS)


@st.cache_data(ttl=3600, show_spinner=False, max_entries=16)
def load_scenario(name: str, seed: int) -> AnalysisInput:
    """Generate one simulator scenario run (deterministic for the name and seed)."""
    from simulator.generate import generate

    run = generate(name, seed)
    truth = {k: v for k, v in run.ground_truth.items() if k != "incident_fingerprints"}
    return AnalysisInput(
        label=f"scenario {name}, seed {seed}",
        alerts=list(run.alerts),
        series=list(run.series),
        pairs=[tuple(p) for p in run.topology],
        truth=truth,
    )


@st.cache_data(ttl=600, show_spinner=False, max_entries=8)
def parse_upload(name: str, data: bytes) -> AnalysisInput:
    """Parse an uploaded file in any format ``opsforge_core.ingest`` reads."""
    from opsforge_core.ingest import parse_bytes

    batch = parse_bytes(data)
    return AnalysisInput(
        label=f"file {name}",
        alerts=list(batch.alerts),
        series=list(batch.series),
        pairs=[tuple(p) for p in batch.topology],
        truth=batch.scenario.get("ground_truth") if batch.scenario else None,
        rejected=list(batch.rejected),
    )


LIST_TTL_SECONDS = 10


def follow_pages(
    fetch: Callable[[str | None], tuple[list, str | None]], pages: int
) -> tuple[list, bool]:
    """Fetch the first ``pages`` pages along the store's cursor.

    Returns the items and whether the store has more. Pages are re-read on every run
    (through the callers' short-lived caches) rather than kept in session state, so rows
    written since (a new incident, a deleted pattern) show up.
    """
    items: list = []
    cursor: str | None = None
    for _ in range(max(1, pages)):
        page, cursor = fetch(cursor)
        items.extend(page)
        if cursor is None:
            break
    return items, cursor is not None


@st.cache_data(ttl=LIST_TTL_SECONDS, show_spinner=False, max_entries=64)
def _incident_page(
    key: tuple[tuple[str, str], ...], filters: tuple, cursor: str | None, size: int
) -> tuple[list[IncidentSummary], str | None]:
    status, severity, service, text, hours = filters
    since = utcnow() - timedelta(hours=hours) if hours else None
    query = IncidentFilter(
        status=status, severity=severity, service=service, text=text, since=since
    )
    page = get_store().list_incidents(query, limit=size, cursor=cursor)
    return page.items, page.cursor


def incident_page(filters: tuple, cursor: str | None, size: int) -> tuple[list, str | None]:
    """Return one page of the incident memory, newest first, with the Incidents page's filters."""
    return _incident_page(env_key(), filters, cursor, size)


def forget_incident_pages() -> None:
    """Drop cached incident pages after a write, so the next listing shows it."""
    _incident_page.clear()


@st.cache_data(ttl=60, show_spinner=False, max_entries=16)
def _window_series(
    key: tuple[tuple[str, str], ...], start: datetime, end: datetime, keys: tuple[str, ...]
) -> list[MetricSeries]:
    wanted = set(keys)
    return [s for s in get_store().recent_metrics(since=start, until=end) if s.key in wanted]


def report_series(report: IncidentReport) -> list[MetricSeries]:
    """Read the series a stored report analyzed back from the feed, for its charts.

    Only what the feed still contains comes back: feed items expire after
    ``OPSFORGE_FEED_TTL_HOURS``, and runs on scenarios or uploaded files never wrote there.
    """
    if not report.series_keys:
        return []
    return _window_series(
        env_key(), report.window_start, report.window_end, tuple(sorted(report.series_keys))
    )
