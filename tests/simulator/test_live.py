"""The live simulator: ticks, injection, control from other threads and store failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from opsforge_core.config import Settings
from opsforge_core.models import Alert, MetricSeries
from opsforge_core.store import open_store
from simulator.live import LiveSimulator
from simulator.topology import SERVICES

SERIES_PER_TICK = sum(len(spec.metrics) for spec in SERVICES.values())


class MemoryStore:
    """Stand-in store with the two methods the simulator writes through."""

    def __init__(self, fail_metric_writes: int = 0) -> None:
        self.lock = threading.Lock()
        self.alerts: list[Alert] = []
        self.series: list[MetricSeries] = []
        self.fail_metric_writes = fail_metric_writes

    def append_metrics(self, series: list[MetricSeries]) -> int:
        with self.lock:
            if self.fail_metric_writes > 0:
                self.fail_metric_writes -= 1
                raise ConnectionError("store unreachable")
            self.series.extend(series)
            return len(series)

    def upsert_alerts(self, alerts: list[Alert]) -> list:
        with self.lock:
            self.alerts.extend(alerts)
            return []

    def values(self, service: str, metric: str) -> np.ndarray:
        with self.lock:
            found = [s for s in self.series if s.service == service and s.metric == metric]
        return np.concatenate([s.values for s in found])


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_live_step_writes_one_point_per_series() -> None:
    store = MemoryStore()
    simulator = LiveSimulator(store, seed=1)
    before = simulator.clock
    sent_series, _ = simulator.step()
    assert sent_series == SERIES_PER_TICK
    assert len(store.series) == SERIES_PER_TICK
    assert {len(s) for s in store.series} == {1}
    assert store.series[0].timestamps[0] == before.timestamp()
    assert (simulator.clock - before).total_seconds() == 60


def test_live_inject_fires_root_alerts_after_fault_start() -> None:
    store = MemoryStore()
    simulator = LiveSimulator(store, seed=2)
    for _ in range(20):
        simulator.step()
    truth = simulator.inject("db_connection_pool_exhaustion", root="orders-db")
    for _ in range(15):
        simulator.step()
    root_alerts = [a for a in store.alerts if a.service == "orders-db"]
    assert "DBConnectionPoolExhausted" in {a.name for a in root_alerts}
    pool_alert = next(a for a in root_alerts if a.name == "DBConnectionPoolExhausted")
    assert pool_alert.starts_at > truth["start"]
    assert simulator.status()["fault"]["root_cause"] == "orders-db"


def test_live_fault_ends_and_alerts_resolve() -> None:
    store = MemoryStore()
    simulator = LiveSimulator(store, seed=3)
    simulator.inject("cpu_saturation", root="search", duration_minutes=15)
    for _ in range(30):
        simulator.step()
    cpu = [a for a in store.alerts if a.service == "search" and a.name == "HighCPU"]
    assert [a.status for a in cpu][0] == "firing"
    assert cpu[-1].status == "resolved"
    assert cpu[-1].fingerprint == cpu[0].fingerprint
    assert cpu[-1].ends_at > cpu[0].starts_at
    assert simulator.status()["fault"] is None


def test_live_crash_loop_resets_counter() -> None:
    store = MemoryStore()
    simulator = LiveSimulator(store, seed=4)
    for _ in range(5):
        simulator.step()
    simulator.inject("crash_loop", root="payments")
    for _ in range(20):
        simulator.step()
    counter = store.values("payments", "http_requests_total")
    assert np.any(np.diff(counter) < 0)


def test_live_background_has_spikes_and_flapping() -> None:
    store = MemoryStore()
    simulator = LiveSimulator(store, seed=0)
    for _ in range(480):
        simulator.step()
    episodes: dict[str, set] = {}
    for alert in store.alerts:
        episodes.setdefault(alert.fingerprint, set()).add(alert.starts_at)
    assert store.alerts
    assert any(len(starts) > 1 for starts in episodes.values())
    firing = [a for a in store.alerts if a.status == "firing"]
    resolved = [a for a in store.alerts if a.status == "resolved"]
    assert {(a.fingerprint, a.starts_at) for a in resolved} <= {
        (a.fingerprint, a.starts_at) for a in firing
    }


def test_live_thread_start_pause_inject_stop() -> None:
    store = MemoryStore()
    simulator = LiveSimulator(store, speed=6000.0, seed=5)
    simulator.start()
    try:
        assert wait_for(lambda: simulator.status()["ticks"] >= 5)
        simulator.pause()
        paused_at = simulator.status()["ticks"]
        time.sleep(0.2)
        # At most the tick that was running when pause() was called may still finish.
        assert simulator.status()["ticks"] <= paused_at + 1
        assert simulator.status()["paused"]
        simulator.inject("bad_deploy", root="checkout")
        simulator.resume()
        assert wait_for(lambda: any(a.name == "DeploymentRolledOut" for a in store.alerts))
        assert wait_for(
            lambda: any(a.service == "checkout" and a.name == "HighErrorRate" for a in store.alerts)
        )
    finally:
        simulator.stop(timeout=5.0)
    assert not simulator.status()["running"]
    stopped_at = simulator.status()["ticks"]
    time.sleep(0.1)
    assert simulator.status()["ticks"] == stopped_at


def test_live_stop_is_prompt_at_slow_speed() -> None:
    simulator = LiveSimulator(MemoryStore(), speed=0.01, seed=6)
    simulator.start()
    assert wait_for(lambda: simulator.status()["ticks"] >= 1)
    started = time.monotonic()
    simulator.stop(timeout=5.0)
    # One tick is 6000 real seconds at this speed; stop must not wait for it.
    assert time.monotonic() - started < 2.0
    assert not simulator.status()["running"]


def test_live_set_speed_wakes_a_sleeping_thread() -> None:
    simulator = LiveSimulator(MemoryStore(), speed=0.01, seed=7)
    simulator.start()
    try:
        assert wait_for(lambda: simulator.status()["ticks"] >= 1)
        simulator.set_speed(6000.0)
        assert wait_for(lambda: simulator.status()["ticks"] >= 10)
        assert simulator.status()["speed"] == 6000.0
    finally:
        simulator.stop()


def test_live_keeps_running_when_store_write_fails() -> None:
    store = MemoryStore(fail_metric_writes=2)
    simulator = LiveSimulator(store, speed=6000.0, seed=8)
    simulator.start()
    try:
        assert wait_for(lambda: simulator.status()["ticks"] >= 6)
    finally:
        simulator.stop()
    status = simulator.status()
    assert status["errors"] == 2
    assert "store unreachable" in status["last_error"]
    assert len(store.series) == (status["ticks"] - 2) * SERIES_PER_TICK


def test_live_rejects_invalid_speed_and_scenario() -> None:
    simulator = LiveSimulator(MemoryStore(), seed=9)
    with pytest.raises(ValueError, match="speed"):
        simulator.set_speed(0)
    with pytest.raises(KeyError, match="no_such_fault"):
        simulator.inject("no_such_fault")
    with pytest.raises(KeyError, match="frontend"):
        simulator.inject("cpu_saturation", root="frontend")


def test_live_writes_into_sqlite_store(tmp_path) -> None:
    store = open_store(Settings(sqlite_path=str(tmp_path / "live.db")))
    try:
        simulator = LiveSimulator(store, seed=10)
        simulator.inject("cache_failure")
        for _ in range(12):
            simulator.step()
        assert simulator.status()["errors"] == 0
        alerts = store.recent_alerts().items
        assert "CacheHitRateLow" in {a.name for a in alerts if a.service == "redis"}
        series = {s.key: s for s in store.recent_metrics()}
        assert len(series["redis/cache_hit_ratio"]) == 12
        assert series["redis/cache_hit_ratio"].values[-1] < 0.5
    finally:
        store.close()
