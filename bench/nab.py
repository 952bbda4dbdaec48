"""Run the online anomaly scorer on NAB data files and score it by NAB's standard profile.

    python -m bench.nab --data ../shared/data/nab/data \\
        --labels ../shared/data/nab/labels/combined_windows.json --out /tmp/nab-results --json

Every CSV under ``--data`` (columns ``timestamp,value``) is scored by
``opsforge_core.agents.detect.score_online`` with no per-file settings. The only input besides
the values is the daily period, which follows from each file's median sampling step, as in a
scan. Results go
to ``OUT/<detector>/<category>/<detector>_<file>.csv`` in NAB's result format
(``timestamp,value,anomaly_score,label``); the summary is printed, as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.nab_scoring import FileRows, label_rows, sweep
from opsforge_core.agents.detect import daily_period, score_online

logger = logging.getLogger(__name__)


def _epoch(values: Any) -> np.ndarray:
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    # Divide by a Timedelta: the integer view depends on the resolution pandas picked.
    return ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(float)


def load_windows(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Read NAB's ``combined_windows.json``: relative file path to [start, end] timestamps."""
    raw = json.loads(path.read_text())
    windows = {}
    for name, pairs in raw.items():
        limits = [(_epoch([start])[0], _epoch([end])[0]) for start, end in pairs]
        windows[name] = limits
    return windows


def score_file(path: Path, relative: str, windows: list[tuple[float, float]]) -> FileRows:
    frame = pd.read_csv(path)
    values = frame["value"].to_numpy(dtype=np.float64)
    timestamps = _epoch(frame["timestamp"])
    step = float(np.median(np.diff(timestamps))) if timestamps.size > 1 else 0.0
    scores = score_online(values, period=daily_period(step, values.size))
    rows = label_rows(relative, timestamps, scores, windows)
    rows.timestamps_text = frame["timestamp"].astype(str).tolist()  # type: ignore[attr-defined]
    rows.values = values  # type: ignore[attr-defined]
    return rows


def write_result(out: Path, detector: str, relative: str, rows: FileRows) -> Path:
    category, filename = relative.split("/", 1) if "/" in relative else ("", relative)
    target = out / detector / category / f"{detector}_{filename}"
    target.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "timestamp": rows.timestamps_text,  # type: ignore[attr-defined]
            "value": rows.values,  # type: ignore[attr-defined]
            "anomaly_score": np.round(rows.scores, 6),
            "label": rows.labels,
        }
    )
    frame.to_csv(target, index=False)
    return target


def run(data: Path, labels: Path, out: Path, detector: str) -> dict[str, Any]:
    """Score every CSV under ``data`` and return the corpus summary."""
    windows = load_windows(labels)
    files = sorted(data.rglob("*.csv"))
    if not files:
        raise SystemExit(f"no CSV files found under {data}")

    started = time.perf_counter()
    scored: list[FileRows] = []
    for path in files:
        relative = path.relative_to(data).as_posix()
        if relative not in windows:
            logger.warning("%s has no entry in %s; scored with no windows", relative, labels)
        rows = score_file(path, relative, windows.get(relative, []))
        write_result(out, detector, relative, rows)
        scored.append(rows)
    elapsed = time.perf_counter() - started

    result = sweep(scored)
    categories: dict[str, list[FileRows]] = {}
    for rows in scored:
        categories.setdefault(rows.name.split("/")[0], []).append(rows)
    return {
        "detector": detector,
        "files": len(scored),
        "rows": int(sum(len(rows.scores) for rows in scored)),
        "windows": result.windows,
        "score": round(result.score, 2),
        "threshold": result.threshold,
        "raw": round(result.raw, 4),
        "null": round(result.null, 4),
        "perfect": round(result.perfect, 4),
        "seconds": round(elapsed, 2),
        "per_file": result.per_file,
        "categories": {
            name: _category_counts(result.per_file, items) for name, items in categories.items()
        },
    }


def _category_counts(per_file: dict[str, dict[str, float]], items: list[FileRows]) -> dict:
    counts = [per_file[rows.name] for rows in items]
    return {
        "files": len(items),
        "windows": sum(c["windows"] for c in counts),
        "detected_windows": sum(c["detected_windows"] for c in counts),
        "false_positives": sum(c["false_positives"] for c in counts),
        "raw": round(sum(c["raw"] for c in counts), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of NAB data CSVs")
    parser.add_argument("--labels", type=Path, required=True, help="combined_windows.json")
    parser.add_argument("--out", type=Path, required=True, help="folder for result CSVs")
    parser.add_argument("--detector", default="opsforge", help="name used in result paths")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    summary = run(args.data, args.labels, args.out, args.detector)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{summary['detector']}: NAB standard score {summary['score']:.1f} on "
        f"{summary['files']} files ({summary['windows']} windows), threshold "
        f"{summary['threshold']:.4f}, {summary['seconds']:.1f} s"
    )
    for name, counts in summary["per_file"].items():
        print(
            f"  {name}: {counts['detected_windows']}/{counts['windows']} windows, "
            f"{counts['false_positives']} false positives, raw {counts['raw']:+.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
