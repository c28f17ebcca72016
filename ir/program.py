"""The module attributes the back end records for the stages after it, as typed records.

A compiled (placed) program carries what it needs to be run alone: how each tensor the
program takes or gives back is spread over the sockets (``spmd.*``) and each socket's
memory table (``memory.*``). Each attribute has a declared kind (:data:`MODULE_ATTRS`):
the parser reads its text form into records, the printer writes records as their lists of
fields (the text form stays a plain attribute list) and the verifier refuses a value of the
wrong shape, naming the attribute.

* ``sockets``: how many sockets run the program (SPMD);
* ``spmd.args``, ``spmd.outputs``: a :class:`Spread` per main-graph argument and output;
* ``memory.ddr``: tensors the tier assignment moved to DDR (``weight:NAME``, ``input:NAME``,
  ``output:NAME``, ``value:NAME``); ``memory.bytes``: its per-socket totals
  (:class:`MemoryBytes`);
* ``memory.stores`` (:class:`MemoryStore`), ``memory.tensors`` (:class:`MemoryTensor`),
  ``memory.tiers`` (:class:`StoreTier`), ``memory.inputs`` (the model's input names) and
  ``memory.outputs`` (:class:`ModelOutput`): the memory table of a placed program
  (compiler/backend/lower.py says what each means).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .attributes import AttrError, AttrKind, AttrRecord, AttrSpec
from .ops.placed import shard_array

SOCKETS = "sockets"
SPMD_ARGS, SPMD_OUTPUTS = "spmd.args", "spmd.outputs"
MEMORY_DDR, MEMORY_BYTES = "memory.ddr", "memory.bytes"
STORES, TENSORS, TIERS = "memory.stores", "memory.tensors", "memory.tiers"
INPUTS, OUTPUTS = "memory.inputs", "memory.outputs"


@dataclass(frozen=True)
class Spread(AttrRecord):
    """How a tensor is spread over the sockets of an SPMD program.

    *Replicated* (each socket holds all of it) or *split* along one axis: socket ``s`` holds
    piece ``s`` of each block of that axis (``spmd.shard``'s semantics; one block by
    default, several for a fused projection such as GPT-2's QKV). A split may have
    ``copies``: each piece is held by that many consecutive sockets (socket ``s`` holds piece
    ``s // copies`` of ``sockets / copies``), as a KV cache is when there are fewer KV heads
    than sockets. Written as text: ``"replicated"``, ``"split:AXIS"``,
    ``"split:AXIS:B1,B2,..."``, each split optionally followed by ``":copies=C"``.
    """

    axis: int = -1  # -1: replicated
    blocks: tuple[int, ...] = ()
    copies: int = 1

    @property
    def replicated(self) -> bool:
        return self.axis < 0

    def text(self) -> str:
        if self.replicated:
            return "replicated"
        blocks = ":" + ",".join(map(str, self.blocks)) if self.blocks else ""
        return f"split:{self.axis}{blocks}" + (f":copies={self.copies}" if self.copies > 1 else "")

    @staticmethod
    def parse(text: str) -> Spread:
        if text == "replicated":
            return Spread()
        parts = text.split(":")
        copies = 1
        if len(parts) > 2 and parts[-1].startswith("copies="):
            copies = int(parts.pop().removeprefix("copies="))
        if parts[0] != "split" or len(parts) not in (2, 3):
            raise ValueError(f"not a tensor spread: {text!r}")
        blocks = tuple(int(b) for b in parts[2].split(",")) if len(parts) == 3 else ()
        return Spread(int(parts[1]), blocks, copies)

    def to_attr(self) -> str:
        return self.text()

    @classmethod
    def from_attr(cls, value) -> Spread:
        if not isinstance(value, str):
            raise AttrError(f"a spread is written as text (\"replicated\", \"split:AXIS\"...), not {value!r}")
        try:
            return cls.parse(value)
        except ValueError:
            raise AttrError(f"not a tensor spread: {value!r}") from None

    def part(self, x: np.ndarray, socket: int, sockets: int) -> np.ndarray:
        """Socket ``socket``'s piece of the whole tensor ``x``."""
        if self.replicated:
            return x
        return shard_array(x, self.axis, sockets // self.copies, self.blocks, socket // self.copies)

    def assemble(self, parts: list[np.ndarray]) -> np.ndarray:
        """The whole tensor from every socket's piece (the inverse of :meth:`part`)."""
        if self.replicated:
            return parts[0]
        parts = parts[::self.copies]  # one socket of each group of copies
        n = len(parts)
        sizes = self.blocks or (parts[0].shape[self.axis] * n,)
        out, start = [], 0
        for b in sizes:  # block j of the whole = piece j of every socket, in socket order
            step = b // n
            for p in parts:
                out.append(np.take(p, range(start, start + step), axis=self.axis))
            start += step
        return np.concatenate(out, axis=self.axis)


@dataclass(frozen=True)
class MemoryStore(AttrRecord):
    """A tensor in each socket's memory, of one or more slabs (one per call of a loop)."""

    store: str
    kind: str  # weight, input, output, scratch or cache:AXIS
    spread: Spread  # how the model's tensor is cut among the sockets
    sources: tuple[str, ...]  # the model's weight or input name for each slab


@dataclass(frozen=True)
class MemoryTensor(AttrRecord):
    """What a ``mem_read`` or ``mem_write`` names: a part of a store along ``axis`` (-1: all)."""

    tensor: str
    store: str
    axis: int
    start: int
    stop: int

    @property
    def chunk(self) -> tuple[int, int, int] | None:
        """(axis, start, stop) of the part, or None for the whole store."""
        return None if self.axis < 0 else (self.axis, self.start, self.stop)


@dataclass(frozen=True)
class StoreTier(AttrRecord):
    store: str
    tier: str  # hbm or ddr


@dataclass(frozen=True)
class ModelOutput(AttrRecord):
    """Where a model output is once the program has run: a slab of a store."""

    name: str
    store: str
    slab: int
    spread: Spread


@dataclass(frozen=True)
class MemoryBytes(AttrRecord):
    """Per-socket totals of the tier assignment, in bytes; written ``[["weights", N], ...]``."""

    weights: int
    inputs_outputs: int
    activations_peak: int
    hbm: int
    ddr: int

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_attr(self) -> tuple:
        return tuple(self.as_dict().items())

    @classmethod
    def from_attr(cls, value) -> MemoryBytes:
        names = [f.name for f in fields(cls)]
        ok = isinstance(value, tuple) and [p[0] if isinstance(p, tuple) and len(p) == 2 else None
                                           for p in value] == names
        if not ok or not all(isinstance(n, int) and not isinstance(n, bool) for _, n in value):
            raise AttrError(f"memory totals are written [{', '.join(f'[{n!r}, BYTES]' for n in names)}], "
                            f"not {value!r}")
        return cls(**dict(value))


MODULE_ATTRS: dict[str, AttrSpec] = {
    SOCKETS: AttrSpec(AttrKind.INT, doc="sockets the program runs on"),
    SPMD_ARGS: AttrSpec(AttrKind.RECORDS, record=Spread, doc="spread of each main-graph argument"),
    SPMD_OUTPUTS: AttrSpec(AttrKind.RECORDS, record=Spread, doc="spread of each main-graph output"),
    MEMORY_DDR: AttrSpec(AttrKind.STRS, doc="tensors the tier assignment moved to DDR"),
    MEMORY_BYTES: AttrSpec(AttrKind.RECORD, record=MemoryBytes, doc="per-socket memory totals"),
    STORES: AttrSpec(AttrKind.RECORDS, record=MemoryStore, doc="each socket's memory stores"),
    TENSORS: AttrSpec(AttrKind.RECORDS, record=MemoryTensor, doc="what mem_read and mem_write name"),
    TIERS: AttrSpec(AttrKind.RECORDS, record=StoreTier, doc="the tier of each store"),
    INPUTS: AttrSpec(AttrKind.STRS, doc="the model's inputs"),
    OUTPUTS: AttrSpec(AttrKind.RECORDS, record=ModelOutput, doc="where each model output is"),
}
