"""Group alerts into incidents by time, service topology and correlation labels.

A group stays open while any of its alerts fires, so slow-spreading faults stay one incident.
Groups of one service whose alerts are all quiet (low severity, flapping or self-clearing)
are noise. ``signature_of`` keys the pattern library by an alert set's names and services.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsforge_core.models import SEVERITY_RANK, Alert, iso, max_severity
from opsforge_core.topology import ServiceGraph

# Labels whose equal values put two alerts in the same incident whatever their services.
CORRELATION_LABELS = ("incident", "incident_id", "correlation_id", "trace_id", "change_id")
LOW_SEVERITIES = frozenset({"info", "warning"})
# An alert resolved within this long after it started is a blip, when nothing joins it.
TRANSIENT = timedelta(minutes=5)
# A fingerprint firing again within this long after its group went quiet rejoins the group.
RECUR_WINDOW = timedelta(minutes=60)


# Below DynamoDB's 2,048-byte limit on an index partition key, with room to spare.
MAX_SIGNATURE_BYTES = 1024


def signature_of(alerts: list[Alert]) -> str:
    """Return a stable signature of an alert set: its sorted alert names and services.

    The same kinds of alerts on the same services give the same signature whatever their
    order, fingerprints or times. The pattern library is keyed by it.
    """
    names = sorted({a.name for a in alerts})
    services = sorted({a.service for a in alerts})
    signature = f"alerts={','.join(names)};services={','.join(services)}"
    if len(signature.encode()) <= MAX_SIGNATURE_BYTES:
        return signature
    # DynamoDB limits an index key to 2,048 bytes; a storm over thousands of services keeps a
    # readable head and a digest of the whole signature, which stays exact to compare.
    digest = hashlib.sha256(signature.encode()).hexdigest()
    head = signature.encode()[: MAX_SIGNATURE_BYTES - 80].decode(errors="ignore")
    return f"{head}...#sha256:{digest}"


@dataclass
class AlertGroup:
    """Alerts that belong to one incident."""

    alerts: list[Alert]
    origin: str = ""

    @property
    def services(self) -> list[str]:
        return sorted({a.service for a in self.alerts})

    @property
    def start(self):
        return min(a.starts_at for a in self.alerts)

    @property
    def severity(self) -> str:
        return max_severity([a.severity for a in self.alerts])

    def to_dict(self, group_id: str) -> dict[str, Any]:
        ends = [a.ends_at for a in self.alerts if a.ends_at is not None]
        firing = any(a.status == "firing" for a in self.alerts)
        return {
            "id": group_id,
            "fingerprints": sorted({a.fingerprint for a in self.alerts}),
            "services": self.services,
            "names": sorted({a.name for a in self.alerts}),
            "start": iso(self.start),
            "end": None if firing or not ends else iso(max(ends)),
            "severity": self.severity,
            "alert_count": len(self.alerts),
            "origin": self.origin,
            "signature": signature_of(self.alerts),
        }


def group_alerts(
    alerts: list[Alert],
    graph: ServiceGraph | None,
    window: timedelta,
    max_hops: int = 1,
) -> list[AlertGroup]:
    """Group alerts that start while a related group is active (or within ``window`` after).

    A group stays active while any of its alerts fires, so a long incident keeps collecting
    the symptoms that spread from it. An alert that fires again within ``RECUR_WINDOW`` after
    its group went quiet reopens that group. A blip (resolved within ``TRANSIENT``) joins only
    a group with a related alert that started within ``window`` of it, and a group of blips
    is joined on the same terms. Related means the same
    service, a shared correlation label, or (with a graph) a dependency path of at most
    ``max_hops`` either way. Without a graph, time alone links. An alert related to several
    active groups merges them.
    """
    ordered = sorted(alerts, key=lambda a: (a.starts_at, a.fingerprint))
    related = _RelatedServices(graph, max_hops)
    active: list[_OpenGroup] = []
    closed: list[_OpenGroup] = []
    for alert in ordered:
        still_open = []
        for group in active:
            if group.until is not None and group.until + window < alert.starts_at:
                closed.append(group)
            else:
                still_open.append(group)
        recurring = [
            g
            for g in closed
            if alert.fingerprint in g.fingerprints and g.until + RECUR_WINDOW >= alert.starts_at
        ]
        closed = [g for g in closed if g not in recurring]
        still_open += recurring
        # A link must be near in start time (``window``) when either side is only blips.
        blip = _is_blip(alert)
        matches = [
            g
            for g in still_open
            if g in recurring or related.to_group(alert, g, window if blip or g.all_blips else None)
        ]
        merged = _OpenGroup.of(alert)
        for group in matches:
            merged.absorb(group)
        active = [g for g in still_open if g not in matches] + [merged]
    groups = [AlertGroup(g.ordered_alerts()) for g in closed + active]
    for group in groups:
        group.alerts.sort(key=lambda a: (a.starts_at, a.fingerprint))
    groups.sort(key=lambda g: (g.start, g.alerts[0].fingerprint))
    return groups


@dataclass(eq=False)
class _OpenGroup:
    """A group being built, with its alerts summarized so that checking a new alert against it
    does not walk its alerts (a storm has thousands).

    Alerts arrive in start order, so every member started at or before the alert being
    checked, and the latest start per service (and per correlation label value) shows which
    members started within a given time of it. A merge links the absorbed groups instead of
    copying their alerts, and keeps the larger of each pair of summaries, because one storm
    group absorbs a new one-alert group for nearly every alert.
    """

    head: list[Alert]  # the alert that opened the group; absorbed groups' alerts follow
    until: datetime | None  # last end time; None while an alert still fires
    absorbed: list[_OpenGroup] = field(default_factory=list)
    latest: dict[str, datetime] = field(default_factory=dict)  # service -> latest start
    label_latest: dict[str, dict[str, datetime]] = field(default_factory=dict)
    fingerprints: set[str] = field(default_factory=set)
    all_blips: bool = True

    @classmethod
    def of(cls, alert: Alert) -> _OpenGroup:
        labels = {
            label: {alert.labels[label]: alert.starts_at}
            for label in CORRELATION_LABELS
            if label in alert.labels
        }
        return cls(
            head=[alert],
            until=alert.ends_at,
            latest={alert.service: alert.starts_at},
            label_latest=labels,
            fingerprints={alert.fingerprint},
            all_blips=_is_blip(alert),
        )

    def ordered_alerts(self) -> list[Alert]:
        """Return the head, then each absorbed group's alerts in the order it was absorbed."""
        alerts: list[Alert] = []
        stack: list[_OpenGroup] = [self]
        while stack:
            group = stack.pop()
            alerts.extend(group.head)
            stack.extend(reversed(group.absorbed))
        return alerts

    def absorb(self, other: _OpenGroup) -> None:
        """Merge ``other`` into this group. ``other`` is discarded, so its summaries are reused."""
        self.absorbed.append(other)
        if len(self.latest) < len(other.latest):
            self.latest, other.latest = other.latest, self.latest
        _merge_latest(self.latest, other.latest)
        for label, values in other.label_latest.items():
            mine = self.label_latest.setdefault(label, {})
            if len(mine) < len(values):
                self.label_latest[label], mine, values = values, values, mine
            _merge_latest(mine, values)
        if len(self.fingerprints) < len(other.fingerprints):
            self.fingerprints, other.fingerprints = other.fingerprints, self.fingerprints
        self.fingerprints |= other.fingerprints
        self.all_blips = self.all_blips and other.all_blips
        if self.until is None or other.until is None:
            self.until = None
        else:
            self.until = max(self.until, other.until)


