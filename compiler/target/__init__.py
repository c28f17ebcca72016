"""The hardware descriptions: RDU and GPU presets, their schema, and what an op costs on a target.

The compiler reads them to section, place and route; the simulator reads the same
descriptions to time the placed program (as LLVM's scheduling models serve both the
compiler and llvm-mca). ``load_arch`` reads a preset name or a TOML/YAML file.
"""

from .arch import Arch, GpuArch, Power, Price, RduArch, list_arches, load_arch
from .work import ComputeWork, compute_work
from .errors import ArchError, CostError

__all__ = ["Arch", "ArchError", "ComputeWork", "CostError", "GpuArch", "Power", "Price", "RduArch", "compute_work", "list_arches",
           "load_arch"]
