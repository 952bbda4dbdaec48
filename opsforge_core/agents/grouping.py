"""Group alerts into incidents by time, service topology and correlation labels.

A group stays open while any of its alerts fires, so slow-spreading faults stay one incident.
Groups of one service whose alerts are all quiet (low severity, flapping or self-clearing)
are noise. ``signature_of`` keys the pattern library by an alert set's names and services.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from operator import attrgetter
from typing import Any

from opsforge_core.agents.open_groups import TRANSIENT, OpenGroups
from opsforge_core.agents.open_groups import is_blip as _is_blip
from opsforge_core.models import SEVERITY_RANK, Alert, iso, max_severity
from opsforge_core.topology import ServiceGraph

LOW_SEVERITIES = frozenset({"info", "warning"})
# Sort key of alerts by start, then fingerprint. attrgetter runs in C, which matters when a
# storm's 100,000 alerts are sorted.
START_ORDER = attrgetter("starts_at", "fingerprint")


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
    ordered = sorted(alerts, key=START_ORDER)
    built = OpenGroups(graph, window, max_hops)
    for alert in ordered:
        built.add(alert)
    groups = [AlertGroup(g.ordered_alerts()) for g in built.groups]
    for group in groups:
        group.alerts.sort(key=START_ORDER)
    groups.sort(key=lambda g: (g.start, g.alerts[0].fingerprint))
    return groups


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
