"""How long a compute unit's PCUs work, derived from the IR ops in its region.

Each op's FLOPs come from ``ir.op_cost``; its rate from the PCU mode it runs in and its
element type. A ``placed.compute`` unit spreads its ops over its PCUs in proportion to their
work (as SambaNova's compiler assigns PCUs [SN40L III-A]), so the unit's time is the sum of
its ops' single-PCU cycles divided by its PCU count. The tail unit (transcendentals) runs
beside the PCU body, so a unit takes the longer of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from rduflow.ir import DType, Operation, op_cost
from rduflow.ir.dims import DimError

from .arch import RduArch
from .errors import CostError


@dataclass(frozen=True)
class ComputeWork:
    flops: float  # over the whole unit, one call
    body_cycles: float  # single-PCU cycles of the PCU bodies (systolic or SIMD)
    tail_cycles: float  # single-PCU cycles of the tail units

    def cycles(self, pcus: int) -> float:
        return max(self.body_cycles, self.tail_cycles) / pcus


def compute_work(unit: Operation, arch: RduArch) -> ComputeWork:
    flops = body = tail = 0.0
    tail_ops = set(arch.pcu.tail_functions)
    for op in unit.regions[0].walk():
        if op.regions:
            continue  # nested groups: their leaf ops are walked
        f = _number(op_cost(op).flops, op)
        if f == 0:
            continue
        dtype = _dtype(op)
        flops += f
        if op.opdef.kind == "matmul":
            body += f / _matmul_rate(op, dtype, arch)
        else:
            body += f / arch.simd_rate(dtype)
        if op.opname in tail_ops:
            tail += _number(op.results[0].type.numel, op) / arch.pcu.tail_ops_per_cycle
    return ComputeWork(flops, body, tail)


def _matmul_rate(op: Operation, dtype: DType, arch: RduArch) -> float:
    """The faster of the two modes. An output-stationary systolic array has ``stages`` rows
    for the M dimension; a matmul with fewer rows (decode: M = 1) leaves rows idle, where
    the SIMD mode does not."""
    a = op.operands[0].type
    m = _number(a.shape[-2], op) if a.rank >= 2 else 1
    systolic = arch.systolic_rate(dtype) * min(1.0, m / arch.pcu.stages)
    return max(systolic, arch.simd_rate(dtype))


def _dtype(op: Operation) -> DType:
    vals = op.operands or op.results
    return vals[0].type.dtype


def _number(d, op: Operation) -> float:
    try:
        return float(d.const_value())
    except DimError:
        raise CostError(f"{op.where()}: shape is symbolic ({d}); placed programs need concrete shapes "
                              "(specialize the symbols first)") from None
