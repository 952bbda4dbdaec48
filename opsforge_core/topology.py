"""Service dependency graph.

An edge ``a -> b`` means service ``a`` calls or depends on ``b``; a fault in ``b`` shows up as
symptoms in ``a`` and in everything upstream of it. Root-cause ranking walks these edges.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class ServiceGraph:
    """Directed dependency graph; ``edges[a]`` is the set of services ``a`` depends on."""

    edges: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> ServiceGraph:
        graph = cls()
        for caller, callee in pairs:
            graph.add(caller, callee)
        return graph

    def add(self, caller: str, callee: str) -> None:
        self.edges.setdefault(caller, set()).add(callee)
        self.edges.setdefault(callee, set())

    @property
    def services(self) -> list[str]:
        return sorted(self.edges)

    def dependencies(self, service: str) -> set[str]:
        """Services that ``service`` calls directly."""
        return set(self.edges.get(service, ()))

    def dependents(self, service: str) -> set[str]:
        """Services that call ``service`` directly."""
        return {caller for caller, callees in self.edges.items() if service in callees}

    def downstream(self, service: str) -> set[str]:
        """Return every service reachable from ``service`` along dependency edges, except itself."""
        return self._reach(service, self.dependencies)

    def upstream(self, service: str) -> set[str]:
        """Return every service that depends on ``service``, directly or not, except itself."""
        return self._reach(service, self.dependents)

    def _reach(self, start: str, step) -> set[str]:
        seen: set[str] = set()
        queue = deque([start])
        while queue:
            for nxt in step(queue.popleft()):
                if nxt not in seen and nxt != start:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen

    def distance(self, source: str, target: str) -> int | None:
        """Hops from ``source`` to ``target`` along dependency edges, or None if unreachable."""
        if source == target:
            return 0
        seen = {source}
        queue = deque([(source, 0)])
        while queue:
            node, hops = queue.popleft()
            for nxt in self.dependencies(node):
                if nxt == target:
                    return hops + 1
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append((nxt, hops + 1))
        return None

    def to_pairs(self) -> list[tuple[str, str]]:
        return sorted((a, b) for a, callees in self.edges.items() for b in callees)
