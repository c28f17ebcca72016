"""Placed programs: what the compiler back end produces and the simulator runs.

A placed program is a module whose ``@main`` graph is a list of ``placed.section`` ops,
executed in order. Each section's region is one streaming pipeline on one socket:

* units: ``placed.compute`` (a fused group of IR ops on N PCUs; the ops stay in its region
  so their cost is derived from them), ``placed.buffer`` (PMU storage), ``placed.mem_read``
  and ``placed.mem_write`` (HBM/DDR through an AGCU) and ``placed.collective`` (socket to
  socket);
* streams: ``placed.stream`` carries one unit's result to exactly one unit, as ``tiles``
  tiles, over a mesh ``route`` (a list of links) or a ``hops`` count.

Every operand of a unit is a stream; every stream's operand is a unit's result. Sections
talk to each other only through memory (a ``mem_write`` then a later ``mem_read`` of the
same tensor). docs/simulator.md documents the format with a complete example.

Programs sharded over sockets (SPMD) also use ``spmd.shard`` (a socket's part of a whole
tensor) inside compute regions and, before placement, in ordinary graphs; docs/backend.md.
"""

from __future__ import annotations

from ..attributes import AttrKind, AttrSpec
from ..opdef import Cost, OpDef, Trait, TypeInferenceError, register
from ..types import TensorType
from .structure import RegionOp

TIERS = ("hbm", "ddr")
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter")


def _verify_error(op, msg):
    from ..verifier import VerifyError

    return VerifyError(op, msg)


