"""Which streams of a section move data at the same time.

In a pipelined section (prefill: big activations stream between units in many tiles)
every stream runs alongside every other. In a sequential one (decode: each activation
between units is a few kilobytes, so each unit works while the previous one waits) a
unit's streams run mostly alone: its weights from memory and the activations it takes.
Routing and the reported link load count link sharing only between streams of the same
phase; AGCUs are spread over the memory streams of each unit either way.
"""

from __future__ import annotations

from rduflow.ir import Operation

from .design import TILE_BYTES, nbytes

PIPELINED_TILES = 2  # a stream between compute units with more tiles than this, of more than
PIPELINED_BYTES = PIPELINED_TILES * TILE_BYTES  # this many bytes, makes the section a pipeline


def consumer_units(section: Operation) -> dict[Operation, int]:
    """For each ``placed.stream``: the position of the unit that uses what it carries
    (following a buffer to the unit it feeds)."""
    region = section.regions[0]
    users = region.users()
    index = {op: i for i, op in enumerate(region.ops)}
    out = {}
    for s in (op for op in region.ops if op.opname == "placed.stream"):
        unit = users[s.results[0]][0]
        while unit.opname == "placed.buffer":
            unit = users[users[unit.results[0]][0].results[0]][0]
        out[s] = index[unit]
    return out


def pipelined(section: Operation) -> bool:
    region = section.regions[0]
    users = region.users()
    return any(op.opname == "placed.stream" and op.attrs["tiles"] > PIPELINED_TILES
               and nbytes(op.results[0].type) > PIPELINED_BYTES
               and op.operands[0].defining_op.opname == "placed.compute"
               and users[op.results[0]][0].opname == "placed.compute" for op in region.ops)


def phases(section: Operation) -> dict[Operation, int]:
    """Phase of each stream: one phase for a pipeline, the consuming unit's otherwise."""
    units = consumer_units(section)
    return {s: 0 for s in units} if pipelined(section) else units
