"""Per-series state of the live simulator: noise, counter total and alert rule progress."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from opsforge_core.models import Alert
from simulator.rules import AlertRule, build_alert
from simulator.topology import ServiceSpec

# Alertmanager re-sends a still-firing alert every repeat_interval; 30 simulated minutes here.
REPEAT_SECONDS = 30 * 60.0


@dataclass
class SeriesState:
    """State one series carries from tick to tick."""

    noise: float = 0.0
    counter: float = 0.0
    breaches: dict[str, int] = field(default_factory=dict)
    firing: dict[str, Alert] = field(default_factory=dict)
    last_sent: dict[str, float] = field(default_factory=dict)


def _breached(rule: AlertRule, value: float, threshold: float) -> bool:
    # A NaN compares False both ways, so a missing sample counts as healthy.
    return value > threshold if rule.above else value < threshold


def evaluate_rules(
    spec: ServiceSpec,
    rules: tuple[AlertRule, ...],
    state: SeriesState,
    value: float,
    now: float,
    version: str,
    step_seconds: float,
) -> list[Alert]:
    """Advance each rule by one sample; return the deliveries this sample causes.

    A rule fires on its ``for_samples``-th breaching sample in a row, is re-sent every
    ``REPEAT_SECONDS`` while firing (same fingerprint and start), and resolves on the first
    healthy sample.
    """
    sent: list[Alert] = []
    for rule in rules:
        threshold = rule.threshold_for(spec)
        firing = state.firing.get(rule.name)
        if _breached(rule, value, threshold):
            count = state.breaches.get(rule.name, 0) + 1
            state.breaches[rule.name] = count
            if firing is None and count >= rule.for_samples:
                alert = build_alert(
                    rule, spec, value=value, starts_at=now, ends_at=None, version=version,
                    step_seconds=step_seconds,
                )  # fmt: skip
                state.firing[rule.name] = alert
                state.last_sent[rule.name] = now
                sent.append(alert)
            elif firing is not None and now - state.last_sent[rule.name] >= REPEAT_SECONDS:
                state.last_sent[rule.name] = now
                sent.append(firing)
            continue
        state.breaches[rule.name] = 0
        if firing is not None:
            ended = datetime.fromtimestamp(now, tz=UTC)
            sent.append(replace(firing, status="resolved", ends_at=ended))
            del state.firing[rule.name]
    return sent
