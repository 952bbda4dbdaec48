"""Live: the event feed, refreshed on its own, with the simulator's controls.

Charts show each chosen service's metrics with anomaly onsets and alert start times on one UTC
time axis; the alert table is paged. Data comes from the store's event feed, which the live
simulator (and the HTTP API, when it runs) writes into.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

import pandas as pd
import streamlit as st

from console._data import scenario_names
from console._live_feed import (
    FeedAlert,
    feed_alerts,
    filter_alerts,
    load_live_feed,
    read_feed_alert,
    worst_firing,
)
from console._shared import DEFAULT_SPEED, failure_shown, get_simulator, init_state
from opsforge_core.models import SEVERITIES, SEVERITY_RANK, MetricSeries
from opsforge_core.views import (
    alert_rows,
    escape_markdown,
    paginate,
    service_figure,
    shorten,
)

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5
PAGE_SIZE = 50
WINDOWS = {"15 minutes": 15, "1 hour": 60, "6 hours": 360, "24 hours": 1440}
SPEEDS = [1, 10, 60, 300, 600]


def simulator_controls() -> None:
    simulator = get_simulator()
    if simulator is None:
        st.info(
            "The live simulator is off (OPSFORGE_LIVE_SIMULATOR=off); the feed shows what "
            "the HTTP API and other writers store."
        )
        return
    status = simulator.status()
    running = bool(status.get("running")) and not status.get("paused")
    with st.container(border=True):
        columns = st.columns([2, 1, 2, 3, 1], vertical_alignment="bottom")
        state, pause, speed, scenario, inject = columns
        state.markdown(f"**Simulator** {'running' if running else 'paused'}")
        if running:
            if pause.button("Pause", key="live-pause", icon=":material/pause:"):
                simulator.pause()
                st.rerun()
        elif pause.button("Start", key="live-start", icon=":material/play_arrow:"):
            if status.get("running"):
                simulator.resume()
            else:
                simulator.start()
            st.rerun()
        current = float(status.get("speed") or DEFAULT_SPEED)
        chosen = speed.select_slider(
            "Speed (simulated seconds per second)",
            options=SPEEDS,
            value=min(SPEEDS, key=lambda s: abs(s - current)),
            key="live-speed",
        )
        if chosen != current:
            simulator.set_speed(float(chosen))
        name = scenario.selectbox("Fault scenario", scenario_names(), key="live-scenario")
        if inject.button("Inject", key="live-inject", type="primary", disabled=not name):
            simulator.inject(name)
            st.rerun()


def simulator_state() -> None:
    """Show the simulator's clock, its injected fault and its write errors as they change."""
    simulator = get_simulator()
    if simulator is None:
        return
    status = simulator.status()
    st.caption(
        f"Simulated clock {status['clock']:%Y-%m-%d %H:%M} UTC · {status.get('ticks', 0):,} "
        f"ticks · {status.get('alerts', 0):,} alerts written"
    )
    fault = status.get("fault")
    if fault:
        st.caption(
            escape_markdown(
                f"Injected fault: {fault['scenario']} since {fault['start']:%H:%M} UTC, "
                f"until {fault['until']:%H:%M} UTC (simulated)"
            )
        )
        with st.expander("Ground truth of the injected fault", key="live-truth"):
            st.json({k: str(v) for k, v in fault.items()})
    if status.get("last_error"):
        st.warning(
            f"{status.get('errors', 0)} store writes failed; last: "
            + escape_markdown(status["last_error"])
        )


@st.fragment(run_every=REFRESH_SECONDS)
def live_feed(minutes: int) -> None:
    """Draw the feed; reruns on its own every few seconds without rerunning the page."""
    with failure_shown("Reading the simulator's state"):
        simulator_state()
    with failure_shown("Reading the event feed"):
        feed = load_live_feed(minutes)
        anomalies = feed["anomalies"]
        alerts: pd.DataFrame = feed["alerts"]
        series: list[MetricSeries] = feed["series"]
        _summary(alerts, series, feed, anomalies)
        services = _service_picker(alerts, series)
        for service in services:
            figure = service_figure(
                service,
                [s for s in series if s.service == service],
                anomalies,
                feed_alerts(alerts[alerts["service"].eq(service)]),
            )
            st.plotly_chart(figure, key=f"live-chart-{service}")
        _alert_table(alerts, feed["end"])


