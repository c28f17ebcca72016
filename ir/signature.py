"""Structural signatures: equal for ops and graphs that compute the same way, names aside.

One decoder layer's section against the next one's, a placed section against its printed
and parsed copy: the compiler places each distinct section once, finds repeated layers by
their op signatures, and the simulator times each distinct section once, all by this key.
"""

from __future__ import annotations

from rduflow.ir.core import Graph, Operation, Value
from rduflow.ir.opdef import lookup_opdef


def op_key(op: Operation, skip: tuple[str, ...] = ()) -> tuple:
    """The op alone: name, attributes other than names and ``skip``, operand and result types."""
    opdef = lookup_opdef(op.opname)
    drop = (opdef.naming_attrs if opdef else ()) + skip
    attrs = tuple([(k, v) for k, v in sorted(op.attrs.items()) if k not in drop])
    return (op.opname, attrs, tuple(v.type for v in op.operands), tuple(r.type for r in op.results))


def graph_signature(g: Graph, skip: tuple[str, ...] = ()) -> tuple:
    """Ops, their keys and how they connect; values from outside ``g`` are all alike."""
    ids: dict[Value, tuple[int, int]] = {a: (-1, i) for i, a in enumerate(g.args)}
    items: list[tuple] = [tuple(a.type for a in g.args)]
    for j, op in enumerate(g.ops):
        items.append((op_key(op, skip), tuple(ids.get(v, (-2, 0)) for v in op.operands),
                      tuple(graph_signature(r, skip) for r in op.regions)))
        for k, r in enumerate(op.results):
            ids[r] = (j, k)
    items.append(tuple(ids.get(v, (-2, 0)) for v in g.outputs))
    return tuple(items)


def op_signature(op: Operation, skip: tuple[str, ...] = ()) -> tuple:
    """The op with everything inside its regions."""
    return (op_key(op, skip), tuple(graph_signature(r, skip) for r in op.regions))
