"""How a tensor is spread over the sockets of a tensor-parallel (SPMD) program.

Every socket runs the same program. A tensor the program takes or gives back is either
replicated or split (:class:`rduflow.ir.program.Spread`); module attributes record the
spread of the main graph's arguments and outputs (``spmd.args``, ``spmd.outputs``).
"""

from __future__ import annotations

from rduflow.ir import Module
from rduflow.ir.program import SOCKETS, Spread

__all__ = ["Spread", "sockets_of", "spreads"]  # Spread: where the back end has always found it


def sockets_of(module: Module) -> int:
    return module.attrs.get(SOCKETS, 1)


def spreads(module: Module, key: str, count: int) -> list[Spread]:
    return list(module.attrs.get(key) or [Spread()] * count)
