from __future__ import annotations

import json

import pytest

from opsforge_core.llm.answer import AnswerError, check_completion, extract_json
from opsforge_core.llm.base import Completion
from opsforge_core.llm.findings import evidence_references
from opsforge_core.llm.offline import offline_synthesis

from .conftest import GOOD_ANSWER
from .helpers import make_request


def _check(text: str, stop_reason: str | None = "end_turn", rule_severity: str = "critical"):
    request = make_request(rule_severity=rule_severity)
    baseline = offline_synthesis(request)
    references = evidence_references(request.results)
    return check_completion(Completion(text, stop_reason), baseline, references)


def test_extract_json_plain():
    assert extract_json(json.dumps(GOOD_ANSWER)) == GOOD_ANSWER


def test_extract_json_fenced_after_preamble():
    text = "Sure. Here is the answer:\n```json\n" + json.dumps(GOOD_ANSWER) + "\n```\nDone."
    assert extract_json(text) == GOOD_ANSWER


def test_extract_json_bare_object_in_prose():
    text = "My answer is " + json.dumps(GOOD_ANSWER) + " as requested."
    assert extract_json(text) == GOOD_ANSWER


def test_extract_json_rejects_array():
    with pytest.raises(AnswerError, match="no JSON object"):
        extract_json("[1, 2, 3]")


def test_max_tokens_never_parsed():
    # Even a complete object is not final when the model stopped at max_tokens.
    with pytest.raises(AnswerError, match="max_tokens"):
        _check(json.dumps(GOOD_ANSWER), "max_tokens")


def test_truncated_json_rejected():
    with pytest.raises(AnswerError, match="no JSON object"):
        _check(json.dumps(GOOD_ANSWER)[:60])


def test_empty_content_rejected():
    with pytest.raises(AnswerError, match="empty"):
        _check("   \n")


def test_severity_never_below_rule():
    checked = _check(json.dumps(dict(GOOD_ANSWER, severity="warning")), rule_severity="high")
    assert checked.severity == "high"
    assert any(f.startswith("severity_floor") for f in checked.flags)


def test_severity_may_rise_above_rule():
    checked = _check(json.dumps(dict(GOOD_ANSWER, severity="critical")), rule_severity="warning")
    assert checked.severity == "critical"
    assert checked.flags == []


def test_unknown_evidence_dropped():
    answer = dict(GOOD_ANSWER, evidence=["rootcause.ranking[0]", "rootcause.ranking[99]", 7])
    checked = _check(json.dumps(answer))
    assert checked.evidence == ["rootcause.ranking[0]"]
    assert any(f.startswith("evidence_dropped: 2") for f in checked.flags)


def test_missing_fields_take_rule_values():
    checked = _check(json.dumps({"summary": "db pool exhausted"}))
    assert checked.summary == "db pool exhausted"
    assert checked.root_cause == "db"
    assert checked.severity == "critical"
    assert checked.actions
    fallbacks = [f for f in checked.flags if f.startswith("field_fallback")]
    assert len(fallbacks) == 5


def test_answer_without_summary_or_cause_rejected():
    with pytest.raises(AnswerError, match="neither"):
        _check(json.dumps({"severity": "high", "confidence": 0.5}))


def test_boolean_confidence_rejected():
    checked = _check(json.dumps(dict(GOOD_ANSWER, confidence=True)))
    assert checked.confidence == 0.9


def test_empty_evidence_list_not_flagged():
    checked = _check(json.dumps(dict(GOOD_ANSWER, evidence=[])))
    assert checked.evidence == []
    assert not [f for f in checked.flags if f.startswith("field_fallback")]
