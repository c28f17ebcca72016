"""Layout rules of the ``shard`` pass: how each op carries replicated, split and partial values.

:class:`Rules` walks a flat graph once, giving every value a :class:`Layout` and every op
the layouts its operands must be converted to first (``None``: as they are). A split value
converted to another layout is a *forced gather*, unless each socket's new piece lies within
the one it holds (:meth:`Layout.refines`: a local slice); when a column-split projection is
at its origin, that projection is banned (replicated) for the next round, or, where the
split cut a head among sockets, split more coarsely (``copies``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from rduflow.ir import Graph, OpDef, Operation, TensorType, Trait, Value
from rduflow.ir.ops.common import axes as norm_axes
from rduflow.ir.ops.common import axis as norm_axis
from rduflow.ir.ops.elementwise import Elementwise
from rduflow.ir.ops.nn import Norm
from rduflow.ir.ops.reduce import ArgReduce, Reduce

@dataclass(frozen=True)
class Layout:
    """How N sockets hold a value (equality ignores ``origin``).

    ``R``: each socket holds it whole. ``P``: the whole is the sum of the sockets' values.
    ``S``: cut along ``axis`` (each of its ``blocks`` separately, if any) into N / ``copies``
    pieces, socket s holding piece s // ``copies``: with fewer KV heads than sockets, a group
    of ``copies`` sockets shares a head. With ``inner``, the sockets of a group do not hold
    the same values but cut axis ``inner`` among them (socket s takes piece s % ``copies``):
    a KV head's query heads, one share per socket of its group.
    """

    kind: str  # "R" replicated, "S" split, "P" partial sums
    axis: int = -1
    blocks: tuple[int, ...] = ()
    copies: int = 1
    inner: int = -1
    origin: Operation | None = field(default=None, compare=False, hash=False)  # the column split behind an S

    R: ClassVar[Layout]
    P: ClassVar[Layout]

    @property
    def axes(self) -> tuple[int, ...]:
        return (self.axis,) if self.inner < 0 else (self.axis, self.inner)

    def moved(self, where) -> Layout | None:
        """The same split with its axes renumbered by ``where`` (None if that drops one)."""
        a = where(self.axis)
        i = where(self.inner) if self.inner >= 0 else -1
        return None if a is None or i is None else replace(self, axis=a, inner=i)

    def refines(self, other: Layout) -> bool:
        """``other`` cuts the same axis finer: each socket's piece of it lies within its piece
        of this one, so converting is a local slice (no communication)."""
        return (self.kind == other.kind == "S" and self.inner < 0 and not self.blocks and self.axis == other.axis
                and other.inner != self.axis and not other.blocks and self.copies % other.copies == 0
                and (other.copies < self.copies or other.inner >= 0))


Layout.R = Layout("R")
Layout.P = Layout("P")
R, P = Layout.R, Layout.P


def S(axis: int, blocks: tuple[int, ...] = (), origin: Operation | None = None, copies: int = 1,
      inner: int = -1) -> Layout:
    return Layout("S", axis, tuple(blocks), copies, inner, origin)


ALL_REDUCE, ALL_GATHER = "all_reduce", "all_gather"


def to_whole(kind: str) -> str:
    """The collective that makes a value of layout ``kind`` whole on every socket: partial
    sums are all-reduced, a split is all-gathered (the RDU's and the GPU model's rule)."""
    return {"P": ALL_REDUCE, "S": ALL_GATHER}[kind]


def static_values(g: Graph) -> dict[Value, bool]:
    """Values computed without the graph's arguments (weights, constants, shapes), each
    mapped to whether a weight is among its sources. Every socket or GPU holds them, or
    computes them where they are read: they never need a collective."""
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
class LayoutAssignment:
    graph: Graph
    sockets: int
    static: dict[Value, bool]
    layouts: dict[Value, Layout]
    op_targets: dict[Operation, list[Layout | None]]
    attr_updates: dict[Operation, dict]
    bans: set[Operation]
    hints: dict[Operation, Layout]

    def layout(self, v: Value) -> Layout:
        return self.layouts[v]

    def targets(self, op: Operation) -> list[Layout | None]:
        return self.op_targets[op]

    def local_type(self, v: Value) -> TensorType:
        lay = self.layouts[v]
        if lay.kind != "S":
            return v.type
        return TensorType(local_shape(v.type.shape, lay, self.sockets), v.type.dtype)

    def arg_requests(self) -> dict[Value, Layout]:
        """Arguments that every use converts to the same split of one axis: they may arrive split."""
        wants: dict[Value, set] = {a: set() for a in self.graph.args if self.layouts[a].kind == "R"}
        for op, targets in self.op_targets.items():
            for v, t in zip(op.operands, targets):
                if v in wants:
                    wants[v].add(t)
        for v in self.graph.outputs:
            if v in wants:
                wants[v].add(None)
        out = {}
        for a, ts in wants.items():
            if len(ts) == 1:
                (t,) = ts
                if t is not None and t.kind == "S" and t.inner < 0:
                    out[a] = replace(t, origin=None)
        return out


def local_shape(shape, lay: Layout, sockets: int) -> list:
    """``shape`` as one socket holds it under ``lay``."""
    out = list(shape)
    if lay.kind == "S":
        out[lay.axis] = out[lay.axis] // (sockets // lay.copies)
        if lay.inner >= 0:
            out[lay.inner] = out[lay.inner] // lay.copies
    return out


class Rules:
    def __init__(self, g: Graph, sockets: int, static: dict[Value, bool], banned: set[Operation],
                 hints: dict[Operation, Layout], fixed: dict[Value, Layout]):
        self.g, self.n, self.static = g, sockets, static
        self.banned, self.hints_in, self.fixed = banned, hints, fixed
        self.lay: dict[Value, Layout] = {}
        self.targets: dict[Operation, list[Layout | None]] = {}
        self.attr_updates: dict[Operation, dict] = {}
        self.bans: set[Operation] = set()
        self.hints: dict[Operation, Layout] = {}

    def run(self) -> LayoutAssignment:
        for a in self.g.args:
            self.lay[a] = self.fixed.get(a, R)
        for op in self.g.ops:
            ins = [self.lay[v] for v in op.operands]
            if all(v in self.static for v in op.operands):  # weights, constants, shapes and values of them
                outs, targets = self.replicated(op, ins)
            else:
                outs, targets = self.handler(op)(op, ins)
            for cur, t in zip(ins, targets):
                if t is None or cur.kind != "S" or t == cur or cur.refines(t) or cur.origin is None:
                    continue
                # A forced gather: split the projection by whole heads (a group of sockets
                # per head) where it cut heads among sockets, else replicate it.
                if cur.inner >= 0:
                    self.hint(cur.origin, copies=cur.copies)
                elif cur.origin not in self.hints:
                    self.bans.add(cur.origin)
            self.targets[op] = targets
            self.lay.update(zip(op.results, outs))
        return LayoutAssignment(self.g, self.n, self.static, self.lay, self.targets, self.attr_updates, self.bans, self.hints)

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
        return getattr(self, "op_" + op.opname, self.replicated)  # a rule of the op's own

    # -- helpers ---------------------------------------------------------------------------------
    def splittable(self, size: int, blocks: tuple[int, ...] = (), copies: int = 1) -> bool:
        pieces = self.n // copies
        return all(b % pieces == 0 for b in blocks) if blocks else size % pieces == 0 and size >= pieces

    def hint(self, projection: Operation, **how) -> None:
        """How ``projection`` should split its columns next round (blocks, copies)."""
        self.hints[projection] = replace(self.hints.get(projection) or self.hints_in.get(projection, S(-1)), **how)

    def replicated(self, op, ins):
        """Whole operands in, whole results out (ops without a rule)."""
        return [R] * len(op.results), [None if l.kind == "R" else R for l in ins]

    def meet(self, values: list[Value], ins: list[Layout], rank: int):
        """The split of a result of ``rank`` dims that its operands' splits agree on (the finest,
        which every other refines to; operands broadcast against the result) and the layout each
        operand must take for it (``None``: as it is); ``None`` if they disagree."""
        splits = [l.moved(lambda a, v=v: a + rank - v.type.rank) for l, v in zip(ins, values) if l.kind == "S"]
        if not splits:
            return R, [None] * len(ins)
        out = next((c for c in splits if all(s == c or s.refines(c) for s in splits)), None)
        if out is None:
            return None
        targets: list[Layout | None] = []
        for l, v in zip(ins, values):
            want = _line_up(out, v, rank)
            if want is None or not (l.kind == "R" or l == want or l.refines(want)):
                return None
            targets.append(None if l == want else replace(want, origin=None))
        return out, targets

    # -- elementwise -----------------------------------------------------------------------------
    def elementwise(self, op, ins):
        targets: list[Layout | None] = [None] * len(ins)
        parts = [l.kind == "P" for l in ins]
        if any(parts):
            if _keeps_partial(op.opdef, [l.kind for l in ins]):
                return [P], targets
            targets = [R if p else None for p in parts]
            ins = [R if p else l for p, l in zip(parts, ins)]
        met = self.meet(op.operands, ins, op.results[0].type.rank)
        if met is None:
            return [R], [R if l.kind != "R" else t for l, t in zip(ins, targets)]
        out, cuts = met
        return [out], [c if c is not None else t for c, t in zip(cuts, targets)]

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

        def role(lay, rank, left):
            if lay.kind != "S":
                return None
            if lay.axis < rank - 2 and lay.inner < rank - 2:
                return "batch"
            if lay.inner >= 0:
                return "other"  # heads cut over a matrix axis: made whole
            if lay.axis == rank - 1:
                return "K" if left else "N"
            return "M" if left else "K"

        ra_role, rb_role = role(la, ra, True), role(lb, rb, False)
        if la.kind == "R" and lb.kind == "R":
            n_dim = _dims(b.type)[-1]
            h = self.hints_in.get(op, S(-1))
            if self.static.get(b) and a not in self.static and op not in self.banned and \
                    self.splittable(n_dim, h.blocks, h.copies):
                return [S(r - 1, h.blocks, op, h.copies)], [None, S(rb - 1, h.blocks, copies=h.copies)]
            return [R], [None, None]
        if ra_role == "K" and rb_role == "K" and la.blocks == lb.blocks and la.copies == lb.copies == 1:
            return [P], [None, None]
        # A contraction split with copies is cut further, locally, so that the partial sums add up once.
        if ra_role == "K" and lb.kind == "R" and (ka := self._once(la, a)) is not None:
            return [P], [None if ka == la else ka, S(rb - 2, la.blocks)]
        if rb_role == "K" and la.kind == "R" and (kb := self._once(lb, b)) is not None:
            return [P], [S(ra - 1, lb.blocks), None if kb == lb else kb]
        if ra_role == "M" and lb.kind == "R":
            return [replace(la, axis=r - 2)], [None, None]
        if rb_role == "N" and la.kind == "R":
            return [replace(lb, axis=r - 1)], [None, None]
        if "batch" in (ra_role, rb_role):
            # A split along another axis is made whole first.
            ins = [l if rl in (None, "batch") else R for l, rl in ((la, ra_role), (lb, rb_role))]
            met = self.meet([a, b], ins, r)
            if met is not None:
                out, cuts = met
                return [out], [c if c is not None or l == i else R for c, l, i in zip(cuts, (la, lb), ins)]
        return [R], [R if la.kind != "R" else None, R if lb.kind != "R" else None]

    def _once(self, lay: Layout, v: Value) -> Layout | None:
        """``lay`` split over all sockets without copies, if a local slice gets there."""
        if lay.copies == 1:
            return lay
        if lay.inner >= 0 or lay.blocks or not self.splittable(_dims(v.type)[lay.axis]):
            return None
        return replace(lay, copies=1, origin=None)

    # -- ops along an axis -----------------------------------------------------------------------
    def op_softmax(self, op, ins):
        (l,) = ins
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        if l.kind == "S" and k not in l.axes:
            return [l], [None]
        return [R], [None if l.kind == "R" else R]

    def norm(self, op, ins):
        l = ins[0]
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        rest = [None if x.kind == "R" else R for x in ins[1:]]
        if l.kind == "S" and max(l.axes) < k:
            return [l], [None] + rest
        return [R], [None if l.kind == "R" else R] + rest

    def reduce(self, op, ins):
        (l,) = ins
        rank = op.operands[0].type.rank
        axs = norm_axes(op.attrs["axes"], rank) or tuple(range(rank))
        linear = op.opdef.has_trait(Trait.ADDITIVE)
        if l.kind == "P":
            return ([P], [None]) if linear else ([R], [R])
        if l.kind == "S":
            keep = op.attrs["keepdims"]
            kept = l.moved(lambda a: None if a in axs else a - (0 if keep else sum(1 for x in axs if x < a)))
            if kept is not None:
                return [kept], [None]
            if op.opname == "reduce_sum" and not l.blocks and l.copies == 1:
                return [P], [None]
            return [R], [R]
        return [R], [None]

    def argreduce(self, op, ins):
        (l,) = ins
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        if l.kind == "S":
            keep = op.attrs["keepdims"]
            kept = l.moved(lambda a: None if a == k else a - (0 if keep or a < k else 1))
            if kept is not None:
                return [kept], [None]
        return [R], [None if l.kind == "R" else R]

    def _along_axis(self, op, ins):
        (l,) = ins
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        if l.kind == "S" and k not in l.axes:
            return [l] * len(op.results), [None]
        return [R] * len(op.results), [None if l.kind == "R" else R]

    op_topk = _along_axis
    op_cumsum = _along_axis

    # -- data movement ---------------------------------------------------------------------------
    def op_transpose(self, op, ins):
        (l,) = ins
        if l.kind == "S":
            return [l.moved(op.attrs["perm"].index)], [None]
        return [l], [None]

    def op_reshape(self, op, ins):
        (l,) = ins
        if l.kind != "S":
            return [l], [None]
        src, dst = _dims(op.operands[0].type), _dims(op.results[0].type)
        j = _reshaped_axis(src, dst, l.axis)
        if j is None:
            return [R], [R]
        if l.inner >= 0:
            # Query heads cut over (KV head, head of its group): merged into one axis, they are
            # a split over all sockets again.
            if l.inner != l.axis + 1 or dst[j] % (src[l.axis] * src[l.inner]):
                return [R], [R]
            out = S(j, origin=l.origin)
        elif (not l.blocks or dst[j] == src[l.axis]) and self.splittable(dst[j], l.blocks, l.copies):
            out = replace(l, axis=j)
        elif l.copies == 1 and not l.blocks and dst[j] > 1 and self.n % dst[j] == 0:
            # Fewer heads than sockets: a group of sockets per head, each taking its part of
            # the next axis (a KV head's query heads). If that axis does not divide, or a later
            # op needs it whole, the projection splits by whole heads.
            copies = self.n // dst[j]
            if j + 1 == len(dst) or dst[j + 1] % copies:
                if l.origin is not None:
                    self.hint(l.origin, copies=copies)
                return [R], [R]
            out = S(j, origin=l.origin, copies=copies, inner=j + 1)
        else:
            return [R], [R]
        self.attr_updates[op] = {"shape": tuple(local_shape(op.attrs["shape"], out, self.n))}
        return [out], [None]

    def op_expand(self, op, ins):
        (l,) = ins
        if l.kind != "S":
            return [l], [None]
        r = op.results[0].type.rank
        out = l.moved(lambda a: a + r - op.operands[0].type.rank)
        shape = list(op.attrs["shape"])
        for a, parts in ((out.axis, self.n // out.copies), (out.inner, out.copies)):
            j = a - (r - len(shape))
            if a >= 0 and j >= 0 and shape[j] != 1:  # a 1 keeps the operand's (local) size
                shape[j] = shape[j] // parts
        self.attr_updates[op] = {"shape": tuple(shape)}
        return [out], [None]

    def op_concat(self, op, ins):
        k = norm_axis(op.attrs["axis"], op.results[0].type.rank)
        if any(l.kind == "P" for l in ins):
            return [R], [None if l.kind == "R" else R for l in ins]
        splits = {l for l in ins if l.kind == "S"}
        if not splits:
            return [R], [None] * len(ins)
        (lay, *others) = splits
        if others or k in lay.axes:
            return [R], [None if l.kind == "R" else R for l in ins]
        origin = next(l.origin for l in ins if l.kind == "S")
        return [replace(lay, origin=origin)], [replace(lay, origin=None) if l.kind == "R" else None for l in ins]

    def op_split(self, op, ins):
        (l,) = ins
        k = norm_axis(op.attrs["axis"], op.operands[0].type.rank)
        nres = len(op.results)
        if l.kind == "P":
            return [P] * nres, [None]
        if l.kind != "S":
            return [R] * nres, [None]
        if k not in l.axes:
            return [l] * nres, [None]
        sizes = tuple(int(s) for s in op.attrs["sizes"])
        pieces = self.n // l.copies
        if l.inner < 0 and l.blocks and l.blocks == sizes:
            self.attr_updates[op] = {"sizes": tuple(s // pieces for s in sizes)}
            return [replace(l, blocks=())] * nres, [None]
        if l.origin is not None and l.inner < 0 and not l.blocks and all(s % pieces == 0 for s in sizes):
            self.hint(l.origin, blocks=sizes)  # next round, the projection splits by these blocks
        return [R] * nres, [R]

    def op_slice(self, op, ins):
        (l,) = ins
        rank = op.operands[0].type.rank
        axs = {norm_axis(a, rank) for a in op.attrs["axes"]}
        if l.kind == "S" and axs & set(l.axes):
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
        if li.kind == "R" and ld.kind == "S":
            out = ld.moved(lambda a: None if a == k else a if a < k else a + idx.type.rank - 1)
            if out is not None:
                return [out], [None, None]
        if ld.kind == "R" and li.kind == "S":
            return [li.moved(lambda a: k + a)], [None, None]
        return [R], [None if ld.kind == "R" else R, None if li.kind == "R" else R]


def _keeps_partial(opdef: type[OpDef], kinds: list[str]) -> bool:
    """Whether an elementwise op on operands of these layout kinds (R, S, P) computes partial
    sums of its result from the sockets' partial sums, by its linearity."""
    if opdef.has_trait(Trait.ADDITIVE):
        return all(k == "P" for k in kinds)
    if opdef.has_trait(Trait.MULTILINEAR):
        return kinds.count("P") == 1 and all(k in "PR" for k in kinds)
    if opdef.has_trait(Trait.LINEAR_IN_FIRST):
        return kinds[0] == "P" and all(k == "R" for k in kinds[1:])
    return False


def _line_up(out: Layout, v: Value, rank: int) -> Layout | None:
    """The split ``out`` of a result of ``rank`` dims as operand ``v`` must hold it: in ``v``'s
    axes, without those it broadcasts (R if it broadcasts them all); None if it broadcasts
    the split axis but not the inner one."""
    dims = _dims(v.type)

    def here(a: int) -> int | None:
        k = a - (rank - len(dims))
        return k if k >= 0 and dims[k] != 1 else None

    a = here(out.axis)
    i = here(out.inner) if out.inner >= 0 else None
    if a is None:
        return R if i is None else None
    return replace(out, axis=a, inner=-1 if i is None else i)


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
