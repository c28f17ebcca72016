"""Passes over the IR and the pass manager that runs them.

``parse_pipeline("canonicalize,cse,dce")`` builds passes from text; ``PassManager(passes).run(module)``
applies them, verifying after each. See docs/architecture.md, "Passes", to add one.
"""

from .base import ModulePass, PassOption, PipelineError, option
from .context import PassContext
from .manager import ALL, IRPrinter, PassFailure, PassInstrument, PassManager, PassRecord, format_timings
from .pipeline import format_pipeline, parse_pipeline
from .registry import PASSES, available_passes, get_pass
from .rewrite import PatternSet, RewritePattern, Rewriter, apply_patterns_greedily

__all__ = [
    "ALL", "IRPrinter", "ModulePass", "PASSES", "PassContext", "PassFailure", "PassInstrument", "PassManager", "PassOption",
    "PassRecord", "PatternSet", "PipelineError", "RewritePattern", "Rewriter", "apply_patterns_greedily",
    "available_passes", "format_pipeline", "format_timings", "get_pass", "option", "parse_pipeline",
]
