"""Import-time values ("folded" tensors) and how IR ops compute on them.

Exporters compute shapes with tensors: ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``.
The importer runs that arithmetic itself. A folded tensor is a small numpy array known when
importing: numbers, or, for integer tensors that hold symbolic dims, an object array of
:class:`Dim` (``[batch, seq, 4, 8]``). Ops whose operands are all folded are evaluated here
instead of being emitted: numerically with the op's own reference semantics, or symbolically
for the ops shape arithmetic uses. Symbols are sizes, so they are taken to be >= 0; a
comparison that still depends on their values is :class:`Undecidable`, and the op is then
emitted to run at run time.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rduflow.ir import Dim, DimError, DType, TensorType
from rduflow.ir.opdef import EvalContext, get_opdef

# Results with more elements than this are emitted as ops, not folded into inline constants.
FOLD_LIMIT = 1024


class Undecidable(Exception):
    """The value depends on what the symbols are at run time."""


def is_symbolic(a: np.ndarray) -> bool:
    return a.dtype == object


def as_dims(a: np.ndarray) -> np.ndarray:
    """An integer array as an object array of Dims."""
    if is_symbolic(a):
        return a
    if a.dtype.kind not in "iub":
        raise Undecidable
    out = np.empty(a.shape, dtype=object)
    for idx, v in np.ndenumerate(a):
        out[idx] = Dim.const(int(v))
    return out


def settle(a: np.ndarray, dtype: DType) -> np.ndarray:
    """Back to a numeric array when no symbol is left."""
    if not is_symbolic(a):
        return a.astype(dtype.numpy, copy=False)
    vals = [v.maybe_int() if isinstance(v, Dim) else v for v in a.flat]
    if all(v is not None for v in vals):
        return np.array(vals, dtype=np.int64).reshape(a.shape).astype(dtype.numpy)
    return a


def substitute(a: np.ndarray, env: Mapping[str, Dim], dtype: DType) -> np.ndarray:
    if not is_symbolic(a):
        return a
    out = np.empty(a.shape, dtype=object)
    for idx, d in np.ndenumerate(a):
        out[idx] = d.subs(env)
    return settle(out, dtype)


# -- deciding comparisons of dims ---------------------------------------------------------
def _bounds(d: Dim) -> tuple[Any, Any]:
    """(lower, upper) bounds of ``d`` over symbols >= 0; None where unbounded."""
    terms = d.terms
    c0 = terms.get((), 0)
    others = [c for m, c in terms.items() if m]
    if not others:
        return c0, c0
    lo = c0 if all(c > 0 for c in others) else None
    hi = c0 if all(c < 0 for c in others) else None
    return lo, hi


def compare(op: str, a: Dim, b: Dim) -> bool:
    lo, hi = _bounds(a - b)
    table = {
        "less": (hi is not None and hi < 0, lo is not None and lo >= 0),
        "less_equal": (hi is not None and hi <= 0, lo is not None and lo > 0),
        "greater": (lo is not None and lo > 0, hi is not None and hi <= 0),
        "greater_equal": (lo is not None and lo >= 0, hi is not None and hi < 0),
        "equal": (a == b, (lo is not None and lo > 0) or (hi is not None and hi < 0)),
    }
    true, false = table[op]
    if true:
        return True
    if false:
        return False
    raise Undecidable


def _div(a: Dim, b: Dim) -> Dim:
    av, bv = a.maybe_int(), b.maybe_int()
    if av is not None and bv is not None:
        if bv == 0:
            raise Undecidable
        q = abs(av) // abs(bv)
        return Dim.const(q if (av >= 0) == (bv >= 0) else -q)  # ONNX integer division truncates
    try:
        return a // b
    except DimError:
        raise Undecidable from None


def _mod(a: Dim, b: Dim, fmod: bool) -> Dim:
    av, bv = a.maybe_int(), b.maybe_int()
    if av is None or bv is None or bv == 0:
        raise Undecidable
    return Dim.const(int(np.fmod(av, bv)) if fmod else av % bv)


def _pick(op: str) -> Callable[[Dim, Dim], Dim]:
    def f(a: Dim, b: Dim) -> Dim:
        a_le_b = compare("less_equal", a, b)
        return (a if a_le_b else b) if op == "min" else (b if a_le_b else a)

    return f


_BINARY: dict[str, Callable[[Dim, Dim], Any]] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": _div,
    "max": _pick("max"), "min": _pick("min"),
    **{c: functools.partial(compare, c) for c in ("equal", "less", "less_equal", "greater", "greater_equal")},
}


def _elementwise(fn: Callable, arrays: Sequence[np.ndarray]) -> np.ndarray:
    args = np.broadcast_arrays(*[as_dims(a) for a in arrays])
    out = np.empty(args[0].shape, dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*(x[idx] for x in args))
    return out


def _fold_binary(opname: str, arrays, attrs, types):
    if opname == "mod":
        return [_elementwise(lambda a, b: _mod(a, b, attrs.get("fmod", False)), arrays)]
    return [_elementwise(_BINARY[opname], arrays)]


def _fold_unary(fn):
    def run(opname, arrays, attrs, types):
        return [_elementwise(fn, arrays)]

    return run


def _abs(d: Dim) -> Dim:
    return d if compare("greater_equal", d, Dim.const(0)) else -d


def _fold_cast(opname, arrays, attrs, types):
    to: DType = attrs["to"]
    if to is DType.bool:
        return [_elementwise(lambda d: not compare("equal", d, Dim.const(0)), arrays)]
    if not to.is_int:
        raise Undecidable  # a symbol as a float has no folded form
    return [arrays[0]]


def _fold_where(opname, arrays, attrs, types):
    cond, a, b = arrays
    if is_symbolic(cond):
        raise Undecidable
    return [np.where(cond, as_dims(a), as_dims(b))]


def _fold_reduce(fn, unit):
    def run(opname, arrays, attrs, types):
        x = as_dims(arrays[0])
        axes = sorted({a % x.ndim for a in attrs["axes"]}) or list(range(x.ndim))
        keep = [i for i in range(x.ndim) if i not in axes]
        kept_shape = tuple(x.shape[i] for i in keep)
        rows = np.transpose(x, keep + axes).reshape(kept_shape + (-1,))
        r = np.empty(kept_shape, dtype=object)
        for idx in np.ndindex(kept_shape):
            r[idx] = functools.reduce(fn, rows[idx], Dim.const(unit))
        if attrs["keepdims"]:
            r = r.reshape([1 if i in axes else x.shape[i] for i in range(x.ndim)])
        return [r]

    return run


def _fold_range(opname, arrays, attrs, types):
    n = types[0].shape[0].maybe_int()
    if n is None or not attrs["dtype"].is_int:
        raise Undecidable
    out = np.empty((n,), dtype=object)
    for i in range(n):
        out[i] = attrs["start"] + i * attrs["delta"]
    return [out]


def _fold_movement(opname, arrays, attrs, types):
    """Data movement is the same on Dims as on numbers: run the op's own semantics."""
    data_args = {"gather": 1, "gather_elements": 1, "gather_nd": 1}.get(opname, len(arrays))
    ins = [as_dims(a) if i < data_args else a for i, a in enumerate(arrays)]
    return get_opdef(opname).evaluate(ins, attrs, EvalContext(env={}))


