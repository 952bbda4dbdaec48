"""The synthesis entry point: pick the provider, call it, validate, fall back offline.

One run builds the prompt once, then calls the provider through the shared rate limiter and
the retry layer, all within ``llm_deadline_seconds``. An answer that fails the checks gets one
repair request; a second bad answer, any provider error and the deadline all end in the
offline synthesis marked ``fallback=True`` with the reason. The synthesis is advice only:
nothing here writes to the store or acts on what the model says.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from typing import Any

from opsforge_core.config import Settings
from opsforge_core.errors import ConfigError, LLMError
from opsforge_core.llm.answer import AnswerError, check_completion, to_synthesis
from opsforge_core.llm.base import Completion, LLMProvider, SynthesisRequest, TextCallback
from opsforge_core.llm.findings import evidence_references
from opsforge_core.llm.offline import offline_synthesis
from opsforge_core.llm.prompt import Prompt, build_prompt
from opsforge_core.llm.providers import clear_error, make_provider, record_error, resolve_name
from opsforge_core.llm.ratelimit import RateLimiter, shared_limiter
from opsforge_core.llm.retry import AttemptLog, Deadline, RetryPolicy, call_with_retry
from opsforge_core.models import Synthesis
from opsforge_core.redact import redact

logger = logging.getLogger(__name__)

REPAIR_INSTRUCTION = (
    "Your previous answer could not be used: {reason}. Reply again with only the JSON object "
    "that matches the schema in the system prompt, and keep it short enough to finish."
)


def synthesize(
    request: SynthesisRequest,
    settings: Settings | None = None,
    provider: LLMProvider | str | None = None,
    on_text: TextCallback | None = None,
    *,
    client: Any = None,
    retry_policy: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
) -> Synthesis:
    """Return the synthesis of ``request``; never raises for provider failures.

    ``provider`` is a provider object, a provider name, or None for the settings' choice.
    ``client`` is an SDK client handed to a provider built here (tests point it at a local
    server). Streamed text goes to ``on_text`` as it arrives, in the caller's thread.
    NOTE: text of an attempt that fails mid-stream, and of the repair request, is streamed
    too, so a caller that shows the stream should replace it with the returned synthesis.
    """
    settings = settings or Settings.from_env()
    baseline = offline_synthesis(request)
    try:
        llm = _provider(provider, settings, client)
        if llm is not None:
            llm.check()
    except (ConfigError, LLMError) as exc:
        logger.warning(
            "synthesis of %s uses the offline rules: %s", request.incident_id, redact(str(exc))
        )
        return fallback(baseline, f"LLM provider unavailable: {exc}")
    if llm is None:
        return baseline
    policy = retry_policy or RetryPolicy(
        max_attempts=settings.llm_max_attempts, max_retry_after=settings.llm_max_retry_after
    )
    run = _Run(request, settings, llm, baseline, policy, limiter or shared_limiter(settings))
    return run.execute(on_text)


def fallback(baseline: Synthesis, reason: str) -> Synthesis:
    """Return a copy of the offline synthesis marked as a fallback for ``reason``.

    The reason is shown and stored, so any secret a provider echoed in its error is masked.
    """
    return dataclasses.replace(
        baseline, fallback=True, fallback_reason=redact(reason), flags=list(baseline.flags)
    )


def _provider(
    provider: LLMProvider | str | None, settings: Settings, client: Any
) -> LLMProvider | None:
    if isinstance(provider, LLMProvider):
        return provider
    name = provider if isinstance(provider, str) else resolve_name(settings)
    if name == "auto":
        name = resolve_name(dataclasses.replace(settings, llm_provider="auto"))
    return make_provider(name, settings, client)


class _Run:
    """One synthesis run against one provider, with its usage totals."""

    def __init__(
        self,
        request: SynthesisRequest,
        settings: Settings,
        llm: LLMProvider,
        baseline: Synthesis,
        policy: RetryPolicy,
        limiter: RateLimiter,
    ) -> None:
        self.request = request
        self.settings = settings
        self.llm = llm
        self.baseline = baseline
        self.policy = policy
        self.limiter = limiter
        self.deadline = Deadline(settings.llm_deadline_seconds)
        self.log = AttemptLog()
        self.input_tokens = 0
        self.output_tokens = 0
        self.started = time.perf_counter()
        self._closed = threading.Event()
        self._pending: queue.Queue[str] = queue.Queue()
        self._on_text: TextCallback | None = None

    def execute(self, on_text: TextCallback | None) -> Synthesis:
        budget = self.settings.llm_prompt_token_budget
        prompt = build_prompt(self.request, budget, self.baseline)
        if prompt.estimated_tokens > budget:
            # Only findings too large to shrink get here; alerts are always sampled to fit.
            return self._fallback(
                f"the prompt needs an estimated {prompt.estimated_tokens} tokens, more than "
                f"OPSFORGE_LLM_PROMPT_TOKEN_BUDGET={budget}"
            )
        stream = self._relay(on_text) if on_text is not None else None
        try:
            result = self._answer(prompt, stream)
        except LLMError as exc:
            record_error(self.llm.name, str(exc))
            result = self._fallback(str(exc))
        except AnswerError as exc:
            result = self._fallback(f"invalid answer from {self._label()}: {exc}")
        else:
            clear_error(self.llm.name)
        finally:
            self._closed.set()
        if prompt.alerts_shown < prompt.alerts_total:
            result.flags.append(
                f"prompt_sampled: {prompt.alerts_shown} of {prompt.alerts_total} alerts "
                "were shown to the model; the counts covered all of them"
            )
        return result

    def _answer(self, prompt: Prompt, stream: TextCallback | None) -> Synthesis:
        references = evidence_references(self.request.results)
        completion = self._call(prompt, prompt.messages, stream)
        try:
            checked = check_completion(completion, self.baseline, references)
        except AnswerError as first:
            logger.info(
                "%s: answer rejected (%s); sending one repair request", self._label(), first
            )
            completion = self._call(prompt, _repair_messages(prompt, completion, first), stream)
            try:
                checked = check_completion(completion, self.baseline, references)
            except AnswerError as second:
                raise AnswerError(f"{first}; after one repair request: {second}") from second
        synthesis = to_synthesis(checked, self.llm.name, self.llm.model_id)
        synthesis.flags = list(self.baseline.flags) + synthesis.flags
        return self._with_usage(synthesis)

    def _call(
        self, prompt: Prompt, messages: list[dict[str, Any]], stream: TextCallback | None
    ) -> Completion:
        max_tokens = self.settings.llm_max_tokens

        def attempt(timeout: float) -> Completion:
            reserved = self.limiter.acquire(prompt.estimated_tokens + max_tokens, timeout)
            used = 0
            try:
                completion = self.llm.complete(
                    prompt.system, messages, max_tokens, on_text=stream, timeout=timeout
                )
                used = completion.input_tokens + completion.output_tokens
                return completion
            finally:
                self.limiter.settle(reserved, used)

        completion = call_with_retry(
            attempt, self.policy, self.deadline, self.log, self._label(), self._pump
        )
        self.input_tokens += completion.input_tokens
        self.output_tokens += completion.output_tokens
        return completion

    def _fallback(self, reason: str) -> Synthesis:
        logger.warning(
            "synthesis of %s fell back to the offline rules: %s",
            self.request.incident_id,
            redact(reason),
        )
        return self._with_usage(fallback(self.baseline, reason))

    def _with_usage(self, synthesis: Synthesis) -> Synthesis:
        price_in, price_out = self.settings.price_for(self.llm.model_id)
        synthesis.input_tokens = self.input_tokens
        synthesis.output_tokens = self.output_tokens
        synthesis.latency_ms = round((time.perf_counter() - self.started) * 1000.0, 1)
        synthesis.cost_usd = round(
            (self.input_tokens * price_in + self.output_tokens * price_out) / 1_000_000, 6
        )
        return synthesis

    def _relay(self, on_text: TextCallback) -> TextCallback:
        """Return a callback that queues text for ``on_text`` in the caller's thread.

        The provider streams from a worker thread; ``_pump`` hands the queued text to
        ``on_text`` from the thread that called ``synthesize``. Text that arrives after the
        run ended (a call abandoned at the deadline) is dropped.
        """
        self._on_text = on_text

        def enqueue(text: str) -> None:
            if not self._closed.is_set():
                self._pending.put(text)

        return enqueue

    def _pump(self) -> None:
        while self._on_text is not None:
            try:
                text = self._pending.get_nowait()
            except queue.Empty:
                return
            self._on_text(text)

    def _label(self) -> str:
        where = f" in {self.llm.region}" if self.llm.region else ""
        return f"{self.llm.name} {self.llm.model_id}{where}"


def _repair_messages(
    prompt: Prompt, completion: Completion, reason: AnswerError
) -> list[dict[str, Any]]:
    instruction = REPAIR_INSTRUCTION.format(reason=reason)
    if not completion.text.strip():
        return [{"role": "user", "content": f"{prompt.user}\n\n{instruction}"}]
    return [
        {"role": "user", "content": prompt.user},
        {"role": "assistant", "content": completion.text.rstrip()},
        {"role": "user", "content": instruction},
    ]
