"""Root-cause recall and specificity on the PetShop dataset.

    python -m bench.petshop --data ../shared/data/petshop [--json]

For every issue under every split folder of every scenario, the root-cause agent ranks the
components given the symptom (``target.json``) and the call graph, and the rank of the true
root cause is recorded: top-1 and top-3 recall per scenario and per symptom metric.

Specificity: the scenario's ``noissue/metrics.csv`` (normal operation) is cut into windows as
long as an issue's, each given the same symptom targets as the issues; a window counts as
correct when the agent names no root cause. The history each window is scored against leaves
out the window itself and the rows around it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from opsforge_core.agents.base import AnalysisContext
from opsforge_core.agents.rootcause import RootCauseAgent
from opsforge_core.models import MetricSeries
from opsforge_core.petshop import (
    STEP_SECONDS,
    PetShopIssue,
    load_issues,
    normal_for,
    read_graph,
    with_history,
)

logger = logging.getLogger(__name__)


def diagnose(
    series: list[MetricSeries], graph, symptom: dict[str, Any], agent: RootCauseAgent
) -> dict[str, Any]:
    """Run the root-cause agent on one window; return its findings."""
    ctx = AnalysisContext(alerts=[], series=series, graph=graph, symptom=symptom)
    result = agent.execute(ctx)
    if result.status != "ok":
        raise RuntimeError(f"root-cause agent failed: {result.error}")
    return result.findings


def evaluate_issue(issue: PetShopIssue, normal, agent: RootCauseAgent) -> dict[str, Any]:
    series = with_history(issue.series, normal, issue.symptom["ts"])
    findings = diagnose(series, issue.graph, issue.symptom, agent)
    ranked = [entry["service"] for entry in findings["ranking"]]
    truth = issue.truth["root_cause"]
    rank = ranked.index(truth) + 1 if truth in ranked else None
    return {
        "issue": f"{issue.scenario}/{issue.path.parent.name}/{issue.path.name}",
        "scenario": issue.scenario,
        "metric": issue.symptom["metric"],
        "truth": truth,
        "predicted": findings["root_cause"],
        "top3": ranked[:3],
        "rank": rank,
    }


def normal_windows(
    normal: list[MetricSeries], issues: list[PetShopIssue], stride: int
) -> list[tuple[list[MetricSeries], float, tuple[float, float]]]:
    """Cut normal operation into issue-sized windows; return (window, symptom ts, excluded)."""
    length = len(issues[0].series[0])
    offsets = [i.symptom["ts"] - float(i.series[0].timestamps[0]) for i in issues]
    offset = float(np.median(offsets))
    stamps = normal[0].timestamps
    windows = []
    for start in range(0, stamps.size - length + 1, stride):
        first, last = float(stamps[start]), float(stamps[start + length - 1])
        cut = [_slice(s, first, last) for s in normal]
        margin = length * STEP_SECONDS
        windows.append((cut, first + offset, (first - margin, last + margin)))
    return windows


def _slice(series: MetricSeries, first: float, last: float) -> MetricSeries:
    keep = (series.timestamps >= first) & (series.timestamps <= last)
    return MetricSeries(
        series.service,
        series.metric,
        series.timestamps[keep],
        series.values[keep],
        series.unit,
        series.kind,
    )


def evaluate_specificity(
    scenario_dir: Path, issues: list[PetShopIssue], agent: RootCauseAgent, stride: int
) -> list[dict[str, Any]]:
    from opsforge_core.petshop import load_normal

    normal = load_normal(scenario_dir)
    if normal is None:
        return []
    graph = read_graph(scenario_dir / "graph.csv")
    targets = sorted({(i.symptom["service"], i.symptom["metric"]) for i in issues})
    outcomes = []
    for window, symptom_ts, excluded in normal_windows(normal, issues, stride):
        for service, metric in targets:
            symptom = {"service": service, "metric": metric, "ts": symptom_ts}
            series = with_history(window, normal, symptom_ts, exclude=excluded)
            findings = diagnose(series, graph, symptom, agent)
            outcomes.append(
                {
                    "scenario": scenario_dir.name,
                    "metric": metric,
                    "start": float(window[0].timestamps[0]),
                    "predicted": findings["root_cause"],
                }
            )
    return outcomes


def summarize(results: list[dict[str, Any]], normal: list[dict[str, Any]]) -> dict[str, Any]:
    def recall(rows: list[dict[str, Any]], k: int) -> float:
        hits = sum(1 for r in rows if r["rank"] is not None and r["rank"] <= k)
        return round(hits / len(rows), 4) if rows else float("nan")

    def specificity(rows: list[dict[str, Any]]) -> float | None:
        if not rows:
            return None
        return round(sum(1 for r in rows if r["predicted"] is None) / len(rows), 4)

    per_scenario: dict[str, Any] = {}
    by_scenario: dict[str, list] = defaultdict(list)
    for row in results:
        by_scenario[row["scenario"]].append(row)
    for scenario, rows in sorted(by_scenario.items()):
        metrics: dict[str, Any] = {}
        for metric in sorted({r["metric"] for r in rows}):
            subset = [r for r in rows if r["metric"] == metric]
            quiet = [n for n in normal if n["scenario"] == scenario and n["metric"] == metric]
            metrics[metric] = {
                "issues": len(subset),
                "top1": recall(subset, 1),
                "top3": recall(subset, 3),
                "specificity": specificity(quiet),
                "normal_windows": len(quiet),
            }
        quiet = [n for n in normal if n["scenario"] == scenario]
        per_scenario[scenario] = {
            "issues": len(rows),
            "top1": recall(rows, 1),
            "top3": recall(rows, 3),
            "specificity": specificity(quiet),
            "per_metric": metrics,
        }
    return {
        "issues": len(results),
        "top1": recall(results, 1),
        "top3": recall(results, 3),
        "specificity": specificity(normal),
        "normal_windows": len(normal),
        "per_scenario": per_scenario,
        "results": results,
    }


def run(data: Path, stride: int = 1) -> dict[str, Any]:
    agent = RootCauseAgent()
    issues = load_issues(data)
    if not issues:
        raise SystemExit(f"no issue folders with target.json found under {data}")
    results, normal_outcomes, notes = [], [], {}
    by_scenario: dict[Path, list[PetShopIssue]] = defaultdict(list)
    for issue in issues:
        by_scenario[issue.path.parent.parent].append(issue)
    for scenario_dir, scenario_issues in sorted(by_scenario.items()):
        normal, source = normal_for(scenario_dir)
        notes[scenario_dir.name] = f"history from {source}/noissue" if source else "no history"
        for issue in scenario_issues:
            results.append(evaluate_issue(issue, normal, agent))
        normal_outcomes.extend(evaluate_specificity(scenario_dir, scenario_issues, agent, stride))
    summary = summarize(results, normal_outcomes)
    summary["history"] = notes
    return summary


def _print_table(summary: dict[str, Any]) -> None:
    print(f"{'scenario':<20} {'metric':<14} {'issues':>6} {'top1':>6} {'top3':>6} {'spec':>6}")
    for scenario, entry in summary["per_scenario"].items():
        for metric, row in entry["per_metric"].items():
            spec = "-" if row["specificity"] is None else f"{row['specificity']:.2f}"
            print(
                f"{scenario:<20} {metric:<14} {row['issues']:>6} {row['top1']:>6.2f} "
                f"{row['top3']:>6.2f} {spec:>6}"
            )
    print(
        f"{'all':<20} {'':<14} {summary['issues']:>6} {summary['top1']:>6.2f} "
        f"{summary['top3']:>6.2f} {summary['specificity'] or 0:>6.2f}"
        f"  ({summary['normal_windows']} normal windows)"
    )
    for row in summary["results"]:
        if row["rank"] != 1:
            print(f"miss {row['issue']}: predicted {row['predicted']}, top3 {row['top3']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="PetShop dataset root folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--stride", type=int, default=1, help="rows between normal windows (default 1)"
    )
    args = parser.parse_args(argv)
    summary = run(args.data, args.stride)
    if args.json:
        json.dump(summary, sys.stdout, indent=2, default=str)
        print()
    else:
        _print_table(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