_SYMBOLIC: dict[str, Callable] = {
    **{k: _fold_binary for k in _BINARY},
    "mod": _fold_binary,
    "neg": _fold_unary(operator.neg),
    "abs": _fold_unary(_abs),
    "identity": _fold_unary(lambda d: d),
    "cast": _fold_cast,
    "where": _fold_where,
    "reduce_sum": _fold_reduce(operator.add, 0),
    "reduce_prod": _fold_reduce(operator.mul, 1),
    "range": _fold_range,
    **{k: _fold_movement for k in ("reshape", "transpose", "concat", "slice", "split", "gather",
                                   "gather_elements", "gather_nd", "expand", "tile")},
}


def fold(opname: str, arrays: Sequence[np.ndarray], attrs: Mapping[str, Any],
         types: Sequence[TensorType]) -> list[np.ndarray] | None:
    """The results of ``opname`` on folded operands, or None when they are known only at run time.

    Raises what the op's reference semantics raise on bad constant data (the caller reports it).
    """
    if not any(is_symbolic(a) for a in arrays):
        try:
            outs = get_opdef(opname).evaluate(list(arrays), attrs, EvalContext(env={}))
        except DimError:
            outs = None  # symbolic attributes: try the symbolic path
        if outs is not None:
            return [np.asarray(o).astype(t.dtype.numpy, copy=False) for o, t in zip(outs, types)]
    fn = _SYMBOLIC.get(opname)
    if fn is None:
        return None
    try:
        outs = fn(opname, list(arrays), attrs, types)
    except Undecidable:
        return None
    return [settle(np.asarray(o, dtype=object) if not isinstance(o, np.ndarray) else o, t.dtype)
            for o, t in zip(outs, types)]
