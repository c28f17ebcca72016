"""Data movement: reshape, transpose, concat, slice, split, expand, gather, range.

Shape-like attributes are dims (possibly symbolic), so ``reshape`` to ``[batch, seq, 12, 64]``
and ``slice`` up to ``past+seq`` are written directly, without shape arithmetic ops.
"""

from __future__ import annotations

import numpy as np

from ..attributes import AttrKind, AttrSpec
from ..dims import Dim, numel
from ..dtypes import DType
from ..opdef import OpDef, Trait, TypeInferenceError, register
from ..types import TensorType
from .common import axis as norm_axis
from .common import broadcast, int_indices, same_dtype


class Movement(OpDef):
    kind = "data_movement"


@register
class Reshape(Movement):
    name = "reshape"
    traits = Movement.traits | {Trait.VIEW}
    operands = (1, 1)
    attrs = {"shape": AttrSpec(AttrKind.DIMS)}

    @classmethod
    def infer(cls, types, attrs):
        (x,) = types
        shape = attrs["shape"]
        if numel(shape) != x.numel:
            raise TypeInferenceError(
                f"reshape from {x} to [{', '.join(map(str, shape))}] changes the element count"
            )
        return [TensorType(shape, x.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        return [inputs[0].reshape(ctx.dims(attrs["shape"]))]


@register
class Transpose(Movement):
    name = "transpose"
    traits = Movement.traits | {Trait.VIEW}
    operands = (1, 1)
    attrs = {"perm": AttrSpec(AttrKind.INTS)}

    @classmethod
    def infer(cls, types, attrs):
        (x,) = types
        perm = attrs["perm"]
        if sorted(perm) != list(range(x.rank)):
            raise TypeInferenceError(f"transpose perm {list(perm)} is not a permutation of rank {x.rank}")
        return [TensorType([x.shape[p] for p in perm], x.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        return [np.ascontiguousarray(np.transpose(inputs[0], attrs["perm"]))]


@register
class Concat(Movement):
    name = "concat"
    operands = (1, None)
    attrs = {"axis": AttrSpec(AttrKind.INT)}

    @classmethod
    def infer(cls, types, attrs):
        same_dtype(types, "concat")
        rank = types[0].rank
        ax = norm_axis(attrs["axis"], rank)
        total = Dim.const(0)
        for t in types:
            if t.rank != rank:
                raise TypeInferenceError("concat operands differ in rank")
            for i, (d0, d) in enumerate(zip(types[0].shape, t.shape)):
                if i != ax and d0 != d:
                    raise TypeInferenceError(f"concat operands differ in dim {i}: {d0} vs {d}")
            total = total + t.shape[ax]
        shape = list(types[0].shape)
        shape[ax] = total
        return [TensorType(shape, types[0].dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        return [np.concatenate(inputs, axis=attrs["axis"])]


def _slice_bounds(d: Dim, start: Dim, end: Dim) -> tuple[Dim, Dim]:
    """Resolve negative and past-the-end constant bounds against ``d`` (step 1 or -1 callers)."""

    def fix(b: Dim) -> Dim:
        v = b.maybe_int()
        if v is None:
            return b
        if v < 0:
            b = d + v
            return b if b.maybe_int() is None or int(b) >= 0 else Dim.const(0)
        dv = d.maybe_int()
        if dv is not None and v > dv:
            return d
        if dv is None and v >= 2**31:  # "to the end" sentinel against a symbolic dim
            return d
        return b

    return fix(start), fix(end)


@register
class Slice(Movement):
    """``x[starts:ends:steps]`` on ``axes``; bounds may be symbolic, negative or past the end."""

    name = "slice"
    traits = Movement.traits | {Trait.VIEW}
    operands = (1, 1)
    attrs = {"axes": AttrSpec(AttrKind.INTS), "starts": AttrSpec(AttrKind.DIMS),
             "ends": AttrSpec(AttrKind.DIMS), "steps": AttrSpec(AttrKind.INTS, ())}

    @classmethod
    def _norm(cls, x: TensorType, attrs):
        axes, starts, ends = attrs["axes"], attrs["starts"], attrs["ends"]
        steps = attrs["steps"] or (1,) * len(axes)
        if not len(axes) == len(starts) == len(ends) == len(steps):
            raise TypeInferenceError("slice: axes, starts, ends and steps differ in length")
        return [(norm_axis(a, x.rank), s, e, st) for a, s, e, st in zip(axes, starts, ends, steps)]

    @classmethod
    def infer(cls, types, attrs):
        (x,) = types
        shape = list(x.shape)
        for ax, s, e, st in cls._norm(x, attrs):
            d = x.shape[ax]
            if st == 0:
                raise TypeInferenceError("slice step is 0")
            if st == 1:
                s, e = _slice_bounds(d, s, e)
                shape[ax] = e - s
            else:
                dv, sv, ev = d.maybe_int(), s.maybe_int(), e.maybe_int()
                if None in (dv, sv, ev):
                    raise TypeInferenceError("slice with a step other than 1 needs constant bounds")
                shape[ax] = Dim.const(len(range(*slice(sv, ev, st).indices(dv))))
        for d in shape:
            v = d.maybe_int()
            if v is not None and v < 0:
                raise TypeInferenceError(f"slice gives a negative extent {v}")
        return [TensorType(shape, x.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        (x,) = inputs
        idx = [slice(None)] * x.ndim
        for ax, s, e, st in cls._norm(TensorType(x.shape, DType.from_numpy(x.dtype)), attrs):
            idx[ax] = slice(ctx.dim(s), ctx.dim(e), st)
        return [np.ascontiguousarray(x[tuple(idx)])]


@register
class Split(Movement):
    name = "split"
    traits = Movement.traits | {Trait.VIEW}
    operands = (1, 1)
    attrs = {"axis": AttrSpec(AttrKind.INT), "sizes": AttrSpec(AttrKind.DIMS)}

    @classmethod
    def infer(cls, types, attrs):
        (x,) = types
        ax = norm_axis(attrs["axis"], x.rank)
        total = Dim.const(0)
        outs = []
        for s in attrs["sizes"]:
            total = total + s
            shape = list(x.shape)
            shape[ax] = s
            outs.append(TensorType(shape, x.dtype))
        if total != x.shape[ax]:
            raise TypeInferenceError(f"split sizes sum to {total}, dim {ax} is {x.shape[ax]}")
        return outs

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        sizes = ctx.dims(attrs["sizes"])
        return [np.ascontiguousarray(a) for a in np.split(inputs[0], np.cumsum(sizes)[:-1], axis=attrs["axis"])]


@register
class Expand(Movement):
    """Broadcast to ``shape`` (ONNX Expand: the result is the broadcast of both shapes)."""

    name = "expand"
    traits = Movement.traits | {Trait.VIEW}
    operands = (1, 1)
    attrs = {"shape": AttrSpec(AttrKind.DIMS)}

    @classmethod
    def infer(cls, types, attrs):
        return [TensorType(broadcast(types[0].shape, attrs["shape"]), types[0].dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        x = inputs[0]
        shape = np.broadcast_shapes(x.shape, ctx.dims(attrs["shape"]))
        return [np.ascontiguousarray(np.broadcast_to(x, shape))]


@register
class Tile(Movement):
    name = "tile"
    operands = (1, 1)
    attrs = {"repeats": AttrSpec(AttrKind.DIMS)}

    @classmethod
    def infer(cls, types, attrs):
        (x,) = types
        reps = attrs["repeats"]
        if len(reps) != x.rank:
            raise TypeInferenceError(f"tile repeats has {len(reps)} entries for rank {x.rank}")
        return [TensorType([d * r for d, r in zip(x.shape, reps)], x.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        return [np.tile(inputs[0], ctx.dims(attrs["repeats"]))]


@register
class Gather(Movement):
    """``take(data, indices, axis)``; negative indices count from the end (ONNX Gather)."""

    name = "gather"
    operands = (2, 2)
    attrs = {"axis": AttrSpec(AttrKind.INT, 0)}

    @classmethod
    def infer(cls, types, attrs):
        data, idx = types
        int_indices(idx, "gather")
        ax = norm_axis(attrs["axis"], data.rank)
        return [TensorType(data.shape[:ax] + idx.shape + data.shape[ax + 1:], data.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        data, idx = inputs
        ax = norm_axis(attrs["axis"], data.ndim)
        idx = np.where(idx < 0, idx + data.shape[ax], idx)
        return [np.take(data, idx, axis=ax)]

    @classmethod
    def cost(cls, ins, outs, attrs):
        # Only the gathered rows are read, not the whole table (embedding lookups).
        from ..opdef import Cost

        return Cost(Dim.const(0), outs[0].nbytes + ins[1].nbytes, outs[0].nbytes)


@register
class Range(Movement):
    """``[start, start+delta, ...)`` up to ``limit``; bounds are dims, so positions ``past..past+seq`` stay symbolic."""

    name = "range"
    operands = (0, 0)
    attrs = {"start": AttrSpec(AttrKind.DIM), "limit": AttrSpec(AttrKind.DIM),
             "delta": AttrSpec(AttrKind.INT, 1), "dtype": AttrSpec(AttrKind.DTYPE, DType.i64)}

    @classmethod
    def infer(cls, types, attrs):
        start, limit, delta = attrs["start"], attrs["limit"], attrs["delta"]
        if delta == 0:
            raise TypeInferenceError("range delta is 0")
        if delta == 1:
            n = limit - start
        else:
            s, lim = start.maybe_int(), limit.maybe_int()
            if s is None or lim is None:
                raise TypeInferenceError("range with delta other than 1 needs constant bounds")
            n = Dim.const(max(0, -(-(lim - s) // delta)))
        return [TensorType([n], attrs["dtype"])]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        return [np.arange(ctx.dim(attrs["start"]), ctx.dim(attrs["limit"]), attrs["delta"]).astype(attrs["dtype"].numpy)]


@register
class Dims(OpDef):
    """An integer tensor holding dims, when shape arithmetic feeds computation (``seq`` as a number).

    Shapes themselves never need this: reshape, expand, slice and range take dims as attributes.
    """

    name = "dims"
    operands = (0, 0)
    kind = "shape"
    traits = OpDef.traits | {Trait.CONSTANT_LIKE}
    attrs = {"values": AttrSpec(AttrKind.DIMS), "shape": AttrSpec(AttrKind.INTS),
             "dtype": AttrSpec(AttrKind.DTYPE, DType.i64)}

    @classmethod
    def infer(cls, types, attrs):
        shape, values = attrs["shape"], attrs["values"]
        if any(s < 0 for s in shape) or int(np.prod(shape, dtype=np.int64)) != len(values):
            raise TypeInferenceError(f"dims: {len(values)} value(s) do not fill shape {list(shape)}")
        if not attrs["dtype"].is_int:
            raise TypeInferenceError(f"dims: element type must be an integer type, got {attrs['dtype']}")
        return [TensorType(shape, attrs["dtype"])]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        vals = np.array(ctx.dims(attrs["values"]), dtype=np.int64)
        return [vals.reshape(attrs["shape"]).astype(attrs["dtype"].numpy)]

    @classmethod
    def cost(cls, ins, outs, attrs):
        from ..opdef import Cost

        return Cost.zero()


@register
class BindDims(OpDef):
    """Names integer values known only at run time: element i's value is ``dims[i]``.

    A shape that depends on data (a sliding window's cache length ``min(past+seq, 4095)``) is
    a symbol of its own; this op binds it when its operand is computed, before any op whose
    attributes use it runs. A dim that is not a lone unbound symbol (unification may have
    found what the symbol equals) is checked instead. The result is the operand, unchanged.
    Not pure: removing it would leave the symbols unbound.
    """

    name = "bind_dims"
    operands = (1, 1)
    kind = "shape"
    traits = OpDef.traits - {Trait.PURE}
    attrs = {"dims": AttrSpec(AttrKind.DIMS)}

    @classmethod
    def infer(cls, types, attrs):
        (x,) = types
        if not x.dtype.is_int or x.rank > 1 or x.numel != len(attrs["dims"]):
            raise TypeInferenceError(f"bind_dims: {len(attrs['dims'])} dim(s) for {x}; the operand must be an "
                                     "integer scalar or vector with one element per dim")
        return [x]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        (x,) = inputs
        for d, v in zip(attrs["dims"], x.reshape(-1)):
            v = int(v)
            unknown = d.symbols - ctx.env.keys()
            if len(unknown) == 1 and d == Dim.sym(next(iter(unknown))):
                if v < 0:
                    raise ValueError(f"{d} would be {v}: a size cannot be negative")
                ctx.env[str(d)] = v
            elif unknown:
                raise ValueError(f"{d} cannot be bound: {', '.join(sorted(unknown))} unknown")
            elif int(d.evaluate(ctx.env)) != v:
                raise ValueError(f"the graph assumes {d} = {int(d.evaluate(ctx.env))} here, but it is {v}")
        return [x]

    @classmethod
    def cost(cls, ins, outs, attrs):
        from ..opdef import Cost

        return Cost.zero()
