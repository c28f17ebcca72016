"""Shape and data-movement operators.

Shape operands (Reshape's ``shape``, Slice's bounds, Expand's ``shape``, ...) must be known at
import time; they arrive as dims, often symbolic, and become the IR op's attributes. ``Shape``
and ``Size`` never emit anything: a tensor's shape is always known, symbolically.
"""

from __future__ import annotations

import numpy as np

from rduflow.ir import Dim, DimError
from rduflow.ir.dims import numel

from ..context import NodeContext, Tensor
from ..registry import OnnxOpConverter, converter
from ..symbolic import FOLD_LIMIT, Undecidable, compare
from .elementwise import range_tensor

# Bounds at least this large mean "to the end" (exporters write INT64_MAX or INT32_MAX).
_TO_END = 2**31 - 1


def norm_axis(cx: NodeContext, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise cx.error(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def reshape(cx: NodeContext, x: Tensor, shape) -> Tensor:
    shape = tuple(Dim.of(d) for d in shape)
    return x if shape == x.shape else cx.emit("reshape", x, shape=shape)


def solve_missing_dim(in_shape, known) -> Dim | None:
    """The dim a reshape's ``-1`` stands for: cancel dims present on both sides, divide the rest."""
    remaining = list(in_shape)
    rest = []
    for d in known:
        if d in remaining:
            remaining.remove(d)
        else:
            rest.append(d)
    try:
        q = numel(remaining) / numel(rest)
    except DimError:
        return None
    return q if all(c.denominator == 1 for c in q.terms.values()) else None


def _lone(d: Dim) -> bool:
    return len(d.terms) == 1 and d.terms.get(tuple(d.symbols), 0) == 1 and len(d.symbols) == 1


@converter("Shape")
class Shape(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        r = x.rank
        start, end = attrs.int("start", 0), attrs.int("end", r)
        start = min(max(start + r if start < 0 else start, 0), r)
        end = min(max(end + r if end < 0 else end, 0), r)
        return cx.dims_tensor(x.shape[start:end])


@converter("Size")
class Size(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return reshape(cx, cx.dims_tensor([inputs[0].type.numel]), ())


@converter("Reshape", static_inputs=(1,))
class Reshape(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        target = cx.dims(inputs[1], "shape")
        allowzero = attrs.int("allowzero", 0)
        out: list[Dim | None] = []
        for i, d in enumerate(target):
            v = d.maybe_int()
            if v == -1:
                if None in out:
                    raise cx.error("shape has more than one -1")
                out.append(None)
            elif v == 0 and not allowzero:
                if i >= x.rank:
                    raise cx.error(f"shape entry {i} is 0 (copy) but the input has rank {x.rank}")
                out.append(x.shape[i])
            elif v is not None and v < 0:
                raise cx.error(f"shape entry {v} is negative")
            else:
                out.append(d)
        if None in out:
            i = out.index(None)
            q = solve_missing_dim(x.shape, [d for d in out if d is not None])
            if q is None:
                # ``view(batch, -1)`` with the batch of another tensor: when that dim is a symbol of
                # its own lining up with a symbol of the input, both are the same size at run time.
                for j, d in enumerate(out):
                    if d is not None and j < x.rank and d != x.shape[j] and _lone(d) and _lone(x.shape[j]):
                        cx.unify(d, x.shape[j])
                out = [cx.current(d) if d is not None else None for d in out]
                q = solve_missing_dim(x.shape, [d for d in out if d is not None])
            if q is None:
                raise cx.error(f"cannot infer the -1 of a reshape from {x.type} to "
                               f"[{', '.join('-1' if d is None else str(d) for d in out)}]")
            out[i] = q
        return reshape(cx, x, out)


@converter("Flatten")
class Flatten(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        axis = attrs.int("axis", 1)
        if not -x.rank <= axis <= x.rank:
            raise cx.error(f"axis {axis} is out of range for rank {x.rank}")
        axis = axis + x.rank if axis < 0 else axis
        return reshape(cx, x, (numel(x.shape[:axis]), numel(x.shape[axis:])))


@converter("Squeeze", static_inputs=(1,))
class Squeeze(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        if len(inputs) > 1 and inputs[1] is not None:
            axes = {norm_axis(cx, a, x.rank) for a in cx.ints(inputs[1], "axes")}
        else:
            if any(not d.is_const for d in x.shape):
                raise cx.error(f"without axes, cannot tell which dims of {x.type} are 1")
            axes = {i for i, d in enumerate(x.shape) if d == 1}
        for a in sorted(axes):
            d = x.shape[a]
            if d != 1:
                if d.is_const:
                    raise cx.error(f"cannot squeeze dim {a} of {x.type}: it is not 1")
                cx.unify(d, Dim.const(1))  # squeezing asserts the dim is 1
        return reshape(cx, x, [d for i, d in enumerate(x.shape) if i not in axes])


@converter("Unsqueeze", static_inputs=(1,))
class Unsqueeze(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        axes_in = cx.ints(inputs[1], "axes")
        rank = x.rank + len(axes_in)
        axes = {norm_axis(cx, a, rank) for a in axes_in}
        if len(axes) != len(axes_in):
            raise cx.error(f"repeated axis in {list(axes_in)}")
        rest = iter(x.shape)
        return reshape(cx, x, [Dim.const(1) if i in axes else next(rest) for i in range(rank)])


@converter("Transpose")
class Transpose(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        perm = attrs.ints("perm", tuple(reversed(range(x.rank))))
        if list(perm) == list(range(x.rank)):
            return x
        return cx.emit("transpose", x, perm=perm)


@converter("Concat")
class Concat(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        xs = [t for t in inputs if t is not None]
        if len(xs) == 1:
            return xs[0]
        return cx.emit("concat", *xs, axis=norm_axis(cx, attrs.int("axis"), xs[0].rank))


@converter("Split", static_inputs=(1,))
class Split(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        ax = norm_axis(cx, attrs.int("axis", 0), x.rank)
        d = x.shape[ax]
        n = len(cx.outputs)
        if len(inputs) > 1 and inputs[1] is not None:
            sizes = list(cx.dims(inputs[1], "split"))
        elif "num_outputs" in attrs:
            n = attrs.int("num_outputs")
            if n < 1 or n != len(cx.outputs):
                raise cx.error(f"num_outputs {n} differs from the node's {len(cx.outputs)} outputs")
            dv = d.maybe_int()
            if dv is not None:
                chunk = -(-dv // n)  # the last chunk is the smaller one
                sizes = [Dim.const(min(chunk, max(dv - i * chunk, 0))) for i in range(n)]
            else:
                sizes = [_exact(cx, d, n)] * n
        else:
            sizes = [_exact(cx, d, n)] * n
        if len(sizes) != len(cx.outputs):
            raise cx.error(f"{len(sizes)} split sizes for {len(cx.outputs)} outputs")
        total = sum(sizes, Dim.const(0))
        if total != d and not (total.is_const and d.is_const):
            cx.unify(d, total)  # the sizes must add up to the dim: that tells what a symbolic dim is
        return cx.emit_multi("split", [x], axis=ax, sizes=sizes)


def _exact(cx: NodeContext, d: Dim, n: int) -> Dim:
    try:
        q = d // n
    except DimError:
        raise cx.error(f"dim {d} does not split evenly into {n}") from None
    if q * n != d:
        raise cx.error(f"dim {d} does not split evenly into {n}")
    return q


def _bound(cx: NodeContext, b: Dim, d: Dim) -> Dim:
    """A slice bound against a symbolic dim: negative counts from the end, huge means the end.

    Bounds clamp to [0, d]: ``x[-4095:]`` keeps min(d, 4095) elements. Where the clamp cannot
    be decided (d may be shorter), min(d, |v|) is computed at run time and named by a symbol;
    a bound of magnitude 1 is taken to fit (a tensor sliced by its last element is not empty).
    """
    v = b.maybe_int()
    if v is None:
        return b
    if v >= _TO_END:
        return d
    k = abs(v)
    if k > 1 and not _provably_at_least(d, k):
        fit = cx.scalar_dim(cx.emit("min", cx.dims_tensor([d]), cx.const([k])), "bound")
        return d - fit if v < 0 else fit
    return d + v if v < 0 else b


def _provably_at_least(d: Dim, k: int) -> bool:
    try:
        return compare("greater_equal", d, Dim.const(k))
    except Undecidable:
        return False


@converter("Slice", static_inputs=(1, 2, 3, 4))
class Slice(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        starts = cx.dims(inputs[1], "starts")
        ends = cx.dims(inputs[2], "ends")
        n = len(starts)
        axes_in = cx.ints(inputs[3], "axes") if len(inputs) > 3 and inputs[3] is not None else tuple(range(n))
        steps = cx.ints(inputs[4], "steps") if len(inputs) > 4 and inputs[4] is not None else (1,) * n
        if not len(ends) == len(axes_in) == len(steps) == n:
            raise cx.error("starts, ends, axes and steps differ in length")
        axes = [norm_axis(cx, a, x.rank) for a in axes_in]
        if len(set(axes)) != n:
            raise cx.error(f"repeated axis in {list(axes_in)}")
        out_axes, out_starts, out_ends, out_steps = [], [], [], []
        for ax, s, e, st in zip(axes, starts, ends, steps):
            d = x.shape[ax]
            if st == 0:
                raise cx.error("slice step is 0")
            dv, sv, ev = d.maybe_int(), s.maybe_int(), e.maybe_int()
            if None not in (dv, sv, ev):
                a, b, _ = slice(sv, ev, st).indices(dv)
                if st > 0:
                    b = max(a, b)
                elif b < 0:
                    b = -dv - 1  # "before index 0", written so numpy reads it that way
                if (a, b, st) == (0, dv, 1):
                    continue
                s2, e2 = Dim.const(a), Dim.const(b)
            elif st == 1:
                s2, e2 = _bound(cx, s, d), _bound(cx, e, d)
                if s2 == 0 and e2 == d:
                    continue
            else:
                raise cx.error(f"a slice with step {st} needs a constant dim, got {d}")
            out_axes.append(ax)
            out_starts.append(s2)
            out_ends.append(e2)
            out_steps.append(st)
        if not out_axes:
            return x
        steps_attr = tuple(out_steps) if any(st != 1 for st in out_steps) else ()
        return cx.emit("slice", x, axes=out_axes, starts=out_starts, ends=out_ends, steps=steps_attr)


@converter("Gather")
class Gather(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        data, idx = inputs[0], inputs[1]
        return cx.emit("gather", data, idx, axis=norm_axis(cx, attrs.int("axis", 0), data.rank))


@converter("GatherElements")
class GatherElements(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        data = inputs[0]
        return cx.emit("gather_elements", data, inputs[1], axis=norm_axis(cx, attrs.int("axis", 0), data.rank))


@converter("GatherND")
class GatherND(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return cx.emit("gather_nd", inputs[0], inputs[1], batch_dims=attrs.int("batch_dims", 0))


@converter("ScatterElements")
class ScatterElements(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        data = inputs[0]
        return cx.emit("scatter_elements", *inputs[:3], axis=norm_axis(cx, attrs.int("axis", 0), data.rank),
                       reduction=attrs.str("reduction", "none"))


@converter("ScatterND")
class ScatterND(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        return cx.emit("scatter_nd", *inputs[:3], reduction=attrs.str("reduction", "none"))


@converter("Expand", static_inputs=(1,))
class Expand(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        shape = cx.dims(inputs[1], "shape")
        if len(shape) <= x.rank and all(t == 1 or t == d for t, d in zip(reversed(shape), reversed(x.shape))):
            return x
        return cx.emit("expand", x, shape=shape)


@converter("Tile", static_inputs=(1,))
class Tile(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        reps = cx.dims(inputs[1], "repeats")
        if all(r == 1 for r in reps) and len(reps) == x.rank:
            return x
        return cx.emit("tile", x, repeats=reps)


@converter("ConstantOfShape", static_inputs=(0,))
class ConstantOfShape(OnnxOpConverter):
    @classmethod
    def _impl_v9(cls, cx, inputs, attrs):
        shape = cx.dims(inputs[0], "input")
        value = attrs.tensor("value")
        if value is None:
            value = np.zeros((1,), np.float32)
        if value.size != 1:
            raise cx.error(f"value must hold one element, got {value.size}")
        scalar = value.reshape(())
        n = numel(shape).maybe_int()
        if n is not None and n <= FOLD_LIMIT:
            return cx.const(np.full([int(d) for d in shape], scalar, dtype=value.dtype))
        return cx.emit("expand", cx.const(scalar), shape=shape)


@converter("Constant")
class Constant(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        if "sparse_value" in attrs:
            raise cx.error("sparse constants are not supported")
        if "value" in attrs:
            return cx.const(attrs.tensor("value"))
        for name, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                            ("value_int", np.int64), ("value_ints", np.int64)):
            if name in attrs:
                getter = attrs.float if name == "value_float" else attrs.floats if name == "value_floats" \
                    else attrs.int if name == "value_int" else attrs.ints
                return cx.const(np.array(getter(name), dtype=dtype))
        raise cx.error("no value attribute it supports (value, value_float(s), value_int(s))")


@converter("Range", static_inputs=(0, 1, 2))
class Range(OnnxOpConverter):
    @classmethod
    def _impl_v11(cls, cx, inputs, attrs):
        start_t, limit_t, delta_t = inputs[:3]
        dtype = start_t.dtype
        if dtype.is_int:
            start, limit = cx.scalar_dim(start_t, "start"), cx.scalar_dim(limit_t, "limit")
            delta = cx.scalar(delta_t, "delta")
            if delta == 0:
                raise cx.error("delta is 0")
            sv, lv = start.maybe_int(), limit.maybe_int()
            if sv is not None and lv is not None and (lv - sv) * delta <= 0:
                limit = start  # an empty range
            elif delta != 1 and (sv is None or lv is None):
                raise cx.error(f"a range with step {delta} needs constant bounds, got {start}..{limit}")
            if delta == 1:
                return range_tensor(cx, start, limit, dtype)
            return cx.emit("range", start=start, limit=limit, delta=int(delta), dtype=dtype)
        start, limit, delta = (cx.scalar(t, w) for t, w in ((start_t, "start"), (limit_t, "limit"), (delta_t, "delta")))
        if delta == 0:
            raise cx.error("delta is 0")
        n = max(int(np.ceil((limit - start) / delta)), 0)
        return cx.const((start + np.arange(n) * delta).astype(dtype.numpy))


@converter("NonZero")
class NonZero(OnnxOpConverter):
    @classmethod
    def _impl_v13(cls, cx, inputs, attrs):
        x = inputs[0]
        if x.folded is not None and x.folded.dtype != object:
            return cx.const(np.array(np.nonzero(x.folded), dtype=np.int64).reshape(x.rank, -1))
        # How many elements are non-zero is known only at run time: a symbol of its own.
        return cx.emit("nonzero", x, count=cx.fresh_symbol("nnz"))


@converter("OneHot", static_inputs=(1,))
class OneHot(OnnxOpConverter):
    @classmethod
    def _impl_v11(cls, cx, inputs, attrs):
        indices, depth_t, values = inputs[:3]
        depth = cx.folded(depth_t, "depth").reshape(-1)
        if depth.size != 1:
            raise cx.error("depth must hold one value")
        d = depth[0]
        d = d if isinstance(d, Dim) else Dim.const(int(d))
        return cx.emit("one_hot", indices, values, depth=d, axis=attrs.int("axis", -1))


@converter("Trilu", static_inputs=(1,))
class Trilu(OnnxOpConverter):
    @classmethod
    def _impl_v14(cls, cx, inputs, attrs):
        k = cx.scalar(inputs[1], "k") if len(inputs) > 1 and inputs[1] is not None else 0
        return cx.emit("trilu", inputs[0], upper=bool(attrs.int("upper", 1)), k=int(k))

