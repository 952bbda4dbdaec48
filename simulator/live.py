"""Live data generator: a daemon thread that writes metrics and alerts into a store.

Time is simulated: each tick advances the clock by ``step_seconds`` and the thread sleeps
``step_seconds / speed`` real seconds between ticks (speed 60 with 60-second steps is one
simulated minute per real second). Values follow the same baselines, noise, fault effects and
alert rules as the batch generator, evaluated one sample at a time. A store write that fails
is logged and counted, and the next tick goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from opsforge_core.models import Alert, MetricSeries, iso, utc, utcnow
from opsforge_core.store.base import Store
from simulator.background import NOISY_METRICS, threshold_lift
from simulator.effects import Effect, FaultPlan, Shape, apply_effects
from simulator.live_state import SeriesState, evaluate_rules
from simulator.metrics import NOISE_PHI, baseline, clip, with_noise
from simulator.rules import RULES_BY_METRIC, deploy_alert
from simulator.scenarios import BuildContext, get_scenario
from simulator.topology import METRICS, SERVICES, default_graph

logger = logging.getLogger(__name__)

# About one unrelated spike per simulated hour and one flapping series per four hours, with
# 60-second ticks.
SPIKE_PROBABILITY = 1.0 / 60.0
FLAP_PROBABILITY = 1.0 / 240.0
MAX_LOGGED_ERRORS = 5


@dataclass
class ActiveFault:
    """An injected fault: its plan, simulated start and end, and its effects by series."""

    plan: FaultPlan
    start: float  # epoch seconds, simulated
    until: float
    effects: dict[tuple[str, str], list[Effect]] = field(default_factory=dict)


class LiveSimulator:
    """Emit baseline metrics, noise and injected faults into ``store`` in simulated time.

    Every public method is thread-safe. ``store`` needs only ``append_metrics`` and
    ``upsert_alerts``.
    """

    def __init__(
        self,
        store: Store,
        speed: float = 1.0,
        seed: int | None = None,
        step_seconds: int = 60,
        start: datetime | None = None,
    ) -> None:
        if step_seconds <= 0:
            raise ValueError(f"step_seconds={step_seconds} must be positive")
        self._store = store
        self._speed = self._checked_speed(speed)
        self._step = float(step_seconds)
        self._rng = np.random.default_rng(seed)
        self._graph = default_graph()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._paused = False
        begin = utc(start or utcnow()).timestamp()
        self._clock = begin - begin % self._step
        self._origin = self._clock
        self._next_due = 0.0
        self._fault: ActiveFault | None = None
        self._noise: list[Effect] = []  # background effects, timed from self._origin
        # Counters start at one day's worth of requests, as if the processes had been up a day.
        self._states = {
            (name, metric): SeriesState(counter=spec.baseline(metric) * 86400.0)
            for name, spec in SERVICES.items()
            for metric in spec.metrics
        }
        self._stats = {"ticks": 0, "points": 0, "alerts": 0, "errors": 0}
        self._last_error: str | None = None

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; does nothing if it is already running."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._paused = False
            self._next_due = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="live-simulator", daemon=True)
            self._thread.start()
        logger.info("live simulator started at %s, speed %.1fx", iso(self.clock), self._speed)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it to finish its tick."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("live simulator thread still busy after %.1fs", timeout)
        logger.info("live simulator stopped after %d ticks", self._stats["ticks"])

    def pause(self) -> None:
        with self._cond:
            self._paused = True
        logger.info("live simulator paused at %s", iso(self.clock))

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._next_due = time.monotonic() + self._step / self._speed
            self._cond.notify_all()
        logger.info("live simulator resumed")

    def set_speed(self, speed: float) -> None:
        """Set simulated seconds per real second; raise ``ValueError`` unless positive."""
        checked = self._checked_speed(speed)
        with self._cond:
            self._speed = checked
            self._next_due = min(self._next_due, time.monotonic() + self._step / checked)
            self._cond.notify_all()
        logger.info("live simulator speed set to %.1fx", checked)

    def inject(
        self, scenario_name: str, root: str | None = None, duration_minutes: float = 240.0
    ) -> dict[str, Any]:
        """Start a fault now (in simulated time) and return its ground truth.

        The fault lasts ``duration_minutes`` of simulated time, then its symptoms stop and its
        alerts resolve. The default of 4 hours gives an operator 4 real minutes at the
        console's 60x speed to analyze the fault while it is active, and gives slow faults
        such as a filling disk time to show. A new injection replaces a running one. Raise
        ``KeyError`` for an unknown scenario or root service.
        """
        scenario = get_scenario(scenario_name)
        if root is not None and root not in scenario.roots:
            raise KeyError(
                f"{root!r} is not a root of {scenario_name}; use one of {scenario.roots}"
            )
        with self._cond:
            ctx = BuildContext(self._graph, SERVICES, self._rng, duration_minutes * 60.0)
            plan = scenario.plan(ctx, root)
            start = self._clock
            fault = ActiveFault(plan, start, start + duration_minutes * 60.0, plan.by_series())
            self._fault = fault
        truth = {
            "scenario": scenario_name,
            "root_cause": plan.root_cause,
            "fault_kind": plan.fault_kind,
            "start": datetime.fromtimestamp(start, tz=UTC),
            **plan.details,
        }
        logger.info("injected %s on %s at %s", scenario_name, plan.root_cause, iso(truth["start"]))
        return truth

    def clear(self) -> None:
        """End the injected fault now; its alerts resolve on the next ticks."""
        with self._cond:
            self._fault = None
        logger.info("live simulator fault cleared")

    def status(self) -> dict[str, Any]:
        """Return a snapshot: running, paused, speed, simulated clock, fault and counts."""
        with self._cond:
            fault = self._fault
            return {
                "running": self._thread is not None and self._thread.is_alive(),
                "paused": self._paused,
                "speed": self._speed,
                "step_seconds": self._step,
                "clock": datetime.fromtimestamp(self._clock, tz=UTC),
                "fault": None
                if fault is None
                else {
                    "scenario": fault.plan.scenario,
                    "root_cause": fault.plan.root_cause,
                    "start": datetime.fromtimestamp(fault.start, tz=UTC),
                    "until": datetime.fromtimestamp(fault.until, tz=UTC),
                },
                "last_error": self._last_error,
                **self._stats,
            }

    @property
    def clock(self) -> datetime:
        with self._cond:
            return datetime.fromtimestamp(self._clock, tz=UTC)

    def __enter__(self) -> LiveSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the thread ------------------------------------------------------------------------

    @staticmethod
    def _checked_speed(speed: float) -> float:
        if not speed > 0 or not np.isfinite(speed):
            raise ValueError(f"speed={speed} must be a positive number of simulated seconds")
        return float(speed)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._paused and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                delay = self._next_due - time.monotonic()
                if delay > 0:
                    self._cond.wait(timeout=delay)
                    continue
                interval = self._step / self._speed
                # After a stall (a slow store), carry on from now instead of bursting.
                self._next_due = max(self._next_due + interval, time.monotonic())
            self.step()

    def step(self) -> tuple[int, int]:
        """Run one tick now: compute, write to the store, advance the clock.

        Return the number of series and alerts sent. The thread calls it; tests and scripts
        may call it directly instead of starting the thread.
        """
        with self._cond:
            series, alerts = self._tick()
        self._emit(series, alerts)
        return len(series), len(alerts)

    def _tick(self) -> tuple[list[MetricSeries], list[Alert]]:
        now = self._clock
        fault = self._fault
        if fault is not None and now >= fault.until:
            logger.info("fault %s on %s ended", fault.plan.scenario, fault.plan.root_cause)
            self._fault = fault = None
        self._maybe_add_noise(now, fault)
        series: list[MetricSeries] = []
        alerts: list[Alert] = []
        if fault is not None and fault.start == now and fault.plan.version_change:
            service, old, new, _ = fault.plan.version_change
            alerts.append(deploy_alert(SERVICES[service], old, new, now))
        for (service, metric), state in self._states.items():
            value = self._value(service, metric, state, now, fault)
            series.append(self._point(service, metric, now, value))
            if METRICS[metric].kind == "gauge":
                version = self._version(service, now, fault)
                rules = RULES_BY_METRIC.get(metric, ())
                alerts += evaluate_rules(SERVICES[service], rules, state, value, now, version,
                                         self._step)  # fmt: skip
        self._clock = now + self._step
        self._stats["ticks"] += 1
        return series, alerts

    def _value(
        self, service: str, metric: str, state: SeriesState, now: float, fault: ActiveFault | None
    ) -> float:
        spec = SERVICES[service]
        stamp = np.array([now])
        # The same AR(1) noise as the batch generator, one step at a time.
        innovation = self._rng.normal(0.0, np.sqrt(1.0 - NOISE_PHI**2))
        state.noise = NOISE_PHI * state.noise + innovation
        background = [e for e in self._noise if (e.service, e.metric) == (service, metric)]
        level = apply_effects(baseline(spec, metric, stamp), stamp - self._origin, background)
        if fault is not None:
            effects = fault.effects.get((service, metric), [])
            level = apply_effects(level, stamp - fault.start, effects)
        values = with_noise(spec, metric, level, np.array([state.noise]))
        value = float(clip(spec, metric, values)[0])
        if METRICS[metric].kind == "counter":
            if fault is not None and self._restarted(service, now, fault):
                state.counter = 0.0
            state.counter += max(value, 0.0) * self._step
            return state.counter
        return value

    def _restarted(self, service: str, now: float, fault: ActiveFault) -> bool:
        elapsed = now - fault.start
        return any(
            name == service and elapsed - self._step < offset <= elapsed
            for name, offset in fault.plan.restarts
        )

    def _version(self, service: str, now: float, fault: ActiveFault | None) -> str:
        change = fault.plan.version_change if fault else None
        if change and change[0] == service and now >= fault.start + change[3]:
            return change[2]
        return SERVICES[service].version

    def _maybe_add_noise(self, now: float, fault: ActiveFault | None) -> None:
        """Sometimes push one series of a healthy service past its threshold: once for a few
        samples (a spike) or again and again for up to an hour (a flapping alert)."""
        elapsed = now - self._origin
        self._noise = [e for e in self._noise if (e.until_s or e.onset_s + 3600) > elapsed]
        roll = self._rng.random()
        if roll >= SPIKE_PROBABILITY + FLAP_PROBABILITY:
            return
        pool = self._quiet_series(fault)
        if not pool:
            return
        service, metric = pool[int(self._rng.integers(len(pool)))]
        effect = self._noise_effect(service, metric, now, spike=roll < SPIKE_PROBABILITY)
        self._noise.append(effect)
        logger.debug("noise %s on %s/%s", effect.shape.kind, service, metric)

    def _quiet_series(self, fault: ActiveFault | None) -> list[tuple[str, str]]:
        """Return the noisy-metric series of services the fault spares that carry no noise."""
        affected = fault.plan.affected_services() if fault else set()
        busy = {(e.service, e.metric) for e in self._noise}
        return [
            (name, metric)
            for name, spec in sorted(SERVICES.items())
            if name not in affected
            for metric in spec.metrics
            if metric in NOISY_METRICS and (name, metric) not in busy
        ]

    def _noise_effect(self, service: str, metric: str, now: float, spike: bool) -> Effect:
        elapsed = now - self._origin
        for_samples = RULES_BY_METRIC[metric][0].for_samples
        amount = threshold_lift(SERVICES[service], metric, now)
        if spike:
            width = (for_samples + int(self._rng.integers(1, 4))) * self._step
            return Effect(service, metric, "add", amount, elapsed, Shape("pulse", width_s=width))

        above = (for_samples + int(self._rng.integers(1, 3))) * self._step
        below = int(self._rng.integers(2, 5)) * self._step
        shape = Shape("square", period_s=above + below, width_s=above)
        length = self._rng.uniform(30.0, 60.0) * 60.0
        return Effect(service, metric, "add", amount, elapsed, shape, elapsed + length)

    @staticmethod
    def _point(service: str, metric: str, now: float, value: float) -> MetricSeries:
        meta = METRICS[metric]
        return MetricSeries(service, metric, np.array([now]), np.array([value]), meta.unit,
                            meta.kind)  # fmt: skip

    def _emit(self, series: list[MetricSeries], alerts: list[Alert]) -> None:
        for kind, write, items in (
            ("metrics", self._store.append_metrics, series),
            ("alerts", self._store.upsert_alerts, alerts),
        ):
            if not items:
                continue
            try:
                write(items)
            except Exception as exc:  # noqa: BLE001 - any store failure must not kill the thread
                self._record_error(kind, len(items), exc)
                continue
            with self._cond:
                self._stats["points" if kind == "metrics" else "alerts"] += len(items)

    def _record_error(self, kind: str, count: int, exc: Exception) -> None:
        with self._cond:
            self._stats["errors"] += 1
            errors = self._stats["errors"]
            self._last_error = f"{type(exc).__name__}: {exc}"
        # The first few failures are logged in full, then one line per hundred.
        if errors <= MAX_LOGGED_ERRORS or errors % 100 == 0:
            logger.error("live simulator failed to write %d %s (failure %d): %s", count, kind,
                         errors, exc, exc_info=errors <= MAX_LOGGED_ERRORS)  # fmt: skip
