"""The groups being built while ``group_alerts`` walks a storm in start order.

Each new alert must find the groups it links to. Checking every open group costs time per
alert in proportion to the number of concurrent incidents, and that number grows with the
number of services. So ``OpenGroups`` indexes the groups by service, by correlation label
value and by fingerprint, and an alert checks only the groups those keys lead to.

A group is closed once its last alert ended more than ``window`` before the alert being
placed. Start times only grow, so that state needs no bookkeeping. A closed group can still
reopen when one of its fingerprints fires again within ``RECUR_WINDOW``. After both spans
have passed, the group can never change again and is dropped from the indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opsforge_core.models import Alert
from opsforge_core.topology import ServiceGraph

# Labels whose equal values put two alerts in the same incident whatever their services.
CORRELATION_LABELS = ("incident", "incident_id", "correlation_id", "trace_id", "change_id")
# An alert resolved within this long after it started is a blip, when nothing joins it.
TRANSIENT = timedelta(minutes=5)
# A fingerprint firing again within this long after its group went quiet rejoins the group.
RECUR_WINDOW = timedelta(minutes=60)


def is_blip(alert: Alert, transient: timedelta = TRANSIENT) -> bool:
    """Return True when ``alert`` resolved within ``transient`` of its start."""
    duration = alert.duration_seconds
    return duration is not None and duration <= transient.total_seconds()


@dataclass(eq=False)
class OpenGroup:
    """A group being built, with its alerts summarized so that checking a new alert against it
    does not walk its alerts (a storm has thousands).

    Alerts arrive in start order, so every member started at or before the alert being
    checked, and the latest start per service (and per correlation label value) shows which
    members started within a given time of it. A merge links the absorbed groups instead of
    copying their alerts, and keeps the larger of each pair of summaries.
    """

    head: list[Alert]  # alerts added one by one; absorbed groups' alerts follow
    until: datetime | None  # last end time; None while an alert still fires
    newest: datetime  # latest start of any member
    absorbed: list[OpenGroup] = field(default_factory=list)
    latest: dict[str, datetime] = field(default_factory=dict)  # service -> latest start
    label_latest: dict[str, dict[str, datetime]] = field(default_factory=dict)
    fingerprints: set[str] = field(default_factory=set)
    all_blips: bool = True
    size: int = 1  # alerts, counting absorbed groups

    @classmethod
    def of(cls, alert: Alert) -> OpenGroup:
        labels = {
            label: {alert.labels[label]: alert.starts_at}
            for label in CORRELATION_LABELS
            if label in alert.labels
        }
        return cls(
            head=[alert],
            until=alert.ends_at,
            newest=alert.starts_at,
            latest={alert.service: alert.starts_at},
            label_latest=labels,
            fingerprints={alert.fingerprint},
            all_blips=is_blip(alert),
        )

    def add_alert(self, alert: Alert, blip: bool) -> None:
        """Add one alert, which starts no earlier than any member; ``blip`` is
        ``is_blip(alert)``."""
        self.head.append(alert)
        self.size += 1
        self.newest = max(self.newest, alert.starts_at)
        latest = self.latest.get(alert.service)
        if latest is None or latest < alert.starts_at:
            self.latest[alert.service] = alert.starts_at
        for label in CORRELATION_LABELS:
            if label in alert.labels:
                values = self.label_latest.setdefault(label, {})
                _merge_latest(values, {alert.labels[label]: alert.starts_at})
        self.fingerprints.add(alert.fingerprint)
        self.all_blips = self.all_blips and blip
        if self.until is None or alert.ends_at is None:
            self.until = None
        else:
            self.until = max(self.until, alert.ends_at)

    def ordered_alerts(self) -> list[Alert]:
        """Return the head, then each absorbed group's alerts in the order it was absorbed."""
        alerts: list[Alert] = []
        stack: list[OpenGroup] = [self]
        while stack:
            group = stack.pop()
            alerts.extend(group.head)
            stack.extend(reversed(group.absorbed))
        return alerts

    def label_keys(self) -> list[tuple[str, str]]:
        return [(label, value) for label, values in self.label_latest.items() for value in values]

    def closed(self, now: datetime, window: timedelta) -> bool:
        """Return True when every alert ended more than ``window`` before ``now``."""
        return self.until is not None and self.until + window < now

    def absorb(self, other: OpenGroup) -> None:
        """Merge ``other`` into this group. ``other`` is discarded, so its summaries are reused."""
        self.absorbed.append(other)
        self.size += other.size
        self.newest = max(self.newest, other.newest)
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


class RelatedServices:
    """Decides whether an alert relates to a group; caches each service's neighbours."""

    def __init__(self, graph: ServiceGraph | None, max_hops: int) -> None:
        self.graph = graph
        self.max_hops = max_hops
        self._related: dict[str, frozenset[str]] = {}

    def to_group(self, alert: Alert, group: OpenGroup, near: timedelta | None = None) -> bool:
        """Return True when ``alert`` relates to the group.

        With ``near``, only the group's alerts that started within ``near`` of ``alert``
        count, so a blip joins the burst it belongs to, not a long incident it happens
        to overlap. Members never start after ``alert`` (see ``OpenGroup``). Without a graph,
        any member that counts relates.
        """
        since = None if near is None else alert.starts_at - near
        if self.graph is None:
            return since is None or group.newest >= since
        latest = group.latest
        nearby = self.related(alert.service)
        if len(nearby) <= len(latest):
            starts: Iterable[datetime | None] = (latest.get(s) for s in nearby)
        else:
            starts = (start for s, start in latest.items() if s in nearby)
        for start in starts:
            if start is not None and (since is None or start >= since):
                return True
        for label, values in group.label_latest.items():
            value = alert.labels.get(label)
            start = values.get(value) if value else None
            if start is not None and (since is None or start >= since):
                return True
        return False

    def related(self, service: str) -> frozenset[str]:
        """Return the services within ``max_hops`` dependency edges of ``service``, either way,
        ``service`` included."""
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


