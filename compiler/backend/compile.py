"""``compile_model``: an imported model in, a placed program the simulator runs out.

The back end is a pipeline of passes, run by the pass manager (so ``--print-ir-after-all``
shows each step): ``bind`` (shapes), ``canonicalize,cse,dce``, ``shard`` (tensor
parallelism), ``fuse``, ``section``, ``lower``, ``allocate``, ``place``, ``route``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rduflow.compiler.passes import (
    ModulePass,
    PassContext,
    PassFailure,
    PassInstrument,
    PassManager,
    PassRecord,
    format_pipeline,
)
from rduflow.compiler.passes.canonicalize import Canonicalize
from rduflow.compiler.passes.cse import CommonSubexpressionElimination
from rduflow.compiler.passes.dce import DeadCodeElimination
from rduflow.ir import Module
from rduflow.ir.gcpause import paused_gc
from rduflow.ir.interpreter import bind_symbols
from rduflow.compiler.target import RduArch

from .allocate import Allocate
from .archref import rdu_arch
from .bind import Bind, format_bindings
from .errors import CompileError
from .execute import execute
from .fuse import MODES, Fuse
from .lower import Lower
from .place import Place
from .route import Route
from .section import Sectioning
from .shard import Shard
from .summary import CompileSummary, summarize


@dataclass
class Compiled:
    """A compiled model: the placed program, what it uses, and how to run it."""

    placed: Module
    summary: CompileSummary
    arch: RduArch
    pipeline: str
    records: list[PassRecord] = field(default_factory=list)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Execute the placed program for values (every socket, real collectives)."""
        return execute(self.placed, inputs)


def backend_pipeline(*, sockets: int = 1, fusion: str = "auto", bindings: Mapping[str, int] | None = None,
                     ideal_network: bool = False, seed: int = 0) -> list[ModulePass]:
    """The back end's passes; run them with the target in the :class:`PassContext`."""
    return [
        Bind(dims=format_bindings(dict(bindings or {})), complete=True),
        Canonicalize(), CommonSubexpressionElimination(), DeadCodeElimination(),
        Shard(sockets=sockets), Fuse(mode=fusion), Sectioning(), Lower(),
        Allocate(), Place(seed=seed), Route(ideal=ideal_network),
    ]


def compile_model(module: Module, arch: RduArch | str | Path, *, sockets: int = 1, fusion: str = "auto",
                  bindings: dict[str, int] | None = None, ideal_network: bool = False,
                  instruments: Sequence[PassInstrument] = (), seed: int = 0) -> Compiled:
    """Compile ``module`` (an imported model) for ``sockets`` sockets of ``arch``.

    ``bindings`` give the model's dimension symbols values (``{"batch": 1, "seq": 1,
    "past": 4096}``); ``fusion`` is ``auto`` or ``none``; ``ideal_network`` routes no stream
    over the mesh (to compare against). The input module is not changed.
    """
    rdu = rdu_arch(arch)
    if fusion not in MODES:
        raise CompileError(f"fusion must be one of {', '.join(MODES)}, got {fusion!r}")
    if not isinstance(sockets, int) or not 1 <= sockets <= rdu.sockets.max_sockets:
        raise CompileError(f"sockets must be 1 to {rdu.sockets.max_sockets} on {rdu.name}, got {sockets!r}")
    passes = backend_pipeline(sockets=sockets, fusion=fusion, bindings=bindings, ideal_network=ideal_network, seed=seed)
    with paused_gc():
        placed = module.clone()
        t0 = time.perf_counter()
        try:
            records = PassManager(passes, context=PassContext(target=rdu), instruments=list(instruments)).run(placed)
        except PassFailure as e:
            if isinstance(e.__cause__, CompileError):  # the model's problem, not the pipeline's: say it plainly
                raise CompileError(str(e.__cause__)) from e
            raise
        seconds = time.perf_counter() - t0
        summary = summarize(placed, rdu, fusion=fusion, ideal=ideal_network, seconds=seconds)
    return Compiled(placed=placed, summary=summary, arch=rdu, pipeline=format_pipeline(passes), records=records)


def run_compiled(module: Module, inputs: Mapping[str, np.ndarray], arch: RduArch | str, *, sockets: int = 1,
                 fusion: str = "auto") -> dict[str, np.ndarray]:
    """Compile ``module`` for the shapes of ``inputs`` and execute the placed program on them."""
    g = module.main
    missing = [a.name for a in g.args if a.name not in inputs]
    if missing:
        raise CompileError(f"missing input(s) {', '.join(map(str, missing))}")
    bindings = bind_symbols(g.args, [np.asarray(inputs[a.name]) for a in g.args])
    return compile_model(module, arch, sockets=sockets, fusion=fusion, bindings=bindings).run(inputs)
