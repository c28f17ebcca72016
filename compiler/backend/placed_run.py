"""Running a placed program for values, on every socket, through each socket's memory.

Each socket has its own memory: stores (``memory.stores``) of slabs. A weight or input
store starts as the socket's part of the model's tensor (cut as its spread says); scratch
and output stores start empty. Sections run in order, each ``repeat`` times; in call ``i``
a ``per_call`` read or write uses slab ``i``, any other slab 0. ``mem_read`` gives the part
of its store that ``memory.tensors`` names (an indexed read: the rows its indices select),
``mem_write`` puts its operand there; streams and buffers pass values on; compute units run
their ops; collectives combine the sockets' values (:class:`.execute.Lockstep`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from rduflow.ir import InterpreterError, Module, Operation
from rduflow.ir.program import OUTPUTS, STORES, TENSORS, MemoryTensor

from .execute import Lockstep, PerSocket, ordered_inputs
from .spmd import sockets_of


class Memory:
    """One socket's stores: (store, slab) -> its content, as parts along one axis (or whole)."""

    def __init__(self):
        self.parts: dict[tuple[str, int], dict] = {}

    def read(self, key, chunk) -> np.ndarray | None:
        parts = self.parts.get(key)
        if not parts:
            return None
        if None in parts:
            whole = parts[None]
        else:
            items = sorted(parts.items(), key=lambda kv: kv[0][1])
            whole = np.concatenate([a for _, a in items], axis=items[0][0][0])
        if chunk is None:
            return whole
        axis, lo, hi = chunk
        index = [slice(None)] * whole.ndim
        index[axis] = slice(lo, hi)
        return np.ascontiguousarray(whole[tuple(index)])

    def write(self, key, chunk, x: np.ndarray) -> None:
        if chunk is None:
            self.parts[key] = {None: x}
            return
        parts = self.parts.setdefault(key, {})
        axis, lo, hi = chunk
        if None in parts:
            whole = parts.pop(None)
            if whole.shape[axis] >= hi:  # inside what is there: update that part of it
                whole = whole.copy()
                index = [slice(None)] * whole.ndim
                index[axis] = slice(lo, hi)
                whole[tuple(index)] = x
                parts[None] = whole
                return
            parts[(axis, 0, whole.shape[axis])] = whole
        parts[chunk] = x


class PlacedRun(Lockstep):
    def __init__(self, module: Module, inputs: Mapping[str, np.ndarray]):
        super().__init__(module, sockets_of(module), {})
        self.stores = {s.store: s for s in module.attrs.get(STORES, ())}
        self.tensors: dict[str, MemoryTensor] = {t.tensor: t for t in module.attrs.get(TENSORS, ())}
        self.inputs = inputs
        self.memory = [Memory() for _ in range(self.n)]
        self.call = 0

    def run(self) -> None:
        for sec in self.module.main.ops:
            for call in range(sec.attrs["repeat"]):
                self.call = call
                self.run_graph(sec.regions[0], [])

    def eval(self, op: Operation, ins: list[PerSocket]) -> list[PerSocket]:
        name = op.opname
        if name in ("placed.stream", "placed.buffer"):
            return [ins[0]]
        if name == "placed.mem_read":
            return [self.mem_read(op, ins)]
        if name == "placed.mem_write":
            self.mem_write(op, ins[0])
            return []
        return super().eval(op, ins)

    def where(self, op: Operation) -> tuple[tuple[str, int], tuple | None]:
        tensor = op.attrs["tensor"]
        if tensor not in self.tensors:
            raise InterpreterError(f"{op.where()}: tensor '{tensor}' is not in the program's memory table")
        t = self.tensors[tensor]
        return (t.store, self.call if op.attrs["per_call"] else 0), t.chunk

    def mem_read(self, op: Operation, ins: list[PerSocket]) -> PerSocket:
        key, chunk = self.where(op)
        out = []
        for s, mem in enumerate(self.memory):
            if key not in mem.parts:
                self.load(mem, key, s)
            x = mem.read(key, chunk if not ins else None)
            if x is None:
                raise InterpreterError(f"{op.where()}: memory tensor '{key[0]}' (slab {key[1]}) is read before "
                                       "anything writes it")
            if ins:  # an indexed read: the rows the indices select
                idx = ins[0][s]
                x = np.take(x, np.where(idx < 0, idx + x.shape[0], idx), axis=0)
            out.append(x)
        return out

    def mem_write(self, op: Operation, xs: PerSocket) -> None:
        key, chunk = self.where(op)
        for mem, x in zip(self.memory, xs):
            mem.write(key, chunk, x)

    def load(self, mem: Memory, key: tuple[str, int], socket: int) -> None:
        """What a store holds before the program writes it: a weight or input (its socket's
        part); a cache starts as its input, from 0 along its axis."""
        store, slab = key
        s = self.stores[store]
        if s.kind == "weight":
            x = self.load_weight(s.sources[slab])
        elif s.kind == "input" or s.kind.startswith("cache:"):
            x = np.asarray(self.inputs[s.sources[slab]])
        else:
            return
        x = s.spread.part(x, socket, self.n)
        if s.kind.startswith("cache:"):
            axis = int(s.kind.split(":")[1])
            mem.write(key, (axis, 0, x.shape[axis]), x)
        else:
            mem.write(key, None, x)


def run_placed(module: Module, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    g = module.main
    ordered_inputs(g, inputs)
    r = PlacedRun(module, {a.name: np.asarray(inputs[a.name]) for a in g.args})
    r.run()
    out: dict[str, np.ndarray] = {}
    for o in module.attrs.get(OUTPUTS, ()):
        key = (o.store, o.slab)
        parts = []
        for s, mem in enumerate(r.memory):
            if key not in mem.parts:
                r.load(mem, key, s)
            parts.append(mem.read(key, None))
        out[o.name] = o.spread.assemble(parts)
    return out
