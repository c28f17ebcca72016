"""What one engine step runs: decode tokens and prefill chunks with their KV lengths.

The scheduler produces a :class:`StepBatch` per step; a step model (``step_model.py``)
prices it. Decodes are summarised by their count and total context (a decode step's work
is linear in each sequence's context, so the sum is all that matters); prefill chunks are
few per step and kept one by one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    tokens: int  # prompt tokens computed in this step
    past: int  # tokens already in this sequence's KV cache


@dataclass(frozen=True, slots=True)
class Program:
    """A step compiled for fixed shapes: ``batch`` sequences of ``seq`` new tokens after
    ``past`` cached ones (the RDU's way: padded requests, one program per bucket)."""

    batch: int
    seq: int
    past: int


@dataclass(frozen=True, slots=True)
class StepBatch:
    decodes: int = 0  # sequences generating one token
    decode_context: int = 0  # their KV lengths before the step, summed
    prefills: tuple[Chunk, ...] = ()
    program: Program | None = None  # buckets: the compiled shape the step runs as, padding included

    @property
    def tokens(self) -> int:
        return self.decodes + sum(c.tokens for c in self.prefills)

    @property
    def sequences(self) -> int:
        return self.decodes + len(self.prefills)
