"""Errors of the compiler back end."""

from rduflow.ir.errors import RduflowError


class CompileError(RduflowError):
    """A model the back end cannot compile as asked: it does not fit, or a size is unknown."""
