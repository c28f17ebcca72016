"""The base of every error a user can cause; the CLI prints these as one line, no traceback."""


class RduflowError(Exception):
    """A problem with the user's input (file, model, option), not a bug in rduflow."""

    exit_code = 1
