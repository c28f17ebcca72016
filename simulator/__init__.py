"""rduflow's cycle-approximate simulator: the placed-program engine and the GPU kernel model.

``simulate`` runs a placed program (ops in ``rduflow.ir.ops.placed``, built with
:class:`PlacedProgram`) on an architecture from ``rduflow.compiler.target``. See docs/simulator.md.
"""

from .builder import PlacedProgram, SectionBuilder
from .errors import SimulationError
from .results import ResourceStats, SectionStats, SimResult, StreamStats, TierStats, UnitStats, write_chrome_trace
from .runner import simulate

__all__ = [
    "PlacedProgram", "ResourceStats", "SectionBuilder", "SectionStats", "SimResult", "SimulationError", "StreamStats",
    "TierStats", "UnitStats", "simulate", "write_chrome_trace",
]
