"""``python -m opsforge_core analyze`` on real payloads, a simulator file and PetShop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PAYLOADS = [
    "alertmanager_webhook_mixed.json",
    "cloudwatch_alarm_state_change.json",
    "cloudwatch_alarm_sns.json",
    "eventbridge_opsforge_alerts.json",
    "eventbridge_opsforge_metrics.json",
    "pagerduty_events_v2_trigger.json",
]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OPSFORGE_SQLITE_PATH": str(tmp_path / "opsforge.db"),
        "OPSFORGE_LLM_PROVIDER": "offline",
    }
    return subprocess.run(
        [sys.executable, "-m", "opsforge_core", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=240,
    )


@pytest.mark.parametrize("name", PAYLOADS)
def test_analyze_prints_full_report(tmp_path: Path, events_dir: Path, name: str) -> None:
    result = _cli(tmp_path, "analyze", str(events_dir / name))
    assert result.returncode == 0, result.stderr
    assert "Incident inc-" in result.stdout
    assert "Agents (relevance score and reason):" in result.stdout
    assert "Synthesis" in result.stdout
    assert "root cause:" in result.stdout


def test_analyze_json_has_every_part(tmp_path: Path, events_dir: Path) -> None:
    result = _cli(
        tmp_path, "analyze", str(events_dir / "alertmanager_webhook_mixed.json"), "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["incident_id"].startswith("inc-")
    assert report["synthesis"]["root_cause"] == "checkout"
    assert {a["name"] for a in report["agents"]} == {"alertops", "predictiveops", "rootcause"}
    assert len(report["alerts"]) == 2


def test_analyze_simulator_file_names_ground_truth(tmp_path: Path) -> None:
    scenario = tmp_path / "pool.jsonl"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "--scenario",
            "db_connection_pool_exhaustion",
            "--seed",
            "7",
            "--out",
            str(scenario),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    result = _cli(tmp_path, "analyze", str(scenario), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["synthesis"]["root_cause"] == report["ground_truth"]["root_cause"]


def test_analyze_petshop_issue_names_component(tmp_path: Path, shared_data: Path) -> None:
    issue = shared_data / "petshop" / "low_traffic" / "train" / "issue_0"
    result = _cli(tmp_path, "analyze", str(issue), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    header = (issue / "metrics.csv").read_text().splitlines()[0].split(",")
    assert report["synthesis"]["root_cause"] in header


def test_analyze_missing_file_is_clear_error(tmp_path: Path) -> None:
    result = _cli(tmp_path, "analyze", str(tmp_path / "absent.json"))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_analyze_unknown_agent_is_clear_error(tmp_path: Path, events_dir: Path) -> None:
    path = str(events_dir / "alertmanager_webhook_mixed.json")
    result = _cli(tmp_path, "analyze", path, "--agents", "oracle")
    assert result.returncode == 1
    assert "unknown agent" in result.stderr
    assert "Traceback" not in result.stderr


def test_analyze_folder_without_target_is_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "noissue"
    folder.mkdir()
    (folder / "metrics.csv").write_text("microservice,a\nmetric,latency\nstatistic,Average\n")
    result = _cli(tmp_path, "analyze", str(folder))
    assert result.returncode == 2
    assert "no target.json" in result.stderr
    assert "Traceback" not in result.stderr
