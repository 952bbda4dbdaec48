"""AppTest runs of every console page against a temporary SQLite store."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from opsforge_core.models import Alert, KnowledgeItem, MetricSeries, Pattern, utcnow
from opsforge_core.store.base import Store
from opsforge_core.views import MAX_POINTS, escape_markdown
from tests.ui import c2_data
from tests.ui.conftest import APP, RUN_TIMEOUT, open_page, texts

# A "<" that Markdown would read as the start of a tag: one not escaped with a backslash.
UNESCAPED_TAG = re.compile(r"(?<!\\)<")
PAGES = ["live", "analyze", "incidents", "patterns", "settings"]


def feed_alerts(count: int, service: str = "checkout") -> list[Alert]:
    now = utcnow()
    severities = ["critical", "high", "warning", "info"]
    return [
        Alert(
            fingerprint=f"feed-{i}",
            source="api",
            name=f"Probe{i % 5}",
            service=service if i % 3 else "payments",
            severity=severities[i % 4],
            status="firing" if i % 2 else "resolved",
            summary=f"probe alert {i}",
            starts_at=now - timedelta(seconds=30 + i % 1800),
            ends_at=None if i % 2 else now - timedelta(seconds=10),
        )
        for i in range(count)
    ]


def feed_series(points: int = 120) -> list[MetricSeries]:
    now = utcnow().timestamp()
    ts = now - 15.0 * np.arange(points)[::-1]
    values = 40 + np.sin(np.arange(points) / 7.0)
    values[-5:] += 40  # a clear step at the end, for the anomaly markers
    return [
        MetricSeries("checkout", "cpu_percent", ts, values, "percent"),
        MetricSeries("checkout", "latency_p99_ms", ts, 100 + values, "ms"),
        MetricSeries("payments", "cpu_percent", ts, values / 2, "percent"),
    ]


def plotly_points(app: AppTest) -> list[int]:
    """Count the data points each Plotly chart on the page sends to the browser."""
    counts = []
    for chart in app.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        counts.append(sum(len(trace.get("x") or []) for trace in spec["data"]))
    return counts


def no_exception(app: AppTest) -> None:
    assert [e.value for e in app.exception] == []


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_data(page: str, store: Store, app: AppTest) -> None:
    store.upsert_alerts(feed_alerts(20))
    store.append_metrics(feed_series())
    c2_data.store_c2_records(store)
    open_page(app, page)
    no_exception(app)
    assert [e.value for e in app.error] == []
    assert app.title[0].value in {"Live", "Analyze", "Incidents", "Patterns and Knowledge",
                                  "Settings"}  # fmt: skip


def test_live_page_with_10000_alerts_pages_and_downsamples(store: Store, app: AppTest) -> None:
    store.upsert_alerts(feed_alerts(10_000))
    store.append_metrics(feed_series(points=8000))
    open_page(app, "live")
    no_exception(app)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Alerts in window"] == "10,000"
    assert metrics["Firing"] == "5,000"
    assert metrics["Series"] == "3"
    table = app.dataframe[0].value
    assert len(table) == 50
    assert list(table.columns[:4]) == ["severity", "service", "alert", "status"]
    page_input = app.number_input(key="live-page")
    assert page_input.max == 200
    counts = plotly_points(app)
    assert len(counts) == 2  # the two services with the worst firing alerts
    assert all(0 < count <= MAX_POINTS for count in counts)
    page_input.set_value(200).run()
    assert len(app.dataframe[0].value) == 50
    app.toggle(key="live-firing").set_value(True).run()
    assert app.number_input(key="live-page").max == 100
    assert set(app.dataframe[0].value["status"]) == {"firing"}


def test_live_details_keep_picked_alert_when_rows_change(store: Store, app: AppTest) -> None:
    store.upsert_alerts(feed_alerts(20))
    open_page(app, "live")
    app.selectbox[0].select_index(3).run()
    picked = app.selectbox[0].value
    # A new alert lands at the top of the table, so the rows on the page change. The feed is
    # cached for one refresh interval, which the refresh below must not wait for.
    newest = Alert("feed-new", "api", "ProbeNew", "checkout", "critical", "firing",
                   "newest alert", utcnow() - timedelta(seconds=1))  # fmt: skip
    store.upsert_alerts([newest])
    st.cache_data.clear()
    app.run()
    no_exception(app)
    assert app.selectbox[0].options[0].startswith("critical · checkout · ProbeNew")
    assert app.selectbox[0].value == picked
    assert picked.startswith("feed-")


def test_live_page_marks_anomalies(store: Store, app: AppTest) -> None:
    store.append_metrics(feed_series())
    open_page(app, "live")
    metrics = {m.label: m.value for m in app.metric}
    assert int(metrics["Anomalous series"]) >= 1
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    names = [trace.get("name") for trace in spec["data"]]
    assert "anomaly" in names
    assert spec["layout"]["xaxis3"]["title"]["text"] == "time (UTC)"


def test_live_page_drives_the_simulator(console_env: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPSFORGE_LIVE_SIMULATOR", "on")
    monkeypatch.setenv("OPSFORGE_LIVE_SPEED", "600")
    from console._shared import get_simulator

    app = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT).run()
    simulator = get_simulator()
    try:
        no_exception(app)
        assert simulator.status()["running"] is True
        app.selectbox(key="live-scenario").set_value("cpu_saturation")
        app.button(key="live-inject").click().run()
        assert simulator.status()["fault"]["scenario"] == "cpu_saturation"
        assert any(escape_markdown("Injected fault: cpu_saturation") in t for t in texts(app))
        app.button(key="live-pause").click().run()
        assert simulator.status()["paused"] is True
        assert app.button(key="live-start").label == "Start"
        app.select_slider(key="live-speed").set_value(10).run()
        assert simulator.status()["speed"] == 10.0
    finally:
        simulator.stop()


def _run_scenario(app: AppTest, name: str = "cpu_saturation", seed: int = 1) -> str:
    """Run an analysis of one simulator scenario from the Analyze page; return its id."""
    open_page(app, "analyze")
    app.radio(key="analyze-source").set_value("Simulator scenario").run()
    app.selectbox(key="analyze-scenario").set_value(name)
    app.number_input(key="analyze-seed").set_value(seed).run()
    app.button(key="analyze-run").click().run()
    no_exception(app)
    label = app.status[0].label
    assert label.startswith("Analysis complete: inc-")
    return label.split(": ")[1]


def test_analyze_run_is_listed_on_incidents(store: Store, app: AppTest) -> None:
    incident_id = _run_scenario(app)
    steps = [m.value for m in app.status[0].markdown]
    assert steps[0].startswith("**context**")
    assert any(step.startswith("**run rootcause**") for step in steps)
    assert steps[-1].startswith("**done**")
    stored = store.get_incident(incident_id)
    assert stored is not None
    assert {m.label for m in app.metric} >= {"Root cause", "Severity", "Confidence"}
    assert [t.label for t in app.tabs] == ["alertops", "predictiveops", "rootcause"]
    open_page(app, "incidents")
    no_exception(app)
    assert incident_id in app.dataframe[0].value["incident"].tolist()
    assert app.selectbox(key="inc-selected").value == incident_id
    assert app.subheader[0].value == escape_markdown(stored.title)


def test_incident_charts_series_from_feed(store: Store, app: AppTest) -> None:
    store.append_metrics(feed_series())
    open_page(app, "analyze")
    app.button(key="analyze-run").click().run()
    no_exception(app)
    incident_id = app.status[0].label.split(": ")[1]
    open_page(app, "incidents")
    assert app.selectbox(key="inc-selected").value == incident_id
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in app.get("plotly_chart")]
    assert any(title.startswith("checkout/cpu_percent") for title in titles)


def test_analyze_streams_text_and_marks_fallback(
    store: Store, app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsforge_core import orchestrator
    from opsforge_core.llm import offline_synthesis

    def streaming_synthesize(request, settings=None, provider=None, on_text=None):
        for chunk in ('{"summary": ', '"<i>disk</i> full"', "}"):
            on_text(chunk)
        synthesis = offline_synthesis(request)
        synthesis.fallback = True
        synthesis.fallback_reason = "answer cut off at max_tokens"
        synthesis.flags = ["prompt injection suspected in alert MarkupProbe"]
        return synthesis

    monkeypatch.setattr(orchestrator, "synthesize", streaming_synthesize)
    _run_scenario(app, "disk_filling")
    streamed = [t.value for t in app.status[0].text]
    assert streamed == ['{"summary": "<i>disk</i> full"}']
    warnings = [w.value for w in app.warning]
    assert "**Fallback answer** from the offline rules: answer cut off at max\\_tokens" in warnings
    assert any(w.startswith("**Flag:** prompt injection suspected") for w in warnings)


def test_analyze_agent_override_skips_agent(store: Store, app: AppTest) -> None:
    open_page(app, "analyze")
    app.radio(key="analyze-source").set_value("Simulator scenario").run()
    picker = next(w for w in app.multiselect if w.key.startswith("analyze-agents"))
    assert picker.value == ["alertops", "predictiveops", "rootcause"]
    scores = app.dataframe[0].value
    assert list(scores["agent"]) == ["alertops", "predictiveops", "rootcause"]
    picker.set_value(["alertops", "rootcause"]).run()
    app.button(key="analyze-run").click().run()
    no_exception(app)
    incident_id = app.status[0].label.split(": ")[1]
    report = store.get_incident(incident_id)
    assert report.result("predictiveops").status == "skipped"
    assert report.result("rootcause").status == "ok"


def test_analyze_uploaded_alertmanager_file(store: Store, app: AppTest, events_dir: Path):
    data = (events_dir / "alertmanager_webhook_mixed.json").read_bytes()
    open_page(app, "analyze")
    app.radio(key="analyze-source").set_value("Uploaded file").run()
    app.get("file_uploader")[0].upload("alertmanager_webhook_mixed.json", data).run()
    no_exception(app)
    summary = app.markdown[0].value
    assert summary.startswith(escape_markdown("file alertmanager_webhook_mixed.json: 2 alerts"))
    app.button(key="analyze-run").click().run()
    no_exception(app)
    incident_id = app.status[0].label.split(": ")[1]
    assert len(store.get_incident(incident_id).alerts) == 2


def test_analyze_invalid_upload_shows_error(app: AppTest) -> None:
    open_page(app, "analyze")
    app.radio(key="analyze-source").set_value("Uploaded file").run()
    app.get("file_uploader")[0].upload("broken.json", b"{not json").run()
    no_exception(app)
    assert len(app.error) == 1
    assert "Loading the input failed" in app.error[0].value
    assert "Traceback" not in app.error[0].value


def test_incidents_resolve_with_notes(store: Store, app: AppTest) -> None:
    c2_data.store_c2_records(store)
    open_page(app, "incidents")
    app.text_area(key=f"inc-notes-{c2_data.INCIDENT_ID}").set_value("rolled back v2")
    next(b for b in app.button if b.label == "Resolve incident").click().run()
    no_exception(app)
    stored = store.get_incident(c2_data.INCIDENT_ID)
    assert stored.status == "resolved"
    assert stored.resolution_notes == "rolled back v2"
    assert app.success[0].value.startswith("Incident inc\\-c2probe00001 resolved")
    assert app.dataframe[0].value["status"].tolist() == ["resolved"]


def test_incidents_feedback_updates_pattern(store: Store, app: AppTest) -> None:
    incident_id = _run_scenario(app)
    report = store.get_incident(incident_id)
    before = store.get_pattern(report.pattern_id)
    open_page(app, "incidents")
    app.radio(key=f"inc-verdict-{incident_id}").set_value("Wrong")
    app.text_input(key=f"inc-other-{incident_id}").set_value("orders-db")
    next(b for b in app.button if b.label == "Send feedback").click().run()
    no_exception(app)
    assert store.get_incident(incident_id).feedback["root_cause"] == "orders-db"
    after = store.get_pattern(report.pattern_id)
    assert after.rejected == before.rejected + 1
    assert after.root_cause == "orders-db"


def test_incidents_filters_and_load_more(store: Store, app: AppTest) -> None:
    base = c2_data.c2_report()
    for index in range(30):
        base.incident_id = f"inc-page{index:08d}"
        base.title = f"paging incident {index}"
        base.created_at = utcnow() - timedelta(minutes=index)
        store.put_incident(base)
    open_page(app, "incidents")
    assert len(app.dataframe[0].value) == 25
    more = app.button(key="inc-more")
    assert more.disabled is False
    more.click().run()
    assert len(app.dataframe[0].value) == 30
    assert app.button(key="inc-more").disabled is True
    app.text_input(key="inc-text").set_value("incident 7").run()
    assert app.dataframe[0].value["incident"].tolist() == ["inc-page00000007"]


def test_patterns_page_pages_and_deletes(store: Store, app: AppTest) -> None:
    for index in range(60):
        store.put_pattern(
            Pattern(f"pat-{index:04d}", f"sig-{index}", "orders-db", occurrences=index)
        )
    store.put_knowledge(KnowledgeItem("rootcause", "root_cause:orders-db", {"n": 3}, utcnow()))
    store.put_knowledge(KnowledgeItem("alertops", "stats", {"runs": 1}, utcnow()))
    open_page(app, "patterns")
    no_exception(app)
    tables = app.dataframe[0].value
    counts = dict(zip(tables["table"], tables["items"], strict=True))
    assert counts["opsforge-pattern-library"] == 60
    assert len(app.dataframe[1].value) == 50
    app.button(key="pat-more").click().run()
    assert len(app.dataframe[1].value) == 60
    assert app.button(key="pat-more").disabled is True
    chosen = app.selectbox(key="pat-selected").value
    app.checkbox(key=f"pat-confirm-{chosen}").check().run()
    app.button(key="pat-delete").click().run()
    no_exception(app)
    assert store.get_pattern(chosen) is None
    assert len(app.dataframe[1].value) == 59
    app.selectbox(key="kn-agent").set_value("rootcause").run()
    knowledge = app.dataframe[2].value
    assert knowledge["agent"].tolist() == ["rootcause"]


def test_settings_page_masks_secrets(monkeypatch: pytest.MonkeyPatch, app: AppTest) -> None:
    monkeypatch.setenv("OPSFORGE_API_TOKEN", "very-secret-token-value")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value")
    open_page(app, "settings")
    no_exception(app)
    assert "The store answers and every table exists." in app.success[0].value
    assert app.success[1].value.startswith("offline")
    rows = app.dataframe[0].value
    shown = dict(zip(rows["setting"], rows["value"], strict=True))
    assert shown["api_token"] == "set"
    assert shown["ANTHROPIC_API_KEY"] == "set"
    assert shown["llm_max_tokens"] == "2048"
    everything = " ".join(texts(app)) + rows.to_string()
    assert "very-secret-token-value" not in everything
    assert "sk-ant-secret-value" not in everything


def test_broken_store_shows_fix_and_pages_work(console_env: Path, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    monkeypatch.setenv("OPSFORGE_SQLITE_PATH", str(blocker / "opsforge.db"))
    app = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT).run()
    no_exception(app)
    assert "Reading the event feed failed" in app.error[0].value
    assert "OPSFORGE\\_SQLITE\\_PATH" in app.error[0].value
    for page in ("analyze", "incidents", "patterns", "settings"):
        open_page(app, page)
        no_exception(app)
        assert len(app.error) >= 1
    assert app.dataframe[0].value["setting"].tolist()[0] == "store"


def test_markup_in_records_shown_as_text(store: Store, app: AppTest) -> None:
    c2_data.store_c2_records(store)
    open_page(app, "incidents")
    app.text_input(key="inc-text").set_value("c2-probe").run()
    no_exception(app)
    for element in app.get("markdown") + app.get("caption"):
        assert element.proto.allow_html is False
    for element in app.get("markdown") + app.get("caption") + app.get("warning"):
        assert UNESCAPED_TAG.search(element.value) is None
    shown = texts(app)
    assert escape_markdown(c2_data.LLM_ANSWER) in shown
    assert any(escape_markdown(c2_data.SUMMARY) in text for text in shown)
    assert any(escape_markdown(c2_data.LABEL) in text for text in shown)
    open_page(app, "live")
    record = app.json[0].value
    assert json.loads(record)["summary"] == c2_data.SUMMARY
    assert json.loads(record)["labels"]["team"] == c2_data.LABEL
