"""The one retry layer of the LLM calls, with jittered exponential backoff and a run deadline.

The SDK clients are built with their own retries off, so every retry happens here and is
counted against one deadline. Retryable errors are throttling, overload, 5xx and timeouts
(``LLMError.retryable``); access and validation errors fail at once. When a server's ``retry-after``
exceeds ``llm_max_retry_after`` seconds, the run gives up and falls back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from opsforge_core.errors import LLMError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds between two calls of the pump while a provider call is in flight.
PUMP_INTERVAL = 0.05


class DeadlineExceeded(LLMError):
    """The run's deadline passed before the provider returned an answer."""


@dataclass
class Deadline:
    """A point in monotonic time after which the run stops calling the provider."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass
class RetryPolicy:
    """Backoff of the retry layer: full jitter over ``base * 2**n``, at most ``cap`` seconds."""

    max_attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 20.0
    max_retry_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep

    def backoff(self, attempt: int) -> float:
        """Return the delay before retry number ``attempt`` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return self.rng.uniform(ceiling / 2, ceiling)


@dataclass
class AttemptLog:
    """Attempts made and errors met by one run, for the synthesis record and the logs."""

    attempts: int = 0
    errors: list[str] = field(default_factory=list)


def call_with_retry(
    call: Callable[[float], T],
    policy: RetryPolicy,
    deadline: Deadline,
    log: AttemptLog,
    label: str,
    pump: Callable[[], None] | None = None,
) -> T:
    """Run ``call(timeout)`` until it succeeds, a non-retryable error, or the budget ends.

    ``timeout`` is the time left before the deadline; ``pump`` runs in the caller's thread
    while a call is in flight (see ``run_before_deadline``). Raises the last ``LLMError``.
    """
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline.remaining()
        if remaining <= 0:
            raise DeadlineExceeded(f"{label}: deadline passed after {log.attempts} attempt(s)")
        log.attempts += 1
        try:
            return run_before_deadline(call, remaining, label, pump)
        except LLMError as exc:
            log.errors.append(str(exc))
            delay = _retry_delay(exc, attempt, policy, deadline, label)
            logger.info("%s: attempt %d failed (%s); retry in %.2f s", label, attempt, exc, delay)
            policy.sleep(delay)


def _retry_delay(
    exc: LLMError, attempt: int, policy: RetryPolicy, deadline: Deadline, label: str
) -> float:
    """Return how long to wait before the next attempt, or re-raise ``exc`` to give up."""
    if not exc.retryable or isinstance(exc, DeadlineExceeded):
        raise exc
    if attempt >= policy.max_attempts:
        raise LLMError(f"{exc} (gave up after {attempt} attempts)", retryable=False) from exc
    if exc.retry_after is not None and exc.retry_after > policy.max_retry_after:
        raise LLMError(
            f"{exc} (server asked to retry after {exc.retry_after:g} s, "
            f"more than the {policy.max_retry_after:g} s allowed)",
            retryable=False,
        ) from exc
    if exc.retry_after is not None:
        delay = exc.retry_after + policy.rng.uniform(0, 0.1 * max(exc.retry_after, 0.1))
    else:
        delay = policy.backoff(attempt)
    if delay >= deadline.remaining():
        raise DeadlineExceeded(
            f"{label}: no time left for a retry in {delay:.1f} s before the deadline: {exc}"
        ) from exc
    return delay


def run_before_deadline(
    call: Callable[[float], T],
    timeout: float,
    label: str,
    pump: Callable[[], None] | None = None,
) -> T:
    """Run ``call(timeout)`` in a worker thread and stop waiting for it after ``timeout``.

    The SDK's own read timeout bounds one socket read, not a whole streamed answer, so the run
    deadline is enforced here. ``pump`` is called every ``PUMP_INTERVAL`` seconds in the
    caller's thread, so streamed text reaches callbacks (a Streamlit placeholder) there and
    not in the worker. NOTE: a call abandoned at the deadline keeps its worker thread until
    the SDK's read timeout ends it; its result is discarded.
    """
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = call(timeout)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"llm-call-{label}", daemon=True)
    worker.start()
    ends = time.monotonic() + timeout
    while worker.is_alive() and time.monotonic() < ends:
        worker.join(min(PUMP_INTERVAL, max(0.0, ends - time.monotonic())))
        if pump is not None:
            pump()
    if pump is not None:
        pump()
    if worker.is_alive():
        raise DeadlineExceeded(
            f"{label}: no answer within the {timeout:.1f} s left before the run deadline"
        )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
