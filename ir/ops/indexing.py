"""Indexing by tensors: gather/scatter variants, one-hot, top-k, non-zero, triangles.

Semantics follow the ONNX operators of the same names (negative indices count from the end).
``nonzero`` is the one op whose result shape depends on data: its count is a symbol of its own
(``count`` attribute), bound when the op runs.
"""

from __future__ import annotations

import numpy as np

from ..attributes import AttrKind, AttrSpec
from ..dims import Dim
from ..dtypes import DType
from ..opdef import Cost, OpDef, TypeInferenceError, register
from ..types import TensorType
from .common import axis as norm_axis
from .common import int_indices


def _wrap(idx: np.ndarray, size: int) -> np.ndarray:
    idx = idx.astype(np.int64)
    return np.where(idx < 0, idx + size, idx)


class Indexing(OpDef):
    kind = "data_movement"


@register
class GatherElements(Indexing):
    """``out[i][j] = data[index[i][j]][j]`` along ``axis`` (numpy ``take_along_axis``)."""

    name = "gather_elements"
    operands = (2, 2)
    attrs = {"axis": AttrSpec(AttrKind.INT, 0)}

    @classmethod
    def infer(cls, types, attrs):
        data, idx = types
        int_indices(idx, "gather_elements")
        norm_axis(attrs["axis"], data.rank)
        if idx.rank != data.rank:
            raise TypeInferenceError(f"gather_elements: indices rank {idx.rank} differs from data rank {data.rank}")
        return [TensorType(idx.shape, data.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        data, idx = inputs
        ax = norm_axis(attrs["axis"], data.ndim)
        return [np.take_along_axis(data, _wrap(idx, data.shape[ax]), axis=ax)]


@register
class GatherND(Indexing):
    """Gather slices of ``data`` addressed by the last axis of ``indices`` (ONNX GatherND)."""

    name = "gather_nd"
    operands = (2, 2)
    attrs = {"batch_dims": AttrSpec(AttrKind.INT, 0)}

    @classmethod
    def _depth(cls, data: TensorType, idx: TensorType, b: int) -> int:
        int_indices(idx, "gather_nd")
        if idx.rank < 1 or b < 0 or b >= min(data.rank, idx.rank):
            raise TypeInferenceError(f"gather_nd: batch_dims {b} does not fit data {data} and indices {idx}")
        depth = idx.shape[-1].maybe_int()
        if depth is None or not 1 <= depth <= data.rank - b:
            raise TypeInferenceError(f"gather_nd: the last indices dim {idx.shape[-1]} must be a constant in 1..{data.rank - b}")
        for i in range(b):
            if data.shape[i] != idx.shape[i]:
                raise TypeInferenceError(f"gather_nd: batch dim {i} differs ({data.shape[i]} vs {idx.shape[i]})")
        return depth

    @classmethod
    def infer(cls, types, attrs):
        data, idx = types
        b = attrs["batch_dims"]
        depth = cls._depth(data, idx, b)
        return [TensorType(data.shape[:b] + idx.shape[b:-1] + data.shape[b + depth:], data.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        data, idx = inputs
        b = attrs["batch_dims"]
        depth = idx.shape[-1]
        batch = data.shape[:b]
        nb = int(np.prod(batch, dtype=np.int64))
        d = data.reshape((nb,) + data.shape[b:])
        ix = idx.reshape((nb, -1, depth))
        rows = [d[k][tuple(_wrap(ix[k, :, j], d.shape[1 + j]) for j in range(depth))] for k in range(nb)]
        res = np.stack(rows) if rows else np.zeros((0, ix.shape[1]) + d.shape[1 + depth:], data.dtype)
        return [np.ascontiguousarray(res.reshape(batch + idx.shape[b:-1] + data.shape[b + depth:]))]

    @classmethod
    def cost(cls, ins, outs, attrs):
        return Cost(Dim.const(0), outs[0].nbytes + ins[1].nbytes, outs[0].nbytes)


_REDUCTIONS = ("none", "add", "mul", "max", "min")


def _scatter_apply(target: np.ndarray, index: tuple, upd: np.ndarray, reduction: str) -> None:
    """Apply updates one at a time, in order, so duplicate indices combine as ONNX says."""
    if reduction == "none":
        target[index] = upd
    elif reduction == "add":
        np.add.at(target, index, upd)
    elif reduction == "mul":
        np.multiply.at(target, index, upd)
    elif reduction == "max":
        np.maximum.at(target, index, upd)
    else:
        np.minimum.at(target, index, upd)


@register
class ScatterElements(Indexing):
    """A copy of ``data`` with ``updates`` written at ``indices`` along ``axis`` (ONNX ScatterElements)."""

    name = "scatter_elements"
    operands = (3, 3)
    attrs = {"axis": AttrSpec(AttrKind.INT, 0), "reduction": AttrSpec(AttrKind.STR, "none", " | ".join(_REDUCTIONS))}

    @classmethod
    def infer(cls, types, attrs):
        data, idx, upd = types
        int_indices(idx, "scatter_elements")
        norm_axis(attrs["axis"], data.rank)
        if attrs["reduction"] not in _REDUCTIONS:
            raise TypeInferenceError(f"scatter_elements: unknown reduction '{attrs['reduction']}'")
        if idx.shape != upd.shape or idx.rank != data.rank:
            raise TypeInferenceError(f"scatter_elements: indices {idx} and updates {upd} must match in shape, data rank {data.rank}")
        if upd.dtype != data.dtype:
            raise TypeInferenceError(f"scatter_elements: updates are {upd.dtype}, data is {data.dtype}")
        return [data]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        data, idx, upd = inputs
        ax = norm_axis(attrs["axis"], data.ndim)
        out = data.copy()
        grids = list(np.indices(idx.shape, sparse=True))
        grids[ax] = _wrap(idx, data.shape[ax])
        _scatter_apply(out, tuple(grids), upd, attrs["reduction"])
        return [out]


@register
class ScatterND(Indexing):
    """A copy of ``data`` with slices replaced at the positions ``indices`` address (ONNX ScatterND)."""

    name = "scatter_nd"
    operands = (3, 3)
    attrs = {"reduction": AttrSpec(AttrKind.STR, "none", " | ".join(_REDUCTIONS))}

    @classmethod
    def infer(cls, types, attrs):
        data, idx, upd = types
        int_indices(idx, "scatter_nd")
        if attrs["reduction"] not in _REDUCTIONS:
            raise TypeInferenceError(f"scatter_nd: unknown reduction '{attrs['reduction']}'")
        depth = idx.shape[-1].maybe_int() if idx.rank else None
        if depth is None or not 1 <= depth <= data.rank:
            raise TypeInferenceError(f"scatter_nd: the last indices dim must be a constant in 1..{data.rank}")
        want = idx.shape[:-1] + data.shape[depth:]
        if upd.shape != want:
            raise TypeInferenceError(f"scatter_nd: updates must be [{', '.join(map(str, want))}], got {upd}")
        if upd.dtype != data.dtype:
            raise TypeInferenceError(f"scatter_nd: updates are {upd.dtype}, data is {data.dtype}")
        return [data]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        data, idx, upd = inputs
        depth = idx.shape[-1]
        out = data.copy()
        flat_idx = idx.reshape(-1, depth)
        flat_upd = upd.reshape((-1,) + data.shape[depth:])
        for i in range(flat_idx.shape[0]):
            pos = tuple(int(_wrap(flat_idx[i, j], data.shape[j])) for j in range(depth))
            _scatter_apply(out, pos, flat_upd[i], attrs["reduction"])
        return [out]


@register
class OneHot(Indexing):
    """``values[1]`` where ``indices == k`` along a new axis of length ``depth``, else ``values[0]``."""

    name = "one_hot"
    operands = (2, 2)
    kind = "elementwise"
    attrs = {"depth": AttrSpec(AttrKind.DIM), "axis": AttrSpec(AttrKind.INT, -1)}

    @classmethod
    def infer(cls, types, attrs):
        idx, values = types
        if values.shape != (Dim.const(2),):
            raise TypeInferenceError(f"one_hot: values must be [off, on], got {values}")
        ax = norm_axis(attrs["axis"], idx.rank + 1)
        shape = list(idx.shape)
        shape.insert(ax, attrs["depth"])
        return [TensorType(shape, values.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        idx, values = inputs
        depth = ctx.dim(attrs["depth"])
        ax = norm_axis(attrs["axis"], idx.ndim + 1)
        k = idx.astype(np.int64) if np.issubdtype(idx.dtype, np.integer) else np.trunc(idx).astype(np.int64)
        k = np.where(k < 0, k + depth, k)
        hot = np.expand_dims(k, ax) == np.arange(depth).reshape([-1 if i == ax else 1 for i in range(idx.ndim + 1)])
        return [np.where(hot, values[1], values[0]).astype(values.dtype)]


@register
class NonZero(Indexing):
    """Indices of the non-zero elements, ``i64[rank, count]``; ``count`` is a symbol bound at run time."""

    name = "nonzero"
    operands = (1, 1)
    attrs = {"count": AttrSpec(AttrKind.DIM)}

    @classmethod
    def infer(cls, types, attrs):
        return [TensorType([types[0].rank, attrs["count"]], DType.i64)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        return [np.array(np.nonzero(inputs[0]), dtype=np.int64).reshape(inputs[0].ndim, -1)]


@register
class TopK(OpDef):
    """The ``k`` largest (or smallest) values along ``axis`` and their indices; ties keep the lower index."""

    name = "topk"
    operands = (1, 1)
    kind = "reduction"
    attrs = {"k": AttrSpec(AttrKind.DIM), "axis": AttrSpec(AttrKind.INT, -1),
             "largest": AttrSpec(AttrKind.BOOL, True), "sorted": AttrSpec(AttrKind.BOOL, True)}

    @classmethod
    def infer(cls, types, attrs):
        (x,) = types
        ax = norm_axis(attrs["axis"], x.rank)
        shape = list(x.shape)
        shape[ax] = attrs["k"]
        return [TensorType(shape, x.dtype), TensorType(shape, DType.i64)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        (x,) = inputs
        ax = norm_axis(attrs["axis"], x.ndim)
        k = ctx.dim(attrs["k"])
        # A stable sort on the negated key keeps equal values in index order either way.
        key = x
        if attrs["largest"]:
            key = -(x.astype(np.int64) if x.dtype.kind in "ub" else x)
        order = np.argsort(key, axis=ax, kind="stable")
        idx = np.take(order, np.arange(k), axis=ax)
        return [np.take_along_axis(x, idx, axis=ax), idx.astype(np.int64)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        return ins[0].numel


@register
class Trilu(OpDef):
    """Keep the upper (or lower) triangle of the last two dims from diagonal ``k``; zero the rest."""

    name = "trilu"
    operands = (1, 1)
    kind = "elementwise"
    attrs = {"upper": AttrSpec(AttrKind.BOOL, True), "k": AttrSpec(AttrKind.INT, 0)}

    @classmethod
    def infer(cls, types, attrs):
        if types[0].rank < 2:
            raise TypeInferenceError(f"trilu needs rank >= 2, got {types[0]}")
        return [types[0]]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        x = inputs[0]
        fn = np.triu if attrs["upper"] else np.tril
        return [fn(x, attrs["k"]).astype(x.dtype)]
