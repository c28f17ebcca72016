"""Errors of the ONNX importer: every problem with the input model is one of these."""

from __future__ import annotations

from dataclasses import dataclass

from rduflow.ir.errors import RduflowError


class OnnxImportError(RduflowError):
    """The model cannot be imported: unreadable, invalid, or beyond what the IR can express."""


@dataclass(frozen=True)
class UnsupportedOp:
    domain: str
    op_type: str
    version: int
    count: int
    first_node: str

    def describe(self) -> str:
        domain = self.domain or "ai.onnx"
        return f"{domain} {self.op_type} (opset {self.version}; {self.count} node(s), first '{self.first_node}')"


class UnsupportedOperatorsError(OnnxImportError):
    """The model uses operators the importer has no converter for; all of them are listed."""

    exit_code = 2

    def __init__(self, where: str, ops: list[UnsupportedOp]):
        self.ops = ops
        listing = "; ".join(op.describe() for op in ops)
        super().__init__(f"{where}: {len(ops)} unsupported operator(s): {listing}")
