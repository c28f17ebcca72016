"""Architectures as pass options: a preset name, a file, or an object registered here.

Pass options are text (a pipeline can be written and read back), so a pass names its
architecture. ``compile_model`` may be handed an :class:`RduArch` built in code (a preset
with overrides); :func:`arch_key` registers such an object under a name of its own.
"""

from __future__ import annotations

import hashlib

from rduflow.compiler.target import GpuArch, RduArch, list_arches, load_arch

from .errors import CompileError

_REGISTERED: dict[str, RduArch] = {}


def arch_key(arch: RduArch | str) -> str:
    """The pass-option text that names ``arch``."""
    if isinstance(arch, str):
        resolve_arch(arch)  # fail early on an unknown name
        return arch
    if arch.name in list_arches() and load_arch(arch.name) == arch:
        return arch.name
    key = f"{arch.name}#{hashlib.sha1(arch.model_dump_json().encode()).hexdigest()[:10]}"
    _REGISTERED[key] = arch
    return key


def resolve_arch(key: str) -> RduArch:
    arch = _REGISTERED.get(key) or load_arch(key)
    if isinstance(arch, GpuArch):
        raise CompileError(f"'{arch.name}' is a GPU architecture; the back end places programs on RDU "
                           "architectures (sn40l, sn30, sn10, plasticine or an RDU file)")
    return arch
