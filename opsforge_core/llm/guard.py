"""Checks for prompt injection in alert text and for unsafe actions in an LLM answer.

Alert text comes from senders OpsForge does not control. It reaches the LLM only as data, and
a recognised attempt to instruct the model is flagged on the synthesis so the operator sees
it. Recommended actions that would destroy data are removed from the answer and flagged: the
synthesis is advice to a person, and OpsForge never carries out any action the LLM recommends.
"""

from __future__ import annotations

import re

from opsforge_core.models import Alert

_INJECTION = re.compile(
    r"ignore\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier|preceding)\s+"
    r"(?:instructions?|prompts?|rules?|messages?)"
    r"|disregard\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier|system)"
    r"|forget\s+(?:all\s+|your\s+|the\s+)?(?:previous|prior)?\s*instructions"
    r"|new\s+instructions?\s*:"
    r"|you\s+are\s+now\s+"
    r"|system\s+prompt"
    r"|</?\s*(?:system|assistant|instructions?)\s*>"
    r"|^\s*(?:system|assistant)\s*:"
    r"|(?:classify|mark|set|report)\s+(?:everything|all(?:\s+alerts)?|this(?:\s+incident)?|it)"
    r"\s+as\s+(?:info|resolved|low|ok|benign)"
    r"|recommend\s+(?:deleting|dropping|removing|wiping)",
    re.IGNORECASE | re.MULTILINE,
)

_DESTRUCTIVE = re.compile(
    r"\b(?:delete|drop|truncate|purge|wipe|destroy)\b[^.;\n]{0,60}"
    r"\b(?:table|database|incident|incidents|bucket|volume|stack|cluster|data|records?)\b"
    r"|\brm\s+-rf\b|\bdelete-table\b|\bterminate-instances\b|\bdelete-stack\b",
    re.IGNORECASE,
)


def injection_flags(alerts: list[Alert]) -> list[str]:
    """Return one flag per alert whose text tries to instruct the model, naming the field."""
    flags: list[str] = []
    # An alert storm repeats the same few texts thousands of times; search each text once.
    searched: dict[str, re.Match[str] | None] = {}
    for alert in alerts:
        found = _first_injection(alert, searched)
        if found is None:
            continue
        field_name, match = found
        phrase = " ".join(match.group(0).split())[:80]
        flags.append(
            f"prompt_injection: alert {alert.fingerprint} ({alert.service}/{alert.name}) "
            f"{field_name} contains instructions to the model: {phrase!r}"
        )
    return flags


_UNSEEN = object()


def _first_injection(
    alert: Alert, searched: dict[str, re.Match[str] | None]
) -> tuple[str, re.Match[str]] | None:
    """Return the first field of ``alert`` (name, summary, description, then each label) whose
    text matches, with the match. ``searched`` caches the result of every text seen."""
    # The lookups are written out, without a helper or a list of fields per alert, because
    # this runs for every text of every alert: eleven times per alert in a typical storm.
    for field_name, text in (
        ("name", alert.name),
        ("summary", alert.summary),
        ("description", alert.description),
    ):
        text = text or ""
        match = searched.get(text, _UNSEEN)
        if match is _UNSEEN:
            match = searched[text] = _INJECTION.search(text)
        if match:
            return field_name, match
    for key, value in alert.labels.items():
        text = str(value)
        match = searched.get(text, _UNSEEN)
        if match is _UNSEEN:
            match = searched[text] = _INJECTION.search(text)
        if match:
            return f"labels.{key}", match
    return None


def is_destructive(action: str) -> bool:
    """Return True when ``action`` recommends deleting or wiping data or infrastructure."""
    return bool(_DESTRUCTIVE.search(action))
