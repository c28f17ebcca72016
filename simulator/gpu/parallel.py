"""Tensor parallelism over ``n`` GPUs (Megatron-LM style), derived from the graph.

Each value gets a layout: ``R`` (replicated: every GPU holds all of it), ``S`` (sharded:
each GPU holds 1/n, along heads or features) or ``P`` (partial sums: every GPU holds a full
tensor that must be summed across GPUs). Graph inputs, weights and shape-derived values
are ``FREE``: they take whatever layout their reader needs (the KV cache is held sharded
by head, a norm weight replicated). The rules:

* a GEMM on a replicated activation is column-parallel (weight split by output feature,
  result ``S``); on a sharded one it is row-parallel (weight split by input feature,
  result ``P``);
* attention products, softmax and elementwise ops keep ``S`` (heads are independent);
* a partial sum is all-reduced before anything but a broadcast elementwise op reads it
  (the residual add after the attention and MLP output projections);
* a norm or reduction of a sharded tensor first all-gathers it.

This reproduces Megatron's two all-reduces per decoder layer from the graph alone. Graph
outputs stay where they are (the KV cache on each GPU; logits as vocabulary shards,
which sampling combines with a negligible exchange).

Shared with the RDU ``shard`` pass (``rduflow.compiler.backend.shard_rules``): which values
are static (``FREE`` here, replicated there) and which collective makes a value whole. The
propagation itself is coarser than the pass's, on purpose (a cost model that only needs
each value's byte fraction): an ``S`` has no axis, any GEMM splits without a divisibility
check, a norm or reduction gathers any ``S``, any elementwise or data-movement op keeps a
``P`` whose other operands are free or broadcast, and graph inputs take their reader's layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rduflow.compiler.backend.shard_rules import to_whole
from rduflow.ir import Operation, Value

from .kernels import STATIC, WEIGHT, Formation, is_broadcast

R, S, P, FREE = "R", "S", "P", "free"  # the letters of the shard pass's Layout.kind, and FREE


@dataclass
class Sharding:
    n: int
    produced: dict[Value, str] = field(default_factory=dict)  # layout as the producer writes it
    sharded_ops: set[Operation] = field(default_factory=set)  # ops whose work is split n ways
    # value -> the collective that turns it into R before its first reader, in program order.
    collectives: dict[Value, str] = field(default_factory=dict)

    def factor(self, v: Value) -> int:
        """How many ways the value's bytes are split as its producer writes it."""
        return self.n if self.produced.get(v) == S else 1


def shard(formation: Formation, n: int) -> Sharding:
    sh = Sharding(n)
    if n == 1:
        return sh
    cls = formation.value_class
    cur: dict[Value, str] = {}  # layout as readers see it (after any collective)

    def layout(v: Value) -> str:
        if cls[v] in (STATIC, WEIGHT) or v.defining_op is None:
            return FREE
        return cur[v]

    def collect(v: Value) -> None:
        """``v`` made whole before its next reader."""
        sh.collectives.setdefault(v, to_whole(cur[v]))
        cur[v] = R

    for op in formation.graph.ops:
        if not op.results or cls[op.results[0]] != "act":
            continue
        ins = [layout(v) for v in op.operands]
        kind = op.opdef.kind
        if op in formation.weight_gathers:
            out = FREE  # rows of a weight: as sharded as the GEMM reading them
        elif op in formation.gemms:
            acts = [v for v in op.operands if layout(v) != FREE]
            for v in acts:
                if layout(v) == P:
                    collect(v)
            out = P if any(layout(v) == S for v in acts) else S
        elif kind == "matmul":
            for v in op.operands:
                if layout(v) == P:
                    collect(v)
            out = S if any(layout(v) == S for v in op.operands) else R
        elif kind in ("normalization", "reduction"):
            for v in op.operands:
                if layout(v) == P:
                    collect(v)
                elif layout(v) == S:
                    collect(v)
            out = R
        else:
            out = _pointwise(op, ins, layout, collect)
        for r in op.results:
            cur[r] = out
            sh.produced[r] = out
        if out in (S, P) or S in [layout(v) for v in op.operands]:
            sh.sharded_ops.add(op)
    for v in formation.graph.outputs:
        if v in cur and cur[v] == P:
            collect(v)
    return sh


def _pointwise(op: Operation, ins: list[str], layout, collect) -> str:
    out_t = op.results[0].type
    if P in ins:
        linear = op.opdef.kind in ("elementwise", "data_movement")
        if linear and all(layout(v) in (P, FREE) or is_broadcast(v.type, out_t) for v in op.operands):
            return P
        for v in op.operands:
            if layout(v) == P:
                collect(v)
    if S in [layout(v) for v in op.operands]:
        if any(layout(v) == R and not is_broadcast(v.type, out_t) for v in op.operands):
            for v in op.operands:
                if layout(v) == S:
                    collect(v)
            return R
        return S
    return R

