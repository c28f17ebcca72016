"""Elementwise operators: arithmetic, comparisons, logic, activations, casts, select."""

from __future__ import annotations

from rduflow.ir import DType

from ..dtypes import ir_dtype
from ..registry import OnnxOpConverter, converter

# ONNX operator -> IR op, for operators that map one to one.
_BINARY = {
    "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
    "Equal": "equal", "Less": "less", "LessOrEqual": "less_equal", "Greater": "greater",
    "GreaterOrEqual": "greater_equal", "And": "and", "Or": "or", "Xor": "xor",
    "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or",
}
_UNARY = {
    "Abs": "abs", "Neg": "neg", "Sign": "sign", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
    "Reciprocal": "reciprocal", "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Erf": "erf",
    "Sin": "sin", "Cos": "cos", "Floor": "floor", "Ceil": "ceil", "Round": "round", "Not": "not",
    "IsNaN": "isnan",
}


def _register_binary(op_type: str, irop: str) -> None:
    @converter(op_type)
    class _Binary(OnnxOpConverter):
        @classmethod
        def _impl_v7(cls, cx, inputs, attrs):
            return cx.emit(irop, inputs[0], inputs[1])


def _register_unary(op_type: str, irop: str) -> None:
    @converter(op_type)
    class _Unary(OnnxOpConverter):
        @classmethod
        def _impl_v6(cls, cx, inputs, attrs):
            return cx.emit(irop, inputs[0])


for _op, _ir in _BINARY.items():
    _register_binary(_op, _ir)
for _op, _ir in _UNARY.items():
    _register_unary(_op, _ir)


@converter("Add")
class Add(OnnxOpConverter):
    @classmethod
    def _impl_v7(cls, cx, inputs, attrs):
        a, b = inputs[0], inputs[1]
        # Positions ``range(0, seq) + past`` are ``range(past, past+seq)``: say so directly.
        for r, c in ((a, b), (b, a)):
            if r.arange is not None and c.folded is not None and c.folded.size == 1 and c.rank <= 1 \
                    and c.dtype is r.dtype:
                off = cx.scalar_dim(c, "offset")
                start, limit = r.arange
                return range_tensor(cx, start + off, limit + off, r.dtype)
        return cx.emit("add", a, b)


def range_tensor(cx, start, limit, dtype):
    """``[start, limit)`` in steps of 1, remembered as such for ``Add`` above."""
    out = cx.emit("range", start=start, limit=limit, delta=1, dtype=dtype)
    if out.folded is None:
        out.arange = (cx.current(start), cx.current(limit))
    return out


@converter("Mod")
class Mod(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return cx.emit("mod", inputs[0], inputs[1], fmod=bool(attrs.int("fmod", 0)))


def _variadic(cx, irop: str, inputs):
    acc = inputs[0]
    for t in inputs[1:]:
        acc = cx.emit(irop, acc, t)
    return acc


@converter("Max")
class Max(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return _variadic(cx, "max", inputs)


@converter("Min")
class Min(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return _variadic(cx, "min", inputs)


@converter("Sum")
class Sum(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return _variadic(cx, "add", inputs)


@converter("Mean")
class Mean(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        total = _variadic(cx, "add", inputs)
        return cx.emit("div", total, cx.const(len(inputs), total.dtype))


@converter("Identity")
class Identity(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return inputs[0]


@converter("IsInf")
class IsInf(OnnxOpConverter):
    @classmethod
    def _impl_v10(cls, cx, inputs, attrs):
        x = inputs[0]
        pos, neg = attrs.int("detect_positive", 1), attrs.int("detect_negative", 1)
        inf = cx.emit("isinf", x)
        if pos and neg:
            return inf
        if not pos and not neg:
            return cx.emit("expand", cx.const(False), shape=x.shape)
        side = cx.emit("greater" if pos else "less", x, cx.const(0, x.dtype))
        return cx.emit("and", inf, side)


def _cast(cx, x, to, attrs):
    if x.dtype is to:
        return x
    # Since opset 19, casts to float8 clamp out-of-range values unless told not to.
    saturate = to in (DType.f8e4m3, DType.f8e5m2) and bool(attrs.int("saturate", 1))
    return cx.emit("cast", x, to=to, saturate=saturate)


@converter("Cast")
class Cast(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        to = ir_dtype(attrs.int("to"), f"node '{cx.label}' attribute 'to'")
        return _cast(cx, inputs[0], to, attrs)


@converter("CastLike")
class CastLike(OnnxOpConverter):
    @classmethod
    def _impl_v15(cls, cx, inputs, attrs):
        return _cast(cx, inputs[0], inputs[1].dtype, attrs)


@converter("Where")
class Where(OnnxOpConverter):
    @classmethod
    def _impl_v9(cls, cx, inputs, attrs):
        return cx.emit("where", *inputs[:3])


@converter("Clip")
class Clip(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x, lo, hi = (list(inputs) + [None, None])[:3]
        # Bounds known at import time become attributes; others are computed with max/min.
        if all(b is None or (b.folded is not None and b.folded.dtype != object) for b in (lo, hi)) \
                and x.dtype.is_float:
            kw = {}
            if lo is not None:
                kw["min"] = float(cx.scalar(lo, "min"))
            if hi is not None:
                kw["max"] = float(cx.scalar(hi, "max"))
            return cx.emit("clip", x, **kw)
        y = x
        if lo is not None:
            y = cx.emit("max", y, lo)
        if hi is not None:
            y = cx.emit("min", y, hi)
        return y


@converter("Gelu")
class Gelu(OnnxOpConverter):
    @classmethod
    def _impl_v20(cls, cx, inputs, attrs):
        return cx.emit("gelu", inputs[0], approximate=attrs.str("approximate", "none"))


@converter("LeakyRelu")
class LeakyRelu(OnnxOpConverter):
    @classmethod
    def _impl_v6(cls, cx, inputs, attrs):
        x = inputs[0]
        alpha = cx.const(attrs.float("alpha", 0.01), x.dtype)
        neg = cx.emit("less", x, cx.const(0, x.dtype))
        return cx.emit("where", neg, cx.emit("mul", x, alpha), x)


@converter("Softplus")
class Softplus(OnnxOpConverter):
    @classmethod
    def _impl_v1(cls, cx, inputs, attrs):
        # log(1 + exp(x)) written as max(x, 0) + log(1 + exp(-|x|)), which does not overflow
        x = inputs[0]
        one = cx.const(1, x.dtype)
        tail = cx.emit("log", cx.emit("add", one, cx.emit("exp", cx.emit("neg", cx.emit("abs", x)))))
        return cx.emit("add", cx.emit("relu", x), tail)


@converter("HardSigmoid")
class HardSigmoid(OnnxOpConverter):
    @classmethod
    def _impl_v6(cls, cx, inputs, attrs):
        x = inputs[0]
        y = cx.emit("add", cx.emit("mul", x, cx.const(attrs.float("alpha", 0.2), x.dtype)),
                    cx.const(attrs.float("beta", 0.5), x.dtype))
        return cx.emit("clip", y, min=0.0, max=1.0)


@converter("Dropout", static_inputs=(1, 2))
class Dropout(OnnxOpConverter):
    """Inference: the identity, with an all-true mask when that output is used."""

    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        training = inputs[2] if len(inputs) > 2 else None
        if training is not None and bool(cx.scalar(training, "training_mode")):
            raise cx.error("training-mode dropout is random; only inference graphs are supported")
        if len(cx.outputs) > 1 and cx.outputs[1]:
            return [x, cx.emit("expand", cx.const(True), shape=x.shape)]
        return x