def _merge_latest(into: dict[str, datetime], other: dict[str, datetime]) -> None:
    for key, start in other.items():
        if key not in into or into[key] < start:
            into[key] = start


class _RelatedServices:
    """Decides whether two alerts' services are related; caches each service's neighbours."""

    def __init__(self, graph: ServiceGraph | None, max_hops: int) -> None:
        self.graph = graph
        self.max_hops = max_hops
        self._related: dict[str, frozenset[str]] = {}

    def to_group(self, alert: Alert, group: _OpenGroup, near: timedelta | None = None) -> bool:
        """Return True when ``alert`` relates to the group.

        With ``near``, only the group's alerts that started within ``near`` of ``alert``
        count, so a blip joins the burst it belongs to, not a long incident it happens
        to overlap. Members never start after ``alert`` (see ``_OpenGroup``).
        """
        since = None if near is None else alert.starts_at - near
        if since is None:
            services: Iterable[str] = group.latest
        else:
            services = {s for s, start in group.latest.items() if start >= since}
        if alert.service in services or (self.graph is None and services):
            return True
        for label, values in group.label_latest.items():
            value = alert.labels.get(label)
            start = values.get(value) if value else None
            if start is not None and (since is None or start >= since):
                return True
        return self.graph is not None and not self.related(alert.service).isdisjoint(services)

    def connected(self, a: str, b: str) -> bool:
        return self.graph is not None and b in self.related(a)

    def related(self, service: str) -> frozenset[str]:
        """Return the services within ``max_hops`` dependency edges of ``service``, either way."""
        if service not in self._related:
            graph = self.graph
            assert graph is not None
            near = _within(service, graph.dependencies, self.max_hops)
            near |= _within(service, graph.dependents, self.max_hops)
            self._related[service] = frozenset(near)
        return self._related[service]


