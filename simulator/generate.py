"""Generate one scenario run: metrics, alerts and ground truth, reproducible from a seed.

``generate("memory_leak", seed=7)`` returns a ``ScenarioRun``. ``run.write_jsonl(path)``
writes it in the scenario file format that ``opsforge_core.ingest`` reads. The first line has
the ground truth and the topology, and the lines after it carry metric and alert batches.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from opsforge_core.models import Alert, MetricSeries, iso, json_safe, utc
from opsforge_core.topology import ServiceGraph
from simulator.background import Background, plan_background
from simulator.effects import FaultPlan
from simulator.engine import Deploy, FiredAlert, Timeline, deploys_of, simulate
from simulator.rules import deploy_alert
from simulator.scenarios import BuildContext, get_scenario
from simulator.topology import SERVICES, ServiceSpec, default_graph

logger = logging.getLogger(__name__)

# Default start times are spread over the first 90 days of 2026, one per seed.
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
DUPLICATE_SHARE = 0.12
SERIES_PER_LINE = 40
ALERTS_PER_LINE = 1000


@dataclass
class ScenarioRun:
    """Metrics, alerts and ground truth of one run; ``ground_truth`` times are aware UTC."""

    scenario: str
    seed: int
    start: datetime
    end: datetime
    step_seconds: int
    alerts: list[Alert]
    series: list[MetricSeries]
    ground_truth: dict[str, Any]
    topology: list[tuple[str, str]] = field(default_factory=list)

    @property
    def graph(self) -> ServiceGraph:
        return ServiceGraph.from_pairs(self.topology)

    def header(self) -> dict[str, Any]:
        """Return the first line of the scenario file."""
        return {
            "type": "scenario",
            "name": self.scenario,
            "seed": self.seed,
            "start": iso(self.start),
            "end": iso(self.end),
            "step_seconds": self.step_seconds,
            "ground_truth": json_safe(self.ground_truth),
            "topology": [list(pair) for pair in self.topology],
        }

    def lines(self) -> list[dict[str, Any]]:
        """Return every line of the scenario file as a dict, header first."""
        out = [self.header()]
        for i in range(0, len(self.series), SERIES_PER_LINE):
            batch = self.series[i : i + SERIES_PER_LINE]
            out.append({"type": "metrics", "metrics": [series_dict(s) for s in batch]})
        for i in range(0, len(self.alerts), ALERTS_PER_LINE):
            batch = self.alerts[i : i + ALERTS_PER_LINE]
            out.append({"type": "alerts", "alerts": [a.to_dict(include_raw=False) for a in batch]})
        return out

    def write_jsonl(self, path: str | Path) -> Path:
        """Write the run as JSON Lines to ``path`` (parent folders are created)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as handle:
            for line in self.lines():
                handle.write(json.dumps(line, separators=(",", ":"), allow_nan=False))
                handle.write("\n")
        logger.debug("wrote %s: %d series, %d alerts", target, len(self.series), len(self.alerts))
        return target


def series_dict(series: MetricSeries) -> dict[str, Any]:
    """Return ``series.to_dict()``, formatting whole-second timestamps in one numpy call.

    ``to_dict`` builds a datetime per point, which dominates writing a storm of thousands of
    series; timestamps with fractions of a second still go through it.
    """
    stamps = series.timestamps
    if not np.array_equal(stamps, np.floor(stamps)):
        return series.to_dict()
    times = np.datetime_as_string(stamps.astype("datetime64[s]"), unit="s").tolist()
    values = [v if math.isfinite(v) else None for v in series.values.tolist()]
    return {
        "service": series.service,
        "metric": series.metric,
        "unit": series.unit,
        "kind": series.kind,
        "points": [[f"{t}Z", v] for t, v in zip(times, values, strict=True)],
    }


def default_start(seed: int, step_seconds: int = 60) -> datetime:
    """Return the start time used when none is given: fixed per seed, aligned to the step."""
    minutes = (seed * 7919) % (90 * 24 * 60)
    start = EPOCH + timedelta(minutes=minutes)
    offset = int(start.timestamp()) % step_seconds
    return start - timedelta(seconds=offset)


