"""Working on each distinct placed section once.

Sections that differ only in names (one decoder layer's tensors against another's, or the
same op in two layers under ``fusion=none``) are allocated, placed and routed once; the
others take the results op by op. Signatures ignore names and the attributes the pass sets.
"""

from __future__ import annotations

from collections.abc import Iterator

from rduflow.ir import Module, Operation
from rduflow.ir.signature import graph_signature

def placed_sections(module: Module) -> list[Operation]:
    return [op for op in module.main.ops if op.opname == "placed.section"]


def distinct_sections(module: Module, skip: tuple[str, ...]) -> Iterator[tuple[Operation, list[Operation]]]:
    """(section, its copies) for each distinct placed section, in program order."""
    groups: dict[tuple, list[Operation]] = {}
    for op in placed_sections(module):
        groups.setdefault(graph_signature(op.regions[0], skip), []).append(op)
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