# Insertion-ordered sets of groups, so that runs over the same alerts visit groups in the
# same order.
_Groups = dict[OpenGroup, None]


class OpenGroups:
    """Every group built so far, indexed by the keys that let a new alert link to it.

    The indexes point at surviving groups only: a merge keeps the largest group and moves the
    others' keys to it, so each alert's keys move O(log n) times over a storm of n alerts.
    A settled group is dropped from the indexes when a lookup first meets it.
    """

    def __init__(self, graph: ServiceGraph | None, window: timedelta, max_hops: int) -> None:
        self.related = RelatedServices(graph, max_hops)
        self.window = window
        # After this long past its last end, a group is closed and cannot recur.
        self.settled = max(window, RECUR_WINDOW)
        self.groups: _Groups = {}
        self.live: _Groups = {}
        self.by_service: dict[str, _Groups] = {}
        self.by_label: dict[tuple[str, str], _Groups] = {}
        self.by_fingerprint: dict[str, _Groups] = {}

    def add(self, alert: Alert) -> None:
        """Place ``alert``, which starts no earlier than any alert added before it.

        It joins every closed group that it reopens (its fingerprint recurring within
        ``RECUR_WINDOW``) and every open group it relates to, merging them. A link must be
        near in start time (``window``) when the alert or the group is only blips.
        """
        # This runs once per alert of a storm, so the closed and settled checks are inline.
        now = alert.starts_at
        window = self.window
        labels = _label_keys(alert)
        blip = is_blip(alert)
        matches: list[OpenGroup] = []
        settled: list[OpenGroup] = []
        for group in self.by_fingerprint.get(alert.fingerprint, ()):
            until = group.until
            if until is None or until + window >= now:
                continue  # open: it is among the candidates if it relates
            if until + self.settled < now:
                settled.append(group)
            else:
                matches.append(group)
        for group in self._candidates(alert, labels):
            until = group.until
            if until is None or until + window >= now:
                near = window if blip or group.all_blips else None
                if self.related.to_group(alert, group, near):
                    matches.append(group)
            elif until + self.settled < now:
                settled.append(group)
        for group in settled:
            self._drop(group)
        if not matches:
            self._register(OpenGroup.of(alert))
            return
        survivor = matches[0] if len(matches) == 1 else max(matches, key=_size)
        for group in matches:
            if group is not survivor:
                self._merge(group, survivor)
        survivor.add_alert(alert, blip)
        self.by_service.setdefault(alert.service, {})[survivor] = None
        for key in labels:
            self.by_label.setdefault(key, {})[survivor] = None
        self.by_fingerprint.setdefault(alert.fingerprint, {})[survivor] = None

    def _candidates(self, alert: Alert, labels: list[tuple[str, str]]) -> Iterable[OpenGroup]:
        """Return the groups that share a key with ``alert``: every live group without a graph,
        else those on a related service or with one of its correlation label values."""
        if self.related.graph is None:
            return list(self.live)
        found: _Groups = {}
        by_service = self.by_service
        for service in self.related.related(alert.service):
            holders = by_service.get(service)
            if holders:
                found.update(holders)
        for key in labels:
            if key[1]:
                found.update(self.by_label.get(key, ()))
        return found

    def _register(self, group: OpenGroup) -> None:
        self.groups[group] = None
        self.live[group] = None
        self._index(group, group.latest, group.label_keys(), group.fingerprints)

    def _index(
        self,
        group: OpenGroup,
        services: Iterable[str],
        labels: Iterable[tuple[str, str]],
        fingerprints: Iterable[str],
    ) -> None:
        for service in services:
            self.by_service.setdefault(service, {})[group] = None
        for key in labels:
            self.by_label.setdefault(key, {})[group] = None
        for fingerprint in fingerprints:
            self.by_fingerprint.setdefault(fingerprint, {})[group] = None

    def _unindex(self, group: OpenGroup) -> None:
        for service in group.latest:
            self.by_service[service].pop(group, None)
        for key in group.label_keys():
            self.by_label[key].pop(group, None)
        for fingerprint in group.fingerprints:
            self.by_fingerprint[fingerprint].pop(group, None)

    def _merge(self, group: OpenGroup, survivor: OpenGroup) -> None:
        """Merge ``group`` into ``survivor``, moving its index keys first."""
        self._unindex(group)
        self._index(survivor, group.latest, group.label_keys(), group.fingerprints)
        del self.groups[group]
        del self.live[group]
        survivor.absorb(group)

    def _drop(self, group: OpenGroup) -> None:
        """Take a settled group out of the indexes; it stays among the groups built."""
        if group in self.live:
            self._unindex(group)
            del self.live[group]


def _size(group: OpenGroup) -> int:
    return group.size


def _label_keys(alert: Alert) -> list[tuple[str, str]]:
    return [(label, alert.labels[label]) for label in CORRELATION_LABELS if label in alert.labels]
