"""The synthesis entry point: pick the provider, call it, validate, fall back offline."""

from __future__ import annotations

import logging

from opsforge_core.config import Settings
from opsforge_core.llm.base import LLMProvider, SynthesisRequest, TextCallback
from opsforge_core.llm.offline import offline_synthesis
from opsforge_core.models import Synthesis

logger = logging.getLogger(__name__)


def synthesize(
    request: SynthesisRequest,
    settings: Settings | None = None,
    provider: LLMProvider | str | None = None,
    on_text: TextCallback | None = None,
) -> Synthesis:
    """Return the synthesis of ``request`` from the configured provider."""
    settings = settings or Settings.from_env()
    name = provider if isinstance(provider, str) else settings.llm_provider
    if provider is None and name == "offline":
        return offline_synthesis(request)
    # TODO: call the LLM providers; until then every run uses the rule-based answer.
    result = offline_synthesis(request)
    result.fallback = True
    result.fallback_reason = f"LLM provider {name!r} is not available in this build"
    return result
