"""The Live page's feed: alert fields as one frame, the series and their anomaly scan.

Every read of an ``st.cache_data`` entry unpickles it, and a write pickles it. So the entry keeps
the alerts as a DataFrame of the fields the page shows, not as ``Alert`` objects (pickling
10,000 of those took about 0.1 s on a 2-core machine). The page reads a whole alert only to
show its details.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from console._data import (
    FEED_PAGE,
    FEED_TTL_SECONDS,
    feed_end,
    read_newest,
    rounded_end,
    scan_series,
)
from console._shared import env_key, get_store
from opsforge_core.models import SEVERITY_RANK, Alert
from opsforge_core.store.base import ALERT_ROW_FIELDS

logger = logging.getLogger(__name__)


class FeedAlert(NamedTuple):
    """One feed alert with the fields the Live page's table and charts show."""

    fingerprint: str
    name: str
    service: str
    severity: str
    status: str
    summary: str
    starts_at: datetime
    ends_at: datetime | None


@st.cache_data(ttl=FEED_TTL_SECONDS, show_spinner=False, max_entries=8)
def _live_feed(key: tuple[tuple[str, str], ...], minutes: int, end: datetime) -> dict[str, Any]:
    store = get_store()
    since = end - timedelta(minutes=minutes)
    rows, cut = read_newest(store.recent_alert_rows, since)
    series = store.recent_metrics(since=since)
    return {
        "alerts": alert_frame(rows),
        "cut": cut,
        "series": series,
        "anomalies": scan_series(series),
        "end": end,
    }


def load_live_feed(minutes: int, end: datetime | None = None) -> dict[str, Any]:
    """Read the feed window for the Live page.

    Returns ``alerts`` (an ``alert_frame``, at most ``MAX_FEED_ALERTS`` of the newest),
    ``cut`` (True when the window contains more), ``series``, ``anomalies`` (the PredictiveOps
    verdict on each series, as dicts by series key) and ``end``. The window is the ``minutes``
    before ``end`` (default ``feed_end()``), cut to whole refresh intervals so that reruns
    within one interval reuse the cached read.
    """
    return _live_feed(env_key(), minutes, rounded_end(end or feed_end()))


def alert_frame(rows: list[tuple]) -> pd.DataFrame:
    """Build a frame of ``ALERT_ROW_FIELDS`` rows plus ``rank``, in the table's order.

    The order is that of ``opsforge_core.views.sort_alerts``: firing first, then the worst
    severity, then the newest start, ties kept in feed order. A filtered frame therefore needs
    no sorting. Times become UTC timestamps (NaT for a firing alert's end), and ``rank`` is the
    severity's ``SEVERITY_RANK`` (0 for an unknown one).
    """
    frame = pd.DataFrame.from_records(rows, columns=list(ALERT_ROW_FIELDS))
    for column in ("starts_at", "ends_at"):
        frame[column] = pd.to_datetime(frame[column], format="ISO8601", utc=True)
    frame["rank"] = frame["severity"].map(SEVERITY_RANK).fillna(0).astype(np.int64)
    starts = frame["starts_at"].astype("int64").to_numpy()
    not_firing = frame["status"].ne("firing").to_numpy()
    # np.lexsort is stable and sorts by its last key first.
    order = np.lexsort((-starts, -frame["rank"].to_numpy(), not_firing))
    return frame.take(order).reset_index(drop=True)


def feed_alerts(frame: pd.DataFrame) -> list[FeedAlert]:
    """Turn the rows of an ``alert_frame`` into ``FeedAlert`` values, in frame order."""
    text = [frame[name].tolist() for name in FeedAlert._fields[:-2]]
    starts = frame["starts_at"].dt.to_pydatetime()
    ends = frame["ends_at"].dt.to_pydatetime()
    return [
        FeedAlert(*values, start, None if end is pd.NaT else end)
        for *values, start, end in zip(*text, starts, ends, strict=True)
    ]


def worst_firing(frame: pd.DataFrame) -> dict[str, int]:
    """Return each service's worst ``SEVERITY_RANK`` among its firing alerts."""
    firing = frame[frame["status"].eq("firing")]
    return {str(k): int(v) for k, v in firing.groupby("service")["rank"].max().items()}


def filter_alerts(frame: pd.DataFrame, severities: list[str], only_firing: bool) -> pd.DataFrame:
    """Keep the alerts of the chosen severities (all when none is chosen), or firing ones."""
    keep = np.ones(len(frame), dtype=bool)
    if severities:
        keep &= frame["severity"].isin(severities).to_numpy()
    if only_firing:
        keep &= frame["status"].eq("firing").to_numpy()
    return frame[keep]


@st.cache_data(ttl=FEED_TTL_SECONDS, show_spinner=False, max_entries=64)
def _feed_alert(
    key: tuple[tuple[str, str], ...], fingerprint: str, starts_at: datetime
) -> Alert | None:
    store = get_store()
    cursor: str | None = None
    while True:
        # A window that starts and ends at one instant contains the alerts that started then.
        page = store.recent_alerts(since=starts_at, until=starts_at, limit=FEED_PAGE, cursor=cursor)
        for alert in page.items:
            if alert.fingerprint == fingerprint and alert.starts_at == starts_at:
                return alert
        cursor = page.cursor
        if cursor is None:
            return None


def read_feed_alert(alert: FeedAlert) -> Alert | None:
    """Read the whole stored alert, labels and raw payload included; None once it is gone."""
    return _feed_alert(env_key(), alert.fingerprint, alert.starts_at)
