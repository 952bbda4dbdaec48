"""Loader for the PetShop root-cause dataset (amazon-science/petshop-root-cause-analysis).

Layout of one dataset root::

    <scenario>/graph.csv                 call graph as an adjacency matrix
    <scenario>/noissue/metrics.csv       normal operation (absent for some scenarios)
    <scenario>/<split>/issue_N/metrics.csv
    <scenario>/<split>/issue_N/target.json

``metrics.csv`` has three header rows (component, metric, statistic), then one row per
``unix_timestamp`` every 5 minutes. ``graph.csv`` has the component names as both its first
column and its header row. A non-zero cell at (row A, column B) means A calls B: the PetSite
row has PetSearch_AWS::ECS::Fargate and the ELBs in front of the services as its columns, and
the ``*_client`` rows point at the service they call. That is the direction of
``ServiceGraph`` (caller -> callee), so edges are read as they are.

An issue file covers only about 25 minutes (5 rows), too short for the anomaly detector to
learn what normal looks like. ``with_history`` puts normal operation before the issue window
as the history the detector scores against.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from opsforge_core.models import MetricSeries
from opsforge_core.topology import ServiceGraph

logger = logging.getLogger(__name__)

STEP_SECONDS = 300.0
# Statistics reported under the metric's own name; the others get a suffix (latency_p90).
PLAIN_STATISTICS = {"Average", "Sum"}


@dataclass
class PetShopIssue:
    """One labelled issue: its metrics, the call graph, the reported symptom and the truth."""

    path: Path
    scenario: str
    series: list[MetricSeries]
    graph: ServiceGraph
    symptom: dict[str, Any]
    truth: dict[str, Any]


def metric_name(metric: str, statistic: str) -> str:
    return metric if statistic in PLAIN_STATISTICS else f"{metric}_{statistic}"


def read_metrics(path: Path) -> list[MetricSeries]:
    """Read a three-header ``metrics.csv`` into one series per (component, metric, statistic)."""
    frame = pd.read_csv(path, header=[0, 1, 2], index_col=0)
    timestamps = frame.index.to_numpy(dtype=np.float64)
    series = []
    for component, metric, statistic in frame.columns:
        values = pd.to_numeric(frame[(component, metric, statistic)], errors="coerce")
        kind = "gauge"
        unit = {"latency": "s", "availability": "%", "requests": "count"}.get(metric, "")
        series.append(
            MetricSeries(
                service=str(component),
                metric=metric_name(str(metric), str(statistic)),
                timestamps=timestamps,
                values=values.to_numpy(dtype=np.float64),
                unit=unit,
                kind=kind,
            )
        )
    return series


def read_graph(path: Path) -> ServiceGraph:
    """Read ``graph.csv``; a non-zero cell (row A, column B) is the edge A calls B."""
    matrix = pd.read_csv(path, index_col=0)
    graph = ServiceGraph()
    for caller in matrix.index:
        graph.edges.setdefault(str(caller), set())
        for callee in matrix.columns:
            if matrix.at[caller, callee] and str(caller) != str(callee):
                graph.add(str(caller), str(callee))
    return graph


def load_issue(
    issue_dir: str | Path,
) -> tuple[list[MetricSeries], ServiceGraph, dict[str, Any], dict[str, Any]]:
    """Return (series, graph, symptom, truth) of one ``issue_N`` folder.

    The graph is the scenario's ``graph.csv`` two levels up. ``symptom`` is
    ``{"service", "metric", "ts", "statistic"}``; ``truth`` contains ``root_cause`` (a component).
    """
    issue_dir = Path(issue_dir)
    target = json.loads((issue_dir / "target.json").read_text())
    scenario_dir = issue_dir.parent.parent
    symptom = {
        "service": target["target"]["node"],
        "metric": metric_name(target["target"]["metric"], target["target"].get("agg", "Average")),
        "ts": float(target["target"]["timestamp"]),
        "statistic": target["target"].get("agg", "Average"),
    }
    truth = {
        "root_cause": (target.get("root_cause") or {}).get("node"),
        "scenario": scenario_dir.name,
        "metadata": target.get("metadata") or {},
    }
    series = read_metrics(issue_dir / "metrics.csv")
    return series, read_graph(scenario_dir / "graph.csv"), symptom, truth


def load_normal(scenario_dir: str | Path) -> list[MetricSeries] | None:
    """Return the scenario's normal-operation series, or None when it has no ``noissue``."""
    path = Path(scenario_dir) / "noissue" / "metrics.csv"
    if not path.is_file():
        return None
    return read_metrics(path)


