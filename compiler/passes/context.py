"""What every pass of a run may read besides the module and its own options.

Like MLIR's context, it is built once by whoever runs the pipeline and handed by the pass
manager to each pass. Options are text (a pipeline can be written and read back); the
target is an object (a preset with overrides, built in code, has no name to write), so it
travels here and not as an option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rduflow.compiler.target import RduArch

from .base import PipelineError

if TYPE_CHECKING:
    from .base import ModulePass


@dataclass(frozen=True)
class PassContext:
    target: RduArch | None = None  # the architecture compiled for: read by passes with ``needs_target``

    def target_for(self, p: ModulePass) -> RduArch:
        """The target, for pass ``p``; a :class:`PipelineError` when the run was given none."""
        if self.target is None:
            raise PipelineError(f"pass '{p.name}' needs a target architecture and the pass context has none "
                                "(on the command line: --arch)")
        return self.target
