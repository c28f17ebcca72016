"""The RDU architecture a compile targets, from a preset name, a file, or an object built in code."""

from __future__ import annotations

from pathlib import Path

from rduflow.compiler.target import GpuArch, RduArch, load_arch

from .errors import CompileError


def rdu_arch(arch: RduArch | GpuArch | str | Path) -> RduArch:
    """``arch`` itself, or the preset or file it names; a :class:`CompileError` for a GPU architecture."""
    found = arch if isinstance(arch, (RduArch, GpuArch)) else load_arch(str(arch))
    if isinstance(found, GpuArch):
        raise CompileError(f"'{found.name}' is a GPU architecture; the back end places programs on RDU "
                           "architectures (sn40l, sn30, sn10, plasticine or an RDU file)")
    return found
