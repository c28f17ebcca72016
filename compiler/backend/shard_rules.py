"""Layout rules of the ``shard`` pass: how each op carries replicated, split and partial values.

:class:`Rules` walks a flat graph once, giving every value a :class:`Layout` and every op
the layouts its operands must be converted to first (``None``: as they are). A split value
converted to replicated is a *forced gather*; when a column-split projection is at its
origin, that projection is banned (replicated) for the next round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rduflow.ir import Graph, Operation, TensorType, Value
from rduflow.ir.dims import Dim
from rduflow.ir.ops.common import axes as norm_axes
from rduflow.ir.ops.common import axis as norm_axis
from rduflow.ir.ops.elementwise import Elementwise
from rduflow.ir.ops.nn import Norm
from rduflow.ir.ops.reduce import ArgReduce, Reduce

ALWAYS_REPLICATED = {"weight", "constant", "range", "dims"}


@dataclass(frozen=True)
class Layout:
    kind: str  # "R" replicated, "S" split, "P" partial sums
    axis: int = -1
    blocks: tuple[int, ...] = ()
    origin: Operation | None = field(default=None, compare=False, hash=False)  # the column split behind an S

    R: ClassVar[Layout]
    P: ClassVar[Layout]

    def same(self, other: Layout) -> bool:
        return (self.kind, self.axis, self.blocks) == (other.kind, other.axis, other.blocks)


Layout.R = Layout("R")
Layout.P = Layout("P")
R, P = Layout.R, Layout.P


def S(axis: int, blocks: tuple[int, ...] = (), origin: Operation | None = None) -> Layout:
    return Layout("S", axis, tuple(blocks), origin)


def static_values(g: Graph) -> dict[Value, bool]:
    """Values computed without the graph's arguments (weights, constants, shapes), each
    mapped to whether a weight is among its sources."""
    out: dict[Value, bool] = {}
    for op in g.ops:
        if all(v in out for v in op.operands):
            weighty = op.opname == "weight" or any(out[v] for v in op.operands)
            for r in op.results:
                out[r] = weighty
    return out


def _dims(t: TensorType) -> list[int]:
    return [int(d) for d in t.shape]


@dataclass
class Plan:
    graph: Graph
    sockets: int
    static: dict[Value, bool]
    layouts: dict[Value, Layout]
    op_targets: dict[Operation, list[Layout | None]]
    attr_updates: dict[Operation, dict]
    bans: set[Operation]
    hints: dict[Operation, tuple[int, ...]]

    def layout(self, v: Value) -> Layout:
        return self.layouts[v]

    def targets(self, op: Operation) -> list[Layout | None]:
        return self.op_targets[op]

    def local_type(self, v: Value) -> TensorType:
        lay = self.layouts[v]
        if lay.kind != "S":
            return v.type
        shape = list(v.type.shape)
        shape[lay.axis] = shape[lay.axis] // self.sockets
        return TensorType(shape, v.type.dtype)

    def arg_spread(self, a: Value):
        from .spmd import Spread

        lay = self.layouts[a]
        return Spread(lay.axis, lay.blocks) if lay.kind == "S" else Spread()

    def arg_requests(self) -> dict[Value, Layout]:
        """Arguments that every use converts to the same split: they may arrive split."""
        wants: dict[Value, set] = {a: set() for a in self.graph.args if self.layouts[a].kind == "R"}
        for op, targets in self.op_targets.items():
            for v, t in zip(op.operands, targets):
                if v in wants:
                    wants[v].add((t.kind, t.axis, t.blocks) if t is not None else None)
        for v in self.graph.outputs:
            if v in wants:
                wants[v].add(None)
        out = {}
        for a, ts in wants.items():
            if len(ts) == 1:
                (t,) = ts
                if t is not None and t[0] == "S":
                    out[a] = S(t[1], t[2])
        return out


class Rules:
    def __init__(self, g: Graph, sockets: int, static: dict[Value, bool], banned: set[Operation],
                 hints: dict[Operation, tuple[int, ...]], fixed: dict[Value, Layout]):
        self.g, self.n, self.static = g, sockets, static
        self.banned, self.hints_in, self.fixed = banned, hints, fixed
        self.lay: dict[Value, Layout] = {}
        self.targets: dict[Operation, list[Layout | None]] = {}
        self.attr_updates: dict[Operation, dict] = {}
        self.bans: set[Operation] = set()
        self.hints: dict[Operation, tuple[int, ...]] = {}

    def run(self) -> Plan:
        for a in self.g.args:
            self.lay[a] = self.fixed.get(a, R)
        for op in self.g.ops:
            ins = [self.lay[v] for v in op.operands]
            if op.opname in ALWAYS_REPLICATED or all(v in self.static for v in op.operands):
                outs, targets = self.replicated(op, ins)
            else:
                outs, targets = self.handler(op)(op, ins)
            for v, cur, t in zip(op.operands, ins, targets):
                forced = t is not None and cur.kind == "S" and not t.same(cur) and cur.origin is not None
                if forced and cur.origin not in self.hints:
                    self.bans.add(cur.origin)  # a forced gather: replicate the projection instead
            self.targets[op] = targets
            self.lay.update(zip(op.results, outs))
        return Plan(self.g, self.n, self.static, self.lay, self.targets, self.attr_updates, self.bans, self.hints)

    def handler(self, op: Operation):
        d = op.opdef
        if op.regions:
            return self.replicated
        if issubclass(d, Elementwise):
            return self.elementwise
        if issubclass(d, Norm):
            return self.norm
        if issubclass(d, Reduce):
            return self.reduce
        if issubclass(d, ArgReduce):
            return self.argreduce
        return getattr(self, "op_" + op.opname, self.replicated)

    # -- helpers ---------------------------------------------------------------------------------
    def splittable(self, size: int, blocks: tuple[int, ...] = ()) -> bool:
        return all(b % self.n == 0 for b in blocks) if blocks else size % self.n == 0 and size >= self.n

    def replicated(self, op, ins):
        """Whole operands in, whole results out (ops without a rule)."""
        return [R] * len(op.results), [None if l.kind == "R" else R for l in ins]

    # -- elementwise -----------------------------------------------------------------------------
    LINEAR: ClassVar[dict[str, str]] = {"add": "all", "sub": "all", "neg": "all", "identity": "all", "mul": "one",
                                        "div": "first"}

    def elementwise(self, op, ins):
        targets: list[Layout | None] = [None] * len(ins)
        parts = [l.kind == "P" for l in ins]
        if any(parts):
            if self._keeps_partial(op.opname, ins):
                return [P], targets
            targets = [R if p else None for p in parts]
            ins = [R if p else l for p, l in zip(parts, ins)]
        rank = op.results[0].type.rank
        splits = {(l.axis + rank - v.type.rank, l.blocks) for l, v in zip(ins, op.operands) if l.kind == "S"}
        if not splits:
            return [R], targets
        if len(splits) > 1:
            return [R], [R if l.kind != "R" else t for l, t in zip(ins, targets)]
        ((a, blocks),) = splits
        origin = next(l.origin for l in ins if l.kind == "S")
        for i, (l, v) in enumerate(zip(ins, op.operands)):
            j = a - (rank - v.type.rank)
            if l.kind == "R" and j >= 0 and _dims(v.type)[j] != 1:
                targets[i] = S(j, blocks)
        return [S(a, blocks, origin)], targets

    def _keeps_partial(self, name: str, ins: list[Layout]) -> bool:
        how = self.LINEAR.get(name)
        kinds = [l.kind for l in ins]
        if how == "all":
            return all(k == "P" for k in kinds)
        if how == "one":
            return kinds.count("P") == 1 and all(k in "PR" for k in kinds)
        if how == "first":
            return kinds[0] == "P" and all(k == "R" for k in kinds[1:])
        return False

    # -- contractions ----------------------------------------------------------------------------
    def op_matmul(self, op, ins):
        a, b = op.operands
        la, lb = ins
        ra, rb, r = a.type.rank, b.type.rank, op.results[0].type.rank
        if ra < 2 or rb < 2:
            return self.replicated(op, ins)
        if "P" in (la.kind, lb.kind):
            if {la.kind, lb.kind} == {"P", "R"}:
                return [P], [None, None]
            la, lb = (R if la.kind == "P" else la), (R if lb.kind == "P" else lb)
            base = [R if x.kind == "P" else None for x in ins]
            outs, targets = self.op_matmul_split(op, la, lb, ra, rb, r)
            return outs, [t if t is not None else bt for t, bt in zip(targets, base)]
        return self.op_matmul_split(op, la, lb, ra, rb, r)

    def op_matmul_split(self, op, la, lb, ra, rb, r):
        a, b = op.operands

        def role(lay, rank, other_k, out_last):
            if lay.kind != "S":
                return None, None
            if lay.axis == rank - 1:
                return ("K", None) if other_k else ("N", r - 1)
            if lay.axis == rank - 2:
                return ("M", r - 2) if other_k else ("K", None)
            return "batch", lay.axis + r - rank

        ra_role, ra_out = role(la, ra, True, False)
        rb_role, rb_out = role(lb, rb, False, True)
        if la.kind == "R" and lb.kind == "R":
            n_dim = _dims(b.type)[-1]
            blocks = self.hints_in.get(op, ())
            if self.static.get(b) and a not in self.static and op not in self.banned and self.splittable(n_dim, blocks):
                return [S(r - 1, blocks, origin=op)], [None, S(rb - 1, blocks)]
            return [R], [None, None]
        if ra_role == "K" and rb_role == "K" and la.blocks == lb.blocks:
            return [P], [None, None]
        if ra_role == "K" and lb.kind == "R":
            return [P], [None, S(rb - 2, la.blocks)]
        if rb_role == "K" and la.kind == "R":
            return [P], [S(ra - 1, lb.blocks), None]
        if ra_role == "M" and lb.kind == "R":
            return [S(r - 2, la.blocks, la.origin)], [None, None]
        if rb_role == "N" and la.kind == "R":
            return [S(r - 1, lb.blocks, lb.origin)], [None, None]
        if ra_role == "batch" or rb_role == "batch":
            j = ra_out if ra_role == "batch" else rb_out
            blocks = la.blocks if ra_role == "batch" else lb.blocks
            origin = la.origin if ra_role == "batch" else lb.origin
            targets: list[Layout | None] = [None, None]
            for i, (lay, v, role_i, out_i) in enumerate([(la, a, ra_role, ra_out), (lb, b, rb_role, rb_out)]):
                k = j - (r - v.type.rank)
                if lay.kind == "S" and (role_i != "batch" or out_i != j):
                    targets[i] = R  # split along another axis: make it whole
                elif lay.kind == "R" and 0 <= k < v.type.rank - 2 and _dims(v.type)[k] != 1:
                    targets[i] = S(k, blocks)
            return [S(j, blocks, origin)], targets
        return [R], [R if la.kind != "R" else None, R if lb.kind != "R" else None]

    # -- ops along an axis -----------------------------------------------------------------------
    def op_softmax(self, op, ins):
        (l,) = ins
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        if l.kind == "S" and l.axis != k:
            return [l], [None]
        return [R], [None if l.kind == "R" else R]

    def norm(self, op, ins):
        l = ins[0]
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        rest = [None if x.kind == "R" else R for x in ins[1:]]
        if l.kind == "S" and l.axis < k:
            return [l], [None] + rest
        return [R], [None if l.kind == "R" else R] + rest

    def reduce(self, op, ins):
        (l,) = ins
        rank = op.operands[0].type.rank
        axs = norm_axes(op.attrs["axes"], rank) or tuple(range(rank))
        linear = op.opname in ("reduce_sum", "reduce_mean")
        if l.kind == "P":
            return ([P], [None]) if linear else ([R], [R])
        if l.kind == "S":
            if l.axis not in axs:
                shift = 0 if op.attrs["keepdims"] else sum(1 for x in axs if x < l.axis)
                return [S(l.axis - shift, l.blocks, l.origin)], [None]
            if op.opname == "reduce_sum" and not l.blocks:
                return [P], [None]
            return [R], [R]
        return [R], [None]

    def argreduce(self, op, ins):
        (l,) = ins
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        if l.kind == "S" and l.axis != k:
            shift = 0 if op.attrs["keepdims"] or l.axis < k else 1
            return [S(l.axis - shift, l.blocks, l.origin)], [None]
        return [R], [None if l.kind == "R" else R]

    def _along_axis(self, op, ins):
        (l,) = ins
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        if l.kind == "S" and l.axis != k:
            return [l] * len(op.results), [None]
        return [R] * len(op.results), [None if l.kind == "R" else R]

    op_topk = _along_axis
    op_cumsum = _along_axis

    # -- data movement ---------------------------------------------------------------------------
    def op_transpose(self, op, ins):
        (l,) = ins
        if l.kind == "S":
            return [S(op.attrs["perm"].index(l.axis), l.blocks, l.origin)], [None]
        return [l], [None]

    def op_reshape(self, op, ins):
        (l,) = ins
        if l.kind != "S":
            return [l], [None]
        src, dst = _dims(op.operands[0].type), _dims(op.results[0].type)
        j = _reshaped_axis(src, dst, l.axis)
        ok = j is not None and (not l.blocks or dst[j] == src[l.axis]) and self.splittable(dst[j], l.blocks)
        if not ok:
            return [R], [R]
        shape = list(op.attrs["shape"])
        shape[j] = Dim.const(dst[j] // self.n)
        self.attr_updates[op] = {"shape": tuple(shape)}
        return [S(j, l.blocks, l.origin)], [None]

    def op_expand(self, op, ins):
        (l,) = ins
        if l.kind != "S":
            return [l], [None]
        r = op.results[0].type.rank
        a = l.axis + r - op.operands[0].type.rank
        shape = list(op.attrs["shape"])
        j = a - (r - len(shape))
        if j >= 0 and shape[j] != 1:
            shape[j] = shape[j] // self.n
            self.attr_updates[op] = {"shape": tuple(shape)}
        return [S(a, l.blocks, l.origin)], [None]

    def op_concat(self, op, ins):
        rank = op.results[0].type.rank
        k = norm_axis(op.attrs["axis"], rank)
        if any(l.kind == "P" for l in ins):
            return [R], [None if l.kind == "R" else R for l in ins]
        splits = {(l.axis, l.blocks) for l in ins if l.kind == "S"}
        if not splits:
            return [R], [None] * len(ins)
        if len(splits) > 1 or next(iter(splits))[0] == k:
            return [R], [None if l.kind == "R" else R for l in ins]
        ((a, blocks),) = splits
        origin = next(l.origin for l in ins if l.kind == "S")
        return [S(a, blocks, origin)], [S(a, blocks) if l.kind == "R" else None for l in ins]

    def op_split(self, op, ins):
        (l,) = ins
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        nres = len(op.results)
        if l.kind == "P":
            return [P] * nres, [None]
        if l.kind != "S":
            return [R] * nres, [None]
        if l.axis != k:
            return [S(l.axis, l.blocks, l.origin)] * nres, [None]
        sizes = tuple(int(s) for s in op.attrs["sizes"])
        if l.blocks and l.blocks == sizes:
            self.attr_updates[op] = {"sizes": tuple(s // self.n for s in sizes)}
            return [S(k, (), l.origin)] * nres, [None]
        if l.origin is not None and not l.blocks and all(s % self.n == 0 for s in sizes):
            self.hints[l.origin] = sizes  # next round, the projection splits by these blocks
        return [R] * nres, [R]

    def op_slice(self, op, ins):
        (l,) = ins
        rank = op.operands[0].type.rank
        axs = {norm_axis(a, rank) for a in op.attrs["axes"]}
        if l.kind == "S" and l.axis in axs:
            return [R], [R]
        return [l], [None]

    def op_gather(self, op, ins):
        data, idx = op.operands
        ld, li = ins
        k = norm_axis(op.attrs["axis"], data.type.rank)
        if li.kind == "R" and ld.kind in "RP":
            if ld.kind == "P":
                return [P], [None, None]
            return [R], [None, None]
        if li.kind == "R" and ld.kind == "S" and ld.axis != k:
            a = ld.axis if ld.axis < k else ld.axis + idx.type.rank - 1
            return [S(a, ld.blocks, ld.origin)], [None, None]
        if ld.kind == "R" and li.kind == "S":
            return [S(k + li.axis, li.blocks, li.origin)], [None, None]
        return [R], [None if ld.kind == "R" else R, None if li.kind == "R" else R]


def _reshaped_axis(src: list[int], dst: list[int], a: int) -> int | None:
    """The output axis that carries input axis ``a``'s outermost part, when a split of ``a``
    stays one contiguous split: ``a`` is an output axis itself, the outermost of several it
    becomes, or the outermost of several input axes merged into one."""
    before = 1
    for d in src[:a]:
        before *= d
    acc = 1
    for j, d in enumerate(dst):
        if acc == before and d == 1 and src[a] != 1:
            continue  # a size-1 axis in between carries nothing
        if acc == before:
            divides = d == src[a] or (d < src[a] and src[a] % d == 0) or (d > src[a] and d % src[a] == 0)
            return j if divides and (d >= src[a] or _splits_outer(src[a], dst[j:])) else None
        acc *= d
        if acc > before:
            return None
    return None


def _splits_outer(size: int, rest: list[int]) -> bool:
    """``size`` is ``rest[0] * rest[1] * ...`` for a prefix of ``rest`` (it splits into those dims)."""
    acc = 1
    for d in rest:
        acc *= d
        if acc == size:
            return True
        if acc > size:
            return False
    return False
