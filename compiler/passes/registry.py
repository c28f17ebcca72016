"""Every pass by name. Modules are imported only when their pass is used (xDSL's lazy registry).

To add a pass: write ``compiler/passes/NAME.py`` with a ``ModulePass`` subclass and add one
line below. tests/compiler checks that every entry imports and that its ``name`` matches.
"""

from __future__ import annotations

import importlib

from .base import ModulePass, PipelineError

# pipeline name -> "module:Class"; a module starting with "." is relative to this package.
PASSES: dict[str, str] = {
    "canonicalize": ".canonicalize:Canonicalize",
    "cse": ".cse:CommonSubexpressionElimination",
    "dce": ".dce:DeadCodeElimination",
    "quantize-weights": ".precision:QuantizeWeights",
    "kv-cache": ".precision:KvCache",
    # the back end (compiler/backend, docs/backend.md)
    "bind": "rduflow.compiler.backend.bind:Bind",
    "shard": "rduflow.compiler.backend.shard:Shard",
    "fuse": "rduflow.compiler.backend.fuse:Fuse",
    "section": "rduflow.compiler.backend.section:Sectioning",
    "lower": "rduflow.compiler.backend.lower:Lower",
    "allocate": "rduflow.compiler.backend.allocate:Allocate",
    "place": "rduflow.compiler.backend.place:Place",
    "route": "rduflow.compiler.backend.route:Route",
}


def get_pass(name: str) -> type[ModulePass]:
    target = PASSES.get(name)
    if target is None:
        raise PipelineError(f"unknown pass '{name}' (available: {', '.join(sorted(PASSES))})")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module, __package__), cls)


def available_passes() -> dict[str, type[ModulePass]]:
    return {name: get_pass(name) for name in sorted(PASSES)}
