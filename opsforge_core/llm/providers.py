"""Provider selection from ``OPSFORGE_LLM_PROVIDER`` and the status line of the Settings page.

``auto`` picks Bedrock when boto3 finds AWS credentials, Anthropic when ``ANTHROPIC_API_KEY`` is
set, and the offline synthesis otherwise. The last error of each provider in this process is
kept for ``provider_status``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from opsforge_core.config import LLM_PROVIDERS, Settings
from opsforge_core.errors import ConfigError, LLMError
from opsforge_core.llm.base import LLMProvider
from opsforge_core.llm.bedrock import aws_credentials_found
from opsforge_core.redact import redact

logger = logging.getLogger(__name__)

_last_errors: dict[str, str] = {}
_errors_lock = threading.Lock()


def record_error(provider: str, message: str) -> None:
    with _errors_lock:
        _last_errors[provider] = redact(message)


def clear_error(provider: str) -> None:
    with _errors_lock:
        _last_errors.pop(provider, None)


def last_error(provider: str) -> str | None:
    with _errors_lock:
        return _last_errors.get(provider)


def resolve_name(settings: Settings) -> str:
    """Return ``offline``, ``bedrock`` or ``anthropic`` for the settings' provider."""
    name = settings.llm_provider
    if name not in LLM_PROVIDERS:
        raise ConfigError(
            f"OPSFORGE_LLM_PROVIDER={name!r} is invalid; use one of: {', '.join(LLM_PROVIDERS)}"
        )
    if name != "auto":
        return name
    if aws_credentials_found():
        return "bedrock"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic"
    return "offline"


def make_provider(name: str, settings: Settings, client: Any = None) -> LLMProvider | None:
    """Return the provider called ``name`` (None for offline), with an optional SDK client."""
    if name == "offline":
        return None
    if name == "bedrock":
        from opsforge_core.llm.bedrock import BedrockProvider

        return BedrockProvider(settings, client)
    if name == "anthropic":
        from opsforge_core.llm.anthropic_api import AnthropicProvider

        return AnthropicProvider(settings, client)
    raise ConfigError(f"unknown LLM provider {name!r}; use offline, bedrock or anthropic")


def provider_status(settings: Settings | None = None) -> tuple[bool, str]:
    """Return (usable, message) for the configured provider without calling the model."""
    settings = settings or Settings.from_env()
    name = resolve_name(settings)
    chosen = " (chosen by auto)" if settings.llm_provider == "auto" else ""
    if name == "offline":
        return True, f"offline{chosen}: rule-based synthesis, no network calls"
    provider = make_provider(name, settings)
    where = f"{name}{chosen}: model {settings.model_id}"
    if name == "bedrock":
        where += f" in {settings.region}"
    try:
        provider.check()
    except LLMError as exc:
        return False, f"{where}: not configured: {exc}"
    error = last_error(name)
    if error:
        return False, f"{where}: configured; last call failed: {error}"
    return True, f"{where}: configured"
