"""Python's cyclic garbage collector, paused while a compile or a simulation runs.

The IR is a large graph of small objects with reference cycles (an op and its results, a
region and its op). Every pass builds new ops, so the collector keeps finding many new
survivors and runs full collections, each walking the whole heap: about 40% of a warm compile
of a 70B step (docs/benchmarks.md). Paused, the cycles a pass leaves behind wait for the first
collection after it: 36 MB more at the peak for that step. Reference counting still frees
everything else at once.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    if not gc.isenabled():  # paused already (nested) or by the caller
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
