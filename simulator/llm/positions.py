"""Which decode positions to simulate, and the ITL at the others by interpolation.

A decode step at context ``c`` reads the weights and ``c`` tokens of KV cache, so its time
is an affine function of ``c`` in each regime (memory- or compute-bound, per kernel or
section) and a sum of such maxima overall: convex and piecewise linear. Positions are
sampled adaptively: both ends, then the midpoint of every interval; an interval whose
midpoint lies within ``tol`` (relative) of the chord is accepted, any other is split.

For a convex function the chord's largest error on an interval is at most twice its error
at the midpoint (the error is concave and zero at both ends), and the interpolant through
both ends and the midpoint lies between the function and that chord. So every
interpolated value is within ``2 * tol`` times the larger of the two simulated values
around it (decode steps a few positions apart differ by far less than that factor, so in
practice this is a relative bound). ``tests/llm/test_positions.py`` checks the bound on
random convex functions and on simulated decode steps at every position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAX_SAMPLES = 9  # a cap on simulations per phase (each can cost seconds); reaching it is reported


@dataclass
class Sampled:
    """A quantity simulated at some positions and interpolated at the rest."""

    positions: np.ndarray  # simulated, ascending
    values: np.ndarray
    capped: bool  # MAX_SAMPLES stopped the refinement before every interval was accepted

    def __call__(self, at) -> np.ndarray:
        return np.interp(np.asarray(at, dtype=np.float64), self.positions, self.values)


def sample(f: Callable[[int], float], lo: int, hi: int, tol: float, max_samples: int = MAX_SAMPLES) -> Sampled:
    """Simulate ``f`` at adaptively chosen integer positions in ``[lo, hi]``."""
    known: dict[int, float] = {lo: f(lo)}
    if hi > lo:
        known[hi] = f(hi)
    todo = [(lo, hi)] if hi - lo >= 2 else []
    capped = False
    while todo:
        a, b = todo.pop(0)  # breadth first: a cap leaves the refinement even across the range
        if len(known) >= max_samples:
            capped = True
            break
        mid = (a + b) // 2
        known[mid] = f(mid)
        chord = known[a] + (known[b] - known[a]) * (mid - a) / (b - a)
        if abs(known[mid] - chord) > tol * abs(known[mid]):
            todo += [(a, mid)] if mid - a >= 2 else []
            todo += [(mid, b)] if b - mid >= 2 else []
    xs = np.array(sorted(known), dtype=np.float64)
    return Sampled(xs, np.array([known[int(x)] for x in xs]), capped)
