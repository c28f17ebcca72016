"""Matrix multiplication (numpy ``matmul`` semantics, batched with broadcasting)."""

from __future__ import annotations

import numpy as np

from ..dims import Dim, numel
from ..opdef import OpDef, TypeInferenceError, register
from ..types import TensorType
from .common import broadcast


def matmul_shape(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[tuple[Dim, ...], Dim, Dim, Dim, tuple[Dim, ...]]:
    """(batch, M, K, N, result shape) of ``a @ b``; 1-D operands as numpy treats them."""
    if not a or not b:
        raise TypeInferenceError("matmul operands must have rank >= 1")
    a2 = a if len(a) > 1 else (Dim.const(1),) + a
    b2 = b if len(b) > 1 else b + (Dim.const(1),)
    m, k = a2[-2], a2[-1]
    k2, n = b2[-2], b2[-1]
    if k != k2:
        raise TypeInferenceError(f"matmul contraction dims differ: {k} vs {k2}")
    batch = broadcast(a2[:-2], b2[:-2])
    out = batch + ((m,) if len(a) > 1 else ()) + ((n,) if len(b) > 1 else ())
    return batch, m, k, n, out


@register
class MatMul(OpDef):
    name = "matmul"
    operands = (2, 2)
    kind = "matmul"

    @classmethod
    def infer(cls, types, attrs):
        a, b = types
        if a.dtype != b.dtype:
            raise TypeInferenceError(f"matmul operand element types differ: {a.dtype} vs {b.dtype}")
        return [TensorType(matmul_shape(a.shape, b.shape)[4], a.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        a, b = inputs
        if a.dtype == np.float32:  # accumulate in f64 so results do not depend on BLAS order
            return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)]
        return [np.matmul(a, b).astype(a.dtype)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        batch, m, k, n, _ = matmul_shape(ins[0].shape, ins[1].shape)
        return numel(batch) * m * n * k * 2
