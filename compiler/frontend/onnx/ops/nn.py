"""Matrix products, normalizations, softmax, reductions, scans and top-k."""

from __future__ import annotations

from ..context import NodeContext, Tensor
from ..registry import OnnxOpConverter, converter
from .shape import norm_axis


@converter("MatMul")
class MatMul(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return cx.emit("matmul", inputs[0], inputs[1])


@converter("Gemm")
class Gemm(OnnxOpConverter):
    """``alpha * A' @ B' + beta * C`` as matmul, scale and add."""

    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        a, b = inputs[0], inputs[1]
        c = inputs[2] if len(inputs) > 2 else None
        for t, what in ((a, "A"), (b, "B")):
            if t.rank != 2:
                raise cx.error(f"{what} must be a matrix, got {t.type}")
        if attrs.int("transA", 0):
            a = cx.emit("transpose", a, perm=(1, 0))
        if attrs.int("transB", 0):
            b = cx.emit("transpose", b, perm=(1, 0))
        y = cx.emit("matmul", a, b)
        alpha, beta = attrs.float("alpha", 1.0), attrs.float("beta", 1.0)
        if alpha != 1.0:
            y = cx.emit("mul", y, cx.const(alpha, y.dtype))
        if c is not None and beta != 0.0:
            if beta != 1.0:
                c = cx.emit("mul", c, cx.const(beta, c.dtype))
            y = cx.emit("add", y, c)
        return y


@converter("Einsum")
class Einsum(OnnxOpConverter):
    @classmethod
    def _impl_v12(cls, cx, inputs, attrs):
        return cx.emit("einsum", *inputs, equation=attrs.str("equation"))


@converter("Softmax")
class Softmax(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        return cx.emit("softmax", x, axis=norm_axis(cx, attrs.int("axis", -1), x.rank))


@converter("LogSoftmax")
class LogSoftmax(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        return cx.emit("softmax", x, axis=norm_axis(cx, attrs.int("axis", -1), x.rank), log=True)


def _norm_param(cx: NodeContext, p: Tensor, x: Tensor, axis: int) -> Tensor:
    """Scale and bias broadcast to the normalised dims, as the IR's norms take them."""
    want = x.shape[axis:]
    if p.shape == want[len(want) - p.rank:] and p.rank <= len(want):
        return p
    return cx.emit("expand", p, shape=want)


@converter("LayerNormalization")
class LayerNormalization(OnnxOpConverter):
    @classmethod
    def _impl_v17(cls, cx, inputs, attrs):
        x, scale = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        axis = norm_axis(cx, attrs.int("axis", -1), x.rank)
        eps = attrs.float("epsilon", 1e-5)
        params = [_norm_param(cx, scale, x, axis)] + ([_norm_param(cx, bias, x, axis)] if bias is not None else [])
        y = cx.emit("layer_norm", x, *params, axis=axis, epsilon=eps)
        wants_stats = any(cx.outputs[1:])
        if not wants_stats:
            return y
        # Mean and 1/stddev (rarely used outside training graphs) are computed separately.
        axes = tuple(range(axis, x.rank))
        mean = cx.emit("reduce_mean", x, axes=axes)
        centred = cx.emit("sub", x, mean)
        var = cx.emit("reduce_mean", cx.emit("mul", centred, centred), axes=axes)
        inv = cx.emit("rsqrt", cx.emit("add", var, cx.const(eps, x.dtype)))
        return [y, mean, inv][:len(cx.outputs)]


def _rms_norm(cx: NodeContext, x: Tensor, scale: Tensor, axis: int, eps: float) -> Tensor:
    axis = norm_axis(cx, axis, x.rank)
    return cx.emit("rms_norm", x, _norm_param(cx, scale, x, axis), axis=axis, epsilon=eps)


@converter("RMSNormalization")
class RMSNormalization(OnnxOpConverter):
    @classmethod
    def _impl_v23(cls, cx, inputs, attrs):
        return _rms_norm(cx, inputs[0], inputs[1], attrs.int("axis", -1), attrs.float("epsilon", 1e-5))


@converter("SimplifiedLayerNormalization")
class SimplifiedLayerNormalization(OnnxOpConverter):
    """onnxruntime's RMSNorm (registered in the default domain)."""

    @classmethod
    def _impl_v1(cls, cx, inputs, attrs):
        if any(cx.outputs[1:]):
            raise cx.error("only the normalised output (not the inverse std dev) is supported")
        return _rms_norm(cx, inputs[0], inputs[1], attrs.int("axis", -1), attrs.float("epsilon", 1e-5))


@converter("SkipSimplifiedLayerNormalization", domain="com.microsoft")
class SkipSimplifiedLayerNormalization(OnnxOpConverter):
    """onnxruntime's residual add + RMSNorm: outputs the norm and (optionally) the sum."""

    @classmethod
    def _impl_v1(cls, cx, inputs, attrs):
        x, skip, gamma = inputs[:3]
        bias = inputs[3] if len(inputs) > 3 else None
        s = cx.emit("add", x, skip)
        if bias is not None:
            s = cx.emit("add", s, bias)
        y = _rms_norm(cx, s, gamma, -1, attrs.float("epsilon", 1e-5))
        outs = [y, None, None, s][:len(cx.outputs)]
        if any(o and t is None for o, t in zip(cx.outputs, outs)):
            raise cx.error("only the normalised output and the sum (outputs 0 and 3) are supported")
        return outs


class _Reduce(OnnxOpConverter):
    irop: str = ""
    axes_input_since: int = 18  # before this opset, axes are an attribute

    @classmethod
    def axes(cls, cx, inputs, attrs, opset_has_input: bool) -> tuple[int, ...] | None:
        if opset_has_input:
            if len(inputs) > 1 and inputs[1] is not None:
                return cx.ints(inputs[1], "axes")
            return None
        a = attrs.ints("axes", None)
        return tuple(a) if a is not None else None

    @classmethod
    def convert(cls, cx, inputs, attrs, opset_has_input: bool):
        x = inputs[0]
        axes = cls.axes(cx, inputs, attrs, opset_has_input)
        keep = bool(attrs.int("keepdims", 1))
        if not axes:
            if attrs.int("noop_with_empty_axes", 0):
                return x
            axes = tuple(range(x.rank))
        axes = tuple(sorted({norm_axis(cx, a, x.rank) for a in axes}))
        return cls.reduce(cx, x, axes, keep)

    @classmethod
    def reduce(cls, cx, x, axes, keep):
        return cx.emit(cls.irop, x, axes=axes, keepdims=keep)

    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return cls.convert(cx, inputs, attrs, opset_has_input=cls.axes_input_since <= 13)

    @classmethod
    def _impl_v18(cls, cx, inputs, attrs):
        return cls.convert(cx, inputs, attrs, opset_has_input=True)


def _reduce(op_type: str, irop: str, since: int = 18, pre=None, post=None) -> None:
    def reduce(cls, cx, x, axes, keep):
        y = x if pre is None else pre(cx, x)
        y = cx.emit(irop, y, axes=axes, keepdims=keep)
        return y if post is None else post(cx, y)

    body = {"irop": irop, "axes_input_since": since, "reduce": classmethod(reduce)}
    converter(op_type, static_inputs=(1,))(type(op_type, (_Reduce,), body))


_reduce("ReduceSum", "reduce_sum", since=13)
_reduce("ReduceMean", "reduce_mean")
_reduce("ReduceMax", "reduce_max")
_reduce("ReduceMin", "reduce_min")
_reduce("ReduceProd", "reduce_prod")
_reduce("ReduceL1", "reduce_sum", pre=lambda cx, x: cx.emit("abs", x))
_reduce("ReduceL2", "reduce_sum", pre=lambda cx, x: cx.emit("mul", x, x), post=lambda cx, y: cx.emit("sqrt", y))
_reduce("ReduceSumSquare", "reduce_sum", pre=lambda cx, x: cx.emit("mul", x, x))
_reduce("ReduceLogSum", "reduce_sum", post=lambda cx, y: cx.emit("log", y))
_reduce("ReduceLogSumExp", "reduce_sum", pre=lambda cx, x: cx.emit("exp", x), post=lambda cx, y: cx.emit("log", y))


class _ArgReduce(OnnxOpConverter):
    irop = ""

    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        return cx.emit(cls.irop, x, axis=norm_axis(cx, attrs.int("axis", 0), x.rank),
                       keepdims=bool(attrs.int("keepdims", 1)),
                       select_last_index=bool(attrs.int("select_last_index", 0)))


converter("ArgMax")(type("ArgMax", (_ArgReduce,), {"irop": "argmax"}))
converter("ArgMin")(type("ArgMin", (_ArgReduce,), {"irop": "argmin"}))


@converter("CumSum", static_inputs=(1,))
class CumSum(OnnxOpConverter):
    @classmethod
    def _impl_v14(cls, cx, inputs, attrs):
        x = inputs[0]
        axis = norm_axis(cx, cx.scalar(inputs[1], "axis"), x.rank)
        return cx.emit("cumsum", x, axis=axis, exclusive=bool(attrs.int("exclusive", 0)),
                       reverse=bool(attrs.int("reverse", 0)))


@converter("TopK", static_inputs=(1,))
class TopK(OnnxOpConverter):
    @classmethod
    def _impl_v11(cls, cx, inputs, attrs):
        x = inputs[0]
        k = cx.scalar_dim(inputs[1], "K")
        if k.maybe_int() is not None and k.maybe_int() < 0:
            raise cx.error(f"K is negative ({k})")
        return cx.emit_multi("topk", [x], k=k, axis=norm_axis(cx, attrs.int("axis", -1), x.rank),
                             largest=bool(attrs.int("largest", 1)), sorted=bool(attrs.int("sorted", 1)))

