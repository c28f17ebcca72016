"""Finding repeated blocks (decoder layers) in an op sequence.

A decoder is a prologue, the same layer N times and an epilogue. In program order the
layers are the same run of op signatures (op name, attributes other than names, operand
and result types), so the layer length is a period of the signature sequence: a candidate
period comes from the gaps between repeated signatures, and is kept if the run of
positions where ``sig[i] == sig[i + period]`` is long. Where a layer starts within the run
is the cut that the fewest bytes cross (the residual stream between layers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rduflow.ir import Operation, Value
from rduflow.ir.signature import op_key

@dataclass(frozen=True)
class Blocks:
    start: int  # index of the first op of the first repeated block
    period: int  # ops per block
    count: int  # blocks

    def ranges(self, n: int) -> list[tuple[int, int, bool]]:
        """(begin, end, repeated) ranges covering ``0..n``: prologue, blocks, epilogue."""
        out = [(0, self.start, False)] if self.start else []
        for k in range(self.count):
            out.append((self.start + k * self.period, self.start + (k + 1) * self.period, True))
        end = self.start + self.count * self.period
        if end < n:
            out.append((end, n, False))
        return out


def find_blocks(ops: Sequence[Operation], outputs: Sequence[Value], min_period: int = 4) -> Blocks | None:
    """The longest periodic run of ``ops`` with at least two blocks, phased at the thinnest cut."""
    n = len(ops)
    if n < 2 * min_period:
        return None
    ids: dict[tuple, int] = {}
    sig = np.array([ids.setdefault(op_key(op), len(ids)) for op in ops], dtype=np.int64)
    best: tuple[int, int, int] | None = None  # (covered, start, period)
    for period in _candidate_periods(sig, min_period):
        eq = sig[:-period] == sig[period:]
        start, length = _longest_true_run(eq)
        count = (length + period) // period
        if count >= 2 and (best is None or count * period > best[0]):
            best = (count * period, start, period)
    if best is None:
        return None
    _, start, period = best
    end = start + _longest_true_run(sig[:-period] == sig[period:])[1] + period
    cost = _cut_costs(ops, outputs)
    phase = min(range(period), key=lambda f: (-((end - start - f) // period), cost[start + f], f))
    count = (end - start - phase) // period
    return Blocks(start + phase, period, count) if count >= 2 else None


def _candidate_periods(sig: np.ndarray, min_period: int, keep: int = 6) -> list[int]:
    last: dict[int, int] = {}
    gaps: Counter[int] = Counter()
    for i, s in enumerate(sig.tolist()):
        if s in last and i - last[s] >= min_period:
            gaps[i - last[s]] += 1
        last[s] = i
    return [p for p, _ in gaps.most_common(keep) if 2 * p <= len(sig)]


def _longest_true_run(eq: np.ndarray) -> tuple[int, int]:
    if not eq.size or not eq.any():
        return 0, 0
    padded = np.concatenate([[False], eq, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k] - starts[k])


def _cut_costs(ops: Sequence[Operation], outputs: Sequence[Value]) -> list[int]:
    """cost[p]: bytes of values made by ops[:p] and still needed by ops[p:] (or as outputs)."""
    pos = {r: i for i, op in enumerate(ops) for r in op.results}
    last: dict[Value, int] = {}
    for i, op in enumerate(ops):
        for v in op.operands:
            if v in pos:
                last[v] = i
    for v in outputs:
        if v in pos:
            last[v] = len(ops)
    delta = [0] * (len(ops) + 2)
    for v, j in last.items():
        nbytes = _bytes(v)
        delta[pos[v] + 1] += nbytes
        delta[j + 1] -= nbytes
    out, acc = [], 0
    for p in range(len(ops) + 1):
        acc += delta[p]
        out.append(acc)
    return out


def _bytes(v: Value) -> int:
    b = v.type.nbytes
    return int(b.const_value()) if b.is_const else 1 << 40
