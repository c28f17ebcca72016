"""Standard output that cannot be written (a full disk, ``> /dev/full``) is one error line like
any other, not a traceback or an "Exception ignored" at exit."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import IO

from rduflow.ir.errors import RduflowError


class OutputError(RduflowError):
    """Standard output refused what a command printed."""


class _GuardedStream:
    """A text stream whose write errors (other than a closed pipe, `| head`) are :class:`OutputError`."""

    def __init__(self, stream: IO[str]):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _failed(self._stream, e) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _failed(self._stream, e) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_stdout() -> Iterator[None]:
    """While a command runs, printing to a stdout that refuses it raises :class:`OutputError`;
    what the command printed is flushed at the end, inside the guard."""
    real = sys.stdout
    sys.stdout = _GuardedStream(real)
    try:
        yield
        sys.stdout.flush()
    finally:
        sys.stdout = real


def _failed(stream: IO[str], e: OSError) -> OutputError:
    """The error for ``e``; the stream's file is pointed at /dev/null, so that what is still
    buffered does not fail again when the interpreter exits."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # a stream without a file descriptor
        pass
    return OutputError(f"standard output: cannot write: {e.strerror or e}")
