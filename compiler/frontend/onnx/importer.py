"""``import_onnx``: an ONNX model in, an IR module out.

Steps: read the protobuf without external data; check its structure; list every operator
without a converter (all at once); declare graph inputs with their symbolic dims; turn
initializers into lazily read weights (small integer ones and scalars into folded
constants); convert the nodes in order; return the graph outputs under their ONNX names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from rduflow.ir import (
    Dim,
    DType,
    ExternalFile,
    Graph,
    InMemory,
    Module,
    OnnxInitializer,
    ParseError,
    ShapeOnly,
    TensorType,
    Trait,
    VerifyError,
    Weight,
    WeightError,
    parse_dim,
    verify_module,
)
from rduflow.ir.dims import is_symbol_name

from .attrs import NodeAttrs
from .context import TYPE_ERRORS, ImportContext, NodeContext, Tensor
from .dtypes import ir_dtype
from .errors import OnnxImportError, UnsupportedOp, UnsupportedOperatorsError
from .model_file import DEFAULT_DOMAINS, ModelSource, check_model, external_ref, node_label, open_model
from .registry import get_converter

# Integer initializers up to this many elements are folded (shape arithmetic); float ones only if scalar.
INLINE_LIMIT = 64


def import_onnx(model: str | Path | onnx.ModelProto, *, shapes_only: bool = False,
                base_dir: Path | None = None) -> Module:
    """Convert an ONNX model (a file path or a ModelProto) to an IR module.

    Weights are references (``OnnxInitializer`` or ``ExternalFile`` sources), never read here.
    ``shapes_only`` imports without the weights: external data need not exist, and weights
    are ``ShapeOnly``. ``base_dir`` is where external data lives (default: the model's folder).
    Raises :class:`OnnxImportError` (``UnsupportedOperatorsError``, exit code 2, for operators
    without a converter).
    """
    src = open_model(model, base_dir)
    check_model(src)
    check_supported(src)
    return _Importer(src, shapes_only).run()


def check_supported(src: ModelSource) -> None:
    found: dict[tuple[str, str], list] = {}
    opsets = src.opsets
    for i, node in enumerate(src.proto.graph.node):
        domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
        conv = get_converter(domain, node.op_type)
        version = opsets[domain]
        if conv is None or conv.impl_for(version) is None:
            entry = found.setdefault((domain, node.op_type), [0, node_label(node, i), version])
            entry[0] += 1
    if found:
        ops = [UnsupportedOp(d, op, v, n, first) for (d, op), (n, first, v) in found.items()]
        raise UnsupportedOperatorsError(src.where, ops)


class _Importer:
    def __init__(self, src: ModelSource, shapes_only: bool):
        self.src = src
        self.shapes_only = shapes_only
        self.module = Module(base_dir=src.base_dir)
        self.graph = Graph("main")
        self.module.add_graph(self.graph)
        self.ctx = ImportContext(self.module, self.graph, src.where)

    def run(self) -> Module:
        g = self.src.proto.graph
        inits = {t.name: t for t in g.initializer}
        for vi in g.input:
            if vi.name in inits:
                continue  # an input with a default value: a weight, as runtimes treat it
            ty = self._value_type(vi)
            arg = self.graph.add_arg(ty, vi.name)
            self.ctx.tensors[vi.name] = Tensor(ty, value=arg, name=vi.name)
        for t in g.initializer:
            self.ctx.tensors[t.name] = self._initializer(t)
        opsets = self.src.opsets
        for i, node in enumerate(g.node):
            self._convert(node, node_label(node, i), opsets)
        outs, names = [], []
        for vo in g.output:
            outs.append(self.ctx.materialize(self.ctx.tensors[vo.name]))
            names.append(vo.name)
        self.graph.set_outputs(outs, names)
        _drop_dead_ops(self.module)
        try:
            verify_module(self.module)
        except VerifyError as e:
            raise OnnxImportError(f"{self.src.where}: the imported IR does not verify (an importer bug): {e}") from None
        return self.module

    # -- graph inputs ---------------------------------------------------------------------
    def _value_type(self, vi: onnx.ValueInfoProto) -> TensorType:
        w = f"{self.src.where}: graph input '{vi.name}'"
        if not vi.type.HasField("tensor_type"):
            raise OnnxImportError(f"{w} is not a tensor (sequence, map and optional inputs are not supported)")
        tt = vi.type.tensor_type
        dtype = ir_dtype(tt.elem_type, w)
        if not tt.HasField("shape"):
            raise OnnxImportError(f"{w} has no shape; the importer needs each input's rank (dims may be symbolic)")
        dims = []
        for i, d in enumerate(tt.shape.dim):
            kind = d.WhichOneof("value")
            if kind == "dim_value":
                if d.dim_value < 0:
                    raise OnnxImportError(f"{w}: dim {i} is negative ({d.dim_value})")
                dims.append(Dim.const(d.dim_value))
            elif kind == "dim_param" and d.dim_param:
                dims.append(_symbolic_dim(d.dim_param))
            else:
                dims.append(self.ctx.fresh_symbol(_sanitize(f"{vi.name}_{i}_")))
        self.ctx.note_symbols(dims)
        return TensorType(dims, dtype)

    # -- initializers -----------------------------------------------------------------------
    def _initializer(self, t: onnx.TensorProto) -> Tensor:
        w = f"{self.src.where}: initializer '{t.name}'"
        dtype = ir_dtype(t.data_type, w)
        if any(d < 0 for d in t.dims):
            raise OnnxImportError(f"{w} has a negative dim {list(t.dims)}")
        ty = TensorType(list(t.dims), dtype)
        n = int(np.prod(t.dims, dtype=np.int64)) if t.dims else 1
        external = t.data_location == onnx.TensorProto.EXTERNAL
        small = n <= 1 or ((dtype.is_int or dtype is DType.bool) and n <= INLINE_LIMIT)
        if not external and small:
            return Tensor(ty, folded=_read_inline(t, ty, w), name=t.name)
        if external:
            ref = external_ref(t, self.src, must_exist=not self.shapes_only)
            source = ExternalFile(ref.location, ref.offset, ref.length)
            if small and not self.shapes_only and (dtype.is_int or dtype is DType.bool):
                # a shape constant stored externally: a few bytes, needed to fold shape arithmetic
                try:
                    data = Weight(t.name, ty, source).load(self.src.base_dir)
                except WeightError as e:
                    raise OnnxImportError(f"{w}: {e}") from None
                return Tensor(ty, folded=data, name=t.name)
        elif self.src.path is not None:
            source = OnnxInitializer(Path(os.path.relpath(self.src.path, self.src.base_dir)).as_posix(), t.name)
        else:
            source = InMemory(_read_inline(t, ty, w))  # a ModelProto in memory: its data is here already
        if self.shapes_only:
            source = ShapeOnly()
        return Tensor(ty, weight=Weight(t.name, ty, source), name=t.name)

    # -- nodes ------------------------------------------------------------------------------
    def _convert(self, node: onnx.NodeProto, label: str, opsets: dict[str, int]) -> None:
        domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
        impl = get_converter(domain, node.op_type).impl_for(opsets[domain])
        inputs = [self.ctx.tensors[n] if n else None for n in node.input]
        cx = NodeContext(self.ctx, node.op_type, label, node.name or None, node.output)
        try:
            result = impl(cx, inputs, NodeAttrs(node))
        except OnnxImportError:
            raise
        except TYPE_ERRORS as e:
            raise cx.error(str(e)) from None
        except (ArithmeticError, ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
            raise cx.error(f"internal error in the importer ({type(e).__name__}: {e}); please report it") from e
        outs: Sequence[Tensor | None] = result if isinstance(result, list) else [result]
        for name, t in zip(node.output, outs):
            if not name:
                continue
            if t is None:
                raise cx.error(f"output '{name}' is not supported")
            if t.value is not None and t.value.name is None:
                t.value.name = name
            t.name = t.name or name
            self.ctx.tensors[name] = t
        missing = [n for n in node.output[len(outs):] if n]
        if missing:
            raise cx.error(f"output(s) {', '.join(missing)} are not supported")


def _drop_dead_ops(module: Module) -> None:
    """Ops whose results nothing uses (left behind by folding), and weights only they read."""
    g = module.main
    live = set(g.outputs)
    kept = []
    for op in reversed(g.ops):
        if op.opdef.has_trait(Trait.PURE) and not op.regions and not any(r in live for r in op.results):
            continue
        kept.append(op)
        live.update(op.operands)
    keep = set(kept)
    for op in [op for op in g.ops if op not in keep]:
        g.erase(op)
    used = {op.attrs["ref"].name for op in g.ops if op.opname == "weight"}
    for name in [n for n in module.weights if n not in used]:
        del module.weights[name]


def _read_inline(t: onnx.TensorProto, ty: TensorType, w: str) -> np.ndarray:
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:  # malformed data: onnx raises several kinds
        raise OnnxImportError(f"{w}: unreadable tensor data: {e}") from None
    shape = tuple(int(d) for d in ty.shape)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise OnnxImportError(f"{w}: holds {arr.size} elements, its dims {list(shape)} say otherwise")
    return arr.reshape(shape).astype(ty.dtype.numpy, copy=False)


def _symbolic_dim(param: str) -> Dim:
    """A dim_param as a dim: an expression (``past + seq``) when it parses as one, else a symbol."""
    try:
        d = parse_dim(param)
        if all(is_symbol_name(s) for s in d.symbols) and all(c.denominator == 1 for c in d.terms.values()):
            return d
    except (ParseError, ValueError):
        pass
    return Dim.sym(_sanitize(param))


def _sanitize(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.$]", "_", name)
    if not s or not (s[0].isalpha() or s[0] == "_"):
        s = "_" + s
    while not is_symbol_name(s):
        s += "_"
    return s
