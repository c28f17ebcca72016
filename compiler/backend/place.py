"""``place``: grid coordinates for every PCU and PMU a section uses, AGCUs for memory traffic.

The objective is the section's **weighted hop count**: for each stream, its bytes per call
times the mesh hops between the nearest sites of its two units (the hops the router will
take), plus a compactness term per multi-site unit (its traffic times the mean distance of
its sites from their centre: data entering a unit is spread over all its sites). For a
compute unit only activations count: weights streamed from memory land, chunk by chunk, on
the PCU that uses them.

1. AGCUs: memory reads and writes and collectives go, heaviest first, to the least loaded
   AGCU that no other memory stream into the same unit uses yet: memory traffic is spread
   over all AGCUs, and the chunks of a weight, which stream together, use different ones.
2. Constructive placement: units are placed in order of the share of their traffic that
   goes to units already placed (memory units first, at their AGCUs); each takes the free sites of its
   kind nearest the traffic-weighted centre of its placed neighbours, except that a unit
   fed by several heavy streams (a weight's chunks) puts one site by each of them.
3. Simulated annealing: a site moves to a free site nearby, or two units swap sites, or two
   memory units of about the same traffic swap AGCUs (the loads stay balanced); a move that
   raises the cost by d is kept with probability exp(-d / T), T falling geometrically. The
   move window shrinks with T. Units of more than :data:`MOVABLE_SITES` sites (the big
   compute units of prefill) keep the compact blob step 2 gave them: moving one of their
   sites barely changes the cost and costs the most to evaluate.

:func:`random_placement` places the same units uniformly at random (the baseline the tests
and ``benchmarks/backend_quality.py`` compare against).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
from rduflow.compiler.passes import ModulePass, PassContext, option
from rduflow.ir import Module, Operation
from rduflow.compiler.target import RduArch

from .allocate import memory_fed
from .design import nbytes
from .errors import CompileError
from .phases import consumer_units
from .distinct import distinct_sections, set_attrs

MEMORY = ("placed.mem_read", "placed.mem_write", "placed.collective")
MOVABLE_SITES = 32  # annealing moves the sites of units up to this size; bigger ones keep their compact blob
MAX_MOVES = 60000
PLACED_ATTRS = ("coords", "agcu")


@dataclass
class PUnit:
    op: Operation
    kind: str  # pcu, pmu, agcu
    count: int  # sites (PCUs or PMUs); AGCU units: 1
    sites: list[tuple[int, int]] = field(default_factory=list)
    agcu: int = -1
    nets: list[int] = field(default_factory=list)
    traffic: int = 0  # bytes per call it spreads over its sites: all of a buffer's, a compute unit's activations
    total: int = 0  # bytes per call of all its streams
    phase: int = 0  # memory units: the unit their stream feeds (:func:`.phases.consumer_units`)


@dataclass
class Net:
    src: int
    dst: int
    bytes: int
    stream: Operation


class Floorplan:
    """Units, nets and the grid of one section; the cost and its pieces."""

    @classmethod
    def from_placed(cls, section: Operation, arch: RduArch) -> Floorplan:
        """The layout a placed section already has (sites and AGCUs read back from its attributes)."""
        lay = cls(section, arch)
        for u in lay.units:
            if u.kind == "agcu":
                u.agcu = u.op.attrs["agcu"]
            else:
                u.sites = [tuple(s) for s in u.op.attrs["coords"]]
        return lay

    def __init__(self, section: Operation, arch: RduArch):
        self.arch = arch
        self.units: list[PUnit] = []
        index: dict[Operation, int] = {}
        region = section.regions[0]
        for op in region.ops:
            if op.opname == "placed.compute":
                kind, count = "pcu", op.attrs["pcus"]
            elif op.opname == "placed.buffer":
                kind, count = "pmu", op.attrs["pmus"]
            elif op.opname in MEMORY:
                kind, count = "agcu", 1
            else:
                continue
            index[op] = len(self.units)
            self.units.append(PUnit(op, kind, count))
        self.nets: list[Net] = []
        users = region.users()
        phase = consumer_units(section)
        for op in region.ops:
            if op.opname != "placed.stream":
                continue
            (dst,) = users[op.results[0]]
            n = Net(index[op.operands[0].defining_op], index[dst], nbytes(op.results[0].type), op)
            self.nets.append(n)
            from_memory = memory_fed(op.operands[0].defining_op)
            for k in (n.src, n.dst):
                if self.units[k].kind == "agcu":
                    self.units[k].phase = phase[op]
                self.units[k].nets.append(len(self.nets) - 1)
                self.units[k].total += n.bytes
                if not from_memory or self.units[k].kind == "pmu":
                    self.units[k].traffic += n.bytes
        g = arch.grid
        self.sites = {"pcu": [(r, c) for r in range(g.rows) for c in range(g.cols) if arch.is_pcu_site(r, c)],
                      "pmu": [(r, c) for r in range(g.rows) for c in range(g.cols) if not arch.is_pcu_site(r, c)]}
        for kind in ("pcu", "pmu"):
            need = sum(u.count for u in self.units if u.kind == kind)
            if need > len(self.sites[kind]):
                raise CompileError(f"section '{section.attrs['name']}': needs {need} {kind.upper()}s, "
                                   f"{arch.name} has {len(self.sites[kind])}")

    def inputs(self) -> tuple:
        """Everything of the units and nets that placement reads (not their ops or names)."""
        return (tuple((u.kind, u.count, u.phase, u.traffic, u.total) for u in self.units),
                tuple((n.src, n.dst, n.bytes) for n in self.nets))

    def points(self, k: int) -> np.ndarray:
        return np.array(self.site_list(k), dtype=np.int64)

    def site_list(self, k: int) -> list[tuple[int, int]]:
        u = self.units[k]
        return [self.arch.agcu_coord(u.agcu)] if u.kind == "agcu" else u.sites

    def net_cost(self, n: Net, pts: dict[int, list[tuple[int, int]]]) -> float:
        return n.bytes * float(nearest_hops(pts[n.src], pts[n.dst]))

    def spread_cost(self, k: int, pts: list[tuple[int, int]]) -> float:
        u = self.units[k]
        if u.kind == "agcu" or len(pts) < 2:
            return 0.0
        return u.traffic * mean_distance_from_centre(pts)

    def cost(self) -> float:
        pts = {k: self.site_list(k) for k in range(len(self.units))}
        return sum(self.net_cost(n, pts) for n in self.nets) + sum(self.spread_cost(k, pts[k]) for k in pts)

    def hops(self) -> float:
        """Weighted hop count: bytes times nearest-site hops, over the streams."""
        pts = {k: self.site_list(k) for k in range(len(self.units))}
        return sum(self.net_cost(n, pts) for n in self.nets)

    def write(self) -> None:
        for u in self.units:
            if u.kind == "agcu":
                u.op.attrs = {**u.op.attrs, "agcu": u.agcu}
            else:
                u.op.attrs = {**u.op.attrs, "coords": tuple(tuple(s) for s in u.sites)}


# -- the cost's pieces, in plain Python: the point sets are a few sites, where numpy's per-call
# overhead dominates (annealing evaluates them hundreds of thousands of times) ---------------------
NUMPY_PAIRS = 128  # beyond this many site pairs, numpy's vectorised distance is faster


def nearest_hops(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    """Mesh hops between the nearest sites of ``a`` and ``b``."""
    if len(a) * len(b) > NUMPY_PAIRS:
        pa, pb = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)
        return int(np.abs(pa[:, None, :] - pb[None, :, :]).sum(-1).min())
    return min([abs(r - q) + abs(c - d) for r, c in a for q, d in b])  # a list: faster than a generator here


def distance_field(sites: list[tuple[int, int]], rows: int, cols: int) -> list[list[int]]:
    """Hops from every grid site to the nearest of ``sites``: ``field[r][c]`` (sweeps along
    rows, then columns, each way: Manhattan distance is the sum of the two)."""
    f = np.full((rows, cols), rows + cols, dtype=np.int64)
    for r, c in sites:
        f[r, c] = 0
    for c in range(1, cols):
        np.minimum(f[:, c], f[:, c - 1] + 1, out=f[:, c])
    for c in range(cols - 2, -1, -1):
        np.minimum(f[:, c], f[:, c + 1] + 1, out=f[:, c])
    for r in range(1, rows):
        np.minimum(f[r], f[r - 1] + 1, out=f[r])
    for r in range(rows - 2, -1, -1):
        np.minimum(f[r], f[r + 1] + 1, out=f[r])
    return f.tolist()


def mean_distance_from_centre(pts: list[tuple[int, int]]) -> float:
    """Mean Manhattan distance of ``pts`` from their centre, bit for bit what numpy gives for
    ``np.abs(p - p.mean(0)).sum(-1).mean()`` (the same sums in the same order: annealing's
    accept decisions, and so the placement, depend on the last bit)."""
    n = len(pts)
    mr = sum([r for r, _ in pts]) / n  # integer sums are exact, as numpy's float sums of them are
    mc = sum([c for _, c in pts]) / n
    return _pairwise_sum([abs(r - mr) + abs(c - mc) for r, c in pts], 0, n) / n


def _pairwise_sum(v: list[float], lo: int, n: int) -> float:
    """numpy's summation of a contiguous float64 array (``pairwise_sum`` in its loops): plain
    up to 7 items, 8 interleaved partial sums up to 128, halves (cut at a multiple of 8) beyond."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += v[i]
        return res
    if n <= 128:
        r = v[lo:lo + 8]
        end = lo + n - n % 8
        for i in range(lo + 8, end, 8):
            for j in range(8):
                r[j] += v[i + j]
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for i in range(end, lo + n):
            res += v[i]
        return res
    half = n // 2
    half -= half % 8
    return _pairwise_sum(v, lo, half) + _pairwise_sum(v, lo + half, n - half)


