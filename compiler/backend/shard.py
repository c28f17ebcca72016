"""``shard``: tensor parallelism over N sockets, Megatron style, found by layout propagation.

Every value gets a layout: replicated (R, every socket holds it whole), split (S, each
socket holds its piece of one axis) or partial (P, the whole is the sum of the sockets'
pieces). Layouts flow forward through the graph op by op (:mod:`.shard_rules`):

* a matmul whose right operand is a weight and whose left one is replicated splits the
  weight by columns (its output is split); one whose left operand is split along the
  contraction axis splits the weight by rows (its output is partial): a column-parallel
  projection followed by a row-parallel one, with attention heads and MLP columns split
  between them, is what falls out on a decoder;
* elementwise ops, reshapes, transposes, softmax and normalisations keep a split where
  their semantics allow; a replicated operand is cut to match (a local slice, free);
* a partial value is summed by an ``all_reduce`` where an op needs the whole (the residual
  add after a row-parallel projection); a split value needs an ``all_gather``.

A gather that a column split forces (a norm over a split axis, heads that do not divide
among the sockets) costs communication that replicating the projection would not, so the
projection is marked *replicated* and the propagation runs again, until nothing new is
learnt. A ``split`` along a split axis (GPT-2's fused QKV) instead teaches the projection to
split its weight by blocks (each socket takes its part of Q, of K and of V).

Fewer heads than sockets (8 KV heads on 16 sockets) do not replicate attention: a split with
*copies* gives each head to a group of consecutive sockets (Megatron's and vLLM's KV-head
replication). The K/V projections split into whole heads, the KV cache arrives and leaves
that way, and the query heads of a KV head are cut among the sockets of its group (the
split's *inner* axis), so the query projection, the output projection and the MLP stay split
over all sockets. Going from a split with copies to a finer one is a local slice (the copies
hold the whole of what the finer pieces cut), never communication.

The result is one program for every socket (SPMD): weights and cut values go through
``spmd.shard``, collectives are ``placed.collective`` ops, and the main graph's arguments and
outputs are the sockets' pieces, their layouts in the module attributes (:mod:`.spmd`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rduflow.compiler.passes import ModulePass, PassContext, option
from rduflow.ir import Builder, Graph, Module, Operation, Value
from rduflow.ir.program import SOCKETS, SPMD_ARGS, SPMD_OUTPUTS

from .shard_rules import ALL_GATHER, Layout, LayoutAssignment, Rules, local_shape, static_values, to_whole
from .spmd import Spread

MAX_ROUNDS = 12


@dataclass(frozen=True)
class Shard(ModulePass):
    """Split attention heads and MLP columns over sockets (tensor parallelism), adding collectives."""

    name: ClassVar[str] = "shard"
    sockets: int = option(1, "sockets the program runs on")

    def __post_init__(self) -> None:
        if self.sockets < 1:
            raise ValueError(f"sockets must be >= 1, got {self.sockets}")

    def apply(self, module: Module, ctx: PassContext) -> None:
        g = module.main
        module.attrs[SOCKETS] = self.sockets
        if self.sockets == 1:
            return
        plan = assign_layouts(g, self.sockets)
        new = _Materializer(g, module, plan, self.sockets).build()
        module.graphs[g.name] = new
        module.attrs[SPMD_ARGS] = tuple(_spread(plan.layout(a)) for a in g.args)
        module.attrs[SPMD_OUTPUTS] = tuple(_spread(_output_layout(plan.layout(v))) for v in g.outputs)


def assign_layouts(g: Graph, sockets: int) -> LayoutAssignment:
    """Propagate layouts until no projection needs to fall back to replication."""
    static = static_values(g)
    banned: set[Operation] = set()
    hints: dict[Operation, Layout] = {}
    fixed: dict[Value, Layout] = {}
    for _ in range(MAX_ROUNDS):
        plan = Rules(g, sockets, static, banned, hints, fixed).run()
        if plan.bans - banned or any(hints.get(k) != v for k, v in plan.hints.items()):
            banned |= plan.bans
            hints.update(plan.hints)
            continue
        wanted = plan.arg_requests()
        if wanted.keys() - fixed.keys():
            fixed.update(wanted)  # arguments every use wants split arrive split
            continue
        return plan
    return plan  # not settled: still a correct program, with more communication


def _output_layout(lay: Layout) -> Layout:
    """How an output leaves: as it is, unless partial or cut over two axes (then whole)."""
    return Layout.R if lay.kind == "P" or lay.inner >= 0 else lay


def _spread(lay: Layout) -> Spread:
    return Spread(axis=lay.axis, blocks=lay.blocks, copies=lay.copies) if lay.kind == "S" else Spread()


class _Materializer:
    """Rebuild the graph with the plan's layouts: local shapes, shards and collectives."""

    def __init__(self, g: Graph, module: Module, plan: LayoutAssignment, sockets: int):
        self.g, self.module, self.plan, self.n = g, module, plan, sockets
        self.vm: dict[Value, Value] = {}
        self.cache: dict[tuple[Value, Layout], Value] = {}

    def build(self) -> Graph:
        g, plan = self.g, self.plan
        types = [plan.local_type(a) for a in g.args]
        self.new = Graph(g.name, types, [a.name for a in g.args])
        self.b = Builder(self.new, self.module)
        self.vm.update(zip(g.args, self.new.args))
        for op in g.ops:
            operands = [self.convert(v, t) for v, t in zip(op.operands, plan.targets(op))]
            attrs = {**op.attrs, **plan.attr_updates.get(op, {})}
            names = [r.name for r in op.results]
            if op.opname == "weight" or op.regions:
                new = Operation(op.opname, operands, [r.type for r in op.results], attrs,
                                [r.clone() for r in op.regions], op.loc, names)
                self.new.append(new)
            else:
                new = self.b.op(op.opname, operands, attrs, loc=op.loc, names=names)
            self.vm.update(zip(op.results, new.results))
        outs = [self.convert(v, _output_layout(plan.layout(v))) for v in g.outputs]
        self.new.set_outputs(outs, list(g.output_names) or None)
        return self.new

    def convert(self, v: Value, target: Layout | None) -> Value:
        cur = self.plan.layout(v)
        if target is None or target == cur:
            return self.vm[v]
        key = (v, target)
        if key not in self.cache:
            self.cache[key] = self._convert(v, cur, target)
        return self.cache[key]

    def _convert(self, v: Value, cur: Layout, target: Layout) -> Value:
        b, n = self.b, self.n
        if target.kind == "R":
            x = self.vm[v]
            if cur.kind == "P":
                return b.emit("placed.collective", x, kind=to_whole(cur.kind), group=n, name=_name(v, "reduced"))
            assert not cur.blocks, "a blocked split is never gathered (the planner replicates its source)"
            if cur.copies > 1:
                return self.gather_groups(v, cur)
            return b.emit("placed.collective", x, kind=to_whole(cur.kind), group=n, axis=cur.axis,
                          name=_name(v, "gathered"))
        if cur.kind == "S" and cur.refines(target):
            return self.cut(self.vm[v], cur.copies, target, v)
        if cur.kind != "R":  # S or P to another split: make it whole first
            return self.cut(self.convert(v, Layout.R), n, target, v)
        d = v.defining_op
        if d is not None and d.opname == "transpose" and v in self.plan.static:
            # A split of a transposed weight (a tied LM head) is a transposed split of the weight.
            perm = d.attrs["perm"]
            inner = self.convert(d.operands[0], target.moved(lambda a: perm[a]))
            return b.emit("transpose", inner, perm=perm, name=_name(v, "part"))
        return self.cut(self.vm[v], n, target, v)

    def cut(self, x: Value, held: int, target: Layout, v: Value) -> Value:
        """Cut ``x``, each socket's piece ``s // held`` of ``target.axis`` (``held`` = N: the
        whole), down to ``target``: ``spmd.shard`` ops, local slices."""
        if held > target.copies:
            x = self.b.emit("spmd.shard", x, axis=target.axis, parts=held // target.copies, blocks=target.blocks,
                            stride=target.copies, name=_name(v, "part"))
        if target.inner >= 0:
            x = self.b.emit("spmd.shard", x, axis=target.inner, parts=target.copies, name=_name(v, "part"))
        return x

    def gather_groups(self, v: Value, cur: Layout) -> Value:
        """A split with copies made whole: every socket's piece gathered on a new leading
        axis, one of each group's copies kept (unless they cut ``inner``), and the piece axes
        put back in front of the axes they cut."""
        b, n, c = self.b, self.n, cur.copies
        local = local_shape(v.type.shape, cur, n)
        x = b.emit("reshape", self.vm[v], shape=[1, *local])
        x = b.emit("placed.collective", x, kind=ALL_GATHER, group=n, axis=0)
        x = b.emit("reshape", x, shape=[n // c, c, *local])
        if cur.inner < 0:
            x = b.emit("slice", x, axes=[1], starts=[0], ends=[1])
        inner = cur.inner if cur.inner >= 0 else cur.axis
        perm = [p for k in range(len(local)) for p in [0] * (k == cur.axis) + [1] * (k == inner) + [k + 2]]
        x = b.emit("transpose", x, perm=perm)
        return b.emit("reshape", x, shape=list(v.type.shape), name=_name(v, "gathered"))


def _name(v: Value, what: str) -> str | None:
    return f"{v.name}.{what}" if v.name else None

