"""Speed and memory as the work grows: ``python -m bench.scale [--quick] [--json]``.

Generates simulator storms of growing size (fixed seeds) and measures:

- analysis: ``Orchestrator.handle_incident`` with offline synthesis and a fresh SQLite store.
  The 500-alert incident runs seven times and each size of the growth series three times,
  each run in a fresh store, and each reports the median. Every size runs in its own child
  process, so the peak resident set size (max RSS) it reports is its own;
- ingestion: ``handle_alerts`` on JSON bodies of 500 alerts (parse, deduplicate, store) into
  SQLite and into dynalite, which is started on a free loopback port (needs ``npm install``);
- the Live page: a server-side AppTest render over a feed of 10,000 alerts and 200 series,
  and the number of points each chart sends to the browser;
- the LLM prompt's estimated tokens against ``llm_prompt_token_budget``.

It prints each target as met or missed, and writes ``bench/results/scale.json`` and a plot of
time and memory against size, ``bench/results/scale.png``. Figures depend on the machine and on
what else runs on it; the targets were set for a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from opsforge_core.config import Settings
from opsforge_core.handlers import handle_alerts
from opsforge_core.llm.base import SynthesisRequest
from opsforge_core.llm.offline import offline_synthesis
from opsforge_core.llm.prompt import build_prompt
from opsforge_core.models import Alert, MetricSeries, utcnow
from opsforge_core.orchestrator import Orchestrator, rule_diagnosis, rule_severity
from opsforge_core.store.base import Store
from opsforge_core.store.sqlite import SQLiteStore
from opsforge_core.topology import ServiceGraph
from simulator import generate_storm

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SEED = 7
SMALL = {"alerts": 500, "series": 200, "points": 720}
GROWTH = [1_000, 10_000, 30_000, 100_000]  # alerts; series are alerts / 50, 240 points
QUICK_GROWTH = [1_000, 10_000]
INGEST_BATCH = 500
TARGETS = {
    "small_median_ms": 300.0,
    "large_seconds": 10.0,
    "large_peak_mb": 1536.0,
    "growth_ratio": 12.0,
    "sqlite_alerts_per_s": 20_000.0,
    "dynalite_alerts_per_s": 2_000.0,
    "live_render_ms": 500.0,
    "live_points_per_chart": 5000,
}


def _max_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _offline_settings() -> Settings:
    return replace(Settings.from_env(), llm_provider="offline", store="sqlite")


def analyze_once(alerts: int, series: int, points: int, runs: int) -> dict[str, Any]:
    """Time ``runs`` analyses of one storm in this process; return times, RSS and prompt size."""
    run = generate_storm(n_alerts=alerts, n_series=series, points=points, seed=SEED)
    run.alerts = _as_read_back(run.alerts)
    graph = ServiceGraph.from_pairs(run.topology)
    rss_before = _max_rss_mb()
    settings = _offline_settings()
    times: list[float] = []
    cpu: list[float] = []
    for attempt in range(runs):
        # A fresh store for each run: in a shared one each run would also recall the ones
        # before it, which is a different measurement from analyzing one incident.
        with tempfile.TemporaryDirectory() as folder:
            store = SQLiteStore(Path(folder) / f"scale-{attempt}.db")
            store.init()
            orchestrator = Orchestrator(store=store, settings=settings)
            started, cpu_started = time.perf_counter(), time.process_time()
            report = orchestrator.handle_incident(run.alerts, run.series, graph=graph)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            store.close()
    request = SynthesisRequest(
        incident_id=report.incident_id,
        alerts=run.alerts,
        results=report.results,
        rule_severity=rule_severity(run.alerts, report.results),
        rule_root_cause=rule_diagnosis(report.results)[0],
    )
    prompt = build_prompt(request, settings.llm_prompt_token_budget, offline_synthesis(request))
    return {
        "alerts": len(run.alerts),
        "series": len(run.series),
        "points": points,
        "seconds": times,
        "median_seconds": statistics.median(times),
        "cpu_seconds": cpu,
        "median_cpu_seconds": statistics.median(cpu),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(_max_rss_mb(), 1),
        "root_cause": report.synthesis.root_cause,
        "true_root_cause": run.ground_truth.get("root_cause"),
        "prompt_tokens": prompt.estimated_tokens,
        "prompt_budget": settings.llm_prompt_token_budget,
    }


def _as_read_back(alerts: list[Alert]) -> list[Alert]:
    """Rebuild ``alerts`` from their stored form, one after the other, as the store returns them.

    The storm generator sorts its alerts by start time after creating them, which leaves
    neighbours in the list far apart in memory. Alerts read from the store or parsed from a
    request body are allocated in list order. At 100,000 alerts the scattered layout alone cost
    about 0.5 s of CPU, which is the generator's and not the analysis's.
    """
    return [Alert.from_dict(alert.to_dict()) for alert in alerts]


def analyze_in_child(alerts: int, series: int, points: int, runs: int) -> dict[str, Any]:
    """Run ``analyze_once`` in a fresh interpreter so its peak memory is measured alone."""
    command = [sys.executable, "-m", "bench.scale", "--child", f"{alerts},{series},{points},{runs}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"analysis of {alerts} alerts failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _payloads(count: int) -> list[bytes]:
    run = generate_storm(n_alerts=count, n_series=50, points=60, seed=SEED)
    records = [alert.to_dict(include_raw=False) for alert in run.alerts]
    return [
        json.dumps({"alerts": records[i : i + INGEST_BATCH]}).encode()
        for i in range(0, len(records), INGEST_BATCH)
    ]


def ingest_rate(store: Store, bodies: list[bytes], settings: Settings) -> dict[str, Any]:
    """Decode every body and pass it to ``handle_alerts`` without analysis; time the whole."""
    stored = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for body in bodies:
        # Decoding is timed too: the HTTP API and the Lambda receive JSON text.
        payload = json.loads(body)
        result = handle_alerts(payload, store=store, orchestrator=None, settings=settings)
        stored += len(result.accepted)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "alerts": stored,
        "seconds": round(seconds, 3),
        "per_second": round(stored / seconds),
        "cpu_seconds": round(cpu, 3),
    }


def _warm_up(store: Store, bodies: list[bytes], settings: Settings) -> None:
    """Ingest the first body untimed, then empty the feed so every timed alert is new again.

    A freshly started dynalite runs its first requests 20 to 30% slower while node compiles
    them; a long-running server does not.
    """
    ingest_rate(store, bodies[:1], settings)
    store.clear_feed()


def measure_ingest(count: int, dynalite_count: int) -> dict[str, Any]:
    bodies = _payloads(count)
    settings = _offline_settings()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "ingest.db")
        store.init()
        _warm_up(store, bodies, settings)
        results["sqlite"] = ingest_rate(store, bodies, settings)
        store.close()
    # bench.store_bench owns the dynalite start-up; importing it here keeps one copy.
    from bench.store_bench import _dynalite, _dynamodb_store

    with _dynalite() as endpoint:
        store = _dynamodb_store(endpoint)
        store.init()
        few = _payloads(dynalite_count)
        _warm_up(store, few, settings)
        results["dynalite"] = ingest_rate(store, few, settings)
    return results


def _shift_to_now(
    alerts: list[Alert], series: list[MetricSeries], end: float
) -> tuple[list[Alert], list[MetricSeries]]:
    """Move a run so that it ends now, inside the Live page's one-hour window."""
    offset = utcnow().timestamp() - end - 5.0
    delta = timedelta(seconds=offset)
    moved = [
        replace(
            a,
            starts_at=a.starts_at + delta,
            ends_at=a.ends_at + delta if a.ends_at else None,
        )
        for a in alerts
    ]
    shifted = [replace(s, timestamps=s.timestamps + offset) for s in series]
    return moved, shifted


