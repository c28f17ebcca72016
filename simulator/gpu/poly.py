"""Many symbolic costs evaluated together: one matrix product per binding of the symbols.

A graph is formed into kernels once, with costs as :class:`~rduflow.ir.Dim` polynomials in
``batch``, ``seq`` and ``past``; each decode position then costs one small matrix-vector
product instead of thousands of polynomial evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from rduflow.ir import Dim

from .errors import GpuModelError


class PolyTable:
    def __init__(self, dims: Sequence[Dim]):
        monos = sorted({m for d in dims for m in d.terms})
        col = {m: i for i, m in enumerate(monos)}
        self.monos = monos
        self.coef = np.zeros((len(dims), len(monos)))
        for r, d in enumerate(dims):
            for m, c in d.terms.items():
                self.coef[r, col[m]] = float(c)
        self.symbols = frozenset(s for m in monos for s in m)

    def __call__(self, env: Mapping[str, int]) -> np.ndarray:
        missing = sorted(self.symbols - set(env))
        if missing:
            raise GpuModelError(f"the graph's shapes use {', '.join(missing)}, which no binding gives a value")
        vals = np.array([math.prod(env[s] for s in m) for m in self.monos], dtype=np.float64)
        return self.coef @ vals
