"""Claude through the Anthropic Messages API with the ``anthropic`` SDK.

The SDK reads ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` itself. The client is built with
``max_retries=0`` because ``opsforge_core.llm.retry`` retries every call.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from opsforge_core.config import Settings
from opsforge_core.errors import LLMError
from opsforge_core.llm.base import Completion, LLMProvider, TextCallback, malformed_reply

logger = logging.getLogger(__name__)

# HTTP statuses worth another attempt: timeout, throttling, server faults and overload (529).
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
DEADLINE_SLACK = 1.0

# A Bedrock id such as "us.anthropic.claude-sonnet-4-5-20250929-v1:0" names the same model as
# the Anthropic API's "claude-sonnet-4-5-20250929": an optional inference-profile region, the
# "anthropic." provider prefix and a "-v1:0" version suffix.
_BEDROCK_ID = re.compile(r"^(?:[a-z]+\.)?anthropic\.(?P<name>.+?)(?:-v\d+(?::\d+)?)?$")


def anthropic_model_name(model_id: str) -> str:
    """Return the Anthropic API model name for ``model_id``, which may be a Bedrock id."""
    match = _BEDROCK_ID.match(model_id)
    return match.group("name") if match else model_id


class AnthropicProvider(LLMProvider):
    """``messages.create`` and ``messages.stream`` of the Anthropic SDK."""

    name = "anthropic"

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.model_id = anthropic_model_name(settings.model_id)
        self._settings = settings
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import anthropic

            self._client = anthropic.Anthropic(
                max_retries=0,
                timeout=anthropic.Timeout(
                    self._settings.llm_read_timeout, connect=self._settings.llm_connect_timeout
                ),
            )
        return self._client

    def check(self) -> None:
        if self._client is not None:
            return
        if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
            raise LLMError(f"Anthropic {self.model_id}: ANTHROPIC_API_KEY is not set")

    def complete(
        self,
        system: str,
        messages: list[dict[str, Any]],
        max_tokens: int,
        on_text: TextCallback | None = None,
        timeout: float | None = None,
    ) -> Completion:
        import anthropic

        params: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": int(max_tokens),
            "system": system,
            "messages": messages,
        }
        if timeout is not None:
            # The retry layer enforces the run deadline. This per-request timeout only makes
            # an abandoned call end soon after the deadline, so it gets a little slack.
            params["timeout"] = min(timeout + DEADLINE_SLACK, self._settings.llm_read_timeout)
        try:
            if on_text is None:
                message = self.client.messages.create(**params)
            else:
                message = self._stream(params, on_text)
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise LLMError(f"{self._where()}: request timed out", retryable=True) from exc
        except anthropic.APIConnectionError as exc:
            raise LLMError(f"{self._where()}: connection failed: {exc}", retryable=True) from exc
        except anthropic.AnthropicError as exc:
            raise LLMError(f"{self._where()}: {exc}") from exc
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - a malformed body or event stream
            raise malformed_reply(self._where(), exc) from exc
        return self._completion(message)

    def _stream(self, params: dict[str, Any], on_text: TextCallback) -> Any:
        with self.client.messages.stream(**params) as stream:
            for text in stream.text_stream:
                on_text(text)
            return stream.get_final_message()

    def _completion(self, message: Any) -> Completion:
        text = "".join(
            getattr(block, "text", "") for block in message.content if block.type == "text"
        )
        usage = message.usage
        return Completion(
            text=text,
            stop_reason=message.stop_reason,
            input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
            model_id=self.model_id,
        )

    def _where(self) -> str:
        base_url = getattr(self._client, "base_url", None) or "the Anthropic API"
        return f"Anthropic {self.model_id} at {base_url}"

    def _status_error(self, exc: Any) -> LLMError:
        status = int(exc.status_code)
        headers = exc.response.headers if exc.response is not None else {}
        retry_after = _retry_after(headers.get("retry-after"))
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        kind = error.get("type") or type(exc).__name__
        message = error.get("message") or str(exc)
        hint = ""
        if status in (401, 403):
            hint = "; check ANTHROPIC_API_KEY and the key's access to this model"
        return LLMError(
            f"{self._where()}: {kind} (HTTP {status}): {message}{hint}",
            retryable=status in RETRYABLE_STATUS,
            retry_after=retry_after,
        )


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
