"""Elementwise operations (with numpy broadcasting): arithmetic, comparisons, activations."""

from __future__ import annotations

import math
from collections.abc import Callable

import ml_dtypes
import numpy as np

from ..attributes import AttrKind, AttrSpec
from ..dtypes import DType
from ..opdef import OpDef, Trait, TypeInferenceError, register
from ..types import TensorType
from .common import broadcast, same_dtype


def _cast_like(x: np.ndarray, dtype: DType) -> np.ndarray:
    return np.asarray(x).astype(dtype.numpy, copy=False)


class Elementwise(OpDef):
    kind = "elementwise"
    flops_per_element: int = 1

    @classmethod
    def flops(cls, ins, outs, attrs):
        return outs[0].numel * cls.flops_per_element


# -- binary ---------------------------------------------------------------------------------
class Binary(Elementwise):
    operands = (2, 2)
    fn: Callable
    result_dtype: DType | None = None  # None: same as operands
    mixed_dtypes: bool = False

    @classmethod
    def infer(cls, types, attrs):
        a, b = types
        if not cls.mixed_dtypes:
            same_dtype(types, cls.name)
        return [TensorType(broadcast(a.shape, b.shape), cls.result_dtype or a.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        a, b = inputs
        out_dt = cls.result_dtype or DType.from_numpy(a.dtype)
        with np.errstate(all="ignore"):
            r = cls.fn(a, b, attrs)
        return [_cast_like(r, out_dt)]


def _int_div(a, b, attrs):
    if np.issubdtype(a.dtype, np.integer):
        q = np.abs(a) // np.where(b == 0, 1, np.abs(b))
        return q * np.sign(a) * np.sign(b)
    return a / b


def _mod(a, b, attrs):
    if attrs.get("fmod"):
        return np.fmod(a, b)
    return np.mod(a, b)


def _pow(a, b, attrs):
    if np.issubdtype(a.dtype, np.integer):
        return np.power(a.astype(np.int64), b.astype(np.int64))
    return np.power(a, b.astype(a.dtype))


def _binary(name: str, fn: Callable, *, traits: frozenset[Trait] = frozenset(), result: DType | None = None,
            mixed: bool = False, extra_attrs: dict | None = None) -> type[Binary]:
    cls = type(name, (Binary,), {
        "name": name, "fn": staticmethod(fn), "traits": Binary.traits | traits,
        "result_dtype": result, "mixed_dtypes": mixed, "attrs": extra_attrs or {},
    })
    return register(cls)


COMMUTATIVE = frozenset({Trait.COMMUTATIVE})
_binary("add", lambda a, b, _: a + b, traits=frozenset({Trait.COMMUTATIVE, Trait.ADDITIVE}))
_binary("sub", lambda a, b, _: a - b, traits=frozenset({Trait.ADDITIVE}))
_binary("mul", lambda a, b, _: a * b, traits=frozenset({Trait.COMMUTATIVE, Trait.MULTILINEAR}))
_binary("div", _int_div, traits=frozenset({Trait.LINEAR_IN_FIRST}))
_binary("pow", _pow, mixed=True)
_binary("mod", _mod, extra_attrs={"fmod": AttrSpec(AttrKind.BOOL, False)})
_binary("max", lambda a, b, _: np.maximum(a, b), traits=COMMUTATIVE)
_binary("min", lambda a, b, _: np.minimum(a, b), traits=COMMUTATIVE)
_binary("equal", lambda a, b, _: np.equal(a, b), traits=COMMUTATIVE, result=DType.bool)
_binary("less", lambda a, b, _: np.less(a, b), result=DType.bool)
_binary("less_equal", lambda a, b, _: np.less_equal(a, b), result=DType.bool)
_binary("greater", lambda a, b, _: np.greater(a, b), result=DType.bool)
_binary("greater_equal", lambda a, b, _: np.greater_equal(a, b), result=DType.bool)
_binary("and", lambda a, b, _: np.logical_and(a, b), traits=COMMUTATIVE, result=DType.bool)
_binary("or", lambda a, b, _: np.logical_or(a, b), traits=COMMUTATIVE, result=DType.bool)
_binary("xor", lambda a, b, _: np.logical_xor(a, b), traits=COMMUTATIVE, result=DType.bool)
_binary("bitwise_and", lambda a, b, _: np.bitwise_and(a, b), traits=COMMUTATIVE)
_binary("bitwise_or", lambda a, b, _: np.bitwise_or(a, b), traits=COMMUTATIVE)


# -- unary ----------------------------------------------------------------------------------
class Unary(Elementwise):
    operands = (1, 1)
    fn: Callable
    result_dtype: DType | None = None
    float_only: bool = False

    @classmethod
    def infer(cls, types, attrs):
        (a,) = types
        if cls.float_only and not a.dtype.is_float:
            raise TypeInferenceError(f"{cls.name} needs a floating-point operand, got {a.dtype}")
        return [TensorType(a.shape, cls.result_dtype or a.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        (a,) = inputs
        out_dt = cls.result_dtype or DType.from_numpy(a.dtype)
        with np.errstate(all="ignore"):
            r = cls.fn(a, attrs)
        return [_cast_like(r, out_dt)]


_erf = np.frompyfunc(math.erf, 1, 1)


def _erf_f(x):
    return _erf(x.astype(np.float64)).astype(np.float64)


def _gelu(x, attrs):
    xd = x.astype(np.float64)
    if attrs.get("approximate") == "tanh":
        return 0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd**3)))
    return 0.5 * xd * (1 + _erf_f(xd / math.sqrt(2)))


def _sigmoid(x):
    xd = x.astype(np.float64)
    return 1.0 / (1.0 + np.exp(-xd))


def _unary(name: str, fn: Callable, *, flops: int = 1, result: DType | None = None, float_only: bool = False,
           extra_attrs: dict | None = None, traits: frozenset[Trait] = frozenset()) -> type[Unary]:
    cls = type(name, (Unary,), {
        "name": name, "fn": staticmethod(fn), "flops_per_element": flops, "traits": Unary.traits | traits,
        "result_dtype": result, "float_only": float_only, "attrs": extra_attrs or {},
    })
    return register(cls)


_unary("neg", lambda x, _: np.negative(x), traits=frozenset({Trait.ADDITIVE}))
_unary("abs", lambda x, _: np.abs(x))
_unary("sign", lambda x, _: np.sign(x))
_unary("exp", lambda x, _: np.exp(x), float_only=True)
_unary("log", lambda x, _: np.log(x), float_only=True)
_unary("sqrt", lambda x, _: np.sqrt(x), float_only=True)
_unary("rsqrt", lambda x, _: 1.0 / np.sqrt(x), flops=2, float_only=True)
_unary("reciprocal", lambda x, _: 1.0 / x, float_only=True)
_unary("tanh", lambda x, _: np.tanh(x), float_only=True)
_unary("sigmoid", lambda x, _: _sigmoid(x), flops=3, float_only=True)
_unary("silu", lambda x, _: x.astype(np.float64) * _sigmoid(x), flops=4, float_only=True)
_unary("relu", lambda x, _: np.maximum(x, 0))
_unary("gelu", _gelu, flops=8, float_only=True,
       extra_attrs={"approximate": AttrSpec(AttrKind.STR, "none", "none | tanh")})
_unary("erf", lambda x, _: _erf_f(x), flops=8, float_only=True)
_unary("sin", lambda x, _: np.sin(x), float_only=True)
_unary("cos", lambda x, _: np.cos(x), float_only=True)
_unary("floor", lambda x, _: np.floor(x), float_only=True)
_unary("ceil", lambda x, _: np.ceil(x), float_only=True)
_unary("round", lambda x, _: np.round(x), float_only=True)
_unary("not", lambda x, _: np.logical_not(x), result=DType.bool)
_unary("isnan", lambda x, _: np.isnan(x), result=DType.bool, float_only=True)
_unary("isinf", lambda x, _: np.isinf(x), result=DType.bool, float_only=True)
_unary("identity", lambda x, _: x, flops=0, traits=frozenset({Trait.ADDITIVE}))


@register
class Cast(Elementwise):
    name = "cast"
    operands = (1, 1)
    attrs = {"to": AttrSpec(AttrKind.DTYPE),
             "saturate": AttrSpec(AttrKind.BOOL, False, "clamp to the target's finite range (float8 targets)")}
    flops_per_element = 0

    @classmethod
    def infer(cls, types, attrs):
        return [types[0].with_dtype(attrs["to"])]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        x = inputs[0]
        to: DType = attrs["to"]
        if to.is_int and np.issubdtype(x.dtype, np.floating):
            x = np.trunc(x)
        if attrs["saturate"] and to.is_float:
            big = float(ml_dtypes.finfo(to.numpy).max)
            x = np.clip(x.astype(np.float64), -big, big)
        with np.errstate(all="ignore"):
            return [np.asarray(x).astype(to.numpy)]


@register
class Where(Elementwise):
    name = "where"
    operands = (3, 3)
    flops_per_element = 1

    @classmethod
    def infer(cls, types, attrs):
        c, a, b = types
        if c.dtype is not DType.bool:
            raise TypeInferenceError(f"where: condition must be bool, got {c.dtype}")
        same_dtype([a, b], "where")
        return [TensorType(broadcast(c.shape, a.shape, b.shape), a.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        c, a, b = inputs
        return [np.where(c, a, b).astype(a.dtype)]


@register
class Clip(Elementwise):
    name = "clip"
    operands = (1, 1)
    attrs = {"min": AttrSpec(AttrKind.FLOAT, -math.inf), "max": AttrSpec(AttrKind.FLOAT, math.inf)}

    @classmethod
    def infer(cls, types, attrs):
        return [types[0]]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        x = inputs[0]
        lo, hi = attrs["min"], attrs["max"]
        if np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            lo = info.min if math.isinf(lo) else int(lo)
            hi = info.max if math.isinf(hi) else int(hi)
        return [np.clip(x, lo, hi).astype(x.dtype)]

