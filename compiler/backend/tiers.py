"""Which memory each tensor lives in: HBM while it fits, then DDR.

Per socket, the program needs its weights (its part of each), its inputs and outputs, and
the activations between sections, each alive from the section that writes it to the last
one that reads it (static lifetimes: the peak of what is alive at once is what must fit).
When that exceeds HBM, tensors move to DDR in order of least traffic first (bytes times
how often they are moved), activations before weights: weights keep priority for HBM
because every call streams them [SN40L V-A]. A model that exceeds HBM and DDR together is
an error that says by how much. The assignment is recorded in module attributes
(:mod:`rduflow.ir.program`): ``memory.ddr`` (tensors moved to DDR, as ``weight:NAME``,
``input:NAME``, ``output:NAME`` or ``value:NAME``) and ``memory.bytes`` (per-socket totals).
"""

from __future__ import annotations

from dataclasses import dataclass

from rduflow.ir import Module, Operation, Value
from rduflow.ir.program import MEMORY_BYTES, MEMORY_DDR, SOCKETS, MemoryBytes
from rduflow.compiler.target import RduArch

from .design import nbytes
from .errors import CompileError

GIB = 1 << 30


@dataclass
class Item:
    ident: str
    bytes: int
    weight: bool
    traffic: int  # bytes moved per program run
    span: tuple[int, int] | None = None  # sections alive (activations between sections)


def assign_tiers(module: Module, arch: RduArch) -> None:
    items = _items(module)
    hbm = int(arch.memory.hbm.capacity_gib * GIB) if arch.memory.hbm else 0
    ddr = int(arch.memory.ddr.capacity_gib * GIB) if arch.memory.ddr else 0
    fast, slow = (hbm, ddr) if hbm else (ddr, 0)
    spilled: list[Item] = []
    order = sorted(items, key=lambda it: (it.weight, it.traffic, it.ident))
    placed = list(items)
    while _need(placed) > fast and order:
        it = order.pop(0)
        placed.remove(it)
        spilled.append(it)
    if _need(placed) > fast or _need(spilled) > slow:
        w = sum(it.bytes for it in items if it.weight)
        io = sum(it.bytes for it in items if not it.weight and it.span is None)
        act = _need([it for it in items if it.span is not None])
        total = w + io + act
        have = size(fast) + (f" HBM + {size(slow)} DDR" if hbm and slow else "")
        raise CompileError(f"the model does not fit: each of the {module.attrs.get(SOCKETS, 1)} socket(s) needs "
                           f"{size(total)} (weights {size(w)}, inputs and outputs {size(io)}, activations "
                           f"{size(act)}) and {arch.name} has {have} per socket; use more sockets")
    module.attrs[MEMORY_DDR] = tuple(sorted(it.ident for it in spilled)) if hbm else ()
    module.attrs[MEMORY_BYTES] = MemoryBytes(
        weights=sum(it.bytes for it in items if it.weight),
        inputs_outputs=sum(it.bytes for it in items if not it.weight and it.span is None),
        activations_peak=_need([it for it in items if it.span is not None]),
        hbm=_need(placed) if hbm else 0, ddr=_need(spilled) if hbm else _need(placed))


def _need(items: list[Item]) -> int:
    """Bytes needed at once: everything without a span, plus the peak of the spans."""
    fixed = sum(it.bytes for it in items if it.span is None)
    events: dict[int, int] = {}
    for it in items:
        if it.span is not None:
            events[it.span[0]] = events.get(it.span[0], 0) + it.bytes
            events[it.span[1] + 1] = events.get(it.span[1] + 1, 0) - it.bytes
    peak = acc = 0
    for t in sorted(events):
        acc += events[t]
        peak = max(peak, acc)
    return fixed + peak


def _items(module: Module) -> list[Item]:
    g = module.main
    sections = [op for op in g.ops if op.opname == "section"]
    out: list[Item] = []
    weights: dict[str, int] = {}
    reads: dict[str, int] = {}
    for sec in sections:
        for op in sec.regions[0].walk():
            if op.opname == "weight":
                name = op.attrs["ref"].name
                weights[name] = max(weights.get(name, 0), _weight_bytes(op))
                reads[name] = reads.get(name, 0) + 1
    out += [Item(f"weight:{n}", bytes=b, weight=True, traffic=b * reads[n]) for n, b in weights.items()]
    users: dict[Value, list[int]] = {}
    for i, sec in enumerate(sections):
        for v in sec.operands:
            users.setdefault(v, []).append(i)
    outputs = dict(zip(g.outputs, g.output_names))
    for a in g.args:
        b = nbytes(a.type)
        out.append(Item(f"input:{a.name}", bytes=b, weight=False, traffic=b * (1 + len(users.get(a, [])))))
    for i, sec in enumerate(sections):
        for r in sec.results:
            b = nbytes(r.type)
            if r in outputs:
                out.append(Item(f"output:{outputs[r]}", bytes=b, weight=False,
                                traffic=b * (1 + len(users.get(r, [])))))
            elif r in users:
                out.append(Item(f"value:{r.name}", bytes=b, weight=False, traffic=b * (1 + len(users[r])),
                                span=(i, max(users[r]))))
    return out


def _weight_bytes(op: Operation) -> int:
    """A socket holds its part of a weight that is only used sharded, else all of it."""
    uses = [u for u in op.parent.ops if op.results[0] in u.operands]
    if uses and all(u.opname == "spmd.shard" for u in uses):
        return max(nbytes(u.results[0].type) for u in uses)
    return nbytes(op.results[0].type)


def size(nbytes: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes:.0f} B"
