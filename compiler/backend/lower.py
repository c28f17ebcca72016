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

Memory is described in module attributes (typed records, :mod:`rduflow.ir.program`), so
the placed program alone can be run:

* ``memory.stores``: a :class:`MemoryStore` per tensor in each socket's memory: its
  ``kind`` is weight, input, output, scratch or ``cache:AXIS`` (an output that extends an
  input in place, the KV cache: it starts as the input, from 0 along AXIS, and the section
  writes the new rows after it); its ``spread`` how the model's tensor is cut among the
  sockets (:mod:`.spmd`); its ``sources`` the model's weight or input name for each slab;
* ``memory.tensors``: a :class:`MemoryTensor` for what each ``mem_read`` and ``mem_write``
  names, a part of a store along ``axis`` (``-1``: all of it);
* ``memory.tiers``: a :class:`StoreTier` per store, HBM or DDR (:mod:`.tiers`);
* ``memory.inputs`` and ``memory.outputs``: the model's inputs by name, and where each
  output is (:class:`ModelOutput`: a slab of a store, and its spread).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from rduflow.compiler.passes import ModulePass, PassContext
from rduflow.ir import Module, Operation, Value
from rduflow.ir.program import (INPUTS, MEMORY_DDR, OUTPUTS, SOCKETS, SPMD_ARGS, SPMD_OUTPUTS, STORES, TENSORS,
                                TIERS, MemoryStore, MemoryTensor, ModelOutput, StoreTier)
from rduflow.ir.signature import op_signature

from .design import Design, MemRef, design_section, transfer_agcus
from .emit import Tensor, emit_section
from .errors import CompileError
from .spmd import Spread, spreads


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
        self.sockets = module.attrs.get(SOCKETS, 1)
        self.arg_spread = dict(zip(g.args, spreads(module, SPMD_ARGS, len(g.args))))
        self.out_spread = spreads(module, SPMD_OUTPUTS, len(g.outputs))
        self.outputs = {v: (n, sp) for v, n, sp in zip(g.outputs, g.output_names, self.out_spread)}
        self.ddr = set(module.attrs.get(MEMORY_DDR, ()))
        self.only_ddr = arch.memory.hbm is None
        self.users: dict[Value, list[Operation]] = {}
        for op in g.ops:
            for v in op.operands:
                self.users.setdefault(v, []).append(op)
        self.parent: dict[Value, Value] = {}  # carried chains share a store
        self.stores: dict[str, MemoryStore] = {}
        self.tiers: dict[str, str] = {}  # store -> hbm or ddr
        self.tensors: dict[str, MemoryTensor] = {}
        self.location: dict[Value, tuple[str, int]] = {}  # value -> (store, slab) that holds it

    # -- which value is which store ----------------------------------------------------------------
    def root(self, v: Value) -> Value:
        while v in self.parent:
            v = self.parent[v]
        return v

    def store_of(self, v: Value) -> tuple[MemoryStore, str]:
        """The store that holds an activation, and its tier-assignment identity ("" once written)."""
        v = self.root(v)
        if v in self.location:  # written already, by an earlier section: read it where it is
            return self.stores[self.location[v][0]], ""
        if v.owner is self.module.main:
            return MemoryStore(store=v.name, kind="input", spread=self.arg_spread[v], sources=(v.name,)), \
                f"input:{v.name}"
        if v in self.outputs:
            name, sp = self.outputs[v]
            return MemoryStore(store=name, kind="output", spread=sp, sources=(name,)), f"output:{name}"
        return MemoryStore(store=v.name, kind="scratch", spread=Spread(), sources=()), f"value:{v.name}"

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
            store = self.add_store(MemoryStore(store=store, kind="weight", spread=mem.spread,
                                               sources=names if per_call else names[:1]),
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
            homes = [h for h, _ in infos]
            if per_call:
                store = _stacked(tuple(h.store for h in homes))
                sources = tuple(h.sources[0] for h in homes)
            else:
                store, sources = homes[-1].store, homes[-1].sources
            store = self.add_store(replace(homes[0], store=store, sources=sources), [i for _, i in infos])
            if per_call:
                self.location.update((v, (store, k)) for k, v in enumerate(values))
            else:
                self.location[values[-1]] = (store, 0)
        name = store if mem.chunk is None else f"{store}#{mem.chunk[0]}:{mem.chunk[1]}-{mem.chunk[2]}"
        axis, start, stop = mem.chunk or (-1, 0, 0)
        self.tensors[name] = MemoryTensor(tensor=name, store=store, axis=axis, start=start, stop=stop)
        return Tensor(name=name, tier=self.tiers[store], per_call=per_call, carried=carried)

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
        store = _stacked(tuple(h.store for h, _ in infos)) if per_call else infos[0][0].store
        store = self.add_store(MemoryStore(store=store, kind=f"cache:{axis}", spread=infos[0][0].spread,
                                           sources=tuple(v.name for v in ins)),
                               [f"input:{v.name}" for v in ins] + [i for _, i in infos])
        self.location.update((w, (store, c if per_call else 0)) for c, w in enumerate(outs))
        return store, per_call

    def add_store(self, want: MemoryStore, idents: list[str]) -> str:
        """Record a store; returns its name (made unique if the name is taken by another)."""
        tier = "ddr" if self.only_ddr or any(i in self.ddr for i in idents) else "hbm"
        rec, k = want, 1
        while (old := self.stores.get(rec.store)) is not None and old != rec:
            k += 1
            rec = replace(want, store=f"{want.store}'{k}")
        if old is not None:
            tier = "ddr" if "ddr" in (tier, self.tiers[rec.store]) else "hbm"
        self.stores[rec.store] = rec
        self.tiers[rec.store] = tier
        return rec.store

    def attrs(self) -> dict:
        """The module attributes that describe memory (see the module docstring)."""
        g = self.module.main
        outputs = []
        for v, (name, spread) in self.outputs.items():
            if v.owner is g:  # an input given back as it is
                home, ident = self.store_of(v)
                store, slab = self.add_store(home, [ident]), 0
            else:
                store, slab = self.location[v]
            outputs.append(ModelOutput(name=name, store=store, slab=slab, spread=spread))
        return {STORES: tuple(self.stores.values()),
                TENSORS: tuple(self.tensors.values()),
                TIERS: tuple(StoreTier(store=s, tier=t) for s, t in self.tiers.items()),
                INPUTS: tuple(a.name for a in g.args),
                OUTPUTS: tuple(outputs)}


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
