from __future__ import annotations

import random
import threading
import time

import pytest

from opsforge_core.errors import LLMError
from opsforge_core.llm.retry import (
    AttemptLog,
    Deadline,
    DeadlineExceeded,
    RetryPolicy,
    call_with_retry,
)


class Script:
    def __init__(self, *outcomes) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, timeout: float):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _policy(sleeps: list[float], **kwargs) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(7), sleep=sleeps.append, **kwargs)


def test_retry_backoff_grows_with_jitter():
    sleeps: list[float] = []
    busy = LLMError("busy", retryable=True)
    script = Script(busy, busy, busy, "ok")
    result = call_with_retry(script, _policy(sleeps), Deadline(60), AttemptLog(), "test")
    assert result == "ok"
    assert script.calls == 4
    assert 0.5 <= sleeps[0] <= 1.0
    assert 1.0 <= sleeps[1] <= 2.0
    assert 2.0 <= sleeps[2] <= 4.0


def test_retry_not_for_fatal_error():
    sleeps: list[float] = []
    script = Script(LLMError("denied", retryable=False), "ok")
    log = AttemptLog()
    with pytest.raises(LLMError, match="denied"):
        call_with_retry(script, _policy(sleeps), Deadline(60), log, "test")
    assert script.calls == 1
    assert log.attempts == 1
    assert sleeps == []


def test_retry_after_within_bound_is_used():
    sleeps: list[float] = []
    script = Script(LLMError("slow down", retryable=True, retry_after=12.0), "ok")
    call_with_retry(script, _policy(sleeps), Deadline(60), AttemptLog(), "test")
    assert 12.0 <= sleeps[0] <= 13.2


def test_retry_stops_when_backoff_passes_deadline():
    sleeps: list[float] = []
    script = Script(LLMError("busy", retryable=True, retry_after=20.0), "ok")
    with pytest.raises(DeadlineExceeded, match="no time left"):
        call_with_retry(script, _policy(sleeps), Deadline(5), AttemptLog(), "test")
    assert script.calls == 1


def test_run_stops_waiting_at_deadline():
    finished = threading.Event()

    def slow(timeout: float) -> str:
        time.sleep(0.6)
        finished.set()
        return "late"

    with pytest.raises(DeadlineExceeded, match="no answer within"):
        call_with_retry(slow, _policy([]), Deadline(0.2), AttemptLog(), "test")
    # The caller got its answer while the abandoned call was still running.
    assert not finished.is_set()
