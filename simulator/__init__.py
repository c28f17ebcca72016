"""rduflow's cycle-approximate simulator: architecture presets and the placed-program engine.

``load_arch`` reads an architecture (preset name or TOML/YAML file); ``simulate`` runs a
placed program (ops in ``rduflow.ir.ops.placed``, built with :class:`PlacedProgram`) on it.
See docs/simulator.md.
"""

from .arch import Arch, GpuArch, RduArch, list_arches, load_arch
from .builder import PlacedProgram, SectionBuilder
from .errors import ArchError, SimulationError
from .results import ResourceStats, SectionStats, SimResult, StreamStats, TierStats, UnitStats, write_chrome_trace
from .runner import simulate

__all__ = [
    "Arch", "ArchError", "GpuArch", "PlacedProgram", "RduArch", "ResourceStats", "SectionBuilder", "SectionStats",
    "SimResult", "SimulationError", "StreamStats", "TierStats", "UnitStats", "list_arches", "load_arch", "simulate",
    "write_chrome_trace",
]
