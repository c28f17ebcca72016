"""Quantization: linear (de)quantization and integer / block-quantized matrix products.

``quantize_linear`` and ``dequantize_linear`` follow ONNX (per tensor, per axis, or per block of
``block_size`` along ``axis``). ``matmul_integer`` is ONNX MatMulInteger with its zero points
as operands. ``matmul_nbits`` is onnxruntime's com.microsoft MatMulNBits: ``a @ dequant(b)^T``
with ``b`` packed ``bits``-bit codes ``u8[n, blocks, block_size*bits/8]``, so a weight's bytes
are counted as stored (an int4 weight reads half a byte per element).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ..attributes import AttrKind, AttrSpec
from ..dims import Dim, numel
from ..dtypes import DType
from ..opdef import OpDef, TypeInferenceError, register
from ..types import TensorType
from .common import axis as norm_axis
from .linalg import matmul_shape


def _param_shape_ok(x: TensorType, p: TensorType, ax: int, block: int) -> bool:
    if p.numel == 1 and block == 0:
        return True
    if block == 0:
        return p.rank == 1 and p.shape[0] == x.shape[ax]
    if p.rank != x.rank:
        return False
    for i, (d, q) in enumerate(zip(x.shape, p.shape)):
        if i == ax:
            dv = d.maybe_int()
            if dv is None or q != -(-dv // block):
                return False
        elif d != q:
            return False
    return True


def _expand_param(p: np.ndarray, shape: tuple[int, ...], ax: int, block: int) -> np.ndarray:
    """Broadcast a scale or zero point against the tensor it applies to."""
    if p.size == 1 and block == 0:
        return p.reshape(())
    if block == 0:
        return p.reshape([-1 if i == ax else 1 for i in range(len(shape))])
    return np.take(np.repeat(p, block, axis=ax), np.arange(shape[ax]), axis=ax)


class QuantOp(OpDef):
    kind = "elementwise"

    @classmethod
    def _check(cls, types, attrs) -> int:
        x, scale, *zp = types
        ax = norm_axis(attrs["axis"], max(x.rank, 1))
        if attrs["block_size"] < 0:
            raise TypeInferenceError(f"{cls.name}: block_size must be >= 0")
        for p, what in [(scale, "scale"), *[(z, "zero point") for z in zp]]:
            if not _param_shape_ok(x, p, ax, attrs["block_size"]):
                raise TypeInferenceError(f"{cls.name}: {what} {p} does not fit {x} (axis {attrs['axis']}, "
                                         f"block_size {attrs['block_size']})")
        if zp and scale.shape != zp[0].shape and not (scale.numel == 1 and zp[0].numel == 1):
            raise TypeInferenceError(f"{cls.name}: scale {scale} and zero point {zp[0]} differ in shape")
        return ax

    @classmethod
    def flops(cls, ins, outs, attrs):
        return outs[0].numel * 2


@register
class DequantizeLinear(QuantOp):
    """``(x - zero_point) * scale``; the result has the scale's element type."""

    name = "dequantize_linear"
    operands = (2, 3)
    attrs = {"axis": AttrSpec(AttrKind.INT, 1), "block_size": AttrSpec(AttrKind.INT, 0)}

    @classmethod
    def infer(cls, types, attrs):
        cls._check(types, attrs)
        if not types[1].dtype.is_float:
            raise TypeInferenceError(f"dequantize_linear: scale must be floating point, got {types[1].dtype}")
        return [types[0].with_dtype(types[1].dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        x, scale, *zp = inputs
        ax = norm_axis(attrs["axis"], max(x.ndim, 1))
        s = _expand_param(scale, x.shape, ax, attrs["block_size"]).astype(np.float32)
        xf = x.astype(np.float32)
        if zp:
            xf = xf - _expand_param(zp[0], x.shape, ax, attrs["block_size"]).astype(np.float32)
        return [(xf * s).astype(scale.dtype)]


@register
class QuantizeLinear(QuantOp):
    """``saturate(round_half_even(x / scale) + zero_point)`` in ``dtype``."""

    name = "quantize_linear"
    operands = (2, 3)
    attrs = {"axis": AttrSpec(AttrKind.INT, 1), "block_size": AttrSpec(AttrKind.INT, 0),
             "dtype": AttrSpec(AttrKind.DTYPE, DType.u8), "saturate": AttrSpec(AttrKind.BOOL, True)}

    @classmethod
    def infer(cls, types, attrs):
        cls._check(types, attrs)
        if len(types) == 3 and types[2].dtype != attrs["dtype"]:
            raise TypeInferenceError(f"quantize_linear: zero point is {types[2].dtype}, result is {attrs['dtype']}")
        return [types[0].with_dtype(attrs["dtype"])]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        x, scale, *zp = inputs
        ax = norm_axis(attrs["axis"], max(x.ndim, 1))
        to: DType = attrs["dtype"]
        s = _expand_param(scale, x.shape, ax, attrs["block_size"]).astype(np.float32)
        y = x.astype(np.float32) / s
        if to.is_int:
            y = np.rint(y)
            if zp:
                y = y + _expand_param(zp[0], x.shape, ax, attrs["block_size"]).astype(np.float32)
            info = _int_range(to)
            return [np.clip(y, *info).astype(to.numpy)]
        if zp:
            y = y + _expand_param(zp[0], x.shape, ax, attrs["block_size"]).astype(np.float32)
        if attrs["saturate"]:
            big = float(ml_dtypes.finfo(to.numpy).max)
            y = np.where(np.isinf(y), y, np.clip(y, -big, big))
        return [y.astype(to.numpy)]


def _int_range(dt: DType) -> tuple[int, int]:
    if dt.bits == 4:
        return (-8, 7) if dt is DType.i4 else (0, 15)
    info = np.iinfo(dt.numpy)
    return int(info.min), int(info.max)


@register
class MatMulInteger(OpDef):
    """``(a - a_zero) @ (b - b_zero)`` accumulated in i32; zero points per tensor, per row of a, per column of b."""

    name = "matmul_integer"
    operands = (4, 4)
    kind = "matmul"

    @classmethod
    def infer(cls, types, attrs):
        a, b, az, bz = types
        for t, what in ((a, "a"), (b, "b")):
            if t.dtype not in (DType.i8, DType.u8):
                raise TypeInferenceError(f"matmul_integer: {what} must be i8 or u8, got {t.dtype}")
        if az.dtype != a.dtype or bz.dtype != b.dtype:
            raise TypeInferenceError("matmul_integer: zero points must have their operand's element type")
        _, m, _, n, out = matmul_shape(a.shape, b.shape)
        if not (az.numel == 1 or (az.rank >= 1 and az.shape[-1] in (m, 1) and az.numel in (m, numel(a.shape[:-1])))):
            raise TypeInferenceError(f"matmul_integer: a zero point {az} is neither per tensor nor per row")
        if not (bz.numel == 1 or bz.shape[-1] == n):
            raise TypeInferenceError(f"matmul_integer: b zero point {bz} is neither per tensor nor per column")
        return [TensorType(out, DType.i32)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        a, b, az, bz = (x.astype(np.int64) for x in inputs)
        if az.size > 1 and az.shape[-1] != 1:
            az = az.reshape(az.shape + (1,))  # per row: one value for each row of a
        if bz.size == 1:
            bz = bz.reshape(())
        return [np.matmul(a - az, b - bz).astype(np.int32)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        batch, m, k, n, _ = matmul_shape(ins[0].shape, ins[1].shape)
        return numel(batch) * m * n * k * 2


@register
class MatMulNBits(OpDef):
    """``a @ dequant(b)^T``: b holds ``bits``-bit codes per block of ``block_size`` along k (onnxruntime MatMulNBits).

    ``scales`` are ``[n * blocks]`` (or ``[n, blocks]``); ``zero_points`` are packed codes
    ``u8[n * ceil(blocks * bits / 8)]`` or values of the scales' type; absent, codes are centred
    on ``2^(bits-1)``.
    """

    name = "matmul_nbits"
    operands = (3, 4)
    kind = "matmul"
    attrs = {"k": AttrSpec(AttrKind.INT), "n": AttrSpec(AttrKind.INT), "bits": AttrSpec(AttrKind.INT, 4),
             "block_size": AttrSpec(AttrKind.INT)}

    @classmethod
    def _blocks(cls, attrs) -> int:
        k, bits, bs = attrs["k"], attrs["bits"], attrs["block_size"]
        if bits not in (2, 4, 8) or bs < 16 or bs & (bs - 1) or k <= 0 or attrs["n"] <= 0:
            raise TypeInferenceError(f"matmul_nbits: unsupported bits={bits}, block_size={bs}, k={k}, n={attrs['n']}")
        return -(-k // bs)

    @classmethod
    def infer(cls, types, attrs):
        a, b, scales, *zp = types
        k, n, bits, bs = attrs["k"], attrs["n"], attrs["bits"], attrs["block_size"]
        blocks = cls._blocks(attrs)
        if not a.dtype.is_float or not a.rank or a.shape[-1] != k:
            raise TypeInferenceError(f"matmul_nbits: a must be floating point with last dim {k}, got {a}")
        if b.dtype != DType.u8 or b.shape != (Dim.const(n), Dim.const(blocks), Dim.const(bs * bits // 8)):
            raise TypeInferenceError(f"matmul_nbits: b must be u8[{n}, {blocks}, {bs * bits // 8}], got {b}")
        if scales.dtype != a.dtype or scales.numel != n * blocks:
            raise TypeInferenceError(f"matmul_nbits: scales must be {a.dtype} with {n * blocks} elements, got {scales}")
        if zp:
            z = zp[0]
            packed = z.dtype == DType.u8 and z.numel == n * (-(-blocks * bits // 8))
            if not packed and not (z.dtype == scales.dtype and z.numel == n * blocks):
                raise TypeInferenceError(f"matmul_nbits: zero points {z} fit neither packed u8 nor the scales' layout")
        return [TensorType(a.shape[:-1] + (Dim.const(n),), a.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        a, b, scales, *zp = inputs
        k, n, bits, bs = attrs["k"], attrs["n"], attrs["bits"], attrs["block_size"]
        blocks = -(-k // bs)
        codes = _unpack(b.reshape(n, blocks, -1), bits).reshape(n, blocks, bs).astype(np.float32)
        if zp and zp[0].dtype == np.uint8:
            zero = _unpack(zp[0].reshape(n, -1), bits)[:, :blocks].astype(np.float32)
        elif zp:
            zero = zp[0].reshape(n, blocks).astype(np.float32)
        else:
            zero = np.full((n, blocks), 2 ** (bits - 1), np.float32)
        w = (codes - zero[..., None]) * scales.reshape(n, blocks, 1).astype(np.float32)
        w = w.reshape(n, blocks * bs)[:, :k]
        y = np.matmul(a.astype(np.float64), w.T.astype(np.float64))
        return [y.astype(a.dtype)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        return outs[0].numel * attrs["k"] * 2


def _unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    """Codes stored low bits first within each byte, along the last axis."""
    per = 8 // bits
    shifts = np.arange(per, dtype=np.uint8) * bits
    codes = (packed[..., None] >> shifts) & ((1 << bits) - 1)
    return codes.reshape(packed.shape[:-1] + (packed.shape[-1] * per,))
