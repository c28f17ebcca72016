"""Stored precision: weights (``quantize-weights``) and the KV cache (``kv-cache``) kept in a
narrower type in the IR itself, so the bytes every backend moves shrink with it.

Each narrowed value is converted back to its wide type where it is read, as weight-only
quantized kernels and fp8/int8 KV caches do: the arithmetic stays in the activation type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rduflow.ir import Dense, DType, Graph, Module, Operation, ShapeOnly, TensorType, Value, Weight
from rduflow.ir.errors import RduflowError

from .base import ModulePass, option
from .context import PassContext

class KvCacheError(RduflowError):
    """The graph has no KV cache ``kv-cache`` can find, or no output of a name it was given."""


NARROW = {"fp8": DType.f8e4m3, "int8": DType.i8, "int4": DType.i4}


def _narrow(dtype: str, allowed: tuple[str, ...]) -> DType:
    if dtype not in allowed:
        raise ValueError(f"dtype must be one of {', '.join(allowed)}, is '{dtype}'")
    return NARROW[dtype]


# -- weights ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantizeWeights(ModulePass):
    """Store every float weight a matmul reads (directly or through a transpose/reshape) in dtype."""

    name: ClassVar[str] = "quantize-weights"
    dtype: str = option("fp8", "fp8 (read through a cast), int8 or int4 (read through dequantize_linear)")
    block_size: int = option(128, "int4: input rows of a matrix per scale (int8, and smaller or batched "
                                  "weights: one scale per output channel)")

    def __post_init__(self) -> None:
        _narrow(self.dtype, ("fp8", "int8", "int4"))
        if self.block_size < 1:
            raise ValueError(f"block-size must be at least 1, is {self.block_size}")

    def apply(self, module: Module, ctx: PassContext) -> None:
        narrow = NARROW[self.dtype]
        g = module.main
        users = g.users()
        for op in list(g.ops):
            if op.opname != "weight":
                continue
            w = op.results[0]
            if not w.type.dtype.is_float or w.type.dtype == narrow or w.type.rank < 2:
                continue
            if not all(_reaches_matmul(u, users) for u in users.get(w, [])):
                continue
            name = op.attrs["ref"].name
            old = module.weights[name]
            stored = old.type.with_dtype(narrow)
            module.weights[name] = Weight(name, stored, ShapeOnly())
            w.type = stored
            wide = self._widen(module, g, op, w, old.type.dtype, narrow)
            for u in users.get(w, []):
                if u is not wide.defining_op:
                    u.operands = [wide if v is w else v for v in u.operands]

    def _widen(self, module: Module, g: Graph, after: Operation, v: Value, wide: DType, narrow: DType) -> Value:
        """Insert, right after ``after``, the ops that turn ``v`` (stored ``narrow``) back into ``wide``."""
        idx = g.ops.index(after) + 1
        if narrow.is_float:
            op = Operation("cast", [v], [v.type.with_dtype(wide)], {"to": wide}, result_names=[f"{v.name}.wide"])
            g.insert(idx, op)
            return op.results[0]
        # Symmetric scales in the activation type: int4 per block of block_size input rows of a
        # matrix, otherwise (int8, small or batched weights) one per output channel.
        shape = v.type.shape
        k = shape[0].maybe_int() if v.type.rank == 2 else None
        if narrow == DType.i4 and k is not None and k >= self.block_size:
            stype = TensorType([-(-k // self.block_size), shape[1]], wide)
            attrs = {"axis": 0, "block_size": self.block_size}
        else:
            stype = TensorType([shape[-1]], wide)
            attrs = {"axis": v.type.rank - 1, "block_size": 0}
        sname = f"{v.name}.scale"
        module.add_weight(Weight(sname, stype, ShapeOnly()))
        sw = Operation("weight", [], [stype], {"ref": sname}, result_names=[sname])
        dq = Operation("dequantize_linear", [v, sw.results[0]], [v.type.with_dtype(wide)], attrs,
                       result_names=[f"{v.name}.dequantized"])
        g.insert(idx, sw)
        g.insert(idx + 1, dq)
        return dq.results[0]


def _reaches_matmul(op: Operation, users, depth: int = 0) -> bool:
    if op.opdef.kind == "matmul":
        return True
    if op.opname in ("transpose", "reshape") and depth < 3:
        return all(_reaches_matmul(u, users, depth + 1) for u in users.get(op.results[0], []))
    return False


# -- KV cache --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KvCache(ModulePass):
    """Store the KV cache in dtype: graph inputs a concat appends to, and the named written-only outputs."""

    name: ClassVar[str] = "kv-cache"
    dtype: str = option("fp8", "fp8 (cast) or int8 (per-tensor quantize_linear/dequantize_linear)")
    outputs: tuple[str, ...] = option((), "graph outputs, by name, that are cache the graph only writes "
                                          "(a prefill graph's, which has no cache input)")

    def __post_init__(self) -> None:
        _narrow(self.dtype, ("fp8", "int8"))

    def apply(self, module: Module, ctx: PassContext) -> None:
        narrow = NARROW[self.dtype]
        g = module.main
        caches = _appending_concats(g)
        if not caches and not self.outputs:
            raise KvCacheError("the graph appends to no KV-cache input (no concat of a graph input), "
                               "so there is no cache to store narrower")
        args = set(g.args)
        for cat in caches:
            _store_appended(g, cat, narrow, args)
        if self.outputs:
            self._store_outputs(g, narrow)

    def _store_outputs(self, g: Graph, narrow: DType) -> None:
        """The cache is only written: narrow the outputs named in ``outputs``."""
        missing = sorted(set(self.outputs) - set(g.output_names))
        if missing:
            raise KvCacheError(f"no graph output named {', '.join(repr(n) for n in missing)} "
                               f"(outputs: {', '.join(n for n in g.output_names if n)})")
        outs = list(g.outputs)
        for i, (v, name) in enumerate(zip(g.outputs, g.output_names)):
            if name in self.outputs:
                ops = _convert(v, narrow)
                # Right after the producer: the conversion fuses with whatever computes the keys.
                at = g.ops.index(v.defining_op) + 1 if v.defining_op is not None else 0
                for k, n in enumerate(ops):
                    g.insert(at + k, n)
                outs[i] = ops[-1].results[0]
        g.set_outputs(outs, list(g.output_names))


def appended_cache_outputs(module: Module) -> list[str]:
    """Names of the graph outputs that are a KV cache appended to (a decode graph's cache out):
    what ``kv-cache{outputs=...}`` takes for the prefill graph of the same model."""
    g = module.main
    cats = {cat.results[0] for cat in _appending_concats(g)}
    return [name for v, name in zip(g.outputs, g.output_names) if v in cats and name]


def _appending_concats(g: Graph) -> list[Operation]:
    args = set(g.args)
    return [op for op in g.ops if op.opname == "concat" and any(v in args for v in op.operands)]


def _store_appended(g: Graph, cat: Operation, narrow: DType, args: set[Value]) -> None:
    """The cache input is stored narrow, new keys/values are narrowed before the append, and
    readers of the appended cache get a widened copy (the graph output stays narrow)."""
    wide = cat.results[0].type.dtype
    operands = []
    for v in cat.operands:
        if v in args:
            v.type = v.type.with_dtype(narrow)
            operands.append(v)
        else:
            ops = _convert(v, narrow)
            for n in ops:
                g.insert(g.ops.index(cat), n)
            operands.append(ops[-1].results[0])
    cat.operands = operands
    stored = cat.results[0]
    stored.type = stored.type.with_dtype(narrow)
    back = _convert(stored, wide)
    at = g.ops.index(cat) + 1
    for k, n in enumerate(back):
        g.insert(at + k, n)
    widened = back[-1].results[0]
    for op in g.ops:
        if op not in back:
            op.operands = [widened if v is stored else v for v in op.operands]


def _convert(v: Value, to: DType) -> list[Operation]:
    """Ops turning ``v`` into element type ``to``: a cast between floats; between a float and
    int8, a per-tensor (de)quantization (its scale is a constant: no traffic)."""
    t = v.type.with_dtype(to)
    name = f"{v.name or 'kv'}.{to.value}"
    src = v.type.dtype
    if to.is_float and src.is_float:
        return [Operation("cast", [v], [t], {"to": to}, result_names=[name])]
    fdt = to if to.is_float else src
    scale = Operation("constant", [], [TensorType([], fdt)], {"value": Dense(np.ones((), dtype=fdt.numpy))})
    if to.is_int:
        q = Operation("quantize_linear", [v, scale.results[0]], [t], {"dtype": to, "axis": 0}, result_names=[name])
    else:
        q = Operation("dequantize_linear", [v, scale.results[0]], [t], {"axis": 0}, result_names=[name])
    return [scale, q]
