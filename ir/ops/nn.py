"""Neural-network composites a dataflow chip streams as one unit: softmax, normalisations."""

from __future__ import annotations

import numpy as np

from ..attributes import AttrKind, AttrSpec
from ..opdef import OpDef, TypeInferenceError, register
from .common import axis as norm_axis


@register
class Softmax(OpDef):
    name = "softmax"
    operands = (1, 1)
    kind = "softmax"
    attrs = {"axis": AttrSpec(AttrKind.INT, -1), "log": AttrSpec(AttrKind.BOOL, False)}

    @classmethod
    def infer(cls, types, attrs):
        norm_axis(attrs["axis"], types[0].rank)
        return [types[0]]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        (x,) = inputs
        ax = norm_axis(attrs["axis"], x.ndim)
        xd = x.astype(np.float64)
        m = np.max(xd, axis=ax, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):  # an all -inf row is NaN, as in ONNX
            e = np.exp(xd - m)
            s = np.sum(e, axis=ax, keepdims=True)
            r = (xd - m - np.log(s)) if attrs["log"] else e / s
        return [r.astype(x.dtype)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        # max, subtract, exp, sum, divide per element
        return ins[0].numel * 5


class Norm(OpDef):
    kind = "normalization"
    attrs = {"axis": AttrSpec(AttrKind.INT, -1), "epsilon": AttrSpec(AttrKind.FLOAT, 1e-5)}

    @classmethod
    def infer(cls, types, attrs):
        x = types[0]
        ax = norm_axis(attrs["axis"], x.rank)
        norm_shape = x.shape[ax:]
        for p in types[1:]:
            if p.shape != norm_shape[len(norm_shape) - p.rank:] or p.rank > len(norm_shape):
                raise TypeInferenceError(
                    f"{cls.name}: parameter shape {p} does not match normalised dims "
                    f"[{', '.join(str(d) for d in norm_shape)}]"
                )
        return [x]

    @classmethod
    def flops(cls, ins, outs, attrs):
        return ins[0].numel * cls.flops_per_element

    @staticmethod
    def _axes(x, attrs):
        ax = norm_axis(attrs["axis"], x.ndim)
        return tuple(range(ax, x.ndim))


@register
class LayerNorm(Norm):
    """(x - mean) / sqrt(var + eps) * scale + bias over the trailing dims from ``axis``."""

    name = "layer_norm"
    operands = (2, 3)
    flops_per_element = 8

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        x, scale, *bias = inputs
        axs = cls._axes(x, attrs)
        xd = x.astype(np.float64)
        mean = xd.mean(axis=axs, keepdims=True)
        var = ((xd - mean) ** 2).mean(axis=axs, keepdims=True)
        y = (xd - mean) / np.sqrt(var + attrs["epsilon"]) * scale.astype(np.float64)
        if bias:
            y = y + bias[0].astype(np.float64)
        return [y.astype(x.dtype)]


@register
class RMSNorm(Norm):
    """x / sqrt(mean(x^2) + eps) * scale over the trailing dims from ``axis``."""

    name = "rms_norm"
    operands = (2, 2)
    flops_per_element = 5

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        x, scale = inputs
        axs = cls._axes(x, attrs)
        xd = x.astype(np.float64)
        ms = (xd * xd).mean(axis=axs, keepdims=True)
        return [(xd / np.sqrt(ms + attrs["epsilon"]) * scale.astype(np.float64)).astype(x.dtype)]