def scenario_rng(name: str, seed: int) -> np.random.Generator:
    """Return the generator of one (scenario, seed) pair; stable across Python processes."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def add_duplicates(
    alerts: list[Alert], rng: np.random.Generator, share: float = DUPLICATE_SHARE
) -> list[Alert]:
    """Return ``alerts`` plus repeated deliveries of a ``share`` of them, sorted by start.

    A repeat is an identical copy, as Alertmanager re-sends a firing group every
    ``repeat_interval``; it carries the same fingerprint and start time.
    """
    if not alerts:
        return []
    count = max(2, int(round(share * len(alerts))))
    picks = rng.choice(len(alerts), size=min(count, len(alerts)), replace=False)
    repeats = [Alert.from_dict(alerts[int(i)].to_dict()) for i in sorted(picks.tolist())]
    return sorted(alerts + repeats, key=lambda a: (a.starts_at, a.fingerprint))


def ground_truth_of(
    plan: FaultPlan,
    fault_start: float,
    fired: list[FiredAlert],
    background: Background,
    events: list[tuple[Alert, bool]],
) -> dict[str, Any]:
    """Build the ground truth of a run; times are aware datetimes."""
    labelled = [(f.alert, f.caused) for f in fired] + events
    incident = sorted({alert.fingerprint for alert, by_fault in labelled if by_fault})
    noise = sorted(
        {alert.fingerprint for alert, by_fault in labelled if not by_fault} - set(incident)
    )
    episodes: dict[str, int] = {}
    for f in fired:
        episodes[f.alert.fingerprint] = episodes.get(f.alert.fingerprint, 0) + 1
    start = datetime.fromtimestamp(fault_start, tz=UTC)
    onsets = plan.onsets()
    return {
        "root_cause": plan.root_cause,
        "fault_kind": plan.fault_kind,
        "scenario": plan.scenario,
        "start": start,
        "incident_fingerprints": incident,
        "noise_fingerprints": noise,
        "flapping_fingerprints": sorted(fp for fp, n in episodes.items() if n > 1),
        "affected_services": {
            name: start + timedelta(seconds=round(onsets.get(name, 0.0)))
            for name in sorted(plan.affected_services())
        },
        "noisy_series": [f"{s}/{m}" for s, m, _ in background.noisy_series],
        "restarts": [
            {"service": name, "at": start + timedelta(seconds=round(s))}
            for name, s in plan.restarts
        ],
        **plan.details,
    }


def run_plan(
    plan: FaultPlan,
    specs: dict[str, ServiceSpec],
    timeline: Timeline,
    rng: np.random.Generator,
) -> tuple[list[MetricSeries], list[FiredAlert], list[tuple[Alert, bool]], Background]:
    """Simulate a built plan with background noise.

    Return the series, the fired alerts, the deploy events (each with whether the fault caused
    it) and the background that was added.
    """
    duration = float(timeline.timestamps[-1] - timeline.start) + timeline.step_seconds
    background = plan_background(specs, plan, rng, timeline.start, duration, timeline.step_seconds)
    series, fired = simulate(specs, plan, background, timeline, rng)
    events = change_events(specs, deploys_of(plan, background, timeline))
    return series, fired, events, background


def change_events(specs: dict[str, ServiceSpec], deploys: list[Deploy]) -> list[tuple[Alert, bool]]:
    """Return one DeploymentRolledOut event per deploy, with whether the fault caused it."""
    return [(deploy_alert(specs[d.service], d.old, d.new, d.at), d.caused) for d in deploys]


def generate(
    scenario: str,
    seed: int,
    start: datetime | None = None,
    duration_minutes: int = 180,
    step_seconds: int = 60,
) -> ScenarioRun:
    """Generate one run of ``scenario``; the same arguments give the same run.

    The fault starts between 30% and 45% into the window, so every series has a healthy stretch
    to learn a baseline from. Raise ``KeyError`` for an unknown scenario and ``ValueError``
    for a window shorter than 30 samples.
    """
    definition = get_scenario(scenario)
    n_points = int(duration_minutes * 60 // step_seconds)
    if n_points < 30:
        raise ValueError(
            f"duration_minutes={duration_minutes} gives {n_points} samples at {step_seconds}s; "
            "at least 30 are needed"
        )
    rng = scenario_rng(scenario, seed)
    begin = utc(start) if start else default_start(seed, step_seconds)
    timestamps = begin.timestamp() + step_seconds * np.arange(n_points, dtype=np.float64)
    duration_s = float(n_points * step_seconds)
    fault_offset = float(np.round(rng.uniform(0.3, 0.45) * duration_s))
    timeline = Timeline(timestamps, float(step_seconds), begin.timestamp() + fault_offset)

    graph = default_graph()
    ctx = BuildContext(graph, SERVICES, rng, horizon_s=duration_s - fault_offset)
    plan = definition.plan(ctx)
    series, fired, events, background = run_plan(plan, SERVICES, timeline, rng)
    alerts = add_duplicates([f.alert for f in fired] + [event for event, _ in events], rng)
    truth = ground_truth_of(plan, timeline.fault_start, fired, background, events)
    logger.debug(
        "generated %s seed=%d root=%s: %d series, %d alerts",
        scenario, seed, plan.root_cause, len(series), len(alerts),
    )  # fmt: skip
    return ScenarioRun(
        scenario=scenario,
        seed=seed,
        start=begin,
        end=begin + timedelta(seconds=duration_s),
        step_seconds=step_seconds,
        alerts=alerts,
        series=series,
        ground_truth=truth,
        topology=graph.to_pairs(),
    )
