"""Quantization operators: QuantizeLinear, DequantizeLinear, MatMulInteger, com.microsoft MatMulNBits."""

from __future__ import annotations

from rduflow.ir import DType

from ..dtypes import ir_dtype
from ..registry import OnnxOpConverter, converter
from .shape import norm_axis


def _axis(cx, attrs, x, scale) -> int:
    """The axis scales run along; a single scale (per tensor) has none, whatever ``axis`` says."""
    if scale.type.numel == 1 and not attrs.int("block_size", 0):
        return 0
    return norm_axis(cx, attrs.int("axis", 1), x.rank)


@converter("DequantizeLinear")
class DequantizeLinear(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x, scale = inputs[0], inputs[1]
        zp = inputs[2] if len(inputs) > 2 else None
        block = attrs.int("block_size", 0)
        out = cx.emit("dequantize_linear", x, scale, *([zp] if zp is not None else []),
                      axis=_axis(cx, attrs, x, scale), block_size=block)
        if "output_dtype" in attrs and attrs.int("output_dtype"):
            to = ir_dtype(attrs.int("output_dtype"), f"node '{cx.label}' attribute 'output_dtype'")
            if to is not out.dtype:
                out = cx.emit("cast", out, to=to)
        return out


@converter("QuantizeLinear")
class QuantizeLinear(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x, scale = inputs[0], inputs[1]
        zp = inputs[2] if len(inputs) > 2 else None
        block = attrs.int("block_size", 0)
        if zp is not None:
            to = zp.dtype
        elif attrs.int("output_dtype", 0):
            to = ir_dtype(attrs.int("output_dtype"), f"node '{cx.label}' attribute 'output_dtype'")
        else:
            to = DType.u8
        return cx.emit("quantize_linear", x, scale, *([zp] if zp is not None else []),
                       axis=_axis(cx, attrs, x, scale), block_size=block, dtype=to,
                       saturate=bool(attrs.int("saturate", 1)))


@converter("MatMulInteger")
class MatMulInteger(OnnxOpConverter):
    @classmethod
    def _impl_v10(cls, cx, inputs, attrs):
        a, b = inputs[0], inputs[1]
        az = inputs[2] if len(inputs) > 2 and inputs[2] is not None else cx.const(0, a.dtype)
        bz = inputs[3] if len(inputs) > 3 and inputs[3] is not None else cx.const(0, b.dtype)
        return cx.emit("matmul_integer", a, b, az, bz)


@converter("MatMulNBits", domain="com.microsoft")
class MatMulNBits(OnnxOpConverter):
    @classmethod
    def _impl_v1(cls, cx, inputs, attrs):
        a, b, scales = inputs[0], inputs[1], inputs[2]
        zp = inputs[3] if len(inputs) > 3 else None
        if len(inputs) > 4 and inputs[4] is not None:
            raise cx.error("g_idx (act-order) is not supported")
        bias = inputs[5] if len(inputs) > 5 else None
        for name in ("K", "N", "block_size"):
            if name not in attrs:
                raise cx.error(f"lacks required attribute '{name}'")
        y = cx.emit("matmul_nbits", a, b, scales, *([zp] if zp is not None else []), k=attrs.int("K"),
                    n=attrs.int("N"), bits=attrs.int("bits", 4), block_size=attrs.int("block_size"))
        return cx.emit("add", y, bias) if bias is not None else y
