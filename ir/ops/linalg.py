"""Matrix multiplication (numpy ``matmul`` semantics, batched with broadcasting)."""

from __future__ import annotations

import numpy as np

from ..attributes import AttrKind, AttrSpec
from ..dims import Dim, numel
from ..dtypes import DType
from ..opdef import OpDef, TypeInferenceError, register
from ..types import TensorType
from .common import broadcast


def _is_float(x: np.ndarray) -> bool:
    return DType.from_numpy(x.dtype).is_float


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
        if _is_float(a):  # accumulate in f64 so results do not depend on BLAS order (and bf16 works)
            return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)]
        return [np.matmul(a, b).astype(a.dtype)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        batch, m, k, n, _ = matmul_shape(ins[0].shape, ins[1].shape)
        return numel(batch) * m * n * k * 2


def _einsum_parse(equation: str, ranks: list[int]) -> tuple[list[str], str]:
    """Operand subscripts and output subscripts, ellipses expanded to upper-case letters."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise TypeInferenceError(f"einsum '{equation}' names {len(terms)} operand(s), got {len(ranks)}")
    ell_rank = 0
    for t, r in zip(terms, ranks):
        if "..." in t:
            ell_rank = max(ell_rank, r - (len(t) - 3))
    ell = "".join(chr(ord("A") + i) for i in range(ell_rank))
    out_terms = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            n = r - (len(t) - 3)
            t = t.replace("...", ell[ell_rank - n:] if n else "")
        if len(t) != r or not (t.isalpha() or t == ""):
            raise TypeInferenceError(f"einsum '{equation}': subscripts '{t}' do not fit a rank-{r} operand")
        out_terms.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(out_terms)
        out = ell + "".join(sorted(c for c in set(letters) if c.islower() and letters.count(c) == 1))
    if not out.isalpha() and out:
        raise TypeInferenceError(f"einsum '{equation}': bad output subscripts")
    return out_terms, out


@register
class Einsum(OpDef):
    """Einstein summation (numpy ``einsum``; ``...`` broadcasts)."""

    name = "einsum"
    operands = (1, None)
    kind = "matmul"
    attrs = {"equation": AttrSpec(AttrKind.STR)}

    @classmethod
    def _sizes(cls, types, attrs) -> tuple[dict[str, Dim], str]:
        terms, out = _einsum_parse(attrs["equation"], [t.rank for t in types])
        size: dict[str, Dim] = {}
        for t, term in zip(types, terms):
            for c, d in zip(term, t.shape):
                if c in size and size[c] != d:
                    if size[c] == 1:
                        size[c] = d
                    elif d != 1:
                        raise TypeInferenceError(f"einsum '{attrs['equation']}': '{c}' is {size[c]} and {d}")
                else:
                    size.setdefault(c, d)
        if any(c not in size for c in out):
            raise TypeInferenceError(f"einsum '{attrs['equation']}': output names an unknown subscript")
        return size, out

    @classmethod
    def infer(cls, types, attrs):
        if len({t.dtype for t in types}) > 1:
            raise TypeInferenceError("einsum operand element types differ")
        size, out = cls._sizes(types, attrs)
        return [TensorType([size[c] for c in out], types[0].dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        terms, out = _einsum_parse(attrs["equation"], [x.ndim for x in inputs])
        eq = ",".join(terms) + "->" + out
        acc = [x.astype(np.float64) if _is_float(x) else x for x in inputs]
        return [np.asarray(np.einsum(eq, *acc)).astype(inputs[0].dtype)]

    @classmethod
    def flops(cls, ins, outs, attrs):
        size, _ = cls._sizes(ins, attrs)
        return numel(size.values()) * 2
