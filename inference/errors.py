from rduflow.ir.errors import RduflowError


class LlmSimError(RduflowError):
    """A simulation request rduflow cannot honour (named option, what to do instead)."""
