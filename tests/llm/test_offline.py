from __future__ import annotations

from opsforge_core.llm import offline_synthesis, synthesize
from opsforge_core.llm.runbooks import RUNBOOKS
from opsforge_core.models import AgentResult

from .helpers import make_alert, make_request, predictive_result


def test_offline_uses_rootcause_finding():
    result = offline_synthesis(make_request())
    assert result.root_cause == "db"
    assert result.provider == "offline"
    assert result.model_id == "rules-v1"
    assert result.severity == "critical"
    assert result.fallback is False
    assert "rootcause.ranking[0]" in result.evidence
    assert "predictiveops.anomalies[1]" in result.evidence
    assert result.confidence == 0.9


def test_offline_summary_names_cause_kind_radius():
    summary = offline_synthesis(make_request()).summary
    assert "db" in summary
    assert "db connection pool exhaustion" in summary
    assert "api, web" in summary
    # The earliest anomaly comes first in the summary.
    assert summary.index("db/connections") < summary.index("api/errors")


def test_offline_actions_follow_fault_kind():
    result = offline_synthesis(make_request())
    assert len(result.actions) == len(RUNBOOKS["db_connection_pool_exhaustion"])
    assert all("{service}" not in a for a in result.actions)
    assert "db" in result.actions[0]


def test_offline_falls_back_to_rule_root_cause():
    request = make_request([predictive_result()], rule_root_cause="cache")
    assert offline_synthesis(request).root_cause == "cache"


def test_offline_falls_back_to_earliest_anomaly():
    result = offline_synthesis(make_request([predictive_result()]))
    assert result.root_cause == "db"
    assert result.evidence[0] == "predictiveops.anomalies[1]"


def test_offline_falls_back_to_earliest_alert():
    failed = AgentResult(agent="rootcause", status="failed", error="boom")
    alerts = [make_alert("web", minutes=9), make_alert("queue", "QueueBacklog", minutes=2)]
    result = offline_synthesis(make_request([failed], alerts=alerts, rule_severity="warning"))
    assert result.root_cause == "queue"
    assert result.severity == "warning"
    assert "queue" in result.actions[0]


def test_offline_is_deterministic():
    first = offline_synthesis(make_request())
    second = offline_synthesis(make_request())
    assert first == second


def test_offline_handles_no_alerts_no_results():
    result = offline_synthesis(make_request([], alerts=[], rule_severity="info"))
    assert result.root_cause == ""
    assert result.confidence == 0.0
    assert result.summary.startswith("No root cause identified")
    assert result.severity == "info"
    assert result.actions


def test_synthesize_offline_provider():
    from opsforge_core.config import Settings

    result = synthesize(make_request(), Settings(llm_provider="offline"))
    assert result.provider == "offline"
    assert result.fallback is False


def test_offline_taught_root_cause_among_ranks():
    # The orchestrator passes a root cause operators taught; the agent ranked it second.
    result = offline_synthesis(make_request(rule_root_cause="api"))
    assert result.root_cause == "api"
    assert result.evidence[0] == "rootcause.ranking[1]"


def test_offline_rule_root_cause_outside_ranks_ignored():
    result = offline_synthesis(make_request(rule_root_cause="billing"))
    assert result.root_cause == "db"


def test_anthropic_model_name_from_bedrock_ids():
    from opsforge_core.llm.anthropic_api import anthropic_model_name

    assert anthropic_model_name("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == (
        "claude-sonnet-4-5-20250929"
    )
    assert anthropic_model_name("anthropic.claude-3-5-haiku-20241022-v1:0") == (
        "claude-3-5-haiku-20241022"
    )
    assert anthropic_model_name("claude-sonnet-4-5") == "claude-sonnet-4-5"
