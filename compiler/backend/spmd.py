"""How a tensor is spread over the sockets of a tensor-parallel (SPMD) program.

Every socket runs the same program. A tensor the program takes or gives back is either
*replicated* (each socket holds all of it) or *split* along one axis: socket ``s`` holds
piece ``s`` of each block of that axis (``spmd.shard``'s semantics; one block by default,
several for a fused projection such as GPT-2's QKV). A split may have ``copies``: each piece
is held by that many consecutive sockets (socket ``s`` holds piece ``s // copies`` of
``sockets / copies``), as a KV cache is when there are fewer KV heads than sockets.
Module attributes record the layout of the main graph's arguments and outputs
(``spmd.args``, ``spmd.outputs``) as text: ``"replicated"``, ``"split:AXIS"``,
``"split:AXIS:B1,B2,..."``, each split optionally followed by ``":copies=C"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rduflow.ir import Module
from rduflow.ir.ops.placed import shard_array

ARGS, OUTPUTS = "spmd.args", "spmd.outputs"


@dataclass(frozen=True)
class Spread:
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


def sockets_of(module: Module) -> int:
    return int(module.attrs.get("sockets", 1))


def spreads(module: Module, key: str, count: int) -> list[Spread]:
    texts = module.attrs.get(key)
    return [Spread.parse(t) for t in texts] if texts else [Spread()] * count
