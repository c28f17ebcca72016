"""Running a pipeline: verification after every pass, IR printing, timing, failure reports.

Modelled on MLIR's pass manager (``-verify-each``, ``-mlir-print-ir-after-all``,
``-mlir-print-ir-after-change``, ``-mlir-timing``) and TVM's pass instruments. A failing
pass, or IR that no longer verifies after a pass, is reported with the pass's name and the
pipeline up to it, so the failure can be reproduced with ``rduflow opt -p``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from rduflow.ir import Module, VerifyError, print_module, verify_module
from rduflow.ir.errors import RduflowError

from .base import ModulePass
from .context import PassContext
from .pipeline import format_pipeline


class PassFailure(RduflowError):
    """A pass raised an error, or left IR that does not verify."""

    def __init__(self, message: str, pass_name: str | None, pipeline: str):
        self.pass_name = pass_name
        self.pipeline = pipeline
        super().__init__(message)


class PassInstrument:
    """Hooks called around each pass (TVM's ``PassInstrument``). ``after_pass`` runs before verification."""

    def before_pass(self, p: ModulePass, index: int, module: Module) -> None:
        pass

    def after_pass(self, p: ModulePass, index: int, module: Module) -> None:
        pass


ALL = "all"


@dataclass
class IRPrinter(PassInstrument):
    """Prints the module before/after passes, as re-parseable text under a ``//`` header.

    ``before``/``after`` select passes: ``ALL``, or a collection of pass names. With
    ``only_changed``, a pass's "after" dump is left out when the pass did not change the IR.
    """

    before: Container[str] | str = ()
    after: Container[str] | str = ()
    only_changed: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    _text_before: str | None = None

    def before_pass(self, p: ModulePass, index: int, module: Module) -> None:
        wants_after = _selected(self.after, p)
        if _selected(self.before, p) or (self.only_changed and wants_after):
            text = print_module(module)
            if _selected(self.before, p):
                self._dump(f"IR before {p.spec()} (pass {index + 1})", text)
            self._text_before = text

    def after_pass(self, p: ModulePass, index: int, module: Module) -> None:
        if not _selected(self.after, p):
            return
        text = print_module(module)
        if self.only_changed and text == self._text_before:
            return
        self._dump(f"IR after {p.spec()} (pass {index + 1})", text)

    def _dump(self, title: str, text: str) -> None:
        self.stream.write(f"// ----- {title} ----- //\n{text}\n")
        self.stream.flush()


def _selected(which: Container[str] | str, p: ModulePass) -> bool:
    return which == ALL or (not isinstance(which, str) and p.name in which)


@dataclass(frozen=True)
class PassRecord:
    """How long one pass took, and the verifier after it."""

    spec: str
    seconds: float
    verify_seconds: float


class PassManager:
    """Runs ``passes`` in order, handing each the same ``context`` (the target, for passes that need one)."""

    def __init__(self, passes: Sequence[ModulePass], *, context: PassContext = PassContext(), verify_each: bool = True,
                 instruments: Sequence[PassInstrument] = ()):
        self.passes = list(passes)
        self.context = context
        self.verify_each = verify_each
        self.instruments = list(instruments)

    def run(self, module: Module) -> list[PassRecord]:
        """Apply every pass in order; returns per-pass timings. Raises :class:`PassFailure`."""
        for p in self.passes:
            if p.needs_target:
                self.context.target_for(p)  # a missing target fails before any pass runs
        records: list[PassRecord] = []
        if self.verify_each:
            # Blame a broken input on the input, not on the first pass.
            self._verify(module, None, "", "the input IR is invalid, before any pass")
        for i, p in enumerate(self.passes):
            so_far = format_pipeline(self.passes[: i + 1])
            for ins in self.instruments:
                ins.before_pass(p, i, module)
            t0 = time.perf_counter()
            try:
                p.apply(module, self.context)
            except RduflowError as e:
                raise PassFailure(f"pass '{p.name}' failed (pipeline so far: {so_far}): {e}", p.name, so_far) from e
            except Exception as e:  # a bug in the pass: still say which pass and how to reproduce
                raise PassFailure(
                    f"pass '{p.name}' crashed (pipeline so far: {so_far}): {type(e).__name__}: {e} "
                    "(this is a bug in rduflow; --debug shows the traceback)", p.name, so_far) from e
            t1 = time.perf_counter()
            for ins in self.instruments:
                ins.after_pass(p, i, module)
            t2 = time.perf_counter()
            if self.verify_each:
                self._verify(module, p, so_far, f"IR is invalid after pass '{p.name}' (pipeline so far: {so_far})")
            records.append(PassRecord(p.spec(), t1 - t0, time.perf_counter() - t2))
        return records

    def _verify(self, module: Module, p: ModulePass | None, so_far: str, what: str) -> None:
        try:
            verify_module(module)
        except VerifyError as e:
            raise PassFailure(f"{what}: {summarize(e)}", p.name if p else None, so_far) from e


def summarize(e: VerifyError) -> str:
    """The first diagnostic, and how many more there are (a broken pass usually causes a cascade)."""
    first = e.diagnostics[0] if e.diagnostics else str(e)
    more = len(e.diagnostics) - 1
    return first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")


def format_timings(records: Sequence[PassRecord]) -> str:
    """A table in the spirit of MLIR's ``-mlir-timing`` report."""
    total = sum(r.seconds + r.verify_seconds for r in records)
    verify = sum(r.verify_seconds for r in records)
    rows = [(r.seconds, r.spec) for r in records]
    if verify:
        rows.append((verify, "(verifier, after every pass)"))
    lines = ["===" + "-" * 60 + "===", "  Pass execution timing report", "===" + "-" * 60 + "===",
             f"  Total: {total:.4f} s", "   Wall time (s)      %  Pass"]
    for secs, name in rows:
        pct = 100.0 * secs / total if total else 0.0
        lines.append(f"  {secs:14.4f} {pct:6.1f}  {name}")
    return "\n".join(lines) + "\n"
