"""Pattern rewriting: ``RewritePattern.match_and_rewrite`` driven greedily to a fixpoint.

A pattern looks at one op (the *anchor*) and either declines (returns False) or rewrites
it through the :class:`Rewriter` and returns True. It may

* create ops, which are placed just before the anchor (``rewriter.emit``), and
* replace the anchor's results with other values (``rewriter.replace``), which erases it, or
* change the anchor in place (its operands or attributes, keeping its result types).

The driver sweeps each graph in order, so an op's operands have been rewritten before the
op is looked at, and ops a pattern creates are looked at right away: a chain of foldable
ops folds in one sweep. Pure ops left unused are erased after each sweep (as MLIR's greedy
driver does). Sweeps repeat until nothing changes. Each region is rewritten on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from rduflow.ir import Dense, Graph, Module, Operation, TensorType, Value
from rduflow.ir.opdef import get_opdef

from .dce import erase_dead_ops


class RewritePattern:
    """Subclass, set ``opnames`` (the ops it can match; None for any op), implement the match."""

    opnames: ClassVar[frozenset[str] | None] = None

    def match_and_rewrite(self, op: Operation, rewriter: Rewriter) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__


class Rewriter:
    """What a pattern may do to the graph while it rewrites ``anchor``."""

    def __init__(self, graph: Graph, module: Module | None, anchor: Operation):
        self.graph = graph
        self.module = module
        self.anchor = anchor
        self.created: list[Operation] = []
        self.replacement: list[Value] | None = None

    def op(self, opname: str, operands: Sequence[Value] = (), attrs: dict[str, Any] | None = None,
           result_types: Sequence[TensorType] | None = None) -> Operation:
        """Create an op before the anchor, with result types inferred unless given; it keeps the anchor's loc."""
        probe = Operation(opname, operands, [], attrs)  # coerces and completes the attributes
        if result_types is None:
            result_types = get_opdef(opname).infer([v.type for v in operands], probe.attrs)
        op = Operation(opname, operands, result_types, probe.attrs, loc=self.anchor.loc)
        op.parent = self.graph
        self.created.append(op)
        return op

    def emit(self, opname: str, *operands: Value, **attrs: Any) -> Value:
        return self.op(opname, operands, attrs).result

    def constant(self, array: np.ndarray) -> Value:
        return self.emit("constant", value=Dense(array))

    def replace(self, values: Sequence[Value]) -> None:
        """Replace the anchor's results with ``values`` (same types) and erase the anchor."""
        op = self.anchor
        values = list(values)
        if [v.type for v in values] != [r.type for r in op.results]:
            raise TypeError(
                f"replacing {op.where()}: types ({', '.join(str(v.type) for v in values)}) differ from its "
                f"results ({', '.join(str(r.type) for r in op.results)})")
        for old, new in zip(op.results, values):
            if new.name is None and new.owner in self.created:
                new.name = old.name  # a folded constant keeps the name of what it replaces
        self.replacement = values


class PatternSet:
    """Patterns indexed by the op names they match, in the order given (earlier wins)."""

    def __init__(self, patterns: Iterable[RewritePattern]):
        self.patterns = list(patterns)
        self._by_name: dict[str, list[RewritePattern]] = {}

    def for_op(self, opname: str) -> list[RewritePattern]:
        hit = self._by_name.get(opname)
        if hit is None:
            hit = [p for p in self.patterns if p.opnames is None or opname in p.opnames]
            self._by_name[opname] = hit
        return hit


class RewriteDidNotConverge(RuntimeError):
    """A pattern keeps matching: a bug in the pattern (it reports progress but makes none)."""


def apply_patterns_greedily(module: Module, patterns: Iterable[RewritePattern], *, max_sweeps: int = 10) -> bool:
    """Rewrite every graph of ``module`` (regions included) until no pattern applies; True if anything changed."""
    pset = patterns if isinstance(patterns, PatternSet) else PatternSet(patterns)
    changed = False
    for g in module.graphs.values():
        changed |= rewrite_graph(g, module, pset, max_sweeps=max_sweeps)
    return changed


def rewrite_graph(graph: Graph, module: Module | None, patterns: PatternSet, *, max_sweeps: int = 10) -> bool:
    changed_any = False
    for _ in range(max_sweeps):
        changed = _sweep(graph, module, patterns)
        changed = erase_dead_ops(graph) > 0 or changed
        changed_any |= changed
        if not changed:
            break
    for op in graph.ops:
        for r in op.regions:
            changed_any |= rewrite_graph(r, module, patterns, max_sweeps=max_sweeps)
    return changed_any


def _sweep(graph: Graph, module: Module | None, patterns: PatternSet) -> bool:
    subst: dict[Value, Value] = {}

    def resolve(v: Value) -> Value:
        while v in subst:
            v = subst[v]
        return v

    out: list[Operation] = []
    pending = list(reversed(graph.ops))  # a stack: pop() yields ops in program order
    budget = 20 * len(pending) + 1000  # rewrites allowed before we call it a non-converging pattern
    changed = False
    while pending:
        op = pending.pop()
        if subst:
            op.operands = [resolve(v) for v in op.operands]
        rewriter = Rewriter(graph, module, op)
        for pattern in patterns.for_op(op.opname):
            if pattern.match_and_rewrite(op, rewriter):
                break
        else:
            out.append(op)
            continue
        changed = True
        budget -= 1
        if budget < 0:
            raise RewriteDidNotConverge(f"pattern {pattern!r} keeps rewriting {op.where()}")
        if rewriter.replacement is not None:
            subst.update(zip(op.results, rewriter.replacement))
            op.parent = None
        else:
            pending.append(op)  # changed in place: look at it again
        pending.extend(reversed(rewriter.created))  # new ops first, in creation order
    graph.ops = out
    replace_outputs(graph, [resolve(v) for v in graph.outputs])
    return changed


def replace_outputs(graph: Graph, values: Sequence[Value]) -> None:
    """Set ``graph``'s outputs, keeping the names callers see.

    An output without an explicit name is known by its value's name (see ``ir.run``), so
    before a top-level output's value is replaced, that name is pinned on the output.
    """
    names = list(graph.output_names) or [None] * len(graph.outputs)
    for i, (old, new) in enumerate(zip(graph.outputs, values)):
        if graph.parent_op is None and names[i] is None and (new.name or str(i)) != (old.name or str(i)):
            names[i] = old.name or str(i)
    graph.set_outputs(values, names)