# -- the three steps ------------------------------------------------------------------------------
def assign_agcus(lay: Floorplan) -> None:
    """Heaviest first, each to the least loaded AGCU among those not used yet by the streams
    into the same unit (the chunks of one weight go to as many AGCUs as there are chunks)."""
    load = [0] * lay.arch.agcu.count
    taken: dict[int, set[int]] = {}
    for u in sorted((u for u in lay.units if u.kind == "agcu"), key=lambda u: -u.total):
        used = taken.setdefault(u.phase, set())
        if len(used) == len(load):
            used.clear()
        u.agcu = min((i for i in range(len(load)) if i not in used), key=lambda i: (load[i], i))
        used.add(u.agcu)
        load[u.agcu] += u.total


def construct(lay: Floorplan) -> None:
    free = {kind: set(sites) for kind, sites in lay.sites.items()}
    g = lay.arch.grid
    center = np.array([g.rows / 2, g.cols / 2])
    placed = {k for k, u in enumerate(lay.units) if u.kind == "agcu"}
    todo = [k for k, u in enumerate(lay.units) if u.kind != "agcu"]
    pull = {k: 0.0 for k in todo}
    for n in lay.nets:
        for a, b in ((n.src, n.dst), (n.dst, n.src)):
            if a in pull and b in placed:
                pull[a] += n.bytes
    volume = {k: sum(lay.nets[i].bytes for i in lay.units[k].nets) or 1 for k in todo}
    while todo:
        # Next: the unit with the largest share of its traffic going to placed units.
        k = max(todo, key=lambda j: (pull[j] / volume[j], pull[j], -j))
        todo.remove(k)
        u = lay.units[k]
        anchor, weight = np.zeros(2), 0.0
        heavy: list[tuple[int, np.ndarray]] = []
        for i in u.nets:
            n = lay.nets[i]
            other = n.dst if n.src == k else n.src
            if other in placed:
                pts = lay.points(other)
                anchor += n.bytes * pts.mean(0)
                weight += n.bytes
                heavy.append((n.bytes, pts[0]))
        anchor = anchor / weight if weight else center
        # A unit with a site per heavy stream (a weight's chunks) puts each site by its stream;
        # the rest of its sites, or a unit without, gather at the weighted centre.
        heavy.sort(key=lambda h: -h[0])
        heavy = [p for b, p in heavy if b * 4 >= heavy[0][0]] if heavy else []
        targets = [heavy[j] for j in range(min(len(heavy), u.count))] if len(heavy) > 1 else []
        targets += [anchor] * (u.count - len(targets))
        u.sites = []
        for t in targets:
            tr, tc = t.tolist()  # the nearest free site; ties to the lowest row, then column
            _, r, c = min((abs(r - tr) + abs(c - tc), r, c) for r, c in free[u.kind])
            u.sites.append((r, c))
            free[u.kind].discard((r, c))
        placed.add(k)
        for i in u.nets:
            n = lay.nets[i]
            other = n.dst if n.src == k else n.src
            if other in pull and other not in placed:
                pull[other] += n.bytes


