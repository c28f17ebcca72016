"""The graphs a run simulates: a model's prefill and decode graphs, imported into the IR, in
the weight and KV-cache precision asked for.

A model-library preset is built with ``rduflow.models.build_onnx`` (int8 and int4 weights
as the library quantizes them) and imported; an ONNX file is imported as it is and serves
both phases when it has a ``past`` dimension (a decode-style graph: prefill is its
``past = 0`` case). Two transforms change the stored precision in the IR itself, so the
bytes every backend moves change with it:

* ``fp8`` weights (and int8/int4 for ONNX files): each float weight a matmul reads is
  stored in the narrow type and converted back right before the matmul (a ``cast`` for
  fp8, a blockwise ``dequantize_linear`` for integers), as weight-only quantized kernels do;
* the KV cache in ``fp8`` or ``int8``: the cache inputs and the keys and values appended
  to them are stored narrow, and widened where attention reads them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rduflow.ir import (
    Dense,
    DType,
    Graph,
    Module,
    Operation,
    ShapeOnly,
    TensorType,
    Value,
    Weight,
    verify_module,
)

from .errors import LlmSimError

PIPELINE = "canonicalize,cse,dce"
_NARROW = {"fp8": DType.f8e4m3, "int8": DType.i8, "int4": DType.i4}
QUANT_BLOCK = 128  # int4 block along the input dimension, as the model library uses


@dataclass
class ModelGraphs:
    name: str
    prefill: Module  # symbols batch, seq (and past = 0 for a decode-style graph)
    decode: Module  # symbols batch, seq, past
    prefill_has_past: bool  # the prefill graph is the decode graph (bind past = 0)
    source: str  # "preset" or the ONNX path

    def bindings(self, phase_graph: Module, batch: int, seq: int, past: int) -> dict[str, int]:
        env = {"batch": batch, "seq": seq, "past": past}
        return {k: v for k, v in env.items() if k in phase_graph.symbols}


def load_graphs(model, weights: str, kv_dtype: str) -> ModelGraphs:
    """``model``: a preset name, an ONNX file, or a ``rduflow.models.ModelConfig``.

    Library models are built once per process and precision (``rduflow compare`` runs one
    model on several targets); the graphs are never changed by the backends, which compile
    or cost copies.
    """
    if isinstance(model, str):
        path = Path(model)
        if path.suffix.lower() == ".onnx" or (path.exists() and path.is_file()):
            return _from_file(path, weights, kv_dtype)
    return _cached_preset(model, weights, kv_dtype)


@functools.lru_cache(maxsize=6)
def _cached_preset(model, weights: str, kv_dtype: str) -> ModelGraphs:
    return _from_preset(model, weights, kv_dtype)


def _from_preset(model, weights: str, kv_dtype: str) -> ModelGraphs:
    from rduflow.models import build_onnx, get_config

    cfg = get_config(model) if isinstance(model, str) else model  # a ModelError naming close presets if unknown
    lib_dtype = weights if weights in ("int8", "int4") else "bf16"
    prefill = _import(build_onnx(cfg, "prefill", weights="shape-only", dtype=lib_dtype))
    decode = _import(build_onnx(cfg, "decode", weights="shape-only", dtype=lib_dtype, seq="seq"))
    if weights == "fp8":
        quantize_weights(prefill, "fp8")
        quantize_weights(decode, "fp8")
    if kv_dtype != "bf16":
        names = store_kv(decode, kv_dtype)
        store_kv_outputs(prefill, kv_dtype, names)
    return ModelGraphs(cfg.name, prefill, decode, False, "preset")


def _from_file(path: Path, weights: str, kv_dtype: str) -> ModelGraphs:
    from rduflow.compiler.loading import load_module

    module = load_module(path, shapes_only=True)
    _run_passes(module)
    symbols = module.symbols
    extra = sorted(symbols - {"batch", "seq", "past"})
    if extra:
        raise LlmSimError(f"{path}: the graph's dimensions {', '.join(extra)} have no meaning to the simulator; "
                          "it binds batch, seq and past (rename the ONNX dim_params)")
    if "seq" not in symbols:
        raise LlmSimError(f"{path}: the graph has no 'seq' dimension (tokens per step); export it with a symbolic "
                          "sequence length")
    if "past" not in symbols:
        raise LlmSimError(f"{path}: the graph has no 'past' dimension (a KV cache input), so decode steps cannot "
                          "be simulated; export the decode variant (rduflow models export NAME --variant decode)")
    if weights != "bf16":
        quantize_weights(module, weights)
    if kv_dtype != "bf16":
        store_kv(module, kv_dtype)
    name = str(module.attrs.get("name") or path.stem)
    return ModelGraphs(name, module, module, True, str(path))


def _import(proto) -> Module:
    from rduflow.compiler.frontend.onnx import import_onnx

    module = import_onnx(proto, shapes_only=True)
    _run_passes(module)
    return module


def _run_passes(module: Module) -> None:
    from rduflow.compiler.passes import PassManager, parse_pipeline

    PassManager(parse_pipeline(PIPELINE)).run(module)


# -- weight precision -----------------------------------------------------------------------------
def quantize_weights(module: Module, dtype: str) -> int:
    """Store every float weight a matmul reads (directly, or through a transpose) in ``dtype``;
    returns how many. The matmul then reads a conversion back to the activation type."""
    narrow = _NARROW[dtype]
    g = module.main
    users = g.users()
    done = 0
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
        wide = _widen(module, g, op, w, old.type.dtype, narrow)
        for u in users.get(w, []):
            if u is not wide.defining_op:
                u.operands = [wide if v is w else v for v in u.operands]
        done += 1
    verify_module(module)
    return done


def _reaches_matmul(op: Operation, users, depth: int = 0) -> bool:
    if op.opdef.kind == "matmul":
        return True
    if op.opname in ("transpose", "reshape") and depth < 3:
        return all(_reaches_matmul(u, users, depth + 1) for u in users.get(op.results[0], []))
    return False


def _widen(module: Module, g: Graph, after: Operation, v: Value, wide: DType, narrow: DType) -> Value:
    """Insert, right after ``after``, the ops that turn ``v`` (stored ``narrow``) back into ``wide``."""
    idx = g.ops.index(after) + 1
    if narrow.is_float:
        op = Operation("cast", [v], [v.type.with_dtype(wide)], {"to": wide}, result_names=[f"{v.name}.wide"])
        g.insert(idx, op)
        return op.results[0]
    # Symmetric scales in the activation type: int4 per block of QUANT_BLOCK input rows of a
    # matrix, otherwise (int8, small or batched weights) one per output channel.
    shape = v.type.shape
    k = shape[0].maybe_int() if v.type.rank == 2 else None
    if narrow == DType.i4 and k is not None and k >= QUANT_BLOCK:
        stype = TensorType([-(-k // QUANT_BLOCK), shape[1]], wide)
        attrs = {"axis": 0, "block_size": QUANT_BLOCK}
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


# -- KV-cache precision ---------------------------------------------------------------------------
def store_kv(module: Module, dtype: str) -> list[str]:
    """Keep the KV cache in ``dtype``: every graph input that a concat appends to (the cache)
    is stored narrow, new keys and values are narrowed before the append, and readers get
    a widened copy. Returns the names of the graph outputs that are cache (narrow now)."""
    narrow = _NARROW[dtype]
    g = module.main
    args = set(g.args)
    caches = [op for op in g.ops if op.opname == "concat" and any(v in args for v in op.operands)]
    if not caches:
        raise LlmSimError("--kv-dtype: the graph appends to no KV-cache input (no concat of a graph input), "
                          "so there is no cache to store narrower")
    outputs: list[str] = []
    for cat in caches:
        wide = cat.results[0].type.dtype
        operands = []
        for v in cat.operands:
            if v in args:
                v.type = v.type.with_dtype(narrow)
                operands.append(v)
            else:
                ops = _convert(v, narrow)
                for k, n in enumerate(ops):
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
        outputs += [name for v, name in zip(g.outputs, g.output_names) if v is stored and name]
    verify_module(module)
    return outputs


def store_kv_outputs(module: Module, dtype: str, names: list[str]) -> None:
    """In a prefill graph, the cache is only written: narrow the outputs named ``names``."""
    narrow = _NARROW[dtype]
    g = module.main
    outs = list(g.outputs)
    for i, (v, name) in enumerate(zip(g.outputs, g.output_names)):
        if name in names:
            ops = _convert(v, narrow)
            # Right after the producer: the conversion fuses with whatever computes the keys.
            at = g.ops.index(v.defining_op) + 1 if v.defining_op is not None else 0
            for k, n in enumerate(ops):
                g.insert(at + k, n)
            outs[i] = ops[-1].results[0]
    g.set_outputs(outs, list(g.output_names))
    verify_module(module)


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
