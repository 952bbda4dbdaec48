"""Run every evaluation and benchmark in turn: ``make bench`` / ``python -m bench.all``.

Each one runs as its own process with ``--json`` so a crash in one does not stop the rest;
the results are written to ``bench/results/summary.json`` and a short table is printed.
BENCHMARKS.md records the figures with the commands that produced them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"


def _commands(shared: Path) -> dict[str, list[str]]:
    return {
        "petshop": ["bench.petshop", "--data", str(shared / "petshop"), "--json"],
        "nab": [
            "bench.nab",
            "--data",
            str(shared / "nab" / "data"),
            "--labels",
            str(shared / "nab" / "labels" / "combined_windows.json"),
            "--out",
            str(RESULTS / "nab"),
            "--json",
        ],
        "simulator": ["bench.simulator_eval", "--seeds", "20", "--json"],
        "forecast": ["bench.forecast_eval", "--json"],
        "store": ["bench.store_bench", "--json"],
        "scale": ["bench.scale", "--json"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every OpsForge evaluation and benchmark.")
    parser.add_argument("--shared", default=str(SHARED), help="folder with petshop/ and nab/")
    parser.add_argument("--only", help="comma-separated names to run (default: all)")
    args = parser.parse_args(argv)

    commands = _commands(Path(args.shared))
    wanted = args.only.split(",") if args.only else list(commands)
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {}
    failed = 0
    for name in wanted:
        command = [sys.executable, "-m", *commands[name]]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            failed += 1
            print(f"   failed after {elapsed:.0f} s: {done.stderr.strip()[-2000:]}")
            summary[name] = {"error": done.stderr.strip()[-2000:]}
            continue
        try:
            summary[name] = json.loads(done.stdout)
        except json.JSONDecodeError:
            summary[name] = {"output": done.stdout[-4000:]}
        print(f"   done in {elapsed:.0f} s")
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"results in {RESULTS / 'summary.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