def anneal(lay: Floorplan, seed: int, effort: float) -> None:
    """Improve the placement in place (see the module docstring)."""
    rng = random.Random(seed)
    movable = [k for k, u in enumerate(lay.units) if u.kind != "agcu" and u.nets and u.count <= MOVABLE_SITES]
    memory = [k for k, u in enumerate(lay.units) if u.kind == "agcu"]
    if not movable and len(memory) < 2:
        return
    pts = {k: lay.site_list(k) for k in range(len(lay.units))}  # a unit's own list of sites: moves update it
    owner = {s: k for k, u in enumerate(lay.units) if u.kind != "agcu" for s in u.sites}
    free_set = {kind: {s for s in sites if s not in owner} for kind, sites in lay.sites.items()}
    g = lay.arch.grid
    # The cost of every net and every unit's spread, kept up to date: a move recomputes only
    # those of the units it moved, and compares them with these.
    # Units annealing does not move on their own (big blobs, moved only by swaps) keep a field
    # of the hops from every grid site to their nearest site, for the nets into them.
    fixed = set(range(len(lay.units))) - set(movable) - set(memory)
    near = {k: distance_field(pts[k], g.rows, g.cols) for k in fixed if lay.units[k].count > 1}
    swap: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}  # unit -> (site it lost, site it gained), on trial

    def hop_cost(n: Net) -> float:
        """``lay.net_cost``, through the distance field of an end that has one."""
        a, b = (n.dst, n.src) if n.dst in near and n.src not in near else (n.src, n.dst)
        if a not in near:
            return lay.net_cost(n, pts)
        field = near[a]
        if a not in swap:
            return n.bytes * float(min([field[r][c] for r, c in pts[b]]))
        (lr, lc), (gr, gc) = swap[a]  # the field is of a's sites before the swap
        best = None
        for r, c in pts[b]:
            h = field[r][c]
            if h == abs(r - lr) + abs(c - lc):  # the lost site may have been its only nearest
                h = min([abs(r - q) + abs(c - d) for q, d in pts[a]])
            else:
                h = min(h, abs(r - gr) + abs(c - gc))
            best = h if best is None or h < best else best
        return n.bytes * float(best)

    net_cost = [hop_cost(n) for n in lay.nets]
    spread_cost = [lay.spread_cost(k, pts[k]) for k in range(len(lay.units))]
    nets_of: dict[tuple[int, ...], list[int]] = {}

    def delta(ks: tuple[int, ...]) -> tuple[float, Callable[[], None]]:
        """The cost change of the move just made to the units ``ks``, and how to keep it."""
        nets = nets_of.get(ks)
        if nets is None:  # the order the nets are summed in is a set's: the same on every call
            nets = nets_of[ks] = list({i for k in ks for i in lay.units[k].nets})
        before = sum(net_cost[i] for i in nets) + sum(spread_cost[k] for k in ks)
        new_nets = [hop_cost(lay.nets[i]) for i in nets]
        new_spread = [lay.spread_cost(k, pts[k]) for k in ks]

        def keep() -> None:
            for i, c in zip(nets, new_nets):
                net_cost[i] = c
            for k, c in zip(ks, new_spread):
                spread_cost[k] = c
        return sum(new_nets) + sum(new_spread) - before, keep

    sites_total = sum(lay.units[k].count for k in movable) + len(memory)
    moves = int(effort * min(MAX_MOVES, 150 * sites_total))
    samples = [abs(c) for c in net_cost]
    t = t0 = (sum(samples) / max(len(samples), 1)) * 0.2 + 1e-9
    cooling = (1e-4) ** (1 / max(moves, 1))
    for _ in range(moves):
        t *= cooling
        radius = max(2, int(max(g.rows, g.cols) * math.sqrt(t / t0)))
        r = rng.random()
        if r < 0.15 and len(memory) >= 2:
            a, b = rng.sample(memory, 2)
            ua, ub = lay.units[a], lay.units[b]
            if ua.agcu == ub.agcu or ua.phase != ub.phase or abs(ua.total - ub.total) > 0.05 * max(ua.total, ub.total):
                continue  # only swaps within a phase that keep the AGCUs' loads as balanced as they are
            ua.agcu, ub.agcu = ub.agcu, ua.agcu
            pts[a], pts[b] = lay.site_list(a), lay.site_list(b)
            d, keep = delta((a, b))
            if _accept(d, t, rng):
                keep()
            else:
                ua.agcu, ub.agcu = ub.agcu, ua.agcu
                pts[a], pts[b] = lay.site_list(a), lay.site_list(b)
            continue
        if not movable:
            continue
        k = rng.choice(movable)
        u = lay.units[k]
        i = rng.randrange(len(u.sites))
        s = u.sites[i]
        target = (s[0] + rng.randint(-radius, radius), s[1] + rng.randint(-radius, radius))
        if not (0 <= target[0] < g.rows and 0 <= target[1] < g.cols) or target == s:
            continue
        if (lay.arch.is_pcu_site(*target)) != (u.kind == "pcu"):
            target = (target[0], target[1] + (1 if target[1] + 1 < g.cols else -1))
        if target in free_set[u.kind]:
            u.sites[i] = target
            d, keep = delta((k,))
            if _accept(d, t, rng):
                keep()
                free_set[u.kind].discard(target)
                free_set[u.kind].add(s)
                del owner[s]
                owner[target] = k
            else:
                u.sites[i] = s
        elif target in owner and owner[target] != k:
            j = owner[target]
            v = lay.units[j]
            jj = v.sites.index(target)
            u.sites[i], v.sites[jj] = target, s
            if j in near:
                swap[j] = (target, s)
            d, keep = delta((k, j))
            swap.clear()
            if _accept(d, t, rng):
                keep()
                owner[target], owner[s] = k, j
                if j in near:
                    near[j] = distance_field(v.sites, g.rows, g.cols)
            else:
                u.sites[i], v.sites[jj] = s, target


