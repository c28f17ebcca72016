"""Working on each distinct placed section once.

Sections that differ only in names (one decoder layer's tensors against another's, or the
same op in two layers under ``fusion=none``) are allocated, placed and routed once; the
others take the results op by op. Signatures ignore names and the attributes the pass sets.
"""

from __future__ import annotations

from collections.abc import Iterator

from rduflow.ir import Graph, Module, Operation, Value

NAMES = {"placed.section": ("name", "repeat"), "placed.mem_read": ("tensor",), "placed.mem_write": ("tensor",),
         "weight": ("ref",)}


def signature(section: Operation, skip: tuple[str, ...]) -> tuple:
    return _graph(section.regions[0], skip)


def _graph(g: Graph, skip: tuple[str, ...]) -> tuple:
    ids: dict[Value, tuple[int, int]] = {a: (-1, i) for i, a in enumerate(g.args)}
    items: list = [tuple(a.type for a in g.args)]
    for j, op in enumerate(g.ops):
        drop = NAMES.get(op.opname, ()) + skip
        attrs = tuple((k, v) for k, v in sorted(op.attrs.items()) if k not in drop)
        items.append((op.opname, attrs, tuple(ids[v] for v in op.operands), tuple(r.type for r in op.results),
                      tuple(_graph(r, skip) for r in op.regions)))
        for k, r in enumerate(op.results):
            ids[r] = (j, k)
    items.append(tuple(ids[v] for v in g.outputs))
    return tuple(items)


def placed_sections(module: Module) -> list[Operation]:
    return [op for op in module.main.ops if op.opname == "placed.section"]


def distinct_sections(module: Module, skip: tuple[str, ...]) -> Iterator[tuple[Operation, list[Operation]]]:
    """(section, its copies) for each distinct placed section, in program order."""
    groups: dict[tuple, list[Operation]] = {}
    for op in placed_sections(module):
        groups.setdefault(signature(op, skip), []).append(op)
    for ops in groups.values():
        yield ops[0], ops[1:]


def set_attrs(src: Operation, copies: list[Operation], names: tuple[str, ...]) -> None:
    """Copy attributes ``names`` from each op of ``src`` to the same op of every copy."""
    ops = [op for op in src.regions[0].ops]
    for c in copies:
        for a, b in zip(ops, c.regions[0].ops):
            update = {k: a.attrs[k] for k in names if k in a.attrs}
            if update:
                b.attrs = {**b.attrs, **update}
