"""Costs of ops and graphs, derived from types: FLOPs and bytes moved, symbolic in the dims.

An op outside any group reads its operands from and writes its results to memory. A region
op (a fused group, a section) streams its intermediates on chip, so only its boundary moves:
its operands, the weights its ops read, and its results.
"""

from __future__ import annotations

from collections.abc import Iterable

from .core import Graph, Operation
from .dims import Dim
from .opdef import Cost
from .types import bytes_of


def op_cost(op: Operation) -> Cost:
    if not op.regions:
        return op.opdef.cost([v.type for v in op.operands], [r.type for r in op.results], op.attrs)
    flops = Dim.const(0)
    weights = Dim.const(0)
    for inner in _walk(op.regions):
        if inner.regions:
            continue
        if inner.opname == "weight":
            weights = weights + inner.results[0].type.nbytes
        else:
            flops = flops + op_cost(inner).flops
    return Cost(flops, bytes_of(v.type for v in op.operands) + weights, bytes_of(r.type for r in op.results))


def graph_cost(graph: Graph) -> Cost:
    total = Cost.zero()
    for op in graph.ops:
        total = total + op_cost(op)
    return total


def _walk(regions: Iterable[Graph]):
    for r in regions:
        yield from r.walk()