def _accept(delta: float, t: float, rng: random.Random) -> bool:
    return delta <= 0 or rng.random() < math.exp(-delta / t)


def random_placement(lay: Floorplan, seed: int) -> None:
    """Every unit on uniformly random free sites of its kind, memory units on random AGCUs."""
    rng = random.Random(seed)
    pools = {kind: rng.sample(sites, len(sites)) for kind, sites in lay.sites.items()}
    for u in lay.units:
        if u.kind == "agcu":
            u.agcu = rng.randrange(lay.arch.agcu.count)
        else:
            u.sites = [pools[u.kind].pop() for _ in range(u.count)]


@dataclass(frozen=True)
class Place(ModulePass):
    """Place units on the tile grid (annealing on weighted hop count) and memory traffic on AGCUs."""

    name: ClassVar[str] = "place"
    needs_target: ClassVar[bool] = True
    seed: int = option(0, "seed of the annealing moves")
    effort: float = option(1.0, "annealing moves, relative to the default")

    def apply(self, module: Module, ctx: PassContext) -> None:
        arch = ctx.target_for(self)
        for section, copies in distinct_sections(module, PLACED_ATTRS + ("route", "hops")):
            place_section(section, arch, self.seed, self.effort)
            set_attrs(section, copies, PLACED_ATTRS)