def issue_dirs(root: str | Path) -> list[Path]:
    """Return every ``issue_*`` folder under every split folder of every scenario, sorted."""
    root = Path(root)
    found = [p.parent for p in root.glob("*/*/issue_*/target.json")]
    return sorted(found, key=lambda p: (p.parent.parent.name, p.parent.name, _issue_number(p)))


def _issue_number(path: Path) -> int:
    suffix = path.name.rsplit("_", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def load_issues(root: str | Path) -> list[PetShopIssue]:
    issues = []
    for path in issue_dirs(root):
        series, graph, symptom, truth = load_issue(path)
        scenario = path.parent.parent.name
        issues.append(PetShopIssue(path, scenario, series, graph, symptom, truth))
    return issues


def normal_for(scenario_dir: str | Path) -> tuple[list[MetricSeries] | None, str | None]:
    """Return normal-operation series for a scenario and the scenario they came from.

    A scenario without its own ``noissue`` borrows the one of the sibling scenario sharing the
    most components of its call graph, because all scenarios record the same application.
    """
    scenario_dir = Path(scenario_dir)
    own = load_normal(scenario_dir)
    if own is not None:
        return own, scenario_dir.name
    nodes = set(read_graph(scenario_dir / "graph.csv").edges)
    candidates = []
    for sibling in sorted(scenario_dir.parent.iterdir()):
        if sibling == scenario_dir or not (sibling / "noissue" / "metrics.csv").is_file():
            continue
        shared = len(nodes & set(read_graph(sibling / "graph.csv").edges))
        candidates.append((shared, sibling))
    if not candidates:
        return None, None
    best = max(candidates, key=lambda pair: pair[0])[1]
    return load_normal(best), best.name


def with_history(
    window: list[MetricSeries],
    normal: list[MetricSeries] | None,
    reference_ts: float,
    length: int = 288,
    exclude: tuple[float, float] | None = None,
) -> list[MetricSeries]:
    """Prepend ``length`` points of normal operation to each series of a short window.

    The normal rows are re-timed to end one step before the window. They often come from
    another week, so a history whose level does not fit the window's rows before
    ``reference_ts`` is rescaled to it (multiplicatively for positive levels, else by an
    offset): then only the variability of normal operation is borrowed, not its level.
    ``exclude`` is a time range of the normal data to leave out, used when the window itself
    was cut from it.
    """
    by_key = {s.key: s for s in normal or []}
    result = []
    for series in window:
        history = by_key.get(series.key)
        if history is None or len(series) == 0:
            result.append(series)
            continue
        values = _history_values(history, exclude, length)
        values = _match_level(values, series, reference_ts)
        start = float(series.timestamps[0]) - STEP_SECONDS * values.size
        stamps = start + STEP_SECONDS * np.arange(values.size)
        result.append(
            MetricSeries(
                series.service,
                series.metric,
                np.concatenate([stamps, series.timestamps]),
                np.concatenate([values, series.values]),
                series.unit,
                series.kind,
            )
        )
    return result


def _history_values(
    history: MetricSeries, exclude: tuple[float, float] | None, length: int
) -> np.ndarray:
    keep = np.ones(len(history), dtype=bool)
    if exclude is not None:
        # NOTE: rows from after the excluded range count as history too, so a window cut
        # early in the normal data is scored against rows recorded after it.
        keep &= (history.timestamps < exclude[0]) | (history.timestamps > exclude[1])
    return history.values[keep][-length:]


def _match_level(values: np.ndarray, window: MetricSeries, reference_ts: float) -> np.ndarray:
    """Rescale ``values`` to the window's level when that level is outside normal operation.

    The window's level is the median of its rows whose 5-minute period ended by
    ``reference_ts`` (a row is stamped with the start of its period). A level inside the
    central 98% of ``values`` is left alone, so one noisy row does not rescale a history that
    already fits.
    """
    before = window.values[window.timestamps + STEP_SECONDS <= reference_ts]
    before = before[np.isfinite(before)]
    finite = values[np.isfinite(values)]
    if before.size == 0 or finite.size == 0:
        return values
    target = float(np.median(before))
    low, level, high = np.quantile(finite, [0.01, 0.5, 0.99])
    if low <= target <= high:
        return values
    if target > 0 and level > 0:
        return values * (target / level)
    return values + (target - level)
