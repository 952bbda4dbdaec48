"""``python -m simulator``: listing, writing scenario files, and live mode under SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from opsforge_core.config import Settings
from opsforge_core.ingest import parse_file
from opsforge_core.store import open_store
from simulator.__main__ import main
from simulator.generate import generate
from simulator.scenarios import SCENARIOS
from tests.conftest import REPO_ROOT


def test_cli_list_names_every_scenario(capsys) -> None:
    assert main(["--list"]) == 0
    output = capsys.readouterr().out
    for name in SCENARIOS:
        assert name in output


def test_cli_scenario_writes_file_that_ingest_reads(tmp_path, capsys) -> None:
    out = tmp_path / "runs" / "disk.jsonl"
    assert main(["--scenario", "disk_filling", "--seed", "4", "--out", str(out)]) == 0
    assert "root cause" in capsys.readouterr().out
    expected = generate("disk_filling", 4)
    batch = parse_file(out)
    assert not batch.rejected
    assert [a.fingerprint for a in batch.alerts] == [a.fingerprint for a in expected.alerts]
    assert [a.starts_at for a in batch.alerts] == [a.starts_at for a in expected.alerts]
    assert [a.status for a in batch.alerts] == [a.status for a in expected.alerts]
    assert [s.key for s in batch.series] == [s.key for s in expected.series]
    for parsed, original in zip(batch.series, expected.series, strict=True):
        assert parsed.kind == original.kind
        assert parsed.timestamps.tolist() == original.timestamps.tolist()
        assert max(abs(parsed.values - original.values)) < 1e-6 * max(1.0, original.values.max())
    assert sorted(batch.topology) == sorted(expected.topology)
    truth = batch.scenario["ground_truth"]
    assert truth["root_cause"] == expected.ground_truth["root_cause"]
    assert truth["fault_kind"] == "disk_filling"
    assert truth["incident_fingerprints"] == expected.ground_truth["incident_fingerprints"]


def test_cli_rejects_unknown_scenario_and_missing_out(capsys) -> None:
    assert main(["--scenario", "no_such_fault", "--out", "x.jsonl"]) == 2
    assert main(["--scenario", "cpu_saturation"]) == 2
    assert main(["--live", "--inject", "no_such_fault"]) == 2
    errors = capsys.readouterr().err
    assert "no_such_fault" in errors
    assert "--out" in errors


def test_cli_live_writes_store_and_stops_on_sigterm(tmp_path) -> None:
    db = tmp_path / "live.db"
    env = {**os.environ, "OPSFORGE_STORE": "sqlite", "OPSFORGE_SQLITE_PATH": str(db)}
    command = [sys.executable, "-m", "simulator", "--live", "--speed", "1200",
               "--inject", "cache_failure", "--seed", "3"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        fired = _wait_for_redis_alert(db, timeout=30.0)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert fired, "no CacheHitRateLow alert on redis reached the store"
    assert process.returncode == 0, output
    assert "injected cache_failure" in output
    assert "live simulator stopped" in output


def _wait_for_redis_alert(db, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if not db.exists():
            continue
        store = open_store(Settings(sqlite_path=str(db)))
        try:
            alerts = store.recent_alerts().items
            metrics = store.recent_metrics()
        finally:
            store.close()
        names = {a.name for a in alerts if a.service == "redis"}
        if "CacheHitRateLow" in names and metrics:
            return True
    return False