# Placements already made, by everything that decides them (:meth:`Floorplan.inputs`, the
# architecture, seed and effort): steps of a generation compile sections that differ only in
# names or in bound dimensions that leave their streams' bytes alone (a decode layer's MLP at
# another context length), and get the same placement without annealing again.
PLACEMENTS_KEPT = 256
_placements: dict[tuple, tuple] = {}


def forget_placements() -> None:
    """Empty the placements kept (to time a compile that anneals every section afresh)."""
    _placements.clear()


def place_section(section: Operation, arch: RduArch, seed: int = 0, effort: float = 1.0) -> Floorplan:
    lay = Floorplan(section, arch)
    key = (lay.inputs(), arch.model_dump_json(), seed, effort)
    where = _placements.get(key)
    if where is None:
        assign_agcus(lay)
        construct(lay)
        anneal(lay, seed, effort)
        where = tuple(u.agcu if u.kind == "agcu" else tuple(u.sites) for u in lay.units)
        if len(_placements) >= PLACEMENTS_KEPT:
            del _placements[next(iter(_placements))]  # the oldest
        _placements[key] = where
    else:
        for u, w in zip(lay.units, where):
            if u.kind == "agcu":
                u.agcu = w
            else:
                u.sites = list(w)
    lay.write()
    return lay