def _summary(
    alerts: pd.DataFrame, series: list[MetricSeries], feed: dict, anomalies: dict[str, dict]
) -> None:
    firing = alerts["status"].eq("firing")
    severe = firing & alerts["rank"].ge(SEVERITY_RANK["high"])
    anomalous = sum(1 for a in anomalies.values() if a.get("status") == "anomalous")
    cols = st.columns(5)
    cols[0].metric("Alerts in window", f"{len(alerts):,}{'+' if feed['cut'] else ''}")
    cols[1].metric("Firing", f"{int(firing.sum()):,}")
    cols[2].metric("Firing high or critical", f"{int(severe.sum()):,}")
    cols[3].metric("Series", f"{len(series):,}")
    cols[4].metric("Anomalous series", f"{anomalous:,}")
    st.caption(
        f"Window ends {feed['end']:%Y-%m-%d %H:%M:%S} UTC (the simulator's clock when it runs "
        f"ahead of now); refreshes every {REFRESH_SECONDS} s."
    )


def _service_picker(alerts: pd.DataFrame, series: list[MetricSeries]) -> list[str]:
    worst = worst_firing(alerts)
    services = sorted(
        {s.service for s in series} | set(worst), key=lambda s: (-worst.get(s, -1), s)
    )
    chosen = [s for s in st.session_state.get("live-services") or [] if s in services]
    if not chosen and services and not st.session_state.get("live-services-touched"):
        chosen = services[:2]
    st.session_state["live-services"] = chosen
    return st.multiselect(
        "Services to chart (most severe firing alerts first)",
        services,
        key="live-services",
        on_change=lambda: st.session_state.update({"live-services-touched": True}),
    )


def _alert_table(alerts: pd.DataFrame, now: datetime) -> None:
    """Draw the paged alert table; ages count to ``now``, the end of the feed window."""
    st.markdown("#### Alerts")
    left, right = st.columns([3, 1])
    severities = left.multiselect("Severity", SEVERITIES, key="live-severity")
    only_firing = right.toggle("Firing only", key="live-firing")
    # The frame is in the table's order already, so a filtered slice needs no sorting.
    matching = filter_alerts(alerts, severities, only_firing)
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    # The page count shrinks when a filter narrows the table; keep the stored page in range.
    st.session_state["live-page"] = min(int(st.session_state.get("live-page", 1)), pages)
    number = st.number_input(
        f"Page (of {pages})", min_value=1, max_value=pages, step=1, key="live-page"
    )
    page = paginate(range(len(matching)), int(number), PAGE_SIZE)
    rows = feed_alerts(matching.iloc[page.rows])
    st.dataframe(alert_rows(rows, now), hide_index=True, key="live-alerts")
    st.caption(f"{page.total:,} alerts match; page {page.number} of {page.count}.")
    if rows:
        _alert_details(rows)


def _alert_details(alerts: list[FeedAlert]) -> None:
    """Show one alert's whole record, labels and raw payload included, as JSON."""
    by_key = {f"{a.fingerprint}@{a.starts_at.timestamp()}": a for a in alerts}
    # The feed moves on between refreshes. A key derived from the rows on the page gives a new
    # picker when they change, so the label shown always belongs to the record shown.
    digest = hashlib.sha1("|".join(by_key).encode()).hexdigest()[:12]
    # The new picker starts on the alert picked before while it is still on the page, so a
    # refresh that moves other rows does not switch the details to another alert.
    options = list(by_key)
    picked = st.session_state.get("live-alert-picked")
    chosen = st.selectbox(
        "Alert details",
        options,
        index=options.index(picked) if picked in by_key else 0,
        format_func=lambda k: shorten(
            f"{by_key[k].severity} · {by_key[k].service} · {by_key[k].name} · {by_key[k].summary}",
            140,
        ),
        key=f"live-alert-{digest}",
    )
    if picked is not None and picked not in by_key:
        st.caption("The alert picked before has left this page of the feed.")
    st.session_state["live-alert-picked"] = chosen
    alert = read_feed_alert(by_key[chosen])
    if alert is None:
        st.info("This alert is no longer in the feed: it expired or the feed was cleared.")
        return
    st.json(alert.to_dict(include_raw=True), expanded=1)


st.title("Live")
init_state({"live-window": "1 hour", "live-page": 1, "live-firing": False})
with failure_shown("Starting the live simulator"):
    simulator_controls()
window = (
    st.segmented_control("Time window", list(WINDOWS), key="live-window", selection_mode="single")
    or "1 hour"
)
live_feed(WINDOWS[window])
