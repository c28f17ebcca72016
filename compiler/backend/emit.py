"""Building a ``placed.section`` from a :class:`~.design.Design`.

Units are written in an order where every stream goes forward; each stream is written just
before the unit it feeds. A compute unit's region takes one argument per input stream,
concatenates the chunks of a value read in chunks, recomputes the constants it needs,
runs its ops and returns its outputs (slicing the chunks of a value written in chunks).
Counts the back end decides later (PCUs, PMUs, coordinates, AGCUs, routes) start at
their neutral values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rduflow.ir import Builder, Graph, Operation, Value

from .design import Design, MemRef, Unit


@dataclass(frozen=True)
class Tensor:
    """How a memory unit names its tensor."""

    name: str
    tier: str = "hbm"
    per_call: bool = False
    carried: bool = False


def emit_section(design: Design, name: str, repeat: int, tensor: Callable[[MemRef], Tensor],
                 sockets: int) -> Operation:
    region = Graph("region")
    region.set_outputs([])
    op = Operation("placed.section", [], [], {"name": name, "repeat": repeat}, [region])
    _Emitter(design, region, tensor, sockets).run()
    return op


class _Emitter:
    def __init__(self, d: Design, region: Graph, tensor, sockets: int):
        self.d, self.region, self.tensor, self.sockets = d, region, tensor, sockets
        self.b = Builder(region)
        self.results: dict[int, list[Value]] = {}
        self.taken: set[str] = set()
        self.defs = {r: op for op in d.flat.ops for r in op.results}

    def unique(self, name: str) -> str:
        base, k = name, 1
        while name in self.taken:
            name, k = f"{base}#{k}", k + 1
        self.taken.add(name)
        return name

    def run(self) -> None:
        for k in self.d.order():
            u = self.d.units[k]
            streams = [self.stream(i) for i in self.d.inputs(k)]
            self.results[k] = getattr(self, u.kind)(u, k, streams)

    def stream(self, i: int) -> Value:
        s = self.d.streams[i]
        return self.b.op("placed.stream", [self.results[s.src][s.port]], {"tiles": s.tiles}).result

    # -- units ---------------------------------------------------------------------------------
    def read(self, u: Unit, k: int, streams: list[Value]) -> list[Value]:
        t = self.tensor(u.mem)
        attrs = {"tensor": t.name, "shape": u.mem.type.shape, "dtype": u.mem.type.dtype, "tier": t.tier,
                 "carried": t.carried, "per_call": t.per_call}
        return list(self.b.op("placed.mem_read", streams, attrs, names=[self.unique(u.name)]).results)

    def write(self, u: Unit, k: int, streams: list[Value]) -> list[Value]:
        t = self.tensor(u.mem)
        self.b.op("placed.mem_write", streams, {"tensor": t.name, "tier": t.tier, "per_call": t.per_call},
                  result_types=[])
        return []

    def buffer(self, u: Unit, k: int, streams: list[Value]) -> list[Value]:
        return list(self.b.op("placed.buffer", streams, {"pmus": 1, "capacity": u.capacity},
                              names=[self.unique(u.name)]).results)

    def collective(self, u: Unit, k: int, streams: list[Value]) -> list[Value]:
        (op,) = u.ops
        return list(self.b.op("placed.collective", streams, dict(op.attrs), names=[self.unique(u.name)]).results)

    def compute(self, u: Unit, k: int, streams: list[Value]) -> list[Value]:
        ins = self.d.inputs(k)
        body = Graph("region", [v.type for v in streams], [f"in{i}" for i in range(len(streams))])
        bb = Builder(body)
        vm: dict[Value, Value] = {}
        chunks: dict[Value, list[tuple[int, int, Value]]] = {}
        for i, arg in zip(ins, body.args):
            s = self.d.streams[i]
            port = self.d.units[s.src].outputs[s.port]
            if port.chunk is None:
                vm[port.value] = arg
            else:
                axis, lo, _ = port.chunk
                chunks.setdefault(port.value, []).append((lo, axis, arg))
        for v, parts in chunks.items():
            parts.sort(key=lambda p: p[0])
            vm[v] = bb.emit("concat", *[p[2] for p in parts], axis=parts[0][1], name=v.name)
        for op in self.locals_for(u):
            if not all(r in vm for r in op.results):
                body.append(op.clone(vm))
        for op in u.ops:
            body.append(op.clone(vm))
        outs = []
        for p in u.outputs:
            x = vm[p.value]
            if p.chunk is not None:
                axis, lo, hi = p.chunk
                x = bb.emit("slice", x, axes=[axis], starts=[lo], ends=[hi])
            outs.append(x)
        body.set_outputs(outs)
        names = [self.unique(u.name if len(outs) == 1 else f"{u.name}.{i}") for i in range(len(outs))]
        op = self.b.op("placed.compute", streams, {"pcus": 1}, regions=[body], names=names)
        return list(op.results)

    def locals_for(self, u: Unit) -> list[Operation]:
        """The constant-like ops the unit recomputes (in program order)."""
        need: set[Operation] = set()
        stack = [v for op in u.ops for v in op.operands] + [p.value for p in u.outputs]
        local = self.d.static
        while stack:
            v = stack.pop()
            d = self.defs.get(v)
            if d is None or d in need or v not in local or d in u.ops or _is_weight(d, self.defs):
                continue
            need.add(d)
            stack.extend(d.operands)
        return [op for op in self.d.flat.ops if op in need]


def _is_weight(op: Operation, defs) -> bool:
    if op.opname == "weight":
        return True
    return op.opname == "spmd.shard" and defs.get(op.operands[0]) is not None and defs[op.operands[0]].opname == "weight"
