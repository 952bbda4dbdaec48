"""Claude on AWS Bedrock through boto3 ``bedrock-runtime``.

The request body is the Anthropic messages format that Bedrock expects: ``anthropic_version``
``bedrock-2023-05-31``, an integer ``max_tokens``, ``system`` and non-empty message content.
The model id travels in the URL, so the body never carries ``model`` or ``stream``.
botocore's own retries are off because ``opsforge_core.llm.retry`` retries every call.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from opsforge_core.config import Settings
from opsforge_core.errors import LLMError
from opsforge_core.llm.base import Completion, LLMProvider, TextCallback, malformed_reply

logger = logging.getLogger(__name__)

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
EMPTY_CONTENT = "(no content)"

# Error codes worth another attempt: throttling, overload and transient server faults.
RETRYABLE_CODES = {
    "ThrottlingException",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "ModelNotReadyException",
    "InternalServerException",
    "ModelTimeoutException",
}
# Never retried whatever the status: the request or the account must change first.
FATAL_CODES = {
    "AccessDeniedException",
    "ValidationException",
    "ResourceNotFoundException",
    "UnrecognizedClientException",
    "ServiceQuotaExceededException",
}


def aws_credentials_found() -> bool:
    """Return True when boto3's credential chain finds credentials.

    NOTE: on EC2 the chain ends at the instance metadata service, so this may make one local
    request there; set AWS_EC2_METADATA_DISABLED=true where that is not wanted.
    """
    try:
        return boto3.Session().get_credentials() is not None
    except Exception as exc:  # noqa: BLE001 - a broken profile means no usable credentials
        logger.debug("AWS credential lookup failed: %s", exc)
        return False


def client_config(settings: Settings) -> Config:
    """Return the botocore config: explicit timeouts, one attempt per call."""
    return Config(
        region_name=settings.region,
        connect_timeout=settings.llm_connect_timeout,
        read_timeout=settings.llm_read_timeout,
        # total_max_attempts counts the first request; botocore's max_attempts counts retries,
        # so max_attempts=1 would still send a second request.
        retries={"total_max_attempts": 1, "mode": "standard"},
    )


def request_body(system: str, messages: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    """Return the Anthropic messages body for Bedrock, with every content block non-empty."""
    return {
        "anthropic_version": BEDROCK_ANTHROPIC_VERSION,
        "max_tokens": int(max_tokens),
        "system": system or EMPTY_CONTENT,
        "messages": [_clean_message(m) for m in messages],
    }


def _clean_message(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        blocks = [
            b
            for b in content
            if not (
                isinstance(b, dict)
                and b.get("type") == "text"
                and not str(b.get("text") or "").strip()
            )
        ]
        content = blocks or EMPTY_CONTENT
    elif content is None or not str(content).strip():
        content = EMPTY_CONTENT
    return {"role": message.get("role", "user"), "content": content}


class BedrockProvider(LLMProvider):
    """``invoke_model`` and ``invoke_model_with_response_stream`` on bedrock-runtime."""

    name = "bedrock"

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.model_id = settings.model_id
        self.region = settings.region
        self._settings = settings
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.session.Session().client(
                "bedrock-runtime", region_name=self.region, config=client_config(self._settings)
            )
        return self._client

    def check(self) -> None:
        if self._client is not None:
            return
        if not aws_credentials_found():
            raise LLMError(
                f"Bedrock {self.model_id} in {self.region}: no AWS credentials found; "
                "set AWS_PROFILE or AWS_ACCESS_KEY_ID, or attach an instance role"
            )

    def complete(
        self,
        system: str,
        messages: list[dict[str, Any]],
        max_tokens: int,
        on_text: TextCallback | None = None,
        timeout: float | None = None,
    ) -> Completion:
        body = json.dumps(request_body(system, messages, max_tokens))
        try:
            if on_text is None:
                return self._invoke(body)
            return self._invoke_stream(body, on_text)
        except ClientError as exc:
            raise self._client_error(exc) from exc
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise LLMError(f"{self._where()}: timed out: {exc}", retryable=True) from exc
        except (EndpointConnectionError, ConnectionClosedError) as exc:
            raise LLMError(f"{self._where()}: connection failed: {exc}", retryable=True) from exc
        except BotoCoreError as exc:
            raise LLMError(f"{self._where()}: {exc}", retryable=False) from exc
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - a malformed body or event stream
            raise malformed_reply(self._where(), exc) from exc

    def _invoke(self, body: str) -> Completion:
        response = self.client.invoke_model(
            modelId=self.model_id,
            body=body,
            contentType="application/json",
            accept="application/json",
        )
        data = json.loads(response["body"].read())
        text = "".join(
            block.get("text", "")
            for block in data.get("content") or []
            if block.get("type") == "text"
        )
        usage = data.get("usage") or {}
        return Completion(
            text=text,
            stop_reason=data.get("stop_reason"),
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            model_id=self.model_id,
        )

    def _invoke_stream(self, body: str, on_text: TextCallback) -> Completion:
        response = self.client.invoke_model_with_response_stream(
            modelId=self.model_id,
            body=body,
            contentType="application/json",
            accept="application/json",
        )
        parts: list[str] = []
        result = Completion(text="", stop_reason=None, model_id=self.model_id)
        for event in response["body"]:
            chunk = event.get("chunk")
            if chunk is None:
                continue
            _apply_stream_event(json.loads(chunk["bytes"]), result, parts, on_text)
        result.text = "".join(parts)
        return result

    def _where(self) -> str:
        return f"Bedrock {self.model_id} in {self.region}"

    def _client_error(self, exc: ClientError) -> LLMError:
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "Unknown")
        # Stream exception events name the code in lower camel case (throttlingException).
        code = code[:1].upper() + code[1:]
        message = error.get("Message") or str(exc)
        meta = exc.response.get("ResponseMetadata") or {}
        status = int(meta.get("HTTPStatusCode") or 0)
        retry_after = _retry_after((meta.get("HTTPHeaders") or {}).get("retry-after"))
        retryable = code not in FATAL_CODES and (
            code in RETRYABLE_CODES or status == 429 or status >= 500
        )
        hint = ""
        if code == "AccessDeniedException":
            hint = "; enable access to this model in the Bedrock console for this region"
        return LLMError(
            f"{self._where()}: {code} (HTTP {status or '?'}): {message}{hint}",
            retryable=retryable,
            retry_after=retry_after,
        )


def _apply_stream_event(
    event: dict[str, Any], result: Completion, parts: list[str], on_text: TextCallback
) -> None:
    kind = event.get("type")
    if kind == "message_start":
        usage = (event.get("message") or {}).get("usage") or {}
        result.input_tokens = int(usage.get("input_tokens") or 0)
    elif kind == "content_block_delta":
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            parts.append(delta["text"])
            on_text(delta["text"])
    elif kind == "message_delta":
        result.stop_reason = (event.get("delta") or {}).get("stop_reason") or result.stop_reason
        usage = event.get("usage") or {}
        result.output_tokens = int(usage.get("output_tokens") or result.output_tokens)
    elif kind == "message_stop":
        metrics = event.get("amazon-bedrock-invocationMetrics") or {}
        result.input_tokens = int(metrics.get("inputTokenCount") or result.input_tokens)
        result.output_tokens = int(metrics.get("outputTokenCount") or result.output_tokens)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
