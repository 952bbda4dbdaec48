"""The service dependency graph as a Plotly figure, with the root-cause ranking highlighted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import plotly.graph_objects as go

from opsforge_core.views.charts import plain

ROOT_COLOR = "#d62728"
RANKED_COLOR = "#ff7f0e"
IDLE_COLOR = "#b0b0b0"


def layered_positions(graph: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Place callers above their callees: one row per topological generation.

    A graph with a cycle has no generations, so it falls back to a seeded spring layout, which
    is deterministic for the same graph.
    """
    if not nx.is_directed_acyclic_graph(graph):
        return {n: (float(x), float(y)) for n, (x, y) in nx.spring_layout(graph, seed=7).items()}
    positions: dict[str, tuple[float, float]] = {}
    for depth, generation in enumerate(nx.topological_generations(graph)):
        names = sorted(generation)
        for index, name in enumerate(names):
            positions[name] = (index - (len(names) - 1) / 2.0, -float(depth))
    return positions


def _edge_trace(graph: nx.DiGraph, positions: Mapping[str, tuple[float, float]]) -> go.Scatter:
    xs: list[float | None] = []
    ys: list[float | None] = []
    for caller, callee in graph.edges:
        (x0, y0), (x1, y1) = positions[caller], positions[callee]
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return go.Scatter(
        x=xs, y=ys, mode="lines", line={"width": 1, "color": "#999"}, hoverinfo="skip"
    )


def _arrow_annotations(
    graph: nx.DiGraph, positions: Mapping[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """Arrowheads from caller to callee, stopping short of the callee's marker."""
    arrows = []
    for caller, callee in graph.edges:
        (x0, y0), (x1, y1) = positions[caller], positions[callee]
        arrows.append(
            {
                "x": x1,
                "y": y1,
                "ax": x0,
                "ay": y0,
                "xref": "x",
                "yref": "y",
                "axref": "x",
                "ayref": "y",
                "showarrow": True,
                "arrowhead": 2,
                "arrowsize": 1,
                "arrowwidth": 1,
                "arrowcolor": "#999",
                "standoff": 12,
                "text": "",
            }
        )
    return arrows


def dependency_figure(
    pairs: Sequence[tuple[str, str]],
    ranking: Sequence[Mapping[str, Any]] = (),
    root_cause: str | None = None,
) -> go.Figure:
    """Draw caller -> callee edges with ranked services coloured and the root cause in red.

    ``ranking`` is the root-cause agent's list of ``{service, score, ...}`` dicts, best first;
    services that appear only in the ranking are drawn without edges.
    """
    graph = nx.DiGraph()
    graph.add_edges_from((str(a), str(b)) for a, b in pairs)
    rank_of = {str(r.get("service")): i + 1 for i, r in enumerate(ranking)}
    score_of = {str(r.get("service")): r.get("score") for r in ranking}
    graph.add_nodes_from(rank_of)
    if root_cause:
        graph.add_node(str(root_cause))
    positions = layered_positions(graph)
    names = sorted(graph.nodes)
    colors, sizes, hover = [], [], []
    for name in names:
        if root_cause and name == root_cause:
            colors.append(ROOT_COLOR)
            sizes.append(26)
        elif name in rank_of and rank_of[name] <= 3:
            colors.append(RANKED_COLOR)
            sizes.append(20)
        else:
            colors.append(IDLE_COLOR)
            sizes.append(14)
        detail = f"rank {rank_of[name]}, score {score_of[name]}" if name in rank_of else "unranked"
        hover.append(plain(f"{name}: {detail}"))
    nodes = go.Scatter(
        x=[positions[n][0] for n in names],
        y=[positions[n][1] for n in names],
        mode="markers+text",
        text=[plain(n) for n in names],
        textposition="bottom center",
        hovertext=hover,
        hoverinfo="text",
        marker={"size": sizes, "color": colors, "line": {"width": 1, "color": "#333"}},
    )
    figure = go.Figure([_edge_trace(graph, positions), nodes])
    title = "Dependencies (caller above callee)"
    if root_cause:
        title += f"; root cause: {plain(root_cause)}"
    figure.update_layout(
        title=title,
        showlegend=False,
        annotations=_arrow_annotations(graph, positions),
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=max(320, 110 * (1 + max((-y for _, y in positions.values()), default=0))),
        margin={"l": 20, "r": 20, "t": 50, "b": 20},
    )
    return figure
