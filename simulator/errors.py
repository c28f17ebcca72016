"""Errors the simulator reports to users (the CLI prints them as one line)."""

from rduflow.ir.errors import RduflowError


class ArchError(RduflowError, ValueError):
    """An architecture file or preset name that cannot be used; names the file and field."""


class SimulationError(RduflowError, ValueError):
    """A placed program that cannot run on the given architecture; names the unit and why."""
