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
  memory: ``kind`` is weight, input, output or scratch; ``spread`` how the model's tensor is
  cut among the sockets (:mod:`.spmd`); ``sources`` the model's weight, input or output
  name for each slab;
* ``memory.tensors``: ``(tensor, store, axis, start, stop)``: what each ``mem_read`` and
  ``mem_write`` names, a part of a store along ``axis`` (``-1``: all of it);
* ``memory.inputs`` and ``memory.outputs``: the model's inputs by name, and each output as
  ``(name, store, slab)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rduflow.compiler.passes import ModulePass, option
from rduflow.ir import Module, Operation, Value

from .archref import resolve_arch
from .design import Design, MemRef, design_section
from .emit import Tensor, emit_section
from .errors import CompileError
from .repeat import op_signature
from .spmd import ARGS, OUTPUTS, Spread, spreads

STORES, TENSORS, INPUTS, OUTPUTS_ATTR = "memory.stores", "memory.tensors", "memory.inputs", "memory.outputs"


@dataclass(frozen=True)
class Lower(ModulePass):
    """Turn sections into placed sections (units, streams, buffers, memory traffic), looping repeated ones."""

    name: ClassVar[str] = "lower"
    arch: str = option("sn40l", "architecture: a preset name or a file")

    def apply(self, module: Module) -> None:
        arch = resolve_arch(self.arch)
        g = module.main
        sections = [op for op in g.ops if op.opname == "section"]
        if len(sections) != len(g.ops):
            raise CompileError("lower expects a graph of sections (run the section pass first)")
        memory = _Memory(module, arch)
        designs: dict[tuple, Design] = {}
        placed: list[Operation] = []
        for start, count in _runs(sections, memory):
            sec = sections[start]
            key = op_signature(sec)
            if key not in designs:
                designs[key] = design_section(sec.attrs["name"], sec.regions[0], arch.agcu.count)
            run = sections[start:start + count]
            name = sec.attrs["name"] if count == 1 else f"{sec.attrs['name']} (x{count})"
            placed.append(emit_section(designs[key], name, count, lambda mem, run=run: memory.tensor(run, mem),
                                       memory.sockets))
        g.ops = []
        for op in placed:
            g.append(op)
        g.set_outputs([])
        module.attrs.update(memory.attrs(g_outputs=self._outputs(module, sections)))

    @staticmethod
    def _outputs(module, sections):
        return None


def _runs(sections: list[Operation], memory: _Memory) -> list[tuple[int, int]]:
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


class _Memory:
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

    # -- which value is which store ----------------------------------------------------------------
    def root(self, v: Value) -> Value:
        while v in self.parent:
            v = self.parent[v]
        return v

    def store_of(self, v: Value) -> tuple[str, str, Spread, tuple[str, ...], str]:
        """(store, kind, spread, sources, memory-plan identity) of an activation."""
        v = self.root(v)
        if v.owner is self.module.main:
            return v.name, "input", self.arg_spread[v], (v.name,), f"input:{v.name}"
        if v in self.outputs:
            name, sp = self.outputs[v]
            return name, "output", sp, (name,), f"output:{name}"
        return v.name, "scratch", Spread(), (), f"value:{v.name}"

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
            if ws[0] in carried or all(w in self.outputs for w in ws):
                continue
            if any(w in self.outputs or self.users.get(w) for w in ws[:-1]):
                return False
        for r, first in chains:
            self.parent[r] = first
        return True

    # -- the tensor a memory unit names --------------------------------------------------------------
    def tensor(self, run: list[Operation], mem: MemRef) -> Tensor:
        kind, index = mem.slot
        carried = per_call = False
        if kind == "weight":
            names = tuple(_weight_op(s, index).attrs["ref"].name for s in run)
            per_call = len(set(names)) > 1
            store = _stacked(names) if per_call else names[0]
            self.add_store(store, "weight", mem.spread, names if per_call else names[:1],
                           [f"weight:{n}" for n in names])
        else:
            values = [s.operands[index] if kind == "arg" else s.results[index] for s in run]
            roots = [self.root(v) for v in values]
            carried = kind == "arg" and len(run) > 1 and all(r is roots[0] for r in roots) and \
                any(v is not values[0] for v in values)
            per_call = len(run) > 1 and not all(r is roots[0] for r in roots)
            infos = [self.store_of(v) for v in values]
            if per_call:
                store = _stacked(tuple(i[0] for i in infos))
                sources = tuple(i[3][0] for i in infos)
            else:
                store, sources = infos[-1][0], infos[-1][3]
            self.add_store(store, infos[0][1], infos[0][2], sources, [i[4] for i in infos])
        name = store if mem.chunk is None else f"{store}#{mem.chunk[0]}:{mem.chunk[1]}-{mem.chunk[2]}"
        self.tensors[name] = (name, store, *(mem.chunk or (-1, 0, 0)))
        return Tensor(name, self.stores[store][-1], per_call, carried)

    def add_store(self, store: str, kind: str, spread: Spread, sources: tuple[str, ...], idents: list[str]) -> None:
        tier = "ddr" if self.only_ddr or any(i in self.ddr for i in idents) else "hbm"
        entry = (store, kind, spread.text(), tuple(sources), tier)
        old = self.stores.get(store)
        if old is not None and old[:4] != entry[:4]:
            raise CompileError(f"memory tensor '{store}' would hold two different things ({old[:2]} and {entry[:2]})")
        self.stores[store] = entry

    def attrs(self, g_outputs=None) -> dict:
        g = self.module.main
        return {STORES: tuple(e[:4] for e in self.stores.values()),
                TENSORS: tuple(self.tensors.values()),
                "memory.tiers": tuple((e[0], e[4]) for e in self.stores.values())}


def _weight_op(section: Operation, index: int) -> Operation:
    ops = [op for op in section.regions[0].walk() if op.opname == "weight"]
    return ops[index]


def _stacked(names: tuple[str, ...]) -> str:
    """One name for a stack of tensors: what their names share, with * where they differ."""
    a, b = names[0], names[1]
    p = 0
    while p < min(len(a), len(b)) and a[p] == b[p]:
        p += 1
    s = 0
    while s < min(len(a), len(b)) - p and a[len(a) - 1 - s] == b[len(b) - 1 - s]:
        s += 1
    while p and a[p - 1].isdigit():  # "layers.1" and "layers.12": do not keep half a number
        p -= 1
    return a[:p] + "*" + a[len(a) - s:]
