"""The SAM template: cfn-lint passes, and the tables, API and policy are what the code expects."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from opsforge_core.config import Settings
from opsforge_core.store.dynamodb_schema import table_definitions

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "sam" / "template.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return cfn_yaml.load(str(TEMPLATE))["Resources"]


def _keys(table: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in table["Properties"]["KeySchema"]]


def test_template_passes_cfn_lint() -> None:
    result = subprocess.run(
        [str(CFN_LINT), str(TEMPLATE)], capture_output=True, text=True, timeout=120
    )

    # cfn-lint exit code bits: 2 errors, 4 warnings, 8 informational.
    assert result.returncode == 0, result.stdout + result.stderr


def test_tables_have_design_keys(resources: dict[str, Any]) -> None:
    tables = {
        "IncidentMemoryTable": [("incident_id", "HASH")],
        "PatternLibraryTable": [("pattern_id", "HASH")],
        "AgentKnowledgeTable": [("agent_name", "HASH"), ("knowledge_key", "RANGE")],
        "EventFeedTable": [("feed_id", "HASH"), ("ts", "RANGE")],
    }
    for name, keys in tables.items():
        table = resources[name]
        assert _keys(table) == keys, name
        recovery = table["Properties"]["PointInTimeRecoverySpecification"]
        assert recovery["PointInTimeRecoveryEnabled"] is True, name
    ttl = resources["EventFeedTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires_at", "Enabled": True}


def test_tables_match_store_schema(resources: dict[str, Any]) -> None:
    names = Settings().table_names
    logical = {
        "incidents": "IncidentMemoryTable",
        "patterns": "PatternLibraryTable",
        "knowledge": "AgentKnowledgeTable",
        "feed": "EventFeedTable",
    }
    for name, expected in table_definitions(names).items():
        declared = resources[logical[name]]["Properties"]
        assert declared["KeySchema"] == expected["KeySchema"], name
        assert sorted(declared["AttributeDefinitions"], key=str) == sorted(
            expected["AttributeDefinitions"], key=str
        ), name
        assert declared.get("GlobalSecondaryIndexes", []) == expected.get(
            "GlobalSecondaryIndexes", []
        ), name
        assert declared["BillingMode"] == "PAY_PER_REQUEST", name


def test_table_names_match_settings(resources: dict[str, Any]) -> None:
    names = Settings(table_prefix="${TablePrefix}").table_names
    declared = {
        "incidents": resources["IncidentMemoryTable"]["Properties"]["TableName"]["Fn::Sub"],
        "patterns": resources["PatternLibraryTable"]["Properties"]["TableName"]["Fn::Sub"],
        "knowledge": resources["AgentKnowledgeTable"]["Properties"]["TableName"]["Fn::Sub"],
        "feed": resources["EventFeedTable"]["Properties"]["TableName"]["Fn::Sub"],
    }

    assert declared == names


def test_function_routes_and_environment(resources: dict[str, Any]) -> None:
    function = resources["OpsForgeFunction"]["Properties"]
    events = function["Events"]
    variables = function["Environment"]["Variables"]

    assert function["PackageType"] == "Image"
    assert events["Analyze"]["Properties"]["Path"] == "/analyze"
    assert events["Analyze"]["Properties"]["Method"] == "post"
    assert events["Analyze"]["Properties"]["Auth"]["ApiKeyRequired"] is True
    sources = sorted(
        e["Properties"]["Pattern"]["source"][0]
        for e in events.values()
        if e["Type"] == "EventBridgeRule"
    )
    assert sources == ["aws.cloudwatch", "opsforge.alerts", "opsforge.metrics"]
    assert variables["OPSFORGE_STORE"] == "dynamodb"
    assert variables["OPSFORGE_MODEL_ID"] == {"Ref": "ModelId"}
    assert variables["OPSFORGE_TABLE_PREFIX"] == {"Ref": "TablePrefix"}


def test_policy_limited_to_tables_and_model(resources: dict[str, Any]) -> None:
    statements = resources["OpsForgeFunction"]["Properties"]["Policies"][0]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}

    assert sorted(by_sid) == ["BedrockModel", "StoreTables"]
    for statement in statements:
        assert statement["Resource"] != "*"
        assert "*" not in statement["Resource"]
        assert all(not action.endswith("*") for action in statement["Action"])
    assert sorted(by_sid["BedrockModel"]["Action"]) == [
        "bedrock:InvokeModel",
        "bedrock:InvokeModelWithResponseStream",
    ]
    model_arns = [r for r in by_sid["BedrockModel"]["Resource"] if "Fn::Sub" in r]
    assert all("${ModelId}" in r["Fn::Sub"] for r in model_arns)
    table_refs = {
        r.get("Fn::GetAtt", [r.get("Fn::Sub", "").split(".")[0].strip("${")])[0]
        for r in by_sid["StoreTables"]["Resource"]
    }
    assert table_refs == {
        "IncidentMemoryTable",
        "PatternLibraryTable",
        "AgentKnowledgeTable",
        "EventFeedTable",
    }


def test_image_builds_from_repository(resources: dict[str, Any]) -> None:
    metadata = resources["OpsForgeFunction"]["Metadata"]
    context = (TEMPLATE.parent / metadata["DockerContext"]).resolve()
    dockerfile = (context / metadata["Dockerfile"]).read_text()

    assert context == TEMPLATE.parents[2]
    assert 'CMD ["lambda_handler.lambda_handler"]' in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            source = line.split()[1]
            assert (context / source).exists(), source


# Packages the python3.12 Lambda base image provides without a requirements entry.
BASE_IMAGE_PACKAGES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
IMPORT_PROBE = """
import json, sys
blocked = ["plotly", "streamlit", "fastapi", "uvicorn", "starlette", "anthropic", "httpx",
           "networkx", "matplotlib", "pydantic"]
for name in blocked:
    sys.modules[name] = None
sys.path.insert(0, sys.argv[1])
import lambda_handler
event = json.load(open(sys.argv[2]))
response = lambda_handler.lambda_handler(event, None)
loaded = sorted({m.split(".")[0] for m, v in sys.modules.items() if v is not None})
print(json.dumps({"status": response["statusCode"], "modules": loaded}))
"""


def test_image_requirements_cover_imports(events_dir: Path, tmp_path: Path) -> None:
    requirements = (TEMPLATE.parent / "requirements.txt").read_text().splitlines()
    declared = {
        line.split(">")[0].split("=")[0].strip().lower()
        for line in requirements
        if line.strip() and not line.startswith("#")
    }
    env = {
        "PATH": "/usr/bin:/bin",
        "OPSFORGE_SQLITE_PATH": str(tmp_path / "opsforge.db"),
        "OPSFORGE_LLM_PROVIDER": "offline",
    }
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            IMPORT_PROBE,
            str(TEMPLATE.parent),
            str(events_dir / "apigw_v1_analyze.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=TEMPLATE.parents[2],
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    # Only what the core imports itself counts; pandas, for one, loads optional extras when
    # the test environment has them.
    imported = _core_imports() & set(result["modules"])
    third_party = {
        name for name in imported if name not in sys.stdlib_module_names and name != "opsforge_core"
    }

    assert result["status"] == 200
    assert third_party - declared - BASE_IMAGE_PACKAGES == set()
    assert {"numpy", "scipy"} <= third_party


def _core_imports() -> set[str]:
    """Top-level module names that ``import`` and ``from`` lines of opsforge_core name."""
    pattern = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
    names: set[str] = set()
    for path in (TEMPLATE.parents[2] / "opsforge_core").rglob("*.py"):
        names.update(pattern.findall(path.read_text()))
    return names
