"""Check an LLM completion and turn it into a synthesis, field by field.

Order of checks: the stop reason (an answer cut at ``max_tokens`` is never parsed as final),
empty content, then the JSON object, found whole, in a fenced block after preamble, or as the
first balanced object in the text. Each field is validated on its own; a field that fails
falls back to the rule-based value and the synthesis carries a flag saying so. Severity never
drops below the rule-based severity, and destructive actions are removed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from opsforge_core.llm.base import Completion
from opsforge_core.llm.guard import is_destructive
from opsforge_core.models import SEVERITIES, SEVERITY_RANK, Synthesis

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.DOTALL)
MAX_SUMMARY_CHARS = 4000
MAX_ACTIONS = 10
MAX_ACTION_CHARS = 500
SCHEMA_FIELDS = ("summary", "root_cause", "confidence", "severity", "actions", "evidence")


class AnswerError(ValueError):
    """The completion cannot be used as an answer; ``str()`` says why."""


@dataclass
class CheckedAnswer:
    """The validated fields of an answer and the flags raised while checking them."""

    summary: str
    root_cause: str
    confidence: float
    severity: str
    actions: list[str]
    evidence: list[str]
    flags: list[str] = field(default_factory=list)


def extract_json(text: str) -> dict[str, Any]:
    """Return the JSON object in ``text``; raise ``AnswerError`` when there is none."""
    stripped = text.strip()
    candidates = [stripped] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise AnswerError("the answer contains no JSON object")


def check_completion(
    completion: Completion, baseline: Synthesis, references: set[str]
) -> CheckedAnswer:
    """Validate ``completion`` against the schema; raise ``AnswerError`` for an unusable one.

    ``baseline`` is the rule-based synthesis whose values replace invalid fields.
    """
    if completion.stop_reason == "max_tokens":
        raise AnswerError(
            f"the answer was cut off at max_tokens after {completion.output_tokens} tokens"
        )
    if not completion.text.strip():
        raise AnswerError(f"the answer is empty (stop_reason {completion.stop_reason!r})")
    data = extract_json(completion.text)
    checked = CheckedAnswer(
        summary=_text(data, "summary", MAX_SUMMARY_CHARS),
        root_cause=_text(data, "root_cause", 200),
        confidence=_confidence(data),
        severity=_severity(data),
        actions=_actions(data),
        evidence=_evidence(data, references),
    )
    if not checked.summary and not checked.root_cause:
        raise AnswerError("the answer has neither a valid summary nor a valid root_cause")
    return _apply_fallbacks(checked, data, baseline)


def _apply_fallbacks(
    checked: CheckedAnswer, data: dict[str, Any], baseline: Synthesis
) -> CheckedAnswer:
    """Replace each invalid field with the rule-based value, flagging what changed."""
    _flag_dropped_evidence(checked, data)
    for name in SCHEMA_FIELDS:
        if name == "evidence" and data.get("evidence") == []:
            # An answer may rightly cite nothing; only a missing or malformed list falls back.
            continue
        if getattr(checked, name) in ("", None, []):
            shown = _shown(data.get(name, "<missing>"))
            checked.flags.append(
                f"field_fallback: {name} {shown} is invalid; used the rule-based value"
            )
            setattr(checked, name, getattr(baseline, name))

    if SEVERITY_RANK[checked.severity] < SEVERITY_RANK.get(baseline.severity, 0):
        checked.flags.append(
            f"severity_floor: the answer's severity {checked.severity!r} is below the "
            f"rule-based {baseline.severity!r}; kept {baseline.severity!r}"
        )
        checked.severity = baseline.severity

    safe = [a for a in checked.actions if not is_destructive(a)]
    removed = [a for a in checked.actions if is_destructive(a)]
    checked.flags += [f"unsafe_action_removed: {_shown(a)}" for a in removed]
    checked.actions = safe or list(baseline.actions)

    extra = sorted(set(data) - set(SCHEMA_FIELDS))
    if extra:
        checked.flags.append(
            f"ignored_fields: the answer's {', '.join(extra)} are not in the schema"
        )
    return checked


def _flag_dropped_evidence(checked: CheckedAnswer, data: dict[str, Any]) -> None:
    cited = data.get("evidence")
    if not isinstance(cited, list):
        return
    dropped = [r for r in cited if r not in checked.evidence]
    if dropped:
        checked.flags.append(
            f"evidence_dropped: {len(dropped)} reference(s) not in the findings, "
            f"first {_shown(dropped[0])}"
        )


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        return ""
    return value.strip()


def _confidence(data: dict[str, Any]) -> float | None:
    value = data.get("confidence")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return None
    return float(value)


def _severity(data: dict[str, Any]) -> str | None:
    value = data.get("severity")
    return value if isinstance(value, str) and value in SEVERITIES else None


def _actions(data: dict[str, Any]) -> list[str]:
    value = data.get("actions")
    if not isinstance(value, list):
        return []
    actions = [a.strip() for a in value if isinstance(a, str) and a.strip()]
    return [a for a in actions if len(a) <= MAX_ACTION_CHARS][:MAX_ACTIONS]


def _evidence(data: dict[str, Any], references: set[str]) -> list[str]:
    value = data.get("evidence")
    if not isinstance(value, list):
        return []
    return [r for r in value if isinstance(r, str) and r in references]


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def to_synthesis(checked: CheckedAnswer, provider: str, model_id: str) -> Synthesis:
    return Synthesis(
        provider=provider,
        model_id=model_id,
        summary=checked.summary,
        root_cause=checked.root_cause,
        confidence=checked.confidence,
        severity=checked.severity,
        actions=checked.actions,
        evidence=checked.evidence,
        flags=list(checked.flags),
    )
