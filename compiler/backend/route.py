"""``route``: a path on the mesh for every stream, and the load it puts on each link.

Streams are routed heaviest first. A stream leaves its producer at one of its sites and
enters its consumer at one of its sites: the pair is the nearest one, with a penalty for
sites other streams already use, and no site takes more than its share of a unit's streams
(so the chunks of a weight land on different PCUs of the unit that takes them, instead of
all converging on one). The path is dimension order, columns then rows (XY) or rows then
columns (YX), or one with a third segment through an intermediate column or row (a
shortest path still, or one two hops longer around the two ends' box): whichever leaves
the most loaded link it uses least loaded by the streams of its phase (:mod:`.phases`: all
of a pipelined section, the unit's own in a sequential one), then the shortest, then the
least total load. Routing is repeated (rip-up and reroute), so that each stream's choice
sees the load of all the others. The result is an explicit ``route`` on each
``placed.stream``; a stream whose ends share a switch gets ``hops = 0``.

With ``ideal=true`` every stream gets ``hops = 0`` instead: no link limits and no hop
latency (the simulator's ideal network), to see what the network costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rduflow.compiler.passes import ModulePass, PassContext, option
from rduflow.ir import Module, Operation
from rduflow.compiler.target import RduArch

from .phases import phases
from .place import Floorplan
from .distinct import distinct_sections, set_attrs

Link = tuple[int, int, int, int]
SHARE_PENALTY = 2.0  # hops one more stream on the same site is worth
REROUTE_ROUNDS = 3  # rip-up and reroute: later rounds see every other stream's load
DETOURS = 6  # intermediate rows and columns tried for paths with one more turn


@dataclass(frozen=True)
class Route(ModulePass):
    """Route every stream on the mesh (dimension order, XY or YX by link load) or, ideal, bypass it."""

    name: ClassVar[str] = "route"
    needs_target: ClassVar[bool] = True
    ideal: bool = option(False, "no mesh: every stream gets hops=0 (no link limits, no hop latency)")

    def apply(self, module: Module, ctx: PassContext) -> None:
        arch = ctx.target_for(self)
        for section, copies in distinct_sections(module, ("route", "hops")):
            route_section(section, arch, self.ideal)
            set_attrs(section, copies, ("route", "hops"))


def route_section(section: Operation, arch: RduArch, ideal: bool = False) -> dict[Link, int]:
    """Route the section's streams; returns the bytes per call on each link."""
    lay = Floorplan.from_placed(section, arch)
    load: dict[Link, int] = {}
    if ideal:
        for n in lay.nets:
            n.stream.attrs = {**n.stream.attrs, "route": (), "hops": 0}
        return load
    uses: dict[tuple[int, tuple[int, int]], int] = {}
    nets = sorted(lay.nets, key=lambda n: -n.bytes)
    ends = [_ends(lay, n, uses) for n in nets]
    phase = phases(section)
    busy: dict[tuple[Link, int], int] = {}  # (link, phase) -> bytes
    paths: list[list[Link] | None] = [None] * len(nets)
    for _ in range(REROUTE_ROUNDS):
        for i, (n, (a, b)) in enumerate(zip(nets, ends)):
            ph = phase[n.stream]
            if paths[i] is not None:
                for link in paths[i]:
                    load[link] -= n.bytes
                    busy[(link, ph)] -= n.bytes
            paths[i] = min(_candidates(a, b, arch.grid.rows, arch.grid.cols),
                           key=lambda p: (max((busy.get((link, ph), 0) + n.bytes for link in p), default=0),
                                          len(p), sum(load.get(link, 0) for link in p)))
            for link in paths[i]:
                load[link] = load.get(link, 0) + n.bytes
                busy[(link, ph)] = busy.get((link, ph), 0) + n.bytes
    for n, path in zip(nets, paths):
        attrs = {"route": tuple(path), "hops": -1} if path else {"route": (), "hops": 0}
        n.stream.attrs = {**n.stream.attrs, **attrs}
    return {k: v for k, v in load.items() if v}


def _ends(lay: Floorplan, n, uses) -> tuple[tuple[int, int], tuple[int, int]]:
    pa, pb = lay.points(n.src), lay.points(n.dst)
    d = np.abs(pa[:, None, :] - pb[None, :, :]).sum(-1).astype(float)
    ua = np.array([uses.get((n.src, tuple(p)), 0) for p in pa])
    ub = np.array([uses.get((n.dst, tuple(q)), 0) for q in pb])
    d += SHARE_PENALTY * ua[:, None] + SHARE_PENALTY * ub[None, :]
    # A unit takes its streams evenly over its sites: no site takes more than its share.
    fan_out = sum(1 for m in lay.units[n.src].nets if lay.nets[m].src == n.src)
    fan_in = sum(1 for m in lay.units[n.dst].nets if lay.nets[m].dst == n.dst)
    d[ua >= -(-fan_out // len(pa)), :] += 1e9
    d[:, ub >= -(-fan_in // len(pb))] += 1e9
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    a, b = tuple(map(int, pa[i])), tuple(map(int, pb[j]))
    uses[(n.src, a)] = uses.get((n.src, a), 0) + 1
    uses[(n.dst, b)] = uses.get((n.dst, b), 0) + 1
    return a, b


def _candidates(a: tuple[int, int], b: tuple[int, int], rows: int, cols: int) -> list[list[Link]]:
    """Paths from ``a`` to ``b``: dimension order both ways (XY first, the simulator's own
    order); with one more turn at up to :data:`DETOURS` intermediate columns (XYX) or rows
    (YXY), still shortest; and around: through a column or row just outside the two ends'
    box (two hops longer, for when the direct ones are busy, as along the grid's edge)."""
    out = [_walk(a, [(a[0], b[1]), b]), _walk(a, [(b[0], a[1]), b])]
    for lo, hi, turn, size in ((a[1], b[1], "col", cols), (a[0], b[0], "row", rows)):
        span = sorted((lo, hi))
        inner = list(range(span[0] + 1, span[1]))
        around = [m for m in (span[0] - 1, span[1] + 1) if 0 <= m < size]
        for m in inner[:: max(1, len(inner) // DETOURS)] + around:
            via = [(a[0], m), (b[0], m), b] if turn == "col" else [(m, a[1]), (m, b[1]), b]
            out.append(_walk(a, via))
    return out


def _walk(a: tuple[int, int], via: list[tuple[int, int]]) -> list[Link]:
    """Links along straight segments from ``a`` through the points of ``via``."""
    r, c = a
    links: list[Link] = []
    for tr, tc in via:
        while c != tc:
            nc = c + (1 if tc > c else -1)
            links.append((r, c, r, nc))
            c = nc
        while r != tr:
            nr = r + (1 if tr > r else -1)
            links.append((r, c, nr, c))
            r = nr
    return links


def link_loads(section: Operation, by_phase: bool = False) -> dict[Link, int]:
    """Bytes per call on each mesh link, from the section's routes; ``by_phase``: the most
    any one phase puts on it (what limits a sequential section)."""
    from .design import nbytes

    phase = phases(section) if by_phase else {}
    load: dict[tuple, int] = {}
    for op in section.regions[0].ops:
        if op.opname == "placed.stream":
            for link in op.attrs["route"]:
                key = (tuple(link), phase.get(op, 0))
                load[key] = load.get(key, 0) + nbytes(op.results[0].type)
    out: dict[Link, int] = {}
    for (link, _), nb in load.items():
        out[link] = max(out.get(link, 0), nb)
    return out
