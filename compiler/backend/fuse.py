"""``fuse``: group operators into the streaming pipelines a dataflow chip runs.

``mode=auto`` (the default) makes one group per repeated block of the program (a whole
decoder layer, found by :mod:`.repeat`), one for the prologue before the first block and
one for the epilogue after the last (ops computed without weights first, then the others by
their depth from the inputs, so that a mask built from an input does not interleave with the
first layer); inside each, attention (QK^T, scale, mask, softmax,
times V, with the views of K and V feeding it) becomes a nested ``attention`` group: one
streaming unit, so the score matrix never leaves the chip. ``mode=none`` puts every
operator in a group of its own (SambaFlow's o0).

Values computed from weights and constants alone (the causal mask, rotary tables, a
transposed tied embedding) are recomputed inside every group that uses them rather than
passed through memory; weights and constants are referenced inside the groups that read
them. Every group is isolated from above: its operands are the activations it takes.
Groups carry ``fusion`` (layer, block, op, attention) and ``name`` attributes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rduflow.compiler.passes import ModulePass, PassContext, option
from rduflow.ir import Graph, Module, Operation, Trait, Value

from .graphs import depths, digraph
from .repeat import find_blocks
from .shard_rules import static_values

MODES = ("auto", "none")
# The attention pattern's own policy, not op properties: what may sit between QK^T and the
# softmax (scale, mask, cast), and which layout changes of K and V join the unit (not
# slices or expands: those stay with the ops that share them).
ATTENTION_CHAIN = {"mul", "add", "sub", "div", "where", "cast"}
VIEWS = {"transpose", "reshape", "cast"}


@dataclass(frozen=True)
class Fuse(ModulePass):
    """Group ops into streaming pipelines: whole decoder layers and attention units (or one op each)."""

    name: ClassVar[str] = "fuse"
    mode: str = option("auto", "auto: repeated blocks with attention units; none: every op its own group")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def apply(self, module: Module, ctx: PassContext) -> None:
        g = module.main
        if any(op.opname == "group" for op in g.ops):
            return  # already fused
        if self.mode == "none":
            local = {v for op in g.ops if op.opdef.has_trait(Trait.CONSTANT_LIKE) for v in op.results}
            main = [op for op in g.ops if not op.opdef.has_trait(Trait.CONSTANT_LIKE)]
            ranges = [([op], "op") for op in main]
        else:
            local = set(static_values(g))
            main = by_depth([op for op in g.ops if not all(r in local for r in op.results)], weighted_values(g))
            blocks = find_blocks(main, g.outputs)
            spans = blocks.ranges(len(main)) if blocks else [(0, len(main), False)]
            ranges = [(main[b:e], "layer" if rep else "block") for b, e, rep in spans]
        Grouper(g, local, nest_attention=self.mode == "auto").build(ranges)


def by_depth(ops: list[Operation], weighted: set[Value]) -> list[Operation]:
    """``ops`` with those computed without any weight first (an attention mask built from an
    input mask, which exporters put inside the first layer), then in order of their longest
    path from the graph's inputs (ties: program order). A topological order in which every
    layer reads as the same sequence of ops."""
    producer = {r: op for op in ops for r in op.results}
    depth = depths(digraph(ops, [(producer[v], op) for op in ops for v in op.operands if v in producer]))
    keyed = [(any(r in weighted for r in op.results), depth[op], i, op) for i, op in enumerate(ops)]
    return [t[-1] for t in sorted(keyed, key=lambda t: t[:3])]


def weighted_values(g: Graph) -> set[Value]:
    """Values with a weight among their sources."""
    out: set[Value] = set()
    for op in g.ops:
        if op.opname == "weight" or any(v in out for v in op.operands):
            out.update(op.results)
    return out


class Grouper:
    def __init__(self, g: Graph, local: set[Value], nest_attention: bool):
        self.g, self.local, self.nest = g, local, nest_attention
        self.defs = {r: op for op in g.ops for r in op.results}
        self.users: dict[Value, list[Operation]] = g.users()

    def build(self, ranges: list[tuple[list[Operation], str]]) -> None:
        g = self.g
        outputs = set(g.outputs)
        vm: dict[Value, Value] = {}
        new_ops: list[Operation] = []
        uncovered = [v for v in g.outputs if v in self.local and v not in vm]
        if uncovered:  # outputs computed from weights alone get a group of their own
            ranges = ranges + [([], "block")]
        for i, (ops, fusion) in enumerate(ranges):
            members = set(ops)
            extra = [v for v in uncovered if i == len(ranges) - 1]
            outs = [r for op in ops for r in op.results
                    if r in outputs or any(u not in members for u in self.users.get(r, []))] + extra
            name = _common_name(ops) or ("constants" if not ops else f"group{i}")
            group = self.group(ops, outs, {"fusion": fusion, "name": name}, vm)
            group.parent = g
            new_ops.append(group)
            vm.update(zip(outs, group.results))
        g.ops = new_ops
        g.set_outputs([vm.get(v, v) for v in g.outputs], list(g.output_names) or None)

    def group(self, ops: Sequence[Operation], outs: Sequence[Value], attrs: dict, vm: dict[Value, Value]) -> Operation:
        """A group op computing ``outs`` with ``ops`` (constant-like inputs recomputed inside)."""
        members = set(ops)
        inputs: list[Value] = []
        for op in ops:
            for v in op.operands:
                if v not in self.local and v.defining_op not in members and v not in inputs:
                    inputs.append(v)
        region = Graph("region", [v.type for v in inputs], [v.name for v in inputs])
        rmap = dict(zip(inputs, region.args))
        for op in ops:
            self.clone_locals(op.operands, region, rmap)
            region.append(op.clone(rmap))
        self.clone_locals(outs, region, rmap)
        region.set_outputs([rmap[v] for v in outs])
        if self.nest:
            nest_attention(region)
        operands = [vm.get(v, v) for v in inputs]
        return Operation("group", operands, [v.type for v in outs], attrs, [region],
                         result_names=[v.name for v in outs])

    def clone_locals(self, values: Iterable[Value], region: Graph, rmap: dict[Value, Value]) -> None:
        """Clone the constant-like ops that compute ``values`` into ``region``, operands first:
        the order follows first use, so identical layers get identical regions."""
        for v in values:
            if v in self.local and v not in rmap:
                d = self.defs[v]
                self.clone_locals(d.operands, region, rmap)
                region.append(d.clone(rmap))


def nest_attention(region: Graph) -> None:
    """Wrap each attention pattern of ``region`` in a nested ``attention`` group."""
    for members in attention_patterns(region):
        _wrap(region, members)


def attention_patterns(g: Graph) -> list[list[Operation]]:
    users = g.users()
    outputs = set(g.outputs)
    defs = {r: op for op in g.ops for r in op.results}
    static = static_values(g)
    sole = lambda v: len(users.get(v, [])) == 1 and v not in outputs
    found = []
    taken: set[Operation] = set()
    for sm in [op for op in g.ops if op.opname == "softmax"]:
        chain: list[Operation] = []
        v = sm.operands[0]
        while (d := defs.get(v)) is not None and d.opname in ATTENTION_CHAIN and sole(v):
            streamed = [x for x in d.operands if x not in static]
            if len(streamed) != 1 or not sole(streamed[0]):
                break
            chain.append(d)
            v = streamed[0]
        qk = defs.get(v)
        if qk is None or qk.opname != "matmul" or not sole(v):
            continue
        after: list[Operation] = []
        p = sm.results[0]
        while sole(p) and users[p][0].opname == "cast":
            after.append(users[p][0])
            p = after[-1].results[0]
        pv = users[p][0] if sole(p) else None
        if pv is None or pv.opname != "matmul" or pv.operands[0] is not p:
            continue
        members = _views(qk.operands[1], defs, sole) + [qk] + chain[::-1] + [sm] + after + _views(pv.operands[1], defs, sole) + [pv]
        if taken.isdisjoint(members):
            taken.update(members)
            found.append(members)
    return found


def _views(v: Value, defs, sole) -> list[Operation]:
    out = []
    while (d := defs.get(v)) is not None and d.opname in VIEWS and sole(v):
        out.append(d)
        v = d.operands[0]
    return out[::-1]


def _wrap(g: Graph, members: list[Operation]) -> None:
    inside = set(members)
    ordered = [op for op in g.ops if op in inside]
    users = g.users()
    outputs = set(g.outputs)
    outs = [r for op in ordered for r in op.results if r in outputs or any(u not in inside for u in users.get(r, []))]
    inputs: list[Value] = []
    for op in ordered:
        for v in op.operands:
            if v.defining_op not in inside and v not in inputs:
                inputs.append(v)
    region = Graph("region", [v.type for v in inputs], [v.name for v in inputs])
    rmap = dict(zip(inputs, region.args))
    for op in ordered:
        region.append(op.clone(rmap))
    region.set_outputs([rmap[v] for v in outs])
    group = Operation("group", inputs, [v.type for v in outs], {"fusion": "attention", "name": "attention"},
                      [region], result_names=[v.name for v in outs])
    group.parent = g
    at = g.ops.index(ordered[-1])
    g.ops = [op for op in g.ops[:at] if op not in inside] + [group] + [op for op in g.ops[at + 1:]]
    for old, new in zip(outs, group.results):
        g.replace_all_uses(old, new)


def _common_name(ops: Sequence[Operation]) -> str:
    """What the ops hold, by their locations: the longest prefix (in dotted or slashed parts)
    that two thirds of them share ("model.layers.3", "/m/model/layers.3"), or, when no matmul
    lies under it, the one its matmuls share: a final norm's few elementwise ops would
    otherwise name the LM head's section ("logits", not "model.norm")."""
    name = _shared_prefix(ops)
    matmuls = [op for op in ops if op.loc and op.opdef.kind == "matmul"]
    if matmuls and not any(_under(op.loc, name) for op in matmuls):
        return _shared_prefix(matmuls)
    return name


def _shared_prefix(ops: Sequence[Operation]) -> str:
    counts: Counter[tuple[str, ...]] = Counter()
    locs = [re.split(r"(?<=[./])", op.loc) for op in ops if op.loc]
    for parts in locs:
        counts.update(tuple(parts[:k]) for k in range(1, len(parts) + 1))
    common = [p for p, c in counts.items() if 3 * c >= 2 * len(locs)]
    return "".join(max(common, key=len)).rstrip("./") if common else ""


def _under(loc: str, prefix: str) -> bool:
    return bool(prefix) and (loc == prefix or (loc.startswith(prefix) and loc[len(prefix)] in "./"))
