"""``lower``: sections become placed sections; consecutive identical ones become one, repeated.

Each section is designed (:mod:`.design`) and written as a ``placed.section``
(:mod:`.emit`). Sections that compute the same way (decoder layers) are designed once.
A run of consecutive identical sections (layer after layer) becomes one placed section
with ``repeat`` = the run's length, when its memory traffic has one meaning for every call:

* an input that call i+1 takes from call i's output (the hidden state) is ``carried``: one
  tensor, read and written by every call;
* an input or output that is a different model input or output per call (each layer's KV
  cache) and a weight that differs per call (each layer's weights) is a stack of slabs,
  ``per_call``: call i reads or writes slab i;
* anything else (a per-layer activation read by a later section) ends the run.

Memory is described in module attributes, so the placed program alone can be run:

* ``memory.stores``: ``(store, kind, spread, sources)``, one per tensor in each socket's
  memory: ``kind`` is weight, input, output, scratch or ``cache:AXIS`` (an output that
  extends an input in place, the KV cache: it starts as the input, from 0 along AXIS, and
  the section writes the new rows after it); ``spread`` how the model's tensor is cut among
  the sockets (:mod:`.spmd`); ``sources`` the model's weight or input name for each slab;
* ``memory.tensors``: ``(tensor, store, axis, start, stop)``: what each ``mem_read`` and
  ``mem_write`` names, a part of a store along ``axis`` (``-1``: all of it);
* ``memory.tiers``: ``(store, tier)``, HBM or DDR (:mod:`.memplan`);
* ``memory.inputs`` and ``memory.outputs``: the model's inputs by name, and each output as
  ``(name, store, slab, spread)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rduflow.compiler.passes import ModulePass, PassContext
from rduflow.ir import Module, Operation, Value

from .design import Design, MemRef, design_section, transfer_agcus
from .emit import Tensor, emit_section
from .errors import CompileError
from .repeat import op_signature
from .spmd import ARGS, OUTPUTS, Spread, spreads

STORES, TENSORS, TIERS = "memory.stores", "memory.tensors", "memory.tiers"
INPUTS, OUTPUTS_ATTR = "memory.inputs", "memory.outputs"


@dataclass(frozen=True)
class Lower(ModulePass):
    """Turn sections into placed sections (units, streams, buffers, memory traffic), looping repeated ones."""

    name: ClassVar[str] = "lower"
    needs_target: ClassVar[bool] = True

    def apply(self, module: Module, ctx: PassContext) -> None:
        arch = ctx.target_for(self)
        g = module.main
        sections = [op for op in g.ops if op.opname == "section"]
        if len(sections) != len(g.ops):
            raise CompileError("lower expects a graph of sections (run the section pass first)")
        memory = Memory(module, arch)
        designs: dict[tuple, Design] = {}
        placed: list[Operation] = []
        for start, count in _runs(sections, memory):
            sec = sections[start]
            ins, outs = memory.model_inputs(sec), memory.model_outputs(sec)
            key = (op_signature(sec), ins, outs)
            if key not in designs:
                designs[key] = design_section(sec.attrs["name"], sec.regions[0], transfer_agcus(arch),
                                              lambda i, j, ins=ins, outs=outs: ins[i] and outs[j])
            run = sections[start:start + count]
            name = sec.attrs["name"] if count == 1 else _stacked((sec.attrs["name"], run[1].attrs["name"]))
            design = designs[key]
            placed.append(emit_section(design, name, count, lambda mem, run=run, d=design: memory.tensor(run, d, mem),
                                       memory.sockets))
        attrs = memory.attrs()
        g.ops = []
        for op in placed:
            g.append(op)
        g.set_outputs([])
        module.attrs.update(attrs)


def _runs(sections: list[Operation], memory: Memory) -> list[tuple[int, int]]:
    """(start, count) of each run of consecutive identical sections that can loop."""
    keys = [op_signature(s) for s in sections]
    out = []
    i = 0
    while i < len(sections):
        j = i + 1
        while j < len(sections) and keys[j] == keys[i]:
            j += 1
        if j - i > 1 and memory.can_loop(sections[i:j]):
            out.append((i, j - i))
        else:
            out.extend((k, 1) for k in range(i, j))
        i = j
    return out


class Memory:
    """Names of memory tensors and the tables that describe them."""

    def __init__(self, module: Module, arch):
        self.module = module
        g = module.main
        self.sockets = int(module.attrs.get("sockets", 1))
        self.arg_spread = dict(zip(g.args, spreads(module, ARGS, len(g.args))))
        self.out_spread = spreads(module, OUTPUTS, len(g.outputs))
        self.outputs = {v: (n, sp) for v, n, sp in zip(g.outputs, g.output_names, self.out_spread)}
        self.ddr = set(module.attrs.get("memory.ddr", ()))
        self.only_ddr = arch.memory.hbm is None
        self.users: dict[Value, list[Operation]] = {}
        for op in g.ops:
            for v in op.operands:
                self.users.setdefault(v, []).append(op)
        self.parent: dict[Value, Value] = {}  # carried chains share a store
        self.stores: dict[str, tuple] = {}
        self.tensors: dict[str, tuple] = {}
        self.location: dict[Value, tuple[str, int]] = {}  # value -> (store, slab) that holds it

    # -- which value is which store ----------------------------------------------------------------
    def root(self, v: Value) -> Value:
        while v in self.parent:
            v = self.parent[v]
        return v

    def store_of(self, v: Value) -> tuple[str, str, Spread, tuple[str, ...], str]:
        """(store, kind, spread, sources, memory-plan identity) of an activation."""
        v = self.root(v)
        if v in self.location:  # written already, by an earlier section: read it where it is
            store = self.location[v][0]
            _, kind, spread, sources, _ = self.stores[store]
            return store, kind, Spread.parse(spread), sources, ""
        if v.owner is self.module.main:
            return v.name, "input", self.arg_spread[v], (v.name,), f"input:{v.name}"
        if v in self.outputs:
            name, sp = self.outputs[v]
            return name, "output", sp, (name,), f"output:{name}"
        return v.name, "scratch", Spread(), (), f"value:{v.name}"

    def model_inputs(self, section: Operation) -> tuple[bool, ...]:
        return tuple(v.owner is self.module.main for v in section.operands)

    def model_outputs(self, section: Operation) -> tuple[bool, ...]:
        return tuple(r in self.outputs for r in section.results)

    def can_loop(self, run: list[Operation]) -> bool:
        """Whether every memory slot of the run has one meaning for all calls (see the module
        docstring); records the carried chains when it does."""
        chains: list[tuple[Value, Value]] = []
        for i in range(len(run[0].operands)):
            vs = [s.operands[i] for s in run]
            if all(v is vs[0] for v in vs):
                continue
            j = next((j for j, r in enumerate(run[0].results)
                      if all(vs[k + 1] is run[k].results[j] for k in range(len(run) - 1))), None)
            if j is not None:
                inner = [run[k].results[j] for k in range(len(run) - 1)]
                if any(r in self.outputs or len(self.users.get(r, [])) != 1 for r in inner):
                    return False
                chains += [(r, vs[0]) for r in [*inner, run[-1].results[j]]]
            elif not all(v.owner is self.module.main for v in vs):
                return False
        carried = {r for r, _ in chains}
        for j in range(len(run[0].results)):
            ws = [s.results[j] for s in run]
            if ws[0] in carried:
                continue
            if all(w in self.outputs for w in ws):
                if any(self.users.get(w) for w in ws):
                    return False  # a later section would need one slab of the stack
                continue
            if any(w in self.outputs or self.users.get(w) for w in ws[:-1]):
                return False
        for r, first in chains:
            self.parent[r] = first
        return True

    # -- the tensor a memory unit names --------------------------------------------------------------
    def tensor(self, run: list[Operation], design: Design, mem: MemRef) -> Tensor:
        kind, index = mem.slot
        carried = per_call = False
        cache_of = {i: j for j, (i, _) in design.appends.items()}
        if (kind == "out" and index in design.appends) or (kind == "arg" and index in cache_of):
            store, per_call = self.cache(run, design, index if kind == "out" else cache_of[index])
        elif kind == "weight":
            names = tuple(_weight_op(s, index).attrs["ref"].name for s in run)
            per_call = len(set(names)) > 1
            store = _stacked(names) if per_call else names[0]
            if not mem.spread.replicated:  # a socket's part: another tensor than the whole one
                store = f"{store}@{mem.spread.text()}"
            store = self.add_store(store, "weight", mem.spread, names if per_call else names[:1],
                                   [f"weight:{n}" for n in names])
        else:
            values = [s.operands[index] if kind == "arg" else s.results[index] for s in run]
            roots = [self.root(v) for v in values]
            same_root = all(r is roots[0] for r in roots)
            if kind == "arg":
                carried = same_root and any(v is not values[0] for v in values)
                per_call = not same_root
            else:
                per_call = not same_root and all(w in self.outputs for w in values)
            infos = [self.store_of(v) for v in values]
            if per_call:
                store = _stacked(tuple(i[0] for i in infos))
                sources = tuple(i[3][0] for i in infos)
            else:
                store, sources = infos[-1][0], infos[-1][3]
            store = self.add_store(store, infos[0][1], infos[0][2], sources, [i[4] for i in infos])
            if per_call:
                self.location.update((v, (store, k)) for k, v in enumerate(values))
            else:
                self.location[values[-1]] = (store, 0)
        name = store if mem.chunk is None else f"{store}#{mem.chunk[0]}:{mem.chunk[1]}-{mem.chunk[2]}"
        self.tensors[name] = (name, store, *(mem.chunk or (-1, 0, 0)))
        return Tensor(name, self.stores[store][-1], per_call, carried)

    def cache(self, run: list[Operation], design: Design, j: int) -> tuple[str, bool]:
        """The store of an output that extends input ``i`` in place: it starts as the input
        (``cache:AXIS``: the input's data from 0 along AXIS), the section appends the rest."""
        i, axis = design.appends[j]
        outs = [s.results[j] for s in run]
        ins = [s.operands[i] for s in run]
        per_call = len(run) > 1
        if outs[0] in self.location:  # the other of its read and its write named it already
            return self.location[outs[0]][0], per_call
        infos = [self.store_of(w) for w in outs]
        store = _stacked(tuple(x[0] for x in infos)) if per_call else infos[0][0]
        store = self.add_store(store, f"cache:{axis}", infos[0][2], tuple(v.name for v in ins),
                               [f"input:{v.name}" for v in ins] + [x[4] for x in infos])
        self.location.update((w, (store, c if per_call else 0)) for c, w in enumerate(outs))
        return store, per_call

    def add_store(self, store: str, kind: str, spread: Spread, sources: tuple[str, ...], idents: list[str]) -> str:
        """Record a store; returns its name (made unique if the name is taken by another)."""
        tier = "ddr" if self.only_ddr or any(i in self.ddr for i in idents) else "hbm"
        base, k = store, 1
        while (old := self.stores.get(store)) is not None and old[:4] != (store, kind, spread.text(), tuple(sources)):
            k += 1
            store = f"{base}'{k}"
        if old is not None:
            tier = "ddr" if "ddr" in (tier, old[4]) else "hbm"
        self.stores[store] = (store, kind, spread.text(), tuple(sources), tier)
        return store

    def attrs(self) -> dict:
        """The module attributes that describe memory (see the module docstring)."""
        g = self.module.main
        outputs = []
        for v, (name, spread) in self.outputs.items():
            if v.owner is g:  # an input given back as it is
                store, kind, sp, sources, ident = self.store_of(v)
                store = self.add_store(store, kind, sp, sources, [ident])
                where = (store, 0)
            else:
                where = self.location[v]
            outputs.append((name, where[0], where[1], spread.text()))
        return {STORES: tuple(e[:4] for e in self.stores.values()),
                TENSORS: tuple(self.tensors.values()),
                TIERS: tuple((e[0], e[4]) for e in self.stores.values()),
                INPUTS: tuple(a.name for a in g.args),
                OUTPUTS_ATTR: tuple(outputs)}


def _weight_op(section: Operation, index: int) -> Operation:
    ops = [op for op in section.regions[0].walk() if op.opname == "weight"]
    return ops[index]


def _stacked(names: tuple[str, ...]) -> str:
    """One name for a stack of tensors: what their names share, with * where they differ."""
    a, b = names[0], names[1]
    if a == b:
        return a
    p = 0
    while p < min(len(a), len(b)) and a[p] == b[p]:
        p += 1
    s = 0
    while s < min(len(a), len(b)) - p and a[len(a) - 1 - s] == b[len(b) - 1 - s]:
        s += 1
    while p and a[p - 1].isdigit():  # "layers.1" and "layers.12": do not keep half a number
        p -= 1
    return a[:p] + "*" + a[len(a) - s:]
