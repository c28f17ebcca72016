"""Common-subexpression elimination: a pure op equal to an earlier one reuses its results.

Two ops are equal when they have the same name, the same operands (in any order for a
commutative op), equal attributes (floats and dense tensors compared bit for bit, so
``0.0`` and ``-0.0`` stay apart) and the same result types. Each graph and each region is
its own scope: nothing is merged across a region boundary. Ops with regions are not merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rduflow.ir import Dense, Graph, Module, Operation, Trait, Value

from .base import ModulePass
from .context import PassContext
from .dce import is_pure
from .rewrite import replace_outputs


def cse_graph(graph: Graph) -> int:
    """Merge equal ops in ``graph`` and, separately, in each of its regions; returns ops removed."""
    seen: dict[tuple, Operation] = {}
    subst: dict[Value, Value] = {}
    kept: list[Operation] = []
    removed = 0
    for op in graph.ops:
        if subst:
            op.operands = [subst.get(v, v) for v in op.operands]
        for r in op.regions:
            removed += cse_graph(r)
        key = _key(op)
        if key is not None:
            earlier = seen.get(key)
            if earlier is not None:
                subst.update(zip(op.results, earlier.results))
                op.parent = None
                removed += 1
                continue
            seen[key] = op
        kept.append(op)
    graph.ops = kept
    replace_outputs(graph, [subst.get(v, v) for v in graph.outputs])
    return removed


def _key(op: Operation) -> tuple | None:
    if op.regions or not is_pure(op):
        return None
    operands = tuple(id(v) for v in op.operands)
    if op.opdef.has_trait(Trait.COMMUTATIVE):
        operands = tuple(sorted(operands))
    attrs = tuple((k, _attr_key(v)) for k, v in sorted(op.attrs.items()))
    return (op.opname, operands, attrs, tuple(r.type for r in op.results))


def _attr_key(v: Any) -> Any:
    # Python's == treats 0.0 and -0.0 as equal and NaN as unequal to itself; compare bits instead.
    if isinstance(v, float):
        return ("float", v.hex())
    if isinstance(v, Dense):
        return ("dense", v.array.dtype.str, v.array.shape, v.array.tobytes())
    if isinstance(v, tuple):
        return tuple(_attr_key(x) for x in v)
    return v


@dataclass(frozen=True)
class CommonSubexpressionElimination(ModulePass):
    """Merge pure ops with identical name, operands, attributes and result types."""

    name: ClassVar[str] = "cse"

    def apply(self, module: Module, ctx: PassContext) -> None:
        for g in module.graphs.values():
            cse_graph(g)
