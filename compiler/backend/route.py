"""``route``: a path on the mesh for every stream, and the load it puts on each link.

Streams are routed heaviest first. A stream leaves its producer at one of its sites and
enters its consumer at one of its sites: the pair is the nearest one, with a penalty for
sites other streams already use (so that the chunks of a weight land on different PCUs of
the unit that takes them, instead of all converging on one). The path is dimension order,
columns then rows (XY) or rows then columns (YX), whichever leaves the most loaded link it
uses less loaded. The result is an explicit ``route`` on each ``placed.stream``; a stream
whose ends share a switch gets ``hops = 0``.

With ``ideal=true`` every stream gets ``hops = 0`` instead: no link limits and no hop
latency (the simulator's ideal network), to see what the network costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rduflow.compiler.passes import ModulePass, option
from rduflow.ir import Module, Operation
from rduflow.simulator import RduArch

from .archref import resolve_arch
from .place import Layout
from .sections import distinct_sections, set_attrs

Link = tuple[int, int, int, int]
SHARE_PENALTY = 2.0  # hops one more stream on the same site is worth


@dataclass(frozen=True)
class Route(ModulePass):
    """Route every stream on the mesh (dimension order, XY or YX by link load) or, ideal, bypass it."""

    name: ClassVar[str] = "route"
    arch: str = option("sn40l", "architecture: a preset name or a file")
    ideal: bool = option(False, "no mesh: every stream gets hops=0 (no link limits, no hop latency)")

    def apply(self, module: Module) -> None:
        arch = resolve_arch(self.arch)
        for section, copies in distinct_sections(module, ("route", "hops")):
            route_section(section, arch, self.ideal)
            set_attrs(section, copies, ("route", "hops"))


def route_section(section: Operation, arch: RduArch, ideal: bool = False) -> dict[Link, int]:
    """Route the section's streams; returns the bytes per call on each link."""
    lay = Layout(section, arch)
    for u in lay.units:
        if u.kind == "agcu":
            u.agcu = u.op.attrs["agcu"]
        else:
            u.sites = [tuple(s) for s in u.op.attrs["coords"]]
    load: dict[Link, int] = {}
    if ideal:
        for n in lay.nets:
            n.stream.attrs = {**n.stream.attrs, "route": (), "hops": 0}
        return load
    uses: dict[tuple[int, tuple[int, int]], int] = {}
    for n in sorted(lay.nets, key=lambda n: -n.bytes):
        a, b = _ends(lay, n, uses)
        path = min((_path(a, b, xy) for xy in (True, False)),
                   key=lambda p: max((load.get(link, 0) for link in p), default=0))
        for link in path:
            load[link] = load.get(link, 0) + n.bytes
        attrs = {"route": tuple(path), "hops": -1} if path else {"route": (), "hops": 0}
        n.stream.attrs = {**n.stream.attrs, **attrs}
    return load


def _ends(lay: Layout, n, uses) -> tuple[tuple[int, int], tuple[int, int]]:
    pa, pb = lay.points(n.src), lay.points(n.dst)
    d = np.abs(pa[:, None, :] - pb[None, :, :]).sum(-1).astype(float)
    d += SHARE_PENALTY * np.array([uses.get((n.src, tuple(p)), 0) for p in pa])[:, None]
    d += SHARE_PENALTY * np.array([uses.get((n.dst, tuple(q)), 0) for q in pb])[None, :]
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    a, b = tuple(map(int, pa[i])), tuple(map(int, pb[j]))
    uses[(n.src, a)] = uses.get((n.src, a), 0) + 1
    uses[(n.dst, b)] = uses.get((n.dst, b), 0) + 1
    return a, b


def _path(a: tuple[int, int], b: tuple[int, int], xy: bool) -> list[Link]:
    r, c = a
    links: list[Link] = []
    for axis in ((1, 0) if xy else (0, 1)):
        while (c if axis else r) != (b[1] if axis else b[0]):
            if axis:
                nc = c + (1 if b[1] > c else -1)
                links.append((r, c, r, nc))
                c = nc
            else:
                nr = r + (1 if b[0] > r else -1)
                links.append((r, c, nr, c))
                r = nr
    return links


def link_loads(section: Operation) -> dict[Link, int]:
    """Bytes per call on each mesh link, from the section's routes."""
    from .design import nbytes

    load: dict[Link, int] = {}
    for op in section.regions[0].ops:
        if op.opname == "placed.stream":
            for link in op.attrs["route"]:
                load[tuple(link)] = load.get(tuple(link), 0) + nbytes(op.results[0].type)
    return load
