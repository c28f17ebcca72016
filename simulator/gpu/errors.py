from rduflow.ir.errors import RduflowError


class GpuModelError(RduflowError):
    """A graph or setting the GPU model cannot cost (named in the message)."""
