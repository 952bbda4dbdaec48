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


def _alert_texts(alert: Alert) -> list[tuple[str, str]]:
    texts = [("name", alert.name), ("summary", alert.summary)]
    texts.append(("description", alert.description or ""))
    texts += [(f"labels.{key}", str(value)) for key, value in alert.labels.items()]
    return texts


def injection_flags(alerts: list[Alert]) -> list[str]:
    """Return one flag per alert whose text tries to instruct the model, naming the field."""
    flags: list[str] = []
    # An alert storm repeats the same few texts thousands of times; search each text once.
    searched: dict[str, re.Match[str] | None] = {}
    for alert in alerts:
        for field_name, text in _alert_texts(alert):
            text = text or ""
            if text not in searched:
                searched[text] = _INJECTION.search(text)
            match = searched[text]
            if match:
                phrase = " ".join(match.group(0).split())[:80]
                flags.append(
                    f"prompt_injection: alert {alert.fingerprint} ({alert.service}/{alert.name}) "
                    f"{field_name} contains instructions to the model: {phrase!r}"
                )
                break
    return flags


def is_destructive(action: str) -> bool:
    """Return True when ``action`` recommends deleting or wiping data or infrastructure."""
    return bool(_DESTRUCTIVE.search(action))
