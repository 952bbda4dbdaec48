"""Root-cause accuracy, time to diagnosis, alert compression and grouping on simulator runs.

    python -m bench.simulator_eval [--seeds 20] [--json]

Every scenario runs once per seed (1..N). The default agents and selector analyse each run the
way the console does, with the scenario's topology as the dependency graph:

- top-1: the root-cause agent's ``root_cause`` equals the ground truth on the whole run;
- time to diagnosis: the run is cut at growing prefixes after the fault start (every
  ``--step`` minutes) and analysed again; the first prefix with the right root cause counts;
- compression: 1 - groups out / alerts in, from AlertOps;
- grouping: the AlertOps group that overlaps the ground-truth ``incident_fingerprints`` most
  is compared with them (precision, recall, F1 over fingerprints).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from opsforge_core.agents import AgentSelector, default_agents
from opsforge_core.agents.base import AnalysisContext
from opsforge_core.models import AgentResult, Alert, MetricSeries
from opsforge_core.topology import ServiceGraph
from simulator import SCENARIOS, generate

logger = logging.getLogger(__name__)


def analyse(
    alerts: list[Alert], series: list[MetricSeries], graph: ServiceGraph
) -> dict[str, AgentResult]:
    """Run the selected default agents on one context; return their results by name."""
    agents = default_agents()
    ctx = AnalysisContext(alerts=alerts, series=series, graph=graph)
    choices = AgentSelector(agents).score(ctx)
    by_name = {agent.name: agent for agent in agents}
    return {c.name: by_name[c.name].execute(ctx, c.score, c.reason) for c in choices if c.selected}


def prefix(
    alerts: list[Alert], series: list[MetricSeries], cut: datetime
) -> tuple[list[Alert], list[MetricSeries]]:
    """Return the alerts and series as they looked at ``cut``."""
    seen = []
    for alert in alerts:
        if alert.starts_at > cut:
            continue
        if alert.ends_at is not None and alert.ends_at > cut:
            alert = Alert.from_dict({**alert.to_dict(), "status": "firing", "ends_at": None})
        seen.append(alert)
    limit = cut.timestamp()
    cut_series = []
    for s in series:
        keep = s.timestamps <= limit
        cut_series.append(
            MetricSeries(s.service, s.metric, s.timestamps[keep], s.values[keep], s.unit, s.kind)
        )
    return seen, cut_series


def grouping_scores(groups: list[dict[str, Any]], incident: set[str]) -> dict[str, float]:
    best: set[str] = set()
    for group in groups:
        members = set(group["fingerprints"])
        if len(members & incident) > len(best & incident):
            best = members
    hits = len(best & incident)
    precision = hits / len(best) if best else 0.0
    recall = hits / len(incident) if incident else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def time_to_diagnosis(
    run, graph: ServiceGraph, step_minutes: int, horizon_minutes: int
) -> int | None:
    """Return the minutes after the fault start of the first prefix diagnosed right, or None.

    A ``horizon_minutes`` of 0 tries prefixes up to the end of the run.
    """
    start = run.ground_truth["start"]
    truth = run.ground_truth["root_cause"]
    if horizon_minutes <= 0:
        horizon_minutes = int((run.end - start).total_seconds() // 60)
    for minutes in range(step_minutes, horizon_minutes + 1, step_minutes):
        cut = start + timedelta(minutes=minutes)
        if cut > run.end:
            break
        alerts, series = prefix(run.alerts, run.series, cut)
        rootcause = analyse(alerts, series, graph).get("rootcause")
        if rootcause is not None and rootcause.findings.get("root_cause") == truth:
            return minutes
    return None


def evaluate_run(scenario: str, seed: int, step: int, horizon: int) -> dict[str, Any]:
    run = generate(scenario, seed)
    graph = run.graph
    results = analyse(run.alerts, run.series, graph)
    rootcause = results.get("rootcause")
    alertops = results.get("alertops")
    findings = rootcause.findings if rootcause and rootcause.status == "ok" else {}
    groups = alertops.findings.get("groups", []) if alertops else []
    compression = alertops.findings.get("compression", {}).get("ratio") if alertops else None
    truth = run.ground_truth
    ranked = [entry["service"] for entry in findings.get("ranking", [])]
    return {
        "scenario": scenario,
        "seed": seed,
        "truth": truth["root_cause"],
        "predicted": findings.get("root_cause"),
        "top3": ranked[:3],
        "fault_kind": findings.get("fault_kind"),
        "truth_kind": truth["fault_kind"],
        "minutes_to_diagnosis": time_to_diagnosis(run, graph, step, horizon) if step else None,
        "alerts_in": len(run.alerts),
        "groups_out": len(groups),
        "compression": compression,
        **grouping_scores(groups, set(truth["incident_fingerprints"])),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def block(subset: list[dict[str, Any]]) -> dict[str, Any]:
        times = [r["minutes_to_diagnosis"] for r in subset if r["minutes_to_diagnosis"] is not None]
        compressions = [r["compression"] for r in subset if r["compression"] is not None]
        return {
            "runs": len(subset),
            "top1": round(sum(r["predicted"] == r["truth"] for r in subset) / len(subset), 4),
            "fault_kind": round(
                sum(r["fault_kind"] == r["truth_kind"] for r in subset) / len(subset), 4
            ),
            "median_minutes_to_diagnosis": statistics.median(times) if times else None,
            "diagnosed": len(times),
            "compression": round(statistics.mean(compressions), 4) if compressions else None,
            "grouping_precision": round(statistics.mean(r["precision"] for r in subset), 4),
            "grouping_recall": round(statistics.mean(r["recall"] for r in subset), 4),
            "grouping_f1": round(statistics.mean(r["f1"] for r in subset), 4),
        }

    by_scenario: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_scenario[row["scenario"]].append(row)
    return {
        **block(rows),
        "per_scenario": {name: block(subset) for name, subset in sorted(by_scenario.items())},
        "misses": [r for r in rows if r["predicted"] != r["truth"]],
    }


def run(seeds: int, scenarios: list[str], step: int, horizon: int) -> dict[str, Any]:
    rows = [
        evaluate_run(scenario, seed, step, horizon)
        for scenario in scenarios
        for seed in range(1, seeds + 1)
    ]
    return summarize(rows)


def _print_table(summary: dict[str, Any]) -> None:
    header = f"{'scenario':<32} {'top1':>5} {'kind':>5} {'ttd':>5} {'compr':>6} {'F1':>5}"
    print(header)
    for name, row in [*summary["per_scenario"].items(), ("all", summary)]:
        ttd = row["median_minutes_to_diagnosis"]
        print(
            f"{name:<32} {row['top1']:>5.2f} {row['fault_kind']:>5.2f} "
            f"{'-' if ttd is None else ttd:>5} {row['compression'] or 0:>6.3f} "
            f"{row['grouping_f1']:>5.2f}"
        )
    for miss in summary["misses"]:
        print(
            f"miss {miss['scenario']} seed {miss['seed']}: truth {miss['truth']}, "
            f"predicted {miss['predicted']}, top3 {miss['top3']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per scenario (1..N)")
    parser.add_argument(
        "--scenario", action="append", help="scenario to run (repeatable; default all)"
    )
    parser.add_argument(
        "--step", type=int, default=5, help="minutes between prefixes; 0 skips time to diagnosis"
    )
    parser.add_argument(
        "--horizon",
        type=int,
        default=0,
        help="longest prefix after the fault start, in minutes; 0 means the end of the run",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    scenarios = args.scenario or list(SCENARIOS)
    summary = run(args.seeds, scenarios, args.step, args.horizon)
    if args.json:
        json.dump(summary, sys.stdout, indent=2, default=str)
        print()
    else:
        _print_table(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
