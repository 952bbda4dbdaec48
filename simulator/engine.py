"""Turn a fault plan into metric series and the alerts their rules fire.

Each series is computed twice over the same noise: once with only the background effects
("quiet") and once with the fault on top. An alert is caused by the fault when, while it was
pending or firing, the fault moved its series by at least ``CAUSE_SHARE`` of the distance
from the quiet median to the threshold. Every other alert is noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from opsforge_core.models import Alert, MetricSeries
from simulator.background import Background
from simulator.effects import Effect, FaultPlan, apply_effects
from simulator.metrics import ar1_noise, baseline, clip, counter_from_rate, with_noise
from simulator.rules import RULES_BY_METRIC, AlertRule, Episode, build_alert, find_episodes
from simulator.topology import METRICS, ServiceSpec

logger = logging.getLogger(__name__)

CAUSE_SHARE = 0.25


@dataclass(frozen=True)
class FiredAlert:
    """An alert from one rule episode, with whether the fault caused it."""

    alert: Alert
    caused: bool
    episode: Episode
    rule: AlertRule
    value: float = 0.0


@dataclass
class Timeline:
    """Sample times of a run and the two origins effects are measured from (epoch seconds)."""

    timestamps: np.ndarray
    step_seconds: float
    fault_start: float

    @property
    def start(self) -> float:
        return float(self.timestamps[0])

    def index_at(self, epoch: float) -> int:
        """Index of the first sample at or after ``epoch``."""
        return int(np.ceil((epoch - self.start) / self.step_seconds - 1e-9))


def _restart_indexes(
    service: str, plan: FaultPlan, background: Background, timeline: Timeline
) -> list[int]:
    times = [timeline.fault_start + s for name, s in plan.restarts if name == service]
    times += [timeline.start + s for name, s in background.restarts if name == service]
    return [timeline.index_at(t) for t in times]


@dataclass(frozen=True)
class Deploy:
    """A version change at epoch ``at``; ``caused`` is True for the fault's own deploy."""

    service: str
    old: str
    new: str
    at: float
    caused: bool


def deploys_of(plan: FaultPlan, background: Background, timeline: Timeline) -> list[Deploy]:
    """Return the fault's deploy and the routine one, with absolute times."""
    found = []
    if plan.version_change:
        service, old, new, offset = plan.version_change
        found.append(Deploy(service, old, new, timeline.fault_start + offset, True))
    if background.version_change:
        service, old, new, offset = background.version_change
        found.append(Deploy(service, old, new, timeline.start + offset, False))
    return found


def _version_at(spec: ServiceSpec, deploys: list[Deploy], epoch: float) -> str:
    version = spec.version
    for deploy in sorted(deploys, key=lambda d: d.at):
        if deploy.service == spec.name:
            version = deploy.new if epoch >= deploy.at else version
    return version


def _series_values(
    spec: ServiceSpec,
    metric: str,
    effects: tuple[list[Effect], list[Effect]],
    timeline: Timeline,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (quiet, faulty) values of one series, or per-second rates for a counter.

    ``effects`` is the pair (background effects, fault effects) of this series.
    """
    ts = timeline.timestamps
    # Effects move the level; the noise is added last, so a saturated series still jitters.
    unit_noise = ar1_noise(ts.size, 1.0, rng)
    quiet = apply_effects(baseline(spec, metric, ts), ts - timeline.start, effects[0])
    faulty = apply_effects(quiet, ts - timeline.fault_start, effects[1])
    quiet = with_noise(spec, metric, quiet, unit_noise)
    faulty = with_noise(spec, metric, faulty, unit_noise)
    return clip(spec, metric, quiet), clip(spec, metric, faulty)


def _fire(
    spec: ServiceSpec,
    metric: str,
    quiet: np.ndarray,
    faulty: np.ndarray,
    deploys: list[Deploy],
    timeline: Timeline,
) -> list[FiredAlert]:
    fired: list[FiredAlert] = []
    ts = timeline.timestamps
    fault_shift = np.abs(faulty - quiet)
    for rule in RULES_BY_METRIC.get(metric, ()):
        threshold = rule.threshold_for(spec)
        margin = CAUSE_SHARE * abs(threshold - float(np.median(quiet)))
        for episode in find_episodes(rule.breached(faulty, threshold), rule.for_samples):
            stop = faulty.size if episode.resolved is None else episode.resolved
            caused = bool(fault_shift[episode.pending : stop].max() >= margin)
            fire_time = float(ts[episode.fired])
            end_time = None if episode.resolved is None else float(ts[episode.resolved])
            value = float(faulty[episode.fired])
            alert = build_alert(
                rule,
                spec,
                value=value,
                starts_at=fire_time,
                ends_at=end_time,
                version=_version_at(spec, deploys, fire_time),
                step_seconds=timeline.step_seconds,
            )
            fired.append(FiredAlert(alert, caused, episode, rule, value))
    return fired


def simulate(
    specs: dict[str, ServiceSpec],
    plan: FaultPlan,
    background: Background,
    timeline: Timeline,
    rng: np.random.Generator,
    keys: list[tuple[str, str]] | None = None,
) -> tuple[list[MetricSeries], list[FiredAlert]]:
    """Compute every series (or only ``keys``, in that order) and the alerts they fire."""
    if keys is None:
        keys = [(name, metric) for name in sorted(specs) for metric in specs[name].metrics]
    fault_effects = plan.by_series()
    deploys = deploys_of(plan, background, timeline)
    quiet_effects: dict[tuple[str, str], list[Effect]] = {}
    for effect in background.effects:
        quiet_effects.setdefault((effect.service, effect.metric), []).append(effect)
    series: list[MetricSeries] = []
    fired: list[FiredAlert] = []
    for service, metric in keys:
        spec = specs[service]
        meta = METRICS[metric]
        effects = (
            quiet_effects.get((service, metric), []),
            fault_effects.get((service, metric), []),
        )
        quiet, faulty = _series_values(spec, metric, effects, timeline, rng)
        if meta.kind == "counter":
            restarts = _restart_indexes(service, plan, background, timeline)
            # The process has been up for days, so the counter starts high.
            initial = spec.baseline(metric) * rng.uniform(2.0, 20.0) * 86400.0
            values = counter_from_rate(faulty, timeline.step_seconds, restarts, initial)
        else:
            values = faulty
            fired += _fire(spec, metric, quiet, faulty, deploys, timeline)
        series.append(
            MetricSeries(service, metric, timeline.timestamps, values, meta.unit, meta.kind)
        )
    logger.debug("simulated %d series, %d alert episodes", len(series), len(fired))
    return series, fired