def measure_live(renders: int) -> dict[str, Any]:
    """Render the Live page with AppTest over a feed of 10,000 alerts and 200 series."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    # One hour at 15 s steps, so the whole storm fits the page's default window.
    run = generate_storm(n_alerts=10_000, n_series=200, points=240, seed=SEED, step_seconds=15)
    alerts, series = _shift_to_now(run.alerts, run.series, run.end.timestamp())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "live.db"
        os.environ.update(
            OPSFORGE_STORE="sqlite",
            OPSFORGE_SQLITE_PATH=str(path),
            OPSFORGE_LLM_PROVIDER="offline",
            OPSFORGE_LIVE_SIMULATOR="off",
        )
        store = SQLiteStore(path)
        store.init()
        store.upsert_alerts(alerts)
        store.append_metrics(series)
        store.close()
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
        cold: list[float] = []
        warm: list[float] = []
        for _ in range(renders):
            st.cache_data.clear()
            started = time.perf_counter()
            app.switch_page("console/live.py").run()
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            app.run()
            warm.append(time.perf_counter() - started)
        errors = [str(e.value) for e in app.exception]
        counts = [_chart_points(chart) for chart in app.get("plotly_chart")]
    return {
        "alerts": len(alerts),
        "series": len(series),
        "cold_ms": [round(s * 1000) for s in cold],
        "warm_ms": [round(s * 1000) for s in warm],
        "cold_median_ms": round(statistics.median(cold) * 1000),
        "warm_median_ms": round(statistics.median(warm) * 1000),
        "charts": len(counts),
        "points_per_chart": counts,
        "exceptions": errors,
    }


def _chart_points(chart: Any) -> int:
    spec = json.loads(chart.proto.spec)
    return sum(len(trace.get("x") or []) for trace in spec["data"])


def check_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare each measured figure with its target; a missing figure is left out.

    Time rows also carry the CPU time, because a shared machine stretches wall time. A row
    without a target is shown for information.
    """
    rows: list[dict[str, Any]] = []

    def add(work: str, value: float, target: float | None, unit: str, cpu: float | None = None,
            higher_is_better: bool = False) -> None:  # fmt: skip
        met = None
        if target is not None:
            met = value >= target if higher_is_better else value <= target
        rows.append({"work": work, "value": value, "cpu": cpu, "target": target, "unit": unit,
                     "met": met})  # fmt: skip

    small = figures.get("small")
    if small:
        add("analyze 500 alerts, 200x720 (median)", small["median_seconds"] * 1000,
            TARGETS["small_median_ms"], "ms", small["median_cpu_seconds"] * 1000)  # fmt: skip
    growth = {row["alerts"]: row for row in figures.get("growth", [])}
    for size, row in sorted(growth.items()):
        target = TARGETS["large_seconds"] if size >= 100_000 else None
        add(f"analyze {row['alerts']:,} alerts, {row['series']:,} series", row["median_seconds"],
            target, "s", row["median_cpu_seconds"])  # fmt: skip
        target = TARGETS["large_peak_mb"] if size >= 100_000 else None
        add("  peak RSS of that process", row["peak_rss_mb"], target, "MB")
    sizes = sorted(growth)
    if 10_000 in growth and sizes[-1] >= 100_000:
        first, last = growth[10_000], growth[sizes[-1]]
        add(f"time growth 10,000 -> {sizes[-1]:,} alerts",
            last["median_seconds"] / first["median_seconds"], TARGETS["growth_ratio"], "x",
            last["median_cpu_seconds"] / first["median_cpu_seconds"])  # fmt: skip
    for backend, rate in (figures.get("ingest") or {}).items():
        add(f"ingest into {backend}", rate["per_second"], TARGETS[f"{backend}_alerts_per_s"],
            "alerts/s", rate["alerts"] / rate["cpu_seconds"], higher_is_better=True)  # fmt: skip
    live = figures.get("live")
    if live:
        add("Live page render, cold cache (median)", live["cold_median_ms"],
            TARGETS["live_render_ms"], "ms")  # fmt: skip
        add("Live page render, warm cache (median)", live["warm_median_ms"],
            TARGETS["live_render_ms"], "ms")  # fmt: skip
        add("Live page points per chart (max)", max(live["points_per_chart"], default=0),
            TARGETS["live_points_per_chart"], "points")  # fmt: skip
    prompts = [row for row in [small, *growth.values()] if row]
    if prompts:
        # Speed counts only while the result stays right, and every storm's cause is known.
        right = sum(row["root_cause"] == row["true_root_cause"] for row in prompts)
        add("analyses naming the true root cause", right, len(prompts), "runs",
            higher_is_better=True)  # fmt: skip
        worst = max(prompts, key=lambda row: row["prompt_tokens"])
        add(f"prompt tokens at {worst['alerts']:,} alerts", worst["prompt_tokens"],
            worst["prompt_budget"], "tokens")  # fmt: skip
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print one line per figure; ``cpu`` is the same figure computed from CPU time."""
    print(f"{'work':<42} {'value':>10} {'cpu':>10} {'target':>8}  {'unit':<9} result")
    for row in rows:
        cpu = "" if row["cpu"] is None else f"{row['cpu']:,.1f}"
        target = "" if row["target"] is None else f"{row['target']:,.0f}"
        result = {True: "met", False: "MISSED", None: ""}[row["met"]]
        print(
            f"{row['work']:<42} {row['value']:>10,.1f} {cpu:>10} {target:>8}  {row['unit']:<9} "
            f"{result}"
        )


def plot_growth(growth: list[dict[str, Any]], path: Path) -> None:
    """Draw analysis time and peak RSS against the number of alerts, on log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["alerts"] for row in growth]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.loglog(sizes, [row["median_seconds"] for row in growth], "o-", label="wall time")
    left.loglog(sizes, [row["median_cpu_seconds"] for row in growth], "s--", label="CPU time")
    left.axhline(TARGETS["large_seconds"], color="red", linestyle="--", label="10 s target")
    left.set(xlabel="alerts (series = alerts / 50)", ylabel="handle_incident time (s)",
             title="Analysis time")  # fmt: skip
    left.legend()
    right.semilogx(sizes, [row["peak_rss_mb"] for row in growth], "o-", label="peak RSS")
    right.semilogx(sizes, [row["rss_before_mb"] for row in growth], "s--",
                   label="RSS before the analysis")  # fmt: skip
    right.axhline(TARGETS["large_peak_mb"], color="red", linestyle="--", label="1.5 GB target")
    right.set(xlabel="alerts (series = alerts / 50)", ylabel="MB", title="Process memory")
    right.legend()
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run_all(quick: bool, parts: set[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    }
    if "small" in parts:
        runs = 3 if quick else 7
        figures["small"] = analyze_in_child(SMALL["alerts"], SMALL["series"], SMALL["points"], runs)
    if "growth" in parts:
        sizes = QUICK_GROWTH if quick else GROWTH
        # The median of three runs per size, so one stall cannot make or break the growth ratio.
        figures["growth"] = [analyze_in_child(size, size // 50, 240, 3) for size in sizes]
    if "ingest" in parts:
        figures["ingest"] = measure_ingest(5_000 if quick else 20_000, 1_000 if quick else 4_000)
    if "live" in parts:
        figures["live"] = measure_live(2 if quick else 5)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure speed and memory as the work grows.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--parts",
        default="small,growth,ingest,live",
        help="comma-separated parts to run: small, growth, ingest, live",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        alerts, series, points, runs = (int(v) for v in args.child.split(","))
        print(json.dumps(analyze_once(alerts, series, points, runs)))
        return 0
    figures = run_all(args.quick, set(args.parts.split(",")))
    figures["targets"] = check_targets(figures)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(figures, indent=2))
    if len(figures.get("growth", [])) >= 2:
        plot_growth(figures["growth"], RESULTS / "scale.png")
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures["targets"])
        print(f"figures in {RESULTS / 'scale.json'}")
    return 0 if all(row["met"] is not False for row in figures["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
