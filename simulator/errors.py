"""Errors the simulator reports to users (the CLI prints them as one line)."""

from rduflow.ir.errors import RduflowError


class SimulationError(RduflowError, ValueError):
    """A placed program that cannot run on the given architecture; names the unit and why."""
