"""The compiler back end: an imported graph in, a placed program the simulator runs out.

    from rduflow.compiler.backend import compile_model
    c = compile_model(module, "sn40l", sockets=8, bindings={"batch": 1, "seq": 1, "past": 4096})
    c.placed            # the placed program (IR), for rduflow.simulator.simulate
    c.summary.to_text() # sections, units, PCU/PMU use, link load
    c.run(inputs)       # execute it for values: every socket, real collectives

See docs/backend.md for the passes and what they model.
"""

from .compile import Compiled, backend_pipeline, compile_model, run_compiled
from .errors import CompileError
from .execute import execute
from .summary import CompileSummary, SectionSummary

__all__ = ["CompileError", "CompileSummary", "Compiled", "SectionSummary", "backend_pipeline", "compile_model",
           "execute", "run_compiled"]
