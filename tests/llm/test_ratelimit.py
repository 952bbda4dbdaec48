from __future__ import annotations

import threading

import pytest

from opsforge_core.config import Settings
from opsforge_core.errors import LLMError
from opsforge_core.llm.ratelimit import RateLimiter, shared_limiter


class FakeClock:
    """Monotonic time that advances only when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_limiter_requests_per_minute():
    clock = FakeClock()
    limiter = RateLimiter(6, 1_000_000, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        limiter.acquire(10, timeout=60)
    assert clock.sleeps == []
    limiter.acquire(10, timeout=60)
    # Six requests per minute refill one request every 10 s.
    assert clock.sleeps == [pytest.approx(10.0)]


def test_limiter_tokens_per_minute():
    clock = FakeClock()
    limiter = RateLimiter(100, 6000, clock=clock, sleep=clock.sleep)
    limiter.acquire(6000, timeout=60)
    limiter.acquire(3000, timeout=60)
    # 6000 tokens per minute refill 100 per second; 3000 take 30 s.
    assert sum(clock.sleeps) == pytest.approx(30.0)


def test_limiter_settle_returns_unused_tokens():
    clock = FakeClock()
    limiter = RateLimiter(100, 6000, clock=clock, sleep=clock.sleep)
    reserved = limiter.acquire(6000, timeout=60)
    limiter.settle(reserved, used=1000)
    limiter.acquire(5000, timeout=60)
    assert clock.sleeps == []


def test_limiter_rejects_wait_beyond_timeout():
    clock = FakeClock()
    limiter = RateLimiter(1, 1_000_000, clock=clock, sleep=clock.sleep)
    limiter.acquire(1, timeout=1)
    with pytest.raises(LLMError, match="rate limit"):
        limiter.acquire(1, timeout=5)
    assert clock.now == 0.0


def test_limiter_caps_oversized_request():
    clock = FakeClock()
    limiter = RateLimiter(10, 1000, clock=clock, sleep=clock.sleep)
    assert limiter.acquire(50_000, timeout=1) == 1000


def test_limiter_shared_across_threads():
    clock = FakeClock()
    limiter = RateLimiter(20, 1_000_000, clock=clock, sleep=lambda s: None)
    granted: list[int] = []

    def worker() -> None:
        try:
            granted.append(limiter.acquire(1, timeout=0))
        except LLMError:
            pass

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 20


def test_shared_limiter_is_process_wide():
    settings = Settings(llm_requests_per_minute=17, llm_tokens_per_minute=12345)
    assert shared_limiter(settings) is shared_limiter(Settings(**settings.__dict__))
    assert shared_limiter(settings) is not shared_limiter(Settings())