def _check_pairs(op, name: str, width: int) -> None:
    """``coords`` ([[row, col], ...]) and ``route`` ([[r0, c0, r1, c1], ...]) are lists of int tuples."""
    for item in op.attrs[name]:
        ints = isinstance(item, tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
        if not (ints and len(item) == width):
            shape = "[row, col]" if width == 2 else "[row0, col0, row1, col1]"
            raise _verify_error(op, f"attribute '{name}' must be a list of {shape} integer lists, has {item!r}")


class PlacedOp(OpDef):
    kind = "placed"
    traits = OpDef.traits - {Trait.PURE}  # units are resources on the chip, not values to fold away

    @classmethod
    def cost(cls, ins, outs, attrs):
        # Placed units move data; only a compute unit's own ops do arithmetic (ir.cost walks them).
        return Cost.zero()


@register
class PlacedSection(PlacedOp):
    """One streaming pipeline on a socket, called ``repeat`` times in a row (one call per layer)."""

    name = "placed.section"
    naming_attrs = ("name", "repeat")
    operands = (0, 0)
    num_regions = 1
    attrs = {
        "name": AttrSpec(AttrKind.STR, "", "shown in reports and traces"),
        "repeat": AttrSpec(AttrKind.INT, 1, "consecutive calls of this section"),
    }

    @classmethod
    def infer(cls, types, attrs):
        return []

    @classmethod
    def verify(cls, op):
        (region,) = op.regions
        if region.args or region.outputs:
            raise _verify_error(op, "a section's region takes no arguments and returns nothing "
                                    "(sections exchange data through placed.mem_write / placed.mem_read)")
        if op.attrs["repeat"] < 1:
            raise _verify_error(op, f"repeat must be >= 1, is {op.attrs['repeat']}")
        users = region.users()
        for inner in region.ops:
            if not inner.opname.startswith("placed.") or inner.opname == "placed.section":
                raise _verify_error(inner, "a section holds placed units and streams only "
                                           "(put IR ops inside a placed.compute region)")
            if inner.opname == "placed.stream":
                src = inner.operands[0].defining_op
                if src is None or src.opname == "placed.stream":
                    raise _verify_error(inner, "a stream's operand must be a unit's result")
                n = len(users.get(inner.results[0], []))
                if n != 1:
                    raise _verify_error(inner, f"a stream feeds exactly one unit, this one feeds {n} "
                                               "(use one stream per consumer)")
            else:
                for i, v in enumerate(inner.operands):
                    d = v.defining_op
                    if d is None or d.opname != "placed.stream":
                        raise _verify_error(inner, f"operand #{i} must be a placed.stream result")


@register
class PlacedStream(PlacedOp):
    """A tensor moving from one unit to another as ``tiles`` equal tiles.

    ``depth``: tiles of buffering at the consumer (0: 2, or the buffer's capacity when the
    consumer is a placed.buffer). ``route``: mesh links ``[r0, c0, r1, c1]`` in order;
    ``hops``: a hop count instead (latency only, no link contention); neither: the
    simulator routes dimension-order between the units' coordinates.
    """

    name = "placed.stream"
    operands = (1, 1)
    attrs = {
        "tiles": AttrSpec(AttrKind.INT),
        "depth": AttrSpec(AttrKind.INT, 0),
        "route": AttrSpec(AttrKind.ANY, ()),
        "hops": AttrSpec(AttrKind.INT, -1),
    }

    @classmethod
    def infer(cls, types, attrs):
        return [types[0]]

    @classmethod
    def verify(cls, op):
        a = op.attrs
        if a["tiles"] < 1:
            raise _verify_error(op, f"tiles must be >= 1, is {a['tiles']}")
        if a["depth"] < 0:
            raise _verify_error(op, f"depth must be >= 0 (0: default), is {a['depth']}")
        if a["hops"] < -1:
            raise _verify_error(op, f"hops must be >= 0 (or -1: from the route), is {a['hops']}")
        _check_pairs(op, "route", 4)
        if a["route"] and a["hops"] >= 0:
            raise _verify_error(op, "give either 'route' or 'hops', not both")


@register
class PlacedBuffer(PlacedOp):
    """PMU storage of ``capacity`` bytes split over ``pmus`` PMUs; decouples producer and consumer."""

    name = "placed.buffer"
    operands = (1, 1)
    attrs = {
        "pmus": AttrSpec(AttrKind.INT),
        "capacity": AttrSpec(AttrKind.INT, doc="bytes"),
        "coords": AttrSpec(AttrKind.ANY, (), "[[row, col], ...], one per PMU"),
    }

    @classmethod
    def infer(cls, types, attrs):
        return [types[0]]

    @classmethod
    def verify(cls, op):
        if op.attrs["pmus"] < 1:
            raise _verify_error(op, f"pmus must be >= 1, is {op.attrs['pmus']}")
        if op.attrs["capacity"] < 1:
            raise _verify_error(op, f"capacity must be >= 1 byte, is {op.attrs['capacity']}")
        _check_pairs(op, "coords", 2)


@register
class PlacedCompute(RegionOp):
    """A fused group of IR ops on ``pcus`` PCUs; its region computes its results from its operands."""

    name = "placed.compute"
    kind = "placed"
    traits = RegionOp.traits - {Trait.PURE}
    open_attrs = False
    attrs = {
        "pcus": AttrSpec(AttrKind.INT),
        "coords": AttrSpec(AttrKind.ANY, (), "[[row, col], ...], one per PCU"),
    }

    @classmethod
    def verify(cls, op):
        super().verify(op)
        if op.attrs["pcus"] < 1:
            raise _verify_error(op, f"pcus must be >= 1, is {op.attrs['pcus']}")
        _check_pairs(op, "coords", 2)
        for inner in op.regions[0].walk():
            if inner.opname.startswith("placed."):
                raise _verify_error(inner, "a placed.compute region holds IR ops, not placed units")


class _MemoryOp(PlacedOp):
    naming_attrs = ("tensor",)  # the same stream of another layer's tensor

    @classmethod
    def verify(cls, op):
        if op.attrs["tier"] not in TIERS:
            raise _verify_error(op, f"tier must be one of {', '.join(TIERS)}, is {op.attrs['tier']!r}")
        if op.attrs["agcu"] < -1:
            raise _verify_error(op, f"agcu must be an AGCU index (or -1: unplaced), is {op.attrs['agcu']}")


@register
class PlacedMemRead(_MemoryOp):
    """Stream ``tensor`` out of HBM or DDR through AGCU ``agcu``.

    ``carried``: when consecutive calls of the section are looped, call i+1 reads what call
    i's ``placed.mem_write`` of the same tensor wrote (the hidden state between layers).
    ``per_call``: the tensor is a stack of slabs, one per call of a repeated section, and
    call i reads slab i (a layer's weights: the loop index offsets the address).
    With an operand (integer indices, streamed in), only the rows of ``tensor`` that the
    indices select along its first axis are read (an embedding lookup); ``shape`` is then
    the indices' shape followed by the tensor's trailing dims.
    """

    name = "placed.mem_read"
    operands = (0, 1)
    attrs = {
        "tensor": AttrSpec(AttrKind.STR),
        "shape": AttrSpec(AttrKind.DIMS),
        "dtype": AttrSpec(AttrKind.DTYPE),
        "tier": AttrSpec(AttrKind.STR, "hbm"),
        "agcu": AttrSpec(AttrKind.INT, -1),
        "carried": AttrSpec(AttrKind.BOOL, False),
        "per_call": AttrSpec(AttrKind.BOOL, False),
    }

    @classmethod
    def infer(cls, types, attrs):
        if types:
            (idx,) = types
            if not idx.dtype.is_int:
                raise TypeInferenceError(f"an indexed mem_read takes integer indices, not {idx.dtype}")
            if tuple(attrs["shape"][:idx.rank]) != idx.shape:
                raise TypeInferenceError(f"an indexed mem_read's shape must start with the indices' shape {idx}")
        return [TensorType(attrs["shape"], attrs["dtype"])]


@register
class PlacedMemWrite(_MemoryOp):
    """Stream its operand into ``tensor`` in HBM or DDR through AGCU ``agcu``.

    ``per_call``: call i of a repeated section writes slab i of the tensor (see mem_read).
    """

    name = "placed.mem_write"
    operands = (1, 1)
    attrs = {
        "tensor": AttrSpec(AttrKind.STR),
        "tier": AttrSpec(AttrKind.STR, "hbm"),
        "agcu": AttrSpec(AttrKind.INT, -1),
        "per_call": AttrSpec(AttrKind.BOOL, False),
    }

    @classmethod
    def infer(cls, types, attrs):
        return []


@register
class PlacedCollective(PlacedOp):
    """A collective over ``group`` sockets, streamed tile by tile over the socket links.

    all_reduce keeps the shape; all_gather multiplies dim ``axis`` by ``group``;
    reduce_scatter divides it.
    """

    name = "placed.collective"
    operands = (1, 1)
    attrs = {
        "kind": AttrSpec(AttrKind.STR),
        "group": AttrSpec(AttrKind.INT),
        "axis": AttrSpec(AttrKind.INT, 0),
        "agcu": AttrSpec(AttrKind.INT, -1),
    }

    @classmethod
    def infer(cls, types, attrs):
        (t,) = types
        kind, group = attrs["kind"], attrs["group"]
        if kind not in COLLECTIVES:
            raise TypeInferenceError(f"collective kind must be one of {', '.join(COLLECTIVES)}, is {kind!r}")
        if group < 1:
            raise TypeInferenceError(f"collective group must be >= 1 socket, is {group}")
        if kind == "all_reduce":
            return [t]
        if not -t.rank <= attrs["axis"] < t.rank:
            raise TypeInferenceError(f"axis {attrs['axis']} out of range for {t}")
        ax = attrs["axis"] % t.rank
        shape = list(t.shape)
        if kind == "reduce_scatter":
            n = shape[ax].maybe_int()
            if n is not None and n % group:
                raise TypeInferenceError(f"reduce_scatter: dim {ax} of {t} is not divisible by group {group}")
            shape[ax] = shape[ax] / group
        else:
            shape[ax] = shape[ax] * group
        return [TensorType(shape, t.dtype)]


@register
class SpmdShard(OpDef):
    """This socket's part of a tensor that every socket holds whole (tensor parallelism).

    Dim ``axis`` is read as the concatenation of ``blocks`` (default: one block of the whole
    dim); each block is cut into ``parts`` equal pieces and socket ``s`` takes piece
    ``(s // stride) % parts`` of every block, in block order (a fused QKV projection keeps Q,
    K and V apart this way). ``stride`` (default 1) consecutive sockets share a piece: a
    key/value head held by a group of sockets.
    The socket index is not an operand: a program of these ops runs the same on every socket
    (SPMD), so evaluating one needs the socket's index, ``EvalContext.env["$socket"]``.
    """

    name = "spmd.shard"
    traits = OpDef.traits | {Trait.VIEW}  # the socket's slice
    operands = (1, 1)
    kind = "data_movement"
    attrs = {
        "axis": AttrSpec(AttrKind.INT),
        "parts": AttrSpec(AttrKind.INT),
        "blocks": AttrSpec(AttrKind.INTS, ()),
        "stride": AttrSpec(AttrKind.INT, 1),
    }

    @classmethod
    def infer(cls, types, attrs):
        (t,) = types
        axis, parts, blocks = attrs["axis"], attrs["parts"], attrs["blocks"]
        if attrs["stride"] < 1:
            raise TypeInferenceError(f"spmd.shard stride must be >= 1, is {attrs['stride']}")
        if not 0 <= axis < t.rank:
            raise TypeInferenceError(f"spmd.shard axis {axis} out of range for {t}")
        if parts < 1:
            raise TypeInferenceError(f"spmd.shard parts must be >= 1, is {parts}")
        shape = list(t.shape)
        n = t.shape[axis].maybe_int()
        if n is None:  # symbolic: one block, divided exactly (DimError otherwise)
            if blocks:
                raise TypeInferenceError(f"spmd.shard blocks need a constant dim {axis}, {t} has {t.shape[axis]}")
            shape[axis] = t.shape[axis] // parts
            return [TensorType(shape, t.dtype)]
        sizes = blocks or (n,)
        if sum(sizes) != n or any(b < 0 for b in sizes):
            raise TypeInferenceError(f"spmd.shard blocks {list(blocks)} do not add up to dim {axis} of {t}")
        if any(b % parts for b in sizes):
            raise TypeInferenceError(f"spmd.shard: dim {axis} of {t} (blocks {list(sizes)}) is not divisible by {parts}")
        shape[axis] = n // parts
        return [TensorType(shape, t.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        (x,) = inputs
        socket = ctx.env.get("$socket")
        if socket is None:
            raise TypeInferenceError("spmd.shard runs on a socket: execute the program with the SPMD executor "
                                     "(rduflow.compiler.backend), not the single-socket interpreter")
        return [shard_array(x, attrs["axis"], attrs["parts"], attrs["blocks"], socket // attrs["stride"] % attrs["parts"])]

    @classmethod
    def cost(cls, ins, outs, attrs):
        return Cost.zero()  # an address offset: the socket reads only its part


def shard_array(x, axis: int, parts: int, blocks, piece: int):
    """Piece ``piece`` of ``parts`` of every block of ``x`` (the semantics of ``spmd.shard``)."""
    import numpy as np

    sizes = blocks or (x.shape[axis],)
    pieces, start = [], 0
    for b in sizes:
        step = b // parts
        index = [slice(None)] * x.ndim
        index[axis] = slice(start + piece * step, start + (piece + 1) * step)
        pieces.append(x[tuple(index)])
        start += b
    return np.ascontiguousarray(pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=axis))
