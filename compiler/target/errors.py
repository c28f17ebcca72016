"""Errors a target description reports to users (the CLI prints them as one line)."""

from rduflow.ir.errors import RduflowError


class ArchError(RduflowError, ValueError):
    """An architecture file or preset name that cannot be used; names the file and field."""


class CostError(RduflowError, ValueError):
    """An op whose cost on a target cannot be counted (a symbolic shape); names the op."""