def _within(start: str, step: Callable[[str], set[str]], max_hops: int) -> set[str]:
    """Return the services at most ``max_hops`` steps from ``start``, ``start`` included."""
    seen = {start}
    frontier = {start}
    for _ in range(max_hops):
        frontier = {nxt for node in frontier for nxt in step(node)} - seen
        if not frontier:
            break
        seen |= frontier
    return seen


def split_noise(
    groups: list[AlertGroup],
    flapping: set[str] | frozenset[str] = frozenset(),
    transient: timedelta = TRANSIENT,
) -> tuple[list[AlertGroup], list[Alert]]:
    """Move isolated quiet groups out when another group remains.

    A group is isolated when it covers one service: grouping found no related service
    alerting at the same time. It is noise when its alerts are also all info or warning, all
    flapping, or all resolved within ``transient`` (a blip that cleared itself). A group of
    blips on several services is noise too, unless one of them is flapping.
    """
    if len(groups) < 2:
        return groups, []
    kept: list[AlertGroup] = []
    noise: list[Alert] = []
    for group in groups:
        if _is_noise(group, flapping, transient):
            noise.extend(group.alerts)
        else:
            kept.append(group)
    if not kept:
        # Everything looked like noise: keep the largest group rather than report nothing.
        largest = max(groups, key=lambda g: (len(g.alerts), SEVERITY_RANK.get(g.severity, 0)))
        noise = [a for a in noise if a not in largest.alerts]
        kept = [largest]
    return kept, noise


def _is_noise(group: AlertGroup, flapping: set[str] | frozenset[str], transient: timedelta) -> bool:
    if len(group.services) == 1 and _quiet(group, flapping, transient):
        return True
    # Blips on several services at once that each cleared by themselves, none of them
    # recurring, are a passing disturbance. A crash loop's blips recur, so they stay a group.
    blips = all(_is_blip(a, transient) for a in group.alerts)
    return blips and not any(a.fingerprint in flapping for a in group.alerts)


def _is_blip(alert: Alert, transient: timedelta = TRANSIENT) -> bool:
    duration = alert.duration_seconds
    return duration is not None and duration <= transient.total_seconds()


def _quiet(group: AlertGroup, flapping: set[str] | frozenset[str], transient: timedelta) -> bool:
    alerts = group.alerts
    if all(a.severity in LOW_SEVERITIES for a in alerts):
        return True
    if all(a.fingerprint in flapping for a in alerts):
        return True
    return all(_is_blip(a, transient) for a in alerts)


def find_origin(group: AlertGroup, graph: ServiceGraph | None) -> str:
    """Return the group's likely origin: the earliest alert among its most downstream services.

    A service is most downstream when none of the group's other services is among its own
    dependencies (direct or indirect). Without a graph every service qualifies.
    """
    services = set(group.services)
    if graph is not None:
        leaves = {s for s in services if not (graph.downstream(s) & (services - {s}))}
        services = leaves or services
    candidates = [a for a in group.alerts if a.service in services]
    first = min(candidates, key=lambda a: (a.starts_at, -SEVERITY_RANK.get(a.severity, 0)))
    return first.service


# ``AnalysisContext.cache`` entry holding the alert triage (dedup, flapping, groups, noise) of
# the run, so AlertOps and the root-cause scope group a storm once between them.
GROUPS_KEY = "alert_groups"


def graph_key(graph: ServiceGraph | None) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """Return a hashable copy of a graph's edges: agents infer equal graphs as separate
    objects, and an equal graph groups the same way."""
    if graph is None:
        return None
    return tuple(
        sorted((caller, tuple(sorted(callees))) for caller, callees in graph.edges.items())
    )


def shared_grouping(
    cache: dict[str, Any] | None,
    alerts: list[Alert],
    graph: ServiceGraph | None,
    params: tuple[Any, ...],
    build: Callable[[], Any],
) -> Any:
    """Return ``build()`` computed once per alert list, graph and ``params`` in ``cache``.

    The alert list is matched by identity (every agent of a run sees the same
    ``ctx.alerts``), the graph by its edges. Without a cache ``build`` runs every time.
    Callers must not mutate what they get back.
    """
    if cache is None:
        return build()
    entries: list[tuple[list[Alert], tuple[Any, ...], Any]] = cache.setdefault(GROUPS_KEY, [])
    key = (graph_key(graph), len(alerts), *params)
    for source, entry_key, value in entries:
        if source is alerts and entry_key == key:
            return value
    value = build()
    entries.append((alerts, key, value))
    return value
