"""ONNX's fused transformer operators (opset 23+), written out as the IR ops they stand for.

The dynamo exporter emits ``Attention`` (scaled dot-product attention, with grouped-query
heads, KV cache concat and causal masking) and ``RotaryEmbedding`` at opset 23 and later.
They become matmul / softmax / elementwise ops here, so fusion and costing see the same
dataflow as for exports at older opsets.
"""

from __future__ import annotations

import math

import numpy as np

from rduflow.ir import Dim, DType

from ..context import NodeContext, Tensor
from ..registry import OnnxOpConverter, converter
from .elementwise import range_tensor
from .shape import reshape


def _heads_first(cx: NodeContext, x: Tensor, heads: int | None, what: str) -> Tensor:
    """[batch, seq, heads*size] (3-D, with ``heads``) or [batch, heads, seq, size] -> the 4-D form."""
    if x.rank == 4:
        return x
    if x.rank != 3 or not heads:
        raise cx.error(f"{what} must be 4-D, or 3-D with its number of heads given, got {x.type}")
    b, s, hidden = x.shape
    size = hidden.maybe_int()
    if size is None or size % heads:
        raise cx.error(f"{what} hidden size {hidden} is not a multiple of {heads} heads")
    x = reshape(cx, x, (b, s, Dim.const(heads), Dim.const(size // heads)))
    return cx.emit("transpose", x, perm=(0, 2, 1, 3))


def _repeat_heads(cx: NodeContext, x: Tensor, groups: int) -> Tensor:
    """Grouped-query attention: each key/value head serves ``groups`` query heads."""
    if groups == 1:
        return x
    b, h, s, d = x.shape
    x = reshape(cx, x, (b, h, 1, s, d))
    x = cx.emit("expand", x, shape=(b, h, groups, s, d))
    return reshape(cx, x, (b, h * groups, s, d))


@converter("Attention")
class Attention(OnnxOpConverter):
    @classmethod
    def _impl_v23(cls, cx, inputs, attrs):
        q, k, v = inputs[:3]
        mask, past_k, past_v, nonpad = (list(inputs[3:]) + [None] * 4)[:4]
        if (past_k is None) != (past_v is None):
            raise cx.error("past_key and past_value must be given together")
        if nonpad is not None and past_k is not None:
            raise cx.error("nonpad_kv_seqlen cannot be combined with past_key/past_value")
        three_d = q.rank == 3
        qh, kvh = attrs.int("q_num_heads", 0), attrs.int("kv_num_heads", 0)
        q = _heads_first(cx, q, qh, "Q")
        k = _heads_first(cx, k, kvh, "K")
        v = _heads_first(cx, v, kvh, "V")
        if past_k is not None:
            k = cx.emit("concat", past_k, k, axis=2)
            v = cx.emit("concat", past_v, v, axis=2)
        present = [k, v]
        hq, hk = q.shape[1].maybe_int(), k.shape[1].maybe_int()
        if hq is None or hk is None or hk == 0 or hq % hk:
            raise cx.error(f"query heads {q.shape[1]} are not a multiple of key/value heads {k.shape[1]}")
        k = _repeat_heads(cx, k, hq // hk)
        v = _repeat_heads(cx, v, hq // hk)
        head_size = q.shape[3].maybe_int()
        if head_size is None:
            raise cx.error(f"head size {q.shape[3]} must be constant")
        dt = q.dtype
        scale = attrs.float("scale", 1.0 / math.sqrt(head_size))
        qk = cx.emit("matmul", q, cx.emit("transpose", k, perm=(0, 1, 3, 2)))
        qk = cx.emit("mul", qk, cx.const(scale, dt))
        softcap = attrs.float("softcap", 0.0)
        if softcap > 0:
            qk = cx.emit("mul", cx.emit("tanh", cx.emit("div", qk, cx.const(softcap, dt))), cx.const(softcap, dt))
        allowed = _allowed(cx, attrs, q.shape[2], k.shape[2], past_k, nonpad)
        scores = qk
        if mask is not None:
            mask = _pad_mask(cx, mask, k.shape[2])
            if mask.dtype is DType.bool:
                allowed = mask if allowed is None else cx.emit("and", allowed, mask)
            else:
                scores = cx.emit("add", scores, mask)
        if allowed is not None:
            scores = cx.emit("where", allowed, scores, cx.const(-np.inf, dt))
        probs = cx.emit("softmax", scores, axis=3)
        # A row with every key masked is NaN after softmax; it attends to nothing instead.
        probs = cx.emit("where", cx.emit("isnan", probs), cx.const(0.0, dt), probs)
        y = cx.emit("matmul", probs, v)
        if three_d:
            b, h, s, d = y.shape
            y = reshape(cx, cx.emit("transpose", y, perm=(0, 2, 1, 3)), (b, s, h * d))
        mode = attrs.int("qk_matmul_output_mode", 0)
        if mode not in (0, 1, 2, 3):
            raise cx.error(f"unknown qk_matmul_output_mode {mode}")
        debug = probs if mode == 3 else scores if mode == 2 else qk
        return [y, *present, debug][:max(len(cx.outputs), 1)]


def _allowed(cx: NodeContext, attrs, sq: Dim, sk: Dim, past_k: Tensor | None, nonpad: Tensor | None):
    """Which keys each query may see (causal, sliding window, padding), or None for all of them.

    A query's absolute position is ``offset + i``: offset is the past length with a KV cache,
    ``nonpad_kv_seqlen - sq`` per batch with an external cache, else 0.
    """
    causal = bool(attrs.int("is_causal", 0))
    left, right = attrs.int("left_window_size", -1), attrs.int("right_window_size", -1)
    kpos = range_tensor(cx, Dim.const(0), sk, DType.i64)
    if nonpad is not None:
        b = nonpad.shape[0] if nonpad.rank else Dim.const(1)
        valid = reshape(cx, cx.emit("cast", nonpad, to=DType.i64) if nonpad.dtype is not DType.i64 else nonpad,
                        (b, 1, 1, 1))
        qpos = cx.emit("add", cx.emit("sub", valid, cx.dims_tensor([sq])),
                       reshape(cx, range_tensor(cx, Dim.const(0), sq, DType.i64), (sq, 1)))
        allowed = cx.emit("less", kpos, valid)
    else:
        offset = past_k.shape[2] if past_k is not None else Dim.const(0)
        qpos = reshape(cx, range_tensor(cx, offset, offset + sq, DType.i64), (sq, 1))
        allowed = None

    def both(a, c):
        return c if a is None else cx.emit("and", a, c)

    if causal:
        allowed = both(allowed, cx.emit("less_equal", kpos, qpos))
    if left >= 0:
        allowed = both(allowed, cx.emit("greater_equal", kpos, cx.emit("sub", qpos, cx.const(left, DType.i64))))
    if right >= 0:
        allowed = both(allowed, cx.emit("less_equal", kpos, cx.emit("add", qpos, cx.const(right, DType.i64))))
    return allowed


def _pad_mask(cx: NodeContext, mask: Tensor, sk: Dim) -> Tensor:
    """A mask shorter than the keys covers the first ones; the rest are masked out."""
    last = mask.shape[-1]
    if last == sk or last == 1:
        return mask
    pad = cx.emit("expand", cx.const(False if mask.dtype is DType.bool else -np.inf, mask.dtype),
                  shape=(*mask.shape[:-1], sk - last))
    return cx.emit("concat", mask, pad, axis=mask.rank - 1)


@converter("RotaryEmbedding")
class RotaryEmbedding(OnnxOpConverter):
    @classmethod
    def _impl_v23(cls, cx, inputs, attrs):
        x, cos, sin = inputs[:3]
        pos = inputs[3] if len(inputs) > 3 else None
        four_d = x.rank == 4
        if four_d:
            xs = cx.emit("transpose", x, perm=(0, 2, 1, 3))  # [batch, seq, heads, size]
        elif x.rank == 3:
            heads = attrs.int("num_heads", 0)
            b, s, hidden = x.shape
            if not heads or hidden.maybe_int() is None or hidden.maybe_int() % heads:
                raise cx.error(f"a 3-D input {x.type} needs num_heads dividing its hidden size")
            xs = reshape(cx, x, (b, s, Dim.const(heads), Dim.const(hidden.maybe_int() // heads)))
        else:
            raise cx.error(f"input must be 3-D or 4-D, got {x.type}")
        b, s, h, d = xs.shape
        size = d.maybe_int()
        rd = attrs.int("rotary_embedding_dim", 0) or size
        if size is None or rd % 2 or rd > size:
            raise cx.error(f"rotary_embedding_dim {rd} does not fit head size {d}")
        if pos is not None:
            cos = cx.emit("gather", cos, pos, axis=0)
            sin = cx.emit("gather", sin, pos, axis=0)
        half = Dim.const(rd // 2)
        cos = reshape(cx, cos, (cos.shape[0], cos.shape[1], 1, half)) if cos.rank == 3 else cos
        sin = reshape(cx, sin, (sin.shape[0], sin.shape[1], 1, half)) if sin.rank == 3 else sin
        rot = cx.emit("slice", xs, axes=(3,), starts=(0,), ends=(rd,)) if rd < size else xs
        if attrs.int("interleaved", 0):
            x1 = cx.emit("slice", rot, axes=(3,), starts=(0,), ends=(rd,), steps=(2,))
            x2 = cx.emit("slice", rot, axes=(3,), starts=(1,), ends=(rd,), steps=(2,))
        else:
            x1, x2 = cx.emit_multi("split", [rot], axis=3, sizes=(half, half))
        real = cx.emit("sub", cx.emit("mul", cos, x1), cx.emit("mul", sin, x2))
        imag = cx.emit("add", cx.emit("mul", sin, x1), cx.emit("mul", cos, x2))
        if attrs.int("interleaved", 0):
            pair = (b, s, h, half, Dim.const(1))
            out = cx.emit("concat", reshape(cx, real, pair), reshape(cx, imag, pair), axis=4)
            out = reshape(cx, out, (b, s, h, Dim.const(rd)))
        else:
            out = cx.emit("concat", real, imag, axis=3)
        if rd < size:
            out = cx.emit("concat", out, cx.emit("slice", xs, axes=(3,), starts=(rd,), ends=(size,)), axis=3)
        if four_d:
            return cx.emit("transpose", out, perm=(0, 2, 1, 3))
        return reshape(cx, out, x.shape)
