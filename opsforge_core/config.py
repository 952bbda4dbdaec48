"""Settings read from OPSFORGE_* environment variables, each with a working default.

``Settings.from_env()`` reads the environment once; invalid values raise ``ConfigError`` naming
the variable and what it accepts. Secrets (the API token) are kept out of ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from opsforge_core.errors import ConfigError

# Bedrock serves current Claude models on demand only through an inference profile (the "us."
# prefix). The Anthropic provider turns this id into the API's model name.
DEFAULT_MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

# USD per million tokens (input, output), by substring of the model id. Estimates for the cost
# column; the provider's bill is the authority. Override with OPSFORGE_MODEL_PRICES as
# "substring=in/out,substring=in/out".
DEFAULT_MODEL_PRICES: dict[str, tuple[float, float]] = {
    "opus": (15.0, 75.0),
    "sonnet": (3.0, 15.0),
    "haiku": (0.8, 4.0),
}

STORES = ("sqlite", "dynamodb")
LLM_PROVIDERS = ("offline", "bedrock", "anthropic", "auto")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc
    if value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number") from exc
    if not value >= minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is invalid; use one of: {', '.join(allowed)}")
    return value


def _prices(env: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    raw = env.get("OPSFORGE_MODEL_PRICES")
    if not raw:
        return dict(DEFAULT_MODEL_PRICES)
    prices: dict[str, tuple[float, float]] = {}
    for entry in raw.split(","):
        try:
            name, pair = entry.split("=", 1)
            price_in, price_out = pair.split("/", 1)
            prices[name.strip().lower()] = (float(price_in), float(price_out))
        except ValueError as exc:
            raise ConfigError(
                f"OPSFORGE_MODEL_PRICES entry {entry!r} is invalid; "
                "expected 'model-substring=input/output' in USD per million tokens"
            ) from exc
    return prices


@dataclass(frozen=True)
class Settings:
    store: str = "sqlite"
    sqlite_path: str = "data/opsforge.db"
    dynamodb_endpoint: str | None = None
    table_prefix: str = "opsforge-"
    region: str = "us-east-1"
    feed_ttl_hours: int = 72

    llm_provider: str = "offline"
    model_id: str = DEFAULT_MODEL_ID
    llm_max_tokens: int = 2048
    llm_prompt_token_budget: int = 12000
    llm_deadline_seconds: float = 90.0
    llm_connect_timeout: float = 10.0
    llm_read_timeout: float = 300.0
    llm_max_attempts: int = 4
    llm_max_retry_after: float = 30.0
    llm_requests_per_minute: int = 50
    llm_tokens_per_minute: int = 200000
    model_prices: dict[str, tuple[float, float]] = field(default_factory=dict)

    selector_threshold: int = 60
    api_token: str | None = field(default=None, repr=False)
    api_max_body_bytes: int = 5 * 1024 * 1024
    api_max_alerts: int = 5000
    api_max_points: int = 200000

    @property
    def table_names(self) -> dict[str, str]:
        """Full table names by logical name, with the configured prefix."""
        return {
            "incidents": f"{self.table_prefix}incident-memory",
            "patterns": f"{self.table_prefix}pattern-library",
            "knowledge": f"{self.table_prefix}agent-knowledge",
            "feed": f"{self.table_prefix}event-feed",
        }

    def price_for(self, model_id: str) -> tuple[float, float]:
        """Return (input, output) USD per million tokens for ``model_id``; (0, 0) if unknown."""
        lowered = model_id.lower()
        for name, price in self.model_prices.items():
            if name in lowered:
                return price
        return (0.0, 0.0)

    def describe(self) -> dict[str, object]:
        """Return the settings for display, with secrets masked."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["api_token"] = "set" if self.api_token else "unset"
        return shown

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            store=_choice(env, "OPSFORGE_STORE", "sqlite", STORES),
            sqlite_path=env.get("OPSFORGE_SQLITE_PATH") or "data/opsforge.db",
            dynamodb_endpoint=env.get("OPSFORGE_DYNAMODB_ENDPOINT") or None,
            table_prefix=env.get("OPSFORGE_TABLE_PREFIX", "opsforge-"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            feed_ttl_hours=_int(env, "OPSFORGE_FEED_TTL_HOURS", 72, 1),
            llm_provider=_choice(env, "OPSFORGE_LLM_PROVIDER", "offline", LLM_PROVIDERS),
            model_id=env.get("OPSFORGE_MODEL_ID") or DEFAULT_MODEL_ID,
            llm_max_tokens=_int(env, "OPSFORGE_LLM_MAX_TOKENS", 2048, 256),
            llm_prompt_token_budget=_int(env, "OPSFORGE_LLM_PROMPT_TOKEN_BUDGET", 12000, 2000),
            llm_deadline_seconds=_float(env, "OPSFORGE_LLM_DEADLINE_SECONDS", 90.0, 1.0),
            llm_connect_timeout=_float(env, "OPSFORGE_LLM_CONNECT_TIMEOUT", 10.0, 0.1),
            llm_read_timeout=_float(env, "OPSFORGE_LLM_READ_TIMEOUT", 300.0, 0.1),
            llm_max_attempts=_int(env, "OPSFORGE_LLM_MAX_ATTEMPTS", 4, 1),
            llm_max_retry_after=_float(env, "OPSFORGE_LLM_MAX_RETRY_AFTER", 30.0, 0.0),
            llm_requests_per_minute=_int(env, "OPSFORGE_LLM_REQUESTS_PER_MINUTE", 50, 1),
            llm_tokens_per_minute=_int(env, "OPSFORGE_LLM_TOKENS_PER_MINUTE", 200000, 1000),
            model_prices=_prices(env),
            selector_threshold=_int(env, "OPSFORGE_SELECTOR_THRESHOLD", 60, 0),
            api_token=env.get("OPSFORGE_API_TOKEN") or None,
            api_max_body_bytes=_int(env, "OPSFORGE_API_MAX_BODY_BYTES", 5 * 1024 * 1024, 1024),
            api_max_alerts=_int(env, "OPSFORGE_API_MAX_ALERTS", 5000, 1),
            api_max_points=_int(env, "OPSFORGE_API_MAX_POINTS", 200000, 1),
        )
