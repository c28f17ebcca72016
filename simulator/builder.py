"""Building placed programs in code (tests, benchmarks and the compiler back end).

    prog = PlacedProgram(sockets=8)
    sec = prog.section("decoder", repeat=80)
    x = sec.mem_read("h", TensorType([1, 8192], "bf16"), agcu=0, carried=True)
    w = sec.mem_read("w_up", TensorType([8192, 3584], "bf16"), agcu=1)
    wb = sec.buffer(sec.stream(w, tiles=112), pmus=8, capacity=4 << 20)
    y = sec.compute("up", [sec.stream(x, tiles=1), sec.stream(wb, tiles=112)],
                    lambda b, x, w: b.emit("matmul", x, w), pcus=16)
    sec.mem_write(sec.stream(y, tiles=1), "h_up", agcu=2)
    module = prog.finish()   # verified

Each method appends one placed op to the section's region and returns its result; the
format itself is documented in docs/simulator.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rduflow.ir import Builder, Graph, Module, Operation, TensorType, Value, verify_module

Coords = Sequence[Sequence[int]]


class PlacedProgram:
    """A module whose ``@main`` graph runs placed sections in order."""

    def __init__(self, sockets: int | None = None):
        self.module = Module()
        self.graph = self.module.add_graph(Graph("main"))
        if sockets is not None:
            self.module.attrs["sockets"] = sockets

    def section(self, name: str = "", repeat: int = 1) -> SectionBuilder:
        region = Graph("region")
        region.set_outputs([])
        Builder(self.graph).op("placed.section", (), {"name": name, "repeat": repeat}, regions=[region],
                               result_types=[])
        return SectionBuilder(region)

    def finish(self) -> Module:
        self.graph.set_outputs([])
        verify_module(self.module)
        return self.module


class SectionBuilder:
    def __init__(self, region: Graph):
        self.region = region
        self.b = Builder(region)

    def _one(self, opname: str, operands: Sequence[Value], attrs: dict[str, Any], name: str | None) -> Value:
        return self.b.op(opname, operands, attrs, names=[name]).result

    def mem_read(self, tensor: str, type: TensorType, *, tier: str = "hbm", agcu: int = -1,
                 carried: bool = False, per_call: bool = False, indices: Value | None = None,
                 name: str | None = None) -> Value:
        """``type`` is what is read: with ``indices`` (a stream of integers), the selected rows."""
        attrs = {"tensor": tensor, "shape": type.shape, "dtype": type.dtype, "tier": tier, "agcu": agcu,
                 "carried": carried, "per_call": per_call}
        return self._one("placed.mem_read", [indices] if indices is not None else (), attrs, name or tensor)

    def mem_write(self, stream: Value, tensor: str, *, tier: str = "hbm", agcu: int = -1,
                  per_call: bool = False) -> Operation:
        attrs = {"tensor": tensor, "tier": tier, "agcu": agcu, "per_call": per_call}
        return self.b.op("placed.mem_write", [stream], attrs, result_types=[])

    def stream(self, value: Value, tiles: int, *, depth: int = 0, route: Sequence[Sequence[int]] = (),
               hops: int = -1) -> Value:
        attrs = {"tiles": tiles, "depth": depth, "route": [list(link) for link in route], "hops": hops}
        return self._one("placed.stream", [value], attrs, None)

    def buffer(self, stream: Value, *, pmus: int, capacity: int, coords: Coords = (), name: str | None = None) -> Value:
        attrs = {"pmus": pmus, "capacity": capacity, "coords": [list(c) for c in coords]}
        return self._one("placed.buffer", [stream], attrs, name)

    def compute(self, name: str, inputs: Sequence[Value], body: Callable[..., Value | Sequence[Value]], *,
                pcus: int, coords: Coords = ()) -> Value | list[Value]:
        """A unit running ``body(builder, *args)`` (IR ops on the region's arguments) on ``pcus`` PCUs.

        Returns the unit's result, or a list of them when ``body`` returns several.
        """
        region = Graph("region", [v.type for v in inputs], [f"in{i}" for i in range(len(inputs))])
        outs = body(Builder(region), *region.args)
        many = isinstance(outs, (list, tuple))
        outs = list(outs) if many else [outs]
        region.set_outputs(outs)
        names = [name] if len(outs) == 1 else [f"{name}.{i}" for i in range(len(outs))]
        op = self.b.op("placed.compute", inputs, {"pcus": pcus, "coords": [list(c) for c in coords]},
                       regions=[region], names=names)
        return list(op.results) if many else op.results[0]

    def collective(self, stream: Value, kind: str, *, group: int, axis: int = 0, agcu: int = -1,
                   name: str | None = None) -> Value:
        attrs = {"kind": kind, "group": group, "axis": axis, "agcu": agcu}
        return self._one("placed.collective", [stream], attrs, name)
