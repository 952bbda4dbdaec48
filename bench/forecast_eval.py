"""Evaluate time-to-limit forecasts on series whose crossing time is known.

    python -m bench.forecast_eval [--nab ../shared/data/nab/data] [--json]

There are three built cases: a disk filling linearly with noise, a memory leak (slow growth
under a garbage-collector sawtooth) and a leak whose process restarts before it reaches the
limit. ``--nab`` adds the NAB files whose values rise over the file (a Spearman correlation
with time of at least 0.45).
For those the limit is 95% of the median of the last 5% of points, and the true crossing is
where a one-day rolling median reaches it for good.

Each series is replayed: every ``--every`` points a forecast is made from the data so far. The
report gives, per case, the median absolute error of the predicted crossing as a share of the
time that was left, the share of forecasts whose 95% band held the true crossing, and the lead
time: how long before the true crossing the forecast first reported a crossing (or a breach)
and kept reporting it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from opsforge_core.agents.forecast import forecast_crossing
from opsforge_core.models import MetricSeries

STEP = 300.0  # seconds between samples of the synthetic series
SMOOTH = 288  # points in the rolling median that defines a NAB file's true crossing (a day)


@dataclass
class Case:
    name: str
    timestamps: np.ndarray
    values: np.ndarray
    limit: float
    crossing_ts: float


def disk_fill(seed: int = 0) -> Case:
    """Build a disk at 40% that gains 1.5 points an hour with noise, so it reaches 95% at 36.7 h."""
    rng = np.random.default_rng(seed)
    ts = np.arange(0, 48 * 3600, STEP)
    values = 40.0 + 1.5 * ts / 3600.0 + rng.normal(0.0, 0.4, ts.size)
    return Case("disk_fill_linear", ts, values, 95.0, (95.0 - 40.0) / 1.5 * 3600.0)


def memory_leak(seed: int = 1) -> Case:
    """Build a heap at 30% that leaks 0.8 points an hour under a 2-hour, 6-point GC sawtooth."""
    rng = np.random.default_rng(seed)
    ts = np.arange(0, 96 * 3600, STEP)
    sawtooth = 6.0 * ((ts % 7200.0) / 7200.0)
    values = 30.0 + 0.8 * ts / 3600.0 + sawtooth + rng.normal(0.0, 0.5, ts.size)
    smooth = pd.Series(values).rolling(24, min_periods=1).median().to_numpy()
    crossing = float(ts[np.argmax(smooth >= 95.0)]) if (smooth >= 95.0).any() else float(ts[-1])
    return Case("memory_leak_sawtooth", ts, values, 95.0, crossing)


def leak_with_restart(seed: int = 2) -> Case:
    """Build a heap leaking 2 points an hour that restarts at 10 h, so it reaches 95% at 37.5 h."""
    rng = np.random.default_rng(seed)
    ts = np.arange(0, 48 * 3600, STEP)
    hours = ts / 3600.0
    values = np.where(hours < 10.0, 60.0 + 2.0 * hours, 40.0 + 2.0 * (hours - 10.0))
    values = values + rng.normal(0.0, 0.3, ts.size)
    return Case("memory_leak_restart", ts, values, 95.0, 37.5 * 3600.0)


def nab_cases(folder: Path) -> list[Case]:
    """Return the NAB files that rise over time, with a limit they reach near the end."""
    cases = []
    for path in sorted(folder.rglob("*.csv")):
        frame = pd.read_csv(path)
        values = frame["value"].to_numpy(dtype=np.float64)
        if np.ptp(values) == 0:
            continue
        rho = stats.spearmanr(np.arange(values.size), values).statistic
        if not np.isfinite(rho) or rho < 0.45:
            continue
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
        ts = ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(float)
        limit = 0.95 * float(np.median(values[-max(10, values.size // 20) :]))
        smooth = pd.Series(values).rolling(SMOOTH, min_periods=SMOOTH).median().to_numpy()
        below = np.flatnonzero(~(smooth >= limit))
        # The crossing is where the smoothed series reaches the limit for good.
        if below.size and below[-1] + 1 < values.size:
            crossing = float(ts[below[-1] + 1])
            cases.append(Case(f"nab/{path.stem}", ts, values, limit, crossing))
    return cases


def replay(case: Case, every: int) -> dict[str, Any]:
    """Forecast from every ``every``-th prefix before the crossing and score the forecasts."""
    errors, inside, reports = [], [], []
    start = float(case.timestamps[0])
    for end in range(every, case.timestamps.size, every):
        now = float(case.timestamps[end - 1])
        if now >= case.crossing_ts:
            break
        series = MetricSeries("bench", case.name, case.timestamps[:end], case.values[:end])
        result = forecast_crossing(series, case.limit)
        crossing = result.status in ("crossing", "breached")
        reports.append((now, crossing))
        if crossing and result.crossing_ts is not None:
            remaining = case.crossing_ts - now
            errors.append(abs(result.crossing_ts - case.crossing_ts) / remaining)
            low = result.earliest_ts if result.earliest_ts is not None else now
            high = result.latest_ts if result.latest_ts is not None else np.inf
            inside.append(low <= case.crossing_ts <= high)
    first_kept = None
    for now, crossing in reversed(reports):
        if not crossing:
            break
        first_kept = now
    return {
        "case": case.name,
        "limit": round(case.limit, 4),
        "true_crossing_hours": round((case.crossing_ts - start) / 3600.0, 2),
        "forecasts": len(reports),
        "forecasts_with_crossing": len(errors),
        "median_relative_error": round(float(np.median(errors)), 4) if errors else None,
        "band_coverage": round(float(np.mean(inside)), 4) if inside else None,
        "lead_hours": round((case.crossing_ts - first_kept) / 3600.0, 2) if first_kept else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, help="NAB data folder; adds the rising NAB files")
    parser.add_argument("--every", type=int, default=12, help="points between forecasts")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    cases = [disk_fill(), memory_leak(), leak_with_restart()]
    if args.nab:
        cases += nab_cases(args.nab)
    results = [replay(case, args.every) for case in cases]
    if args.json:
        json.dump({"cases": results}, sys.stdout, indent=2)
        print()
        return 0
    for row in results:
        print(
            f"{row['case']}: crossing at {row['true_crossing_hours']} h, "
            f"median error {row['median_relative_error']} of the time left, "
            f"band coverage {row['band_coverage']}, warned {row['lead_hours']} h ahead"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
