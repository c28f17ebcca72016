"""Which decode positions to simulate, and the ITL at the others by interpolation.

A decode step at context ``c`` reads the weights and ``c`` tokens of KV cache, so its time
is an affine function of ``c`` in each regime (memory- or compute-bound, per kernel or
section) and a sum of such maxima overall: **non-decreasing and convex** in ``c``, piecewise
linear. Positions are sampled in rounds, starting from both ends:

* an interval whose ends differ by at most ``tol`` (relative, the later one no lower) is
  accepted as it is: a non-decreasing function lies between its end values, so the chord is
  within ``tol`` of it everywhere;
* otherwise its midpoint is simulated; if the midpoint lies within ``tol`` of the chord the
  interval is accepted, else both halves go to the next round.

For a convex function the chord's largest error on an interval is at most twice its error at
the midpoint (the error is concave and zero at both ends), and the interpolant through both
ends and the midpoint lies between the function and that chord. So every interpolated value
is within ``2 * tol`` times the larger of the two simulated values around it (decode steps a
few positions apart differ by far less than that factor, so in practice this is a relative
bound). A generation short against its context (the KV cache barely grows) needs two
simulations; ``tests/llm/test_positions.py`` checks the bound on random non-decreasing
convex functions and on simulated decode steps at every position.
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


def sample(f: Callable[[int], float], lo: int, hi: int, tol: float, max_samples: int = MAX_SAMPLES,
           ahead: Callable[[list[int]], None] | None = None) -> Sampled:
    """Simulate ``f`` at adaptively chosen integer positions in ``[lo, hi]``.

    ``ahead``, if given, is told each round's positions before ``f`` is called on them, so
    that they can be simulated in parallel.
    """
    known: dict[int, float] = {}

    def evaluate(xs: list[int]) -> None:
        xs = [x for x in dict.fromkeys(xs) if x not in known]
        if ahead is not None and len(xs) > 1:
            ahead(xs)
        for x in xs:
            known[x] = f(x)

    evaluate([lo, hi])
    pending = [(lo, hi)] if hi - lo >= 2 else []
    capped = False
    while pending:
        # Flat and non-decreasing: the chord is already within tol everywhere.
        split = [(a, b) for a, b in pending if not 0 <= known[b] - known[a] <= tol * abs(known[a])]
        room = max_samples - len(known)
        if len(split) > room:
            split, capped = split[:max(room, 0)], True
        evaluate([(a + b) // 2 for a, b in split])
        pending = []
        for a, b in split:
            mid = (a + b) // 2
            chord = known[a] + (known[b] - known[a]) * (mid - a) / (b - a)
            if abs(known[mid] - chord) > tol * abs(known[mid]):
                pending += [(a, mid)] if mid - a >= 2 else []
                pending += [(mid, b)] if b - mid >= 2 else []
    xs = np.array(sorted(known), dtype=np.float64)
    return Sampled(xs, np.array([known[int(x)] for x in xs]), capped)
