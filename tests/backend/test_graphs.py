"""The networkx views keep the orders the hand-written walks they replaced gave."""

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st
from rduflow.compiler.backend.graphs import depths, digraph, kahn_order


def fifo_kahn(n, edges):
    """Kahn's walk as Design.order did it by hand: a first-in first-out queue over the edge list."""
    indeg = [0] * n
    out = defaultdict(list)
    for a, b in edges:
        indeg[b] += 1
        out[a].append(b)
    ready = [k for k in range(n) if indeg[k] == 0]
    order = []
    while ready:
        k = ready.pop(0)
        order.append(k)
        for d in out[k]:
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
    return order


def longest_from_sources(n, edges):
    """fuse.by_depth's sweep, by hand: 1 + the deepest predecessor, in a topological order."""
    depth = {}
    preds = defaultdict(list)
    for a, b in edges:
        preds[b].append(a)
    for k in range(n):  # edges go from lower to higher numbers
        depth[k] = max((depth[p] + 1 for p in preds[k]), default=0)
    return depth


@st.composite
def dags(draw):
    """Numbered nodes, edges from lower to higher numbers in any order, some repeated."""
    n = draw(st.integers(1, 12))
    pairs = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda e: e[0] != e[1])
    edges = [tuple(sorted(e)) for e in draw(st.lists(pairs, max_size=30))]
    return n, edges + draw(st.lists(st.sampled_from(edges), max_size=5)) if edges else []


@given(dags())
def test_kahn_order_is_the_first_in_first_out_walk(g):
    n, edges = g
    assert kahn_order(digraph(range(n), edges)) == fifo_kahn(n, edges)


@given(dags())
def test_depths_are_longest_paths_from_the_sources(g):
    n, edges = g
    assert depths(digraph(range(n), edges)) == longest_from_sources(n, edges)


def test_a_repeated_edge_counts_where_it_last_occurs():
    edges = [(0, 2), (0, 1), (0, 2)]  # 2 is ready after 1: its last stream from 0 comes later
    assert kahn_order(digraph(range(3), edges)) == fifo_kahn(3, edges) == [0, 1, 2]
