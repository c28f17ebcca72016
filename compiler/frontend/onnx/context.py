"""The importer's state: ONNX tensor names to IR values or folded values, and op emission.

Converters never build IR directly: they call :meth:`NodeContext.emit`, which infers the
result types, folds the op when its operands are known at import time (see ``symbolic``),
and otherwise appends it to the graph, materializing folded operands as ``constant`` or
``dims`` ops. When an op needs two different symbolic dims to be equal (``total`` and
``past+seq`` broadcast together), :class:`ImportContext` records the equation and rewrites
every type and attribute with it, so one symbol name survives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rduflow.ir import Dense, Dim, DimError, DType, Graph, Module, Operation, TensorType, Value, Weight
from rduflow.ir.attributes import AttrError
from rduflow.ir.core import normalize_attrs
from rduflow.ir.dims import is_symbol_name, numel
from rduflow.ir.opdef import TypeInferenceError, get_opdef
from rduflow.ir.specialize import subs_attr
from rduflow.ir.ops.elementwise import Binary

from .errors import OnnxImportError
from .symbolic import FOLD_LIMIT, fold, is_symbolic, settle, substitute


@dataclass(eq=False)
class Tensor:
    """What an ONNX tensor name stands for: an IR value, a folded value, a weight, or several."""

    type: TensorType
    value: Value | None = None
    folded: np.ndarray | None = None  # known at import time (numbers, or Dims for symbolic ints)
    weight: Weight | None = None  # added to the module, and a ``weight`` op emitted, on first use
    name: str | None = None  # the ONNX name, for messages
    arange: tuple[Dim, Dim] | None = None  # (start, limit) when the value is a step-1 ``range``

    @property
    def rank(self) -> int:
        return self.type.rank

    @property
    def shape(self) -> tuple[Dim, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype


@dataclass
class ImportContext:
    module: Module
    graph: Graph
    where: str
    tensors: dict[str, Tensor] = field(default_factory=dict)
    symbol_order: dict[str, int] = field(default_factory=dict)  # when each symbol first appeared
    env: dict[str, Dim] = field(default_factory=dict)  # symbols eliminated by unification
    _fresh: int = 0

    # -- symbols ----------------------------------------------------------------------
    def note_symbols(self, dims: Sequence[Dim]) -> None:
        for d in dims:
            for s in sorted(d.symbols):
                self.symbol_order.setdefault(s, len(self.symbol_order))

    def fresh_symbol(self, base: str) -> Dim:
        while True:
            name = f"{base}{self._fresh}"
            self._fresh += 1
            if name not in self.symbol_order and is_symbol_name(name):
                self.symbol_order[name] = len(self.symbol_order)
                return Dim.sym(name)

    def unify(self, a: Dim, b: Dim) -> bool:
        """Make ``a == b`` hold by eliminating a symbol that occurs linearly; False if none does."""
        a, b = a.subs(self.env), b.subs(self.env)
        if a == b:
            return True
        diff = a - b
        terms = diff.terms
        candidates = [m[0] for m, c in terms.items()
                      if len(m) == 1 and abs(c) == 1 and sum(m[0] in mm for mm in terms) == 1]
        if not candidates:
            return False
        # Eliminate a symbol standing alone on one side (``total`` = past+seq), else the newest one.
        lone = {_lone_symbol(a), _lone_symbol(b)}
        s = max(candidates, key=lambda x: (x in lone, self.symbol_order.get(x, len(self.symbol_order))))
        c = terms[(s,)]
        solution = -(diff - Dim.sym(s) * c) / c
        self.substitute({s: solution})
        return True

    def substitute(self, env: Mapping[str, Dim]) -> None:
        self.env = {k: v.subs(env) for k, v in self.env.items()} | dict(env)
        for a in self.graph.args:
            a.type = a.type.subs(env)
        for op in self.graph.ops:
            for r in op.results:
                r.type = r.type.subs(env)
            op.attrs = {k: subs_attr(v, env) for k, v in op.attrs.items()}
        for t in self.tensors.values():
            t.type = t.value.type if t.value is not None else t.type.subs(env)
            if t.folded is not None:
                t.folded = substitute(t.folded, env, t.type.dtype)

    # -- emission ---------------------------------------------------------------------
    def emit(self, opname: str, operands: Sequence[Tensor], attrs: Mapping[str, Any], loc: str | None) -> list[Tensor]:
        attrs = normalize_attrs(opname, attrs)
        self._unify_operands(opname, operands, attrs)
        if self.env:  # dims computed before a unification still name the eliminated symbols
            attrs = {k: subs_attr(v, self.env) for k, v in attrs.items()}
        opdef = get_opdef(opname)
        types = [t.type for t in operands]
        out_types = opdef.infer(types, attrs)
        if all(t.folded is not None for t in operands) and all(_small(t) for t in out_types):
            try:
                arrays = fold(opname, [t.folded for t in operands], attrs, out_types)
            except (ArithmeticError, ValueError, IndexError, TypeError) as e:
                raise ConversionError(f"evaluating {opname} on constant inputs fails: {e}") from None
            if arrays is not None:
                return [Tensor(ty, folded=a) for ty, a in zip(out_types, arrays)]
        values = [self.materialize(t) for t in operands]
        op = Operation(opname, values, out_types, attrs, loc=loc)
        self.graph.append(op)
        outs = [Tensor(ty, value=r) for ty, r in zip(out_types, op.results)]
        if all(t.folded is not None for t in operands):
            # Shape arithmetic whose value depends on the symbols (max(0, past-4095)): name it.
            for t in outs:
                if _bindable(t.type):
                    self.bind(t, loc)
        return outs

    def bind(self, t: Tensor, loc: str | None) -> None:
        """Give an integer value known only at run time symbols of its own (``t.folded``),
        bound by a ``bind_dims`` op when it is computed."""
        syms = [self.fresh_symbol("d") for _ in range(int(numel(t.shape)))]
        op = Operation("bind_dims", [self.materialize(t)], [t.type], {"dims": syms}, loc=loc)
        self.graph.append(op)
        arr = np.empty(tuple(int(d) for d in t.shape), dtype=object)
        for i, s in enumerate(syms):
            arr.reshape(-1)[i] = s
        t.value, t.folded = op.results[0], arr

    def materialize(self, t: Tensor) -> Value:
        """The IR value of ``t``, emitting a weight, constant or dims op the first time."""
        if t.value is not None:
            return t.value
        if t.weight is not None:
            w = t.weight
            if w.name not in self.module.weights:
                self.module.add_weight(w)
            op = Operation("weight", [], [w.type], {"ref": w.name}, result_names=[w.name])
        elif t.folded is not None and is_symbolic(t.folded):
            values = [d for d in t.folded.flat]
            op = Operation("dims", [], [t.type], {"values": values, "shape": [int(d) for d in t.shape],
                                                 "dtype": t.dtype}, result_names=[None])
        elif t.folded is not None:
            op = Operation("constant", [], [t.type], {"value": Dense(t.folded, t.dtype)}, result_names=[None])
        else:
            raise ConversionError(f"tensor '{t.name}' has no value")
        self.graph.append(op)
        t.value = op.results[0]
        return t.value

    def _unify_operands(self, opname: str, operands: Sequence[Tensor], attrs: Mapping[str, Any]) -> None:
        """Symbolic dims an op needs equal are unified before its type inference checks them."""
        opdef = get_opdef(opname)
        shapes = [t.shape for t in operands]
        pairs: list[tuple[Dim, Dim]] = []
        if issubclass(opdef, Binary) or opname == "where":
            pairs = _broadcast_pairs(shapes)
        elif opname == "matmul" and all(len(s) >= 2 for s in shapes):
            a, b = shapes
            pairs = [(a[-1], b[-2])] + _broadcast_pairs([a[:-2], b[:-2]])
        elif opname == "matmul" and all(len(s) >= 1 for s in shapes):
            a, b = shapes
            pairs = [(a[-1], b[0] if len(b) == 1 else b[-2])]
        elif opname == "concat" and shapes:
            ax = attrs["axis"] % max(len(shapes[0]), 1)
            pairs = [(s[i], shapes[0][i]) for s in shapes[1:] if len(s) == len(shapes[0])
                     for i in range(len(s)) if i != ax]
        elif opname == "expand":
            pairs = _broadcast_pairs([shapes[0], tuple(attrs["shape"])])
        elif opname in ("layer_norm", "rms_norm"):
            pairs = [(d, x) for s in shapes[1:] for d, x in zip(s, shapes[0][len(shapes[0]) - len(s):])]
        for a, b in pairs:
            a, b = a.subs(self.env), b.subs(self.env)  # an earlier pair may have eliminated a symbol
            if a != b and not (a.is_const and b.is_const) and a != 1 and b != 1:
                self.unify(a, b)  # one that cannot be solved is left to type inference to report


# Run-time integer vectors up to this length may become symbols (a shape has one entry per dim).
BIND_LIMIT = 8


class ConversionError(Exception):
    """A problem converting the current node; the importer adds which node it is."""


def _lone_symbol(d: Dim) -> str | None:
    syms = d.symbols
    if len(syms) == 1:
        (x,) = syms
        if d == Dim.sym(x):
            return x
    return None


def _bindable(t: TensorType) -> bool:
    """Small integer tensors of rank <= 1: what shape arithmetic computes."""
    n = numel(t.shape).maybe_int()
    return t.dtype.is_int and t.rank <= 1 and n is not None and 0 < n <= BIND_LIMIT


def _small(t: TensorType) -> bool:
    n = numel(t.shape).maybe_int()
    return n is not None and n <= FOLD_LIMIT


def _broadcast_pairs(shapes: Sequence[Sequence[Dim]]) -> list[tuple[Dim, Dim]]:
    rank = max((len(s) for s in shapes), default=0)
    pairs = []
    for i in range(1, rank + 1):
        dims = [s[-i] for s in shapes if len(s) >= i and s[-i] != 1]
        pairs.extend((dims[0], d) for d in dims[1:] if d != dims[0])
    return pairs


class NodeContext:
    """What a converter sees of the importer while it converts one node."""

    def __init__(self, ctx: ImportContext, op_type: str, label: str, loc: str | None, outputs: Sequence[str]):
        self.ctx = ctx
        self.op_type = op_type
        self.label = label
        self.loc = loc
        self.outputs = list(outputs)  # the node's output names ('' where an optional output is unused)

    # -- building -----------------------------------------------------------------------
    def emit(self, opname: str, *operands: Tensor, **attrs: Any) -> Tensor:
        (out,) = self.ctx.emit(opname, operands, attrs, self.loc)
        return out

    def emit_multi(self, opname: str, operands: Sequence[Tensor], **attrs: Any) -> list[Tensor]:
        return self.ctx.emit(opname, operands, attrs, self.loc)

    def const(self, value: Any, dtype: DType | None = None) -> Tensor:
        arr = np.asarray(value, dtype=dtype.numpy if dtype else None)
        if arr.dtype == object:
            return Tensor(TensorType(arr.shape, dtype or DType.i64), folded=arr)
        return Tensor(TensorType(arr.shape, DType.from_numpy(arr.dtype)), folded=arr)

    def dims_tensor(self, dims: Sequence[Dim], dtype: DType = DType.i64) -> Tensor:
        """A folded 1-D integer tensor holding ``dims`` (what ``Shape`` produces)."""
        arr = np.empty((len(dims),), dtype=object)
        for i, d in enumerate(dims):
            arr[i] = d
        return Tensor(TensorType([len(dims)], dtype), folded=settle(arr, dtype))

    def unify(self, a: Dim, b: Dim) -> None:
        self.ctx.unify(a, b)

    def current(self, d: Dim) -> Dim:
        """``d`` with the symbols unification eliminated replaced."""
        return d.subs(self.ctx.env)

    def fresh_symbol(self, base: str) -> Dim:
        return self.ctx.fresh_symbol(base)

    # -- operands known at import time --------------------------------------------------
    def folded(self, t: Tensor | None, what: str) -> np.ndarray:
        if t is None:
            raise self.error(f"needs input '{what}'")
        if t.folded is None and t.value is not None and _bindable(t.type):
            self.ctx.bind(t, self.loc)  # computed from data: its values become symbols bound at run time
        if t.folded is None:
            raise self.error(
                f"input '{what}' ('{t.name}') must be known when importing (computed from constants, "
                "initializers and tensor shapes), but it depends on run-time data"
            )
        return t.folded

    def dims(self, t: Tensor | None, what: str) -> tuple[Dim, ...]:
        """A folded integer tensor of rank <= 1 as dims (symbolic allowed)."""
        arr = self.folded(t, what)
        if arr.ndim > 1 or not (is_symbolic(arr) or arr.dtype.kind in "iu"):
            raise self.error(f"input '{what}' must be a 1-D integer tensor, got {t.type}")
        return tuple(v if isinstance(v, Dim) else Dim.const(int(v)) for v in arr.reshape(-1))

    def ints(self, t: Tensor | None, what: str) -> tuple[int, ...]:
        out = []
        for d in self.dims(t, what):
            v = d.maybe_int()
            if v is None:
                raise self.error(f"input '{what}' must be constant, got {d}")
            out.append(v)
        return tuple(out)

    def scalar_dim(self, t: Tensor | None, what: str) -> Dim:
        ds = self.dims(t, what)
        if len(ds) != 1:
            raise self.error(f"input '{what}' must hold one value, got {len(ds)}")
        return ds[0]

    def scalar(self, t: Tensor | None, what: str) -> Any:
        arr = self.folded(t, what)
        if arr.size != 1:
            raise self.error(f"input '{what}' must hold one value, got shape {list(arr.shape)}")
        v = arr.reshape(-1)[0]
        if isinstance(v, Dim):
            iv = v.maybe_int()
            if iv is None:
                raise self.error(f"input '{what}' must be constant, got {v}")
            return iv
        return v.item()

    def error(self, message: str) -> OnnxImportError:
        return OnnxImportError(f"{self.ctx.where}: node '{self.label}' ({self.op_type}): {message}")


# What emitting an op raises when operand types or attributes do not fit it.
TYPE_ERRORS: tuple[type[Exception], ...] = (TypeInferenceError, DimError, AttrError, ConversionError)
