"""LLM synthesis: providers (offline, Bedrock, Anthropic), prompt, answer checks, fallback."""

from opsforge_core.llm.base import Completion, LLMProvider, SynthesisRequest
from opsforge_core.llm.offline import offline_synthesis
from opsforge_core.llm.providers import provider_status
from opsforge_core.llm.synthesis import synthesize

__all__ = [
    "Completion",
    "LLMProvider",
    "SynthesisRequest",
    "offline_synthesis",
    "provider_status",
    "synthesize",
]
