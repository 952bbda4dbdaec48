"""The SAM template: cfn-lint passes, and the tables, API and policy are what the code expects."""

from __future__ import annotations

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

    assert function["Handler"] == "lambda_handler.lambda_handler"
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
