"""Reductions over axes, and scans."""

from __future__ import annotations

import numpy as np

from ..attributes import AttrKind, AttrSpec
from ..dims import Dim
from ..dtypes import DType
from ..opdef import OpDef, Trait, register
from ..types import TensorType
from .common import axes as norm_axes
from .common import axis as norm_axis


def reduced_shape(shape, axs, keepdims):
    if not axs:  # empty axes: reduce everything (ONNX default)
        axs = tuple(range(len(shape)))
    return tuple(Dim.const(1) if i in axs else d for i, d in enumerate(shape) if keepdims or i not in axs), axs


class Reduce(OpDef):
    operands = (1, 1)
    kind = "reduction"
    attrs = {"axes": AttrSpec(AttrKind.INTS, ()), "keepdims": AttrSpec(AttrKind.BOOL, True)}
    fn = None

    @classmethod
    def infer(cls, types, attrs):
        (x,) = types
        shape, _ = reduced_shape(x.shape, norm_axes(attrs["axes"], x.rank), attrs["keepdims"])
        return [TensorType(shape, x.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        (x,) = inputs
        axs = norm_axes(attrs["axes"], x.ndim) or tuple(range(x.ndim))
        acc = x.astype(np.float64) if DType.from_numpy(x.dtype).is_float else x
        kw = {}
        if cls.fn in (np.max, np.min) and acc.dtype.kind in "fiub":
            # The max of nothing is the lowest value (ONNX: -inf), so empty reductions are defined.
            if acc.dtype.kind == "f":
                low, high = -np.inf, np.inf
            elif acc.dtype.kind == "b":
                low, high = False, True
            else:
                low, high = np.iinfo(acc.dtype).min, np.iinfo(acc.dtype).max
            kw["initial"] = low if cls.fn is np.max else high
        r = cls.fn(acc, axis=axs, keepdims=attrs["keepdims"], **kw)
        return [np.asarray(r).astype(x.dtype)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        return ins[0].numel


def _reduce(name, fn, traits: frozenset[Trait] = frozenset()):
    return register(type(name, (Reduce,), {"name": name, "fn": staticmethod(fn), "traits": Reduce.traits | traits}))


_reduce("reduce_sum", np.sum, frozenset({Trait.ADDITIVE}))
_reduce("reduce_mean", np.mean, frozenset({Trait.ADDITIVE}))
_reduce("reduce_max", np.max)
_reduce("reduce_min", np.min)
_reduce("reduce_prod", np.prod)


class ArgReduce(OpDef):
    operands = (1, 1)
    kind = "reduction"
    attrs = {"axis": AttrSpec(AttrKind.INT, 0), "keepdims": AttrSpec(AttrKind.BOOL, True),
             "select_last_index": AttrSpec(AttrKind.BOOL, False)}
    fn = None

    @classmethod
    def infer(cls, types, attrs):
        (x,) = types
        ax = norm_axis(attrs["axis"], x.rank)
        shape, _ = reduced_shape(x.shape, (ax,), attrs["keepdims"])
        return [TensorType(shape, DType.i64)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        (x,) = inputs
        ax = norm_axis(attrs["axis"], x.ndim)
        if attrs["select_last_index"]:
            r = x.shape[ax] - 1 - cls.fn(np.flip(x, ax), axis=ax)
        else:
            r = cls.fn(x, axis=ax)
        if attrs["keepdims"]:
            r = np.expand_dims(r, ax)
        return [np.asarray(r, dtype=np.int64)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        return ins[0].numel


register(type("argmax", (ArgReduce,), {"name": "argmax", "fn": staticmethod(np.argmax)}))
register(type("argmin", (ArgReduce,), {"name": "argmin", "fn": staticmethod(np.argmin)}))


@register
class CumSum(OpDef):
    name = "cumsum"
    operands = (1, 1)
    kind = "reduction"
    attrs = {"axis": AttrSpec(AttrKind.INT), "exclusive": AttrSpec(AttrKind.BOOL, False),
             "reverse": AttrSpec(AttrKind.BOOL, False)}

    @classmethod
    def infer(cls, types, attrs):
        norm_axis(attrs["axis"], types[0].rank)
        return [types[0]]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        (x,) = inputs
        ax = norm_axis(attrs["axis"], x.ndim)
        y = np.flip(x, ax) if attrs["reverse"] else x
        r = np.cumsum(y, axis=ax, dtype=x.dtype)
        if attrs["exclusive"]:
            r = r - y
        if attrs["reverse"]:
            r = np.flip(r, ax)
        return [np.ascontiguousarray(r).astype(x.dtype)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        return ins[0].numel
