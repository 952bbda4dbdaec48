"""A process-wide limit on LLM requests and tokens per minute, shared by every run.

Two token buckets refill continuously: one of requests, one of tokens. A run reserves one
request and its estimated tokens before each call, waits while the buckets are short, and
settles the reservation with the real token count afterwards. The console, the HTTP API and
the simulator-driven analyses in one process all draw on the same limiter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from opsforge_core.config import Settings
from opsforge_core.errors import LLMError


class _Bucket:
    def __init__(self, per_minute: float, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = float(per_minute)
        self._clock = clock
        self._stamp = clock()

    def refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_for(self, amount: float) -> float:
        """Return seconds until ``amount`` is available (0 when it is now)."""
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / self.rate


class RateLimiter:
    """Requests-per-minute and tokens-per-minute buckets behind one lock."""

    def __init__(
        self,
        requests_per_minute: int,
        tokens_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.requests = _Bucket(requests_per_minute, clock)
        self.tokens = _Bucket(tokens_per_minute, clock)
        self._lock = threading.Lock()
        self._sleep = sleep

    def acquire(self, tokens: int, timeout: float) -> int:
        """Reserve one request and ``tokens``; wait up to ``timeout`` seconds for them.

        Returns the tokens reserved, which is at most one minute's worth so that a large
        prompt can still run. Raises ``LLMError`` when the wait would pass ``timeout``.
        """
        wanted = float(min(max(tokens, 0), self.tokens.capacity))
        waited = 0.0
        while True:
            with self._lock:
                self.requests.refill()
                self.tokens.refill()
                delay = max(self.requests.wait_for(1.0), self.tokens.wait_for(wanted))
                if delay == 0.0:
                    self.requests.level -= 1.0
                    self.tokens.level -= wanted
                    return int(wanted)
            if waited + delay > timeout:
                raise LLMError(
                    f"LLM rate limit: {tokens} tokens and one request are not available "
                    f"within {timeout:.1f} s (limits: {int(self.requests.capacity)} requests, "
                    f"{int(self.tokens.capacity)} tokens per minute)",
                    retryable=False,
                )
            self._sleep(delay)
            waited += delay

    def settle(self, reserved: int, used: int) -> None:
        """Return unused reserved tokens to the bucket, or take the overrun from it."""
        with self._lock:
            self.tokens.refill()
            self.tokens.level = min(self.tokens.capacity, self.tokens.level + reserved - used)


_shared: dict[tuple[int, int], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(settings: Settings) -> RateLimiter:
    """Return the process-wide limiter for the settings' per-minute limits."""
    key = (settings.llm_requests_per_minute, settings.llm_tokens_per_minute)
    with _shared_lock:
        limiter = _shared.get(key)
        if limiter is None:
            limiter = RateLimiter(*key)
            _shared[key] = limiter
        return limiter
