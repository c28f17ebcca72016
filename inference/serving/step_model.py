"""Step time: what one engine step costs, from simulations of the model's own graph.

A serving run has thousands of distinct steps, each a mix of decode tokens (one per running
sequence, at its own context) and prefill chunks (some prompt tokens after some cached
ones). Simulating each would take hours, so :class:`SampledStepModel` splits a step the way
Vidur does (Agrawal et al., MLSys 2024, section 4): work that depends only on the number of
tokens in the step (projections, MLP, norms: ``dense``), plus attention, which depends on
each sequence's query length and context. Each part is read off whole-step simulations of
the model's decode graph (symbols batch, seq, past) on the target's back end:

* ``dense(N)``: a step of N sequences of one token at context 1;
* decode attention of B sequences at mean context L: ``D(B, L) - D(B, 1)``;
* attention of a prefill chunk of c tokens after p cached: ``D(1, c, p) - dense(c)``.

Each is simulated on a grid and interpolated piecewise linearly in N, B, L, c and p: the
costs are piecewise linear in each (a roofline in each regime; on a GPU, linear between
tile boundaries, which its grid samples on both sides). Beyond the largest sampled chunk,
attention grows with the query-key pairs c * (p + (c + 1) / 2). The sum reproduces every simulated point exactly (a decode-only
step is D(B, L), a lone chunk D(1, c, p)); tests/serving/test_step_model.py bounds the
error between points against direct simulation.

The table is built once per model, target and engine limits and kept on disk
(``cache.py``), keyed by everything it depends on.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rduflow.inference.backends import StepTotals

from .batch import Program, StepBatch

class StepModel(Protocol):
    """Prices one engine step (the chip's part, per device; the host's is ``host.py``'s)."""

    def cost(self, batch: StepBatch) -> StepTotals: ...


class ProgramStepModel:
    """Steps that run compiled programs (the bucket scheduler): each priced exactly."""

    def __init__(self, table):
        self.table = table  # a StepTable (step_cache.py)

    def cost(self, batch: StepBatch) -> StepTotals:
        return StepTotals.from_array(self.table.get(batch.program))


@dataclass(frozen=True)
class Tiles:
    small: int  # rows up to ``big`` are sampled at the ends of intervals of this (MMA tile rows)
    big: int  # rows above it at the ends of intervals of ``step``, a multiple of it (GEMM tile rows)
    step: int


@dataclass(frozen=True)
class Grid:
    """Where the table is simulated (chosen by :func:`make_grid`)."""

    tokens: tuple[int, ...]  # dense(N)
    batches: tuple[int, ...]  # decode attention, each at contexts(B)
    chunks: tuple[int, ...]  # prefill attention, each at pasts(c)
    max_context: int  # the longest context a sequence reaches (max_model_len)
    kv_tokens: int  # KV capacity: no step holds more
    points_per_line: int  # samples along context / past
    tiles: Tiles | None = None  # the token grid's row steps

    def contexts(self, b: int) -> list[int]:
        hi = min(self.max_context, self.kv_tokens // b)
        return _line(1, hi, self.points_per_line)

    def pasts(self, c: int) -> list[int]:
        if c == 1:  # a one-token chunk is a decode of one sequence: share its samples
            return self.contexts(1)
        hi = min(self.max_context, self.kv_tokens) - c
        return _line(0, hi, self.points_per_line) if hi > 0 else [0]


MAX_DENSE_POINTS = 64  # tile intervals sampled above the large tile


def _line(lo: int, hi: int, n: int) -> list[int]:
    return sorted({int(round(lo + (hi - lo) * i / (n - 1))) for i in range(n)}) if hi > lo else [lo]


def _powers(ratio: int, hi: int, lo: int = 1) -> tuple[int, ...]:
    out, x = [], lo
    while x < hi:
        out.append(x)
        x *= ratio
    return tuple(out + [hi])


def make_grid(max_tokens: int, max_seqs: int, max_context: int, kv_tokens: int, ratio: int,
              tiles: tuple[int, int] | None = None) -> Grid:
    """Powers of ``ratio`` (2 where a simulation is cheap, 4 where it costs seconds) up to the
    engine's limits: the token budget, the sequence cap, the context and the KV capacity.

    With ``tiles`` (a GPU's smallest and usual GEMM tile rows, 16 and 128), token counts,
    batch sizes and chunk sizes are sampled at both ends of every tile interval -- k x tile and
    k x tile + 1 -- of the small tile up to the large one and of the large one above (at most
    MAX_DENSE_POINTS intervals): tile and wave quantization make the cost jump at each tile
    boundary and grow linearly between, which powers of two would smooth over."""
    top_b = min(max_seqs, kv_tokens)
    top_n = max(max_tokens, top_b)
    tokens = _powers(ratio, top_n)
    # Coarse grids start their chunk sizes at 64: shorter chunks interpolate between a
    # one-token chunk (a decode) and 64 well enough, and every point costs a compile.
    lo = 16 if tiles else 64
    chunks = (1,) + _powers(ratio, max_tokens, lo=lo) if max_tokens > lo else (1, max_tokens)
    step = None
    if tiles:
        small, big = tiles
        step = big * -(-top_n // (big * MAX_DENSE_POINTS))
        edges = set(range(small, big, small)) | set(range(big, top_n, step))
        fine = set(_powers(ratio, small)) | edges | {e + 1 for e in edges} | {top_n}
        tokens = tuple(sorted(x for x in fine if x <= top_n))
        chunks = (1,) + tuple(x for x in tokens if 16 <= x <= max_tokens) + ((max_tokens,) if max_tokens not in tokens else ())
    batches = _powers(ratio, top_b)
    if tiles:
        batches = tuple(sorted({x for x in tokens if x <= top_b} | {top_b}))
    return Grid(tokens=tokens, batches=batches, chunks=tuple(sorted(set(chunks))),
                max_context=max_context, kv_tokens=kv_tokens, points_per_line=8 if tiles else 3,
                tiles=Tiles(tiles[0], tiles[1], step) if tiles else None)


def grid_programs(grid: Grid) -> list[Program]:
    """Every graph point the table needs."""
    pts = {Program(n, 1, 1) for n in grid.tokens}
    for b in grid.batches:
        pts |= {Program(b, 1, c) for c in grid.contexts(b)}
    for c in grid.chunks:
        pts |= {Program(1, c, p) for p in grid.pasts(c)}
    return sorted(pts, key=lambda p: (p.batch * p.seq, p.batch, p.seq, p.past))


@dataclass
class _Line:
    """Samples along one axis (context or past), interpolated linearly, extrapolated along the
    last segment (attention keeps growing linearly past the last sample)."""

    xs: np.ndarray
    ys: np.ndarray  # (len(xs), 4): StepTotals.as_array() per sample

    def at(self, x: float) -> np.ndarray:
        xs, ys = self.xs, self.ys
        n = len(xs)
        if n == 1:
            return ys[0]
        i = bisect.bisect_right(self._x, x) - 1
        i = min(max(i, 0), n - 2)
        x0, x1 = self._x[i], self._x[i + 1]
        return ys[i] + (ys[i + 1] - ys[i]) * ((x - x0) / (x1 - x0))  # beyond the ends: along the end segment

    def __post_init__(self) -> None:
        self._x = [float(v) for v in self.xs]


@dataclass
class SampledStepModel:
    """The table: simulated points and the interpolation above. Build it with
    :meth:`from_points` from a mapping Program -> cost vector."""

    grid: Grid
    points: dict[Program, np.ndarray]
    table: Any = None  # a StepTable (step_cache.py): simulates programs outside the grid on demand
    dense_line: _Line = field(init=False)
    decode_lines: list[tuple[int, _Line]] = field(init=False)
    chunk_lines: list[tuple[int, _Line]] = field(init=False)
    _batches: list[int] = field(init=False, repr=False)
    _chunks: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        g, pts = self.grid, self.points
        ns = np.array(g.tokens, dtype=np.float64)
        self.dense_line = _Line(ns, np.array([pts[Program(n, 1, 1)] for n in g.tokens]))
        self.decode_lines = []
        for b in g.batches:
            base = pts[Program(b, 1, 1)]
            cs = g.contexts(b)
            ys = np.array([np.maximum(pts[Program(b, 1, c)] - base, 0.0) for c in cs])
            self.decode_lines.append((b, _Line(np.array(cs, dtype=np.float64), ys)))
        self.chunk_lines = []
        for c in g.chunks:
            dense = self.dense(c)
            ps = g.pasts(c)
            ys = np.array([np.maximum(pts[Program(1, c, p)] - dense, 0.0) for p in ps])
            self.chunk_lines.append((c, _Line(np.array(ps, dtype=np.float64), ys)))
        self._batches = [b for b, _ in self.decode_lines]
        self._chunks = [c for c, _ in self.chunk_lines]

    def dense(self, n: float) -> np.ndarray:
        return self.dense_line.at(n)

    def decode_attention(self, b: int, context: float) -> np.ndarray:
        """B decodes whose contexts sum to ``context``: read at their mean context, linear in B
        between sampled batch sizes, and in proportion to B beyond the largest."""
        mean = context / b
        return _across(self.decode_lines, self._batches, b, lambda line: line.at(mean), lambda top: b / top)

    def chunk_attention(self, c: int, past: int) -> np.ndarray:
        """Linear in c between sampled chunk sizes; beyond the largest, in proportion to the
        query-key pairs."""
        return _across(self.chunk_lines, self._chunks, c, lambda line: line.at(past),
                       lambda top: _pairs(c, past) / _pairs(top, past))

    def vector(self, batch: StepBatch) -> np.ndarray:
        if batch.program is not None:
            return self.table.get(batch.program) if self.table is not None else self.points[batch.program]
        v = self.dense(batch.tokens)
        if batch.decodes:
            v = v + self.decode_attention(batch.decodes, batch.decode_context)
        for ch in batch.prefills:
            v = v + self.chunk_attention(ch.tokens, ch.past)
        return v

    def cost(self, batch: StepBatch) -> StepTotals:
        return StepTotals.from_array(self.vector(batch))





def _across(lines: list[tuple[int, _Line]], keys: list[int], x: int, at, beyond) -> np.ndarray:
    """Interpolate between the sampled lines around ``x`` (each read by ``at``), linearly in x;
    past the last one, scale it by ``beyond(its key)``."""
    if x >= keys[-1]:
        return at(lines[-1][1]) * beyond(keys[-1])
    i = bisect.bisect_right(keys, x) - 1
    x0, l0 = lines[i]
    if x0 == x:
        return at(l0)
    x1, l1 = lines[i + 1]
    w = (x - x0) / (x1 - x0)
    return at(l0) * (1 - w) + at(l1) * w


def _pairs(c: int, past: int) -> float:
    """Query-key pairs a causal chunk of ``c`` tokens after ``past`` cached ones attends."""
    return c * (past + (c + 1) / 2)
