"""Rooflines: the fastest any implementation could run a step on this hardware.

* compute: the FLOPs of the graph's matrix products over the peak of all devices (other
  operators are left out, so the bound stays a lower bound whatever unit runs them);
* memory: the bytes every implementation must read once over the memory bandwidth of all
  devices: each weight a matrix product reads (embedding tables, read by row lookups, are
  left out) and every graph input (the KV cache).

Both come from the IR (types and op costs) at the step's bindings, never from a formula
per model.
"""

from __future__ import annotations

from dataclasses import dataclass

from rduflow.ir import Dim, DType, Module, Value, op_cost


@dataclass(frozen=True)
class Bound:
    compute_s: float
    memory_s: float
    flops: float  # all devices together
    bytes: float

    @property
    def time_s(self) -> float:
        return max(self.compute_s, self.memory_s)


@dataclass
class GraphBounds:
    """A graph's bound terms as polynomials, evaluated per binding."""

    flops: Dim
    bytes: Dim
    dtypes: frozenset[DType]

    @staticmethod
    def of(module: Module) -> GraphBounds:
        g = module.main
        # The weights each weights-only value is computed from (dequantize, transpose, cast);
        # None marks values that depend on an activation (a gather's rows, for one).
        behind: dict[Value, frozenset[Value] | None] = {a: None for a in g.args}
        flops = Dim.const(0)
        dtypes: set[DType] = set()
        read: set[Value] = set()
        for op in g.ops:
            if op.opname == "weight":
                deps: frozenset[Value] | None = frozenset(op.results)
            else:
                parts = [behind[v] for v in op.operands]
                deps = None if any(p is None for p in parts) else frozenset().union(*parts)
            for r in op.results:
                behind[r] = deps
            if op.opdef.kind == "matmul":
                flops = flops + op_cost(op).flops
                dtypes.add(op.operands[0].type.dtype)
                for v in op.operands:
                    read |= behind[v] or frozenset()
        nbytes = Dim.const(0)
        for w in read:
            nbytes = nbytes + w.type.nbytes
        for a in g.args:
            nbytes = nbytes + a.type.nbytes
        return GraphBounds(flops, nbytes, frozenset(dtypes))

    def at(self, bindings: dict[str, int], peak_flops_per_device: float, bw_per_device: float, devices: int) -> Bound:
        f = float(self.flops.evaluate(bindings))
        b = float(self.bytes.evaluate(bindings))
        return Bound(f / (peak_flops_per_device * devices), b / (bw_per_device * devices), f, b)

