"""Graph views for networkx: the IR's ops, or a section's units, as an ``nx.DiGraph``.

networkx walks nodes, and a node's successors, in the order they were added, so the views
add them in the order the callers' results depend on (program order, unit index).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

import networkx as nx

N = TypeVar("N", bound=Hashable)


def digraph(nodes: Iterable[N], edges: Iterable[tuple[N, N]]) -> nx.DiGraph:
    """``nodes`` in order, then ``edges``; a repeated edge keeps the place of its LAST occurrence
    among its source's successors (where a Kahn walk over the edge list finds the target ready)."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    last: dict[tuple[N, N], int] = {}
    for i, e in enumerate(edges):
        last.pop(e, None)
        last[e] = i
    g.add_edges_from(last)
    return g


def kahn_order(g: nx.DiGraph) -> list:
    """Kahn's topological order with a first-in first-out queue: sources in node order, then each
    node as its last predecessor is taken. That walk takes the topological generations one after
    the other, so it is their concatenation. Raises ``nx.NetworkXUnfeasible`` on a cycle."""
    return [n for generation in nx.topological_generations(g) for n in generation]


def depths(g: nx.DiGraph) -> dict:
    """Each node's longest path (in edges) from a node without predecessors: its generation."""
    return {n: i for i, generation in enumerate(nx.topological_generations(g)) for n in generation}
