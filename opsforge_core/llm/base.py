"""LLM provider interface and the synthesis request.

``opsforge_core.llm.synthesize(request, settings, provider, on_text)`` is the one entry point the
orchestrator calls. It builds the prompt, calls the configured provider through the shared
rate limiter and retry layer, validates the answer, and falls back to the offline synthesis
(marked ``fallback=True`` with the reason) when the provider fails or answers badly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsforge_core.errors import LLMError
from opsforge_core.models import AgentResult, Alert, Pattern

TextCallback = Callable[[str], None]


@dataclass
class SynthesisRequest:
    """What the synthesis sees: the alerts, every agent's result and what memory recalled.

    ``rule_severity`` and ``rule_root_cause`` are the rule-based values computed from the
    agents' findings; an LLM answer may refine but never lower the severity below them.
    """

    incident_id: str
    alerts: list[Alert]
    results: list[AgentResult]
    rule_severity: str
    rule_root_cause: str | None = None
    rule_fault_kind: str | None = None
    similar_incidents: list[dict[str, Any]] = field(default_factory=list)
    patterns: list[Pattern] = field(default_factory=list)


@dataclass
class Completion:
    """The raw answer of one provider call."""

    text: str
    stop_reason: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    model_id: str = ""


class LLMProvider(ABC):
    """One LLM backend. Adapters raise ``LLMError`` (with ``retryable``) and nothing else."""

    name: str = "provider"
    model_id: str = ""
    # Cloud region the calls go to, for error messages; empty for a global endpoint.
    region: str = ""

    @abstractmethod
    def complete(
        self,
        system: str,
        messages: list[dict[str, Any]],
        max_tokens: int,
        on_text: TextCallback | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Send one request; stream text to ``on_text`` when given."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Raise ``LLMError`` with the fix when the provider is not usable; default: usable."""


def malformed_reply(where: str, exc: Exception) -> LLMError:
    """Return the retryable error for a reply that is neither an answer nor an API error.

    A proxy's HTML page or a broken event stream surfaces from the SDKs as a decoding error of
    any type; naming the provider here keeps it inside the retry layer and the fallback reason.
    """
    return LLMError(f"{where}: malformed response: {type(exc).__name__}: {exc}", retryable=True)
