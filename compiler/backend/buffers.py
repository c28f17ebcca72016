"""PMU buffers on the streams of a designed section (the rules in :mod:`.design`'s docstring)."""

from __future__ import annotations

from collections import defaultdict

import networkx as nx
from rduflow.ir import Value

from .design import RESIDENT_MIN, RING_TILES, Design, Port, Stream, Unit, nbytes


def add_buffers(d: Design) -> None:
    """Put PMU buffers on the streams that need them (see the module docstring)."""
    need: dict[int, int] = {}  # stream -> bytes of buffer it needs
    for i, s in enumerate(d.streams):
        src = d.units[s.src]
        if src.kind == "read" and not src.mem.indexed and s.tiles > 2:
            need[i] = RING_TILES * -(-d.stream_bytes(s) // s.tiles)
    for k, u in enumerate(d.units):
        if u.kind != "compute" or not u.contraction:
            continue
        logical: dict[Value, list[int]] = defaultdict(list)
        for i in d.inputs(k):
            s = d.streams[i]
            logical[d.units[s.src].outputs[s.port].value].append(i)
        sizes = {v: sum(d.stream_bytes(d.streams[i]) for i in ids) for v, ids in logical.items()}
        largest = max(sizes, key=lambda v: sizes[v], default=None)
        for v, ids in logical.items():
            if v is not largest and sizes[v] > RESIDENT_MIN:
                for i in ids:
                    need[i] = max(need.get(i, 0), d.stream_bytes(d.streams[i]))
    for i, nb in _skew_needs(d).items():
        need[i] = max(need.get(i, 0), nb)
    by_port: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in need:
        s = d.streams[i]
        by_port[(s.src, s.port)].append(i)
    for (src, port), ids in by_port.items():
        p = d.units[src].outputs[port]
        cap = min(max(need[i] for i in ids), nbytes(p.type))
        b = len(d.units)
        d.units.append(Unit("buffer", f"buf {d.units[src].name}", outputs=[Port(p.value, p.chunk)], capacity=cap))
        d.streams.append(Stream(src, port, b, d.streams[ids[0]].tiles))
        for i in ids:
            d.streams[i].src, d.streams[i].port = b, 0


def _skew_needs(d: Design) -> dict[int, int]:
    """Streams that meet a longer path from the same unit: bytes to buffer for the delay."""
    g, order = d.graph(), d.order()
    out: dict[int, int] = {}
    for k in range(len(d.units)):
        ins = d.inputs(k)
        srcs = {d.streams[i].src for i in ins}
        if len(srcs) < 2:
            continue
        for i in ins:
            a = d.streams[i].src
            longest = _longest_from(g, order, a)
            hops = max((longest[d.streams[j].src] for j in ins if d.streams[j].src != a
                        and longest.get(d.streams[j].src, -1) >= 0), default=-1)
            if hops >= 1:
                s = d.streams[i]
                tile = -(-d.stream_bytes(s) // s.tiles)
                want = min(d.stream_bytes(s), 2 * (hops + 1) * tile)
                if want > 2 * tile:
                    out[i] = want
    return out


def _longest_from(g: nx.DiGraph, order: list[int], a: int) -> dict[int, int]:
    """Longest path length (in streams) from unit ``a`` to each unit it reaches, by one sweep of
    the topological ``order``. Not networkx's: its way (generations of the subgraph ``a`` reaches)
    made this function 6x slower (docs/dependencies.md)."""
    dist = {a: 0}
    for k in order:
        if k in dist:
            for n in g.successors(k):
                dist[n] = max(dist.get(n, -1), dist[k] + 1)
    return dist
