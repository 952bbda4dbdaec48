"""Command line: list scenarios, write one scenario file, or run the live generator.

    python -m simulator --list
    python -m simulator --scenario memory_leak --seed 7 --out runs/memory_leak.jsonl
    python -m simulator --live --speed 60 --inject cpu_saturation

``--live`` writes into the store that the OPSFORGE_* settings select and runs until SIGINT or
SIGTERM (the systemd unit on EC2 stops it with SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from opsforge_core.config import Settings
from opsforge_core.errors import OpsForgeError
from opsforge_core.models import iso
from simulator.generate import generate
from simulator.live import LiveSimulator
from simulator.scenarios import SCENARIOS

logger = logging.getLogger("simulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="OpsForge fault simulator."
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="list the scenarios and exit")
    mode.add_argument("--scenario", help="scenario to generate into --out")
    mode.add_argument("--live", action="store_true", help="write live data into the store")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", help="JSON Lines file to write the scenario to")
    parser.add_argument(
        "--duration", type=int, default=180, help="length of a scenario run in minutes"
    )
    parser.add_argument("--step", type=int, default=60, help="seconds between samples")
    parser.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="live mode: simulated seconds per real second (default 60)",
    )
    parser.add_argument("--inject", help="live mode: scenario to inject at start")
    parser.add_argument(
        "--inject-after",
        type=float,
        default=0.0,
        help="live mode: real seconds to wait before injecting (default 0)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    return parser


def list_scenarios() -> str:
    width = max(len(name) for name in SCENARIOS)
    lines = []
    for scenario in SCENARIOS.values():
        roots = ", ".join(scenario.roots)
        lines.append(f"{scenario.name:<{width}}  {scenario.summary} (roots: {roots})")
    return "\n".join(lines)


def write_scenario(args: argparse.Namespace) -> int:
    if not args.out:
        print("error: --scenario needs --out FILE.jsonl", file=sys.stderr)
        return 2
    run = generate(args.scenario, args.seed, duration_minutes=args.duration,
                   step_seconds=args.step)  # fmt: skip
    path = run.write_jsonl(args.out)
    truth = run.ground_truth
    print(
        f"wrote {path}: {len(run.series)} series, {len(run.alerts)} alerts; "
        f"root cause {truth['root_cause']} ({truth['fault_kind']}) at {iso(truth['start'])}"
    )
    return 0


def run_live(args: argparse.Namespace) -> int:
    from opsforge_core.store import open_store

    store = open_store(Settings.from_env())
    simulator = LiveSimulator(store, speed=args.speed, seed=args.seed, step_seconds=args.step)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    simulator.start()
    try:
        if args.inject and not stop.wait(args.inject_after):
            simulator.inject(args.inject)
        while not stop.wait(60.0):
            status = simulator.status()
            logger.info(
                "clock %s, %d ticks, %d alerts sent, %d write errors",
                status["clock"].isoformat(), status["ticks"], status["alerts"], status["errors"],
            )  # fmt: skip
    finally:
        simulator.stop()
        store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.list:
        print(list_scenarios())
        return 0
    if args.scenario and args.scenario not in SCENARIOS:
        print(f"error: unknown scenario {args.scenario!r}; see --list", file=sys.stderr)
        return 2
    if args.inject and args.inject not in SCENARIOS:
        print(f"error: unknown scenario {args.inject!r} for --inject; see --list", file=sys.stderr)
        return 2
    try:
        return write_scenario(args) if args.scenario else run_live(args)
    except (OpsForgeError, OSError, ValueError) as exc:
        logger.error("simulator failed: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
