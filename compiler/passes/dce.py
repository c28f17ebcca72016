"""Dead-code elimination: pure ops whose results nobody uses, and weights no op refers to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rduflow.ir import Graph, Module, Operation, Trait, Value
from rduflow.ir.opdef import lookup_opdef

from .base import ModulePass
from .context import PassContext


def is_pure(op: Operation) -> bool:
    """True when removing or merging ``op`` cannot change behaviour (unknown ops are not)."""
    d = lookup_opdef(op.opname)
    if d is None or not d.has_trait(Trait.PURE):
        return False
    return all(is_pure(inner) for r in op.regions for inner in r.ops)


def erase_dead_ops(graph: Graph, *, recursive: bool = False) -> int:
    """Remove pure ops none of whose results are used, transitively; returns how many went.

    One backward sweep suffices: in SSA order every use of a value comes after its
    definition, so by the time an op is reached all of its users have been decided.
    """
    live: set[Value] = set(graph.outputs)
    kept: list[Operation] = []
    removed = 0
    for op in reversed(graph.ops):
        if is_pure(op) and not any(r in live for r in op.results):
            op.parent = None
            removed += 1
            continue
        live.update(op.operands)
        kept.append(op)
    kept.reverse()
    graph.ops = kept
    if recursive:
        for op in kept:
            for r in op.regions:
                removed += erase_dead_ops(r, recursive=True)
    return removed


def referenced_weights(module: Module) -> set[str]:
    return {op.attrs["ref"].name for g in module.graphs.values() for op in g.walk() if op.opname == "weight"}


@dataclass(frozen=True)
class DeadCodeElimination(ModulePass):
    """Remove unused pure ops (inside regions too) and weights that no op refers to."""

    name: ClassVar[str] = "dce"

    def apply(self, module: Module, ctx: PassContext) -> None:
        for g in module.graphs.values():
            erase_dead_ops(g, recursive=True)
        used = referenced_weights(module)
        for name in [n for n in module.weights if n not in used]:
            del module.weights[name]
