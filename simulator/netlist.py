"""From a ``placed.section`` to the engine's static description of it, checked against an arch.

A :class:`Netlist` lists units (how many times each fires per call, for how long,
what it occupies), channels (tiles, tile sizes, depth, latency and the shared resources a
tile crosses) and resources (HBM, DDR, AGCUs, mesh links, socket links, PMU write ports,
each with a rate). Everything the engine needs is a number here; every number comes from
the IR (types, op costs) and the architecture, none from the model being simulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rduflow.ir import Graph, Operation, Value
from rduflow.ir.dims import DimError

from rduflow.compiler.target import CostError, RduArch, compute_work
from .errors import SimulationError

COMPUTE, BUFFER, MEM_READ, MEM_WRITE, COLLECTIVE = "compute", "buffer", "mem_read", "mem_write", "collective"
_KINDS = {"placed.compute": COMPUTE, "placed.buffer": BUFFER, "placed.mem_read": MEM_READ,
          "placed.mem_write": MEM_WRITE, "placed.collective": COLLECTIVE}
DEFAULT_DEPTH = 2  # tiles: double buffering at a unit's input


@dataclass(frozen=True)
class Options:
    sockets: int = 1
    ideal_network: bool = False
    max_tiles: int = 256  # per stream per call; more are coarsened into bigger tiles


@dataclass
class NetResource:
    key: str
    tier: str  # hbm, ddr, agcu, mesh, socket, pmu
    bytes_per_ns: float


@dataclass
class NetUnit:
    name: str
    kind: str
    n: int = 1  # firings per call
    service_ns: float = 0.0  # per firing
    out_latency_ns: float = 0.0  # from a firing's end to its outputs being handed over (pipelined)
    depth: int = 1  # firings whose outputs it holds before it must stall (its pipeline)
    pcus: int = 0
    pmus: int = 0
    flops: float = 0.0  # per call
    resource: str | None = None  # held while firing (a collective's socket link)
    resource_bytes: float = 0.0  # per firing, on ``resource``
    carried_from: int | None = None  # the mem_write this carried mem_read waits for, across calls
    ins: list[int] = field(default_factory=list)
    outs: list[int] = field(default_factory=list)


@dataclass
class NetChannel:
    name: str
    src: int
    dst: int
    tiles: int  # per call, after coarsening
    sizes: tuple[int, ...]  # bytes of each tile of a call; they sum to the tensor's bytes
    capacity: int  # tiles the consumer side holds
    latency_ns: float
    route: tuple[str, ...]  # resource keys, in the order a tile crosses them
    hops: int
    coarsened: int = 1  # how many of the program's tiles make one simulated tile

    @property
    def bytes(self) -> int:
        return sum(self.sizes)


@dataclass
class Netlist:
    name: str
    units: list[NetUnit]
    channels: list[NetChannel]
    resources: dict[str, NetResource]
    pcus: int
    pmus: int


def build_netlist(section: Operation, arch: RduArch, opts: Options) -> Netlist:
    return _NetlistBuilder(section, arch, opts).build()


def unit_names(region: Graph) -> dict[Operation, str]:
    """Each placed unit's name in reports and traces: its result's name, unique in the section.

    Unnamed results print as numbers; those units are named by kind, so a program and its
    printed-and-parsed copy report the same names.
    """
    names: dict[Operation, str] = {}
    taken: set[str] = set()
    for op in region.ops:
        kind = _KINDS.get(op.opname)
        if kind is None:
            continue
        if op.results and op.results[0].name and not op.results[0].name.isdigit():
            name = op.results[0].name
        elif kind == MEM_WRITE:
            name = f"write {op.attrs['tensor']}"
        else:
            name = f"{kind}#{len(names)}"
        base, k = name, 1
        while name in taken:
            name, k = f"{base}#{k}", k + 1
        taken.add(name)
        names[op] = name
    return names


class _NetlistBuilder:
    def __init__(self, section: Operation, arch: RduArch, opts: Options):
        self.section, self.arch, self.opts = section, arch, opts
        self.name = section.attrs["name"] or "section"
        self.clock = arch.clock_ghz  # cycles per ns
        self.units: list[NetUnit] = []
        self.unit_of: dict[Operation, int] = {}
        self.sites_of: dict[int, list[tuple[int, int]]] = {}  # where each unit sits (empty: unplaced)
        self.channels: list[NetChannel] = []
        self.resources: dict[str, NetResource] = {}
        self.sites: dict[tuple[int, int], str] = {}

    def err(self, op: Operation, msg: str) -> SimulationError:
        return SimulationError(f"section '{self.name}': {op.where()}: {msg}")

    def build(self) -> Netlist:
        region: Graph = self.section.regions[0]
        streams = []
        names = unit_names(region)
        for op in region.ops:
            if op.opname == "placed.stream":
                streams.append(op)
            elif op.opname in _KINDS:
                self.add_unit(op, names[op])
            else:
                raise self.err(op, "not a placed unit or stream (verify the module first)")
        users = region.users()
        for s in streams:
            self.add_channel(s, users)
        self.finish_units(region)
        pcus = sum(u.pcus for u in self.units)
        pmus = sum(u.pmus for u in self.units)
        for what, used, have in (("PCUs", pcus, self.arch.pcu.count), ("PMUs", pmus, self.arch.pmu.count)):
            if used > have:
                raise SimulationError(f"section '{self.name}': units use {used} {what}, {self.arch.name} has {have}")
        return Netlist(name=self.name, units=self.units, channels=self.channels, resources=self.resources,
                           pcus=pcus, pmus=pmus)

    # -- units ---------------------------------------------------------------------------------
    def add_unit(self, op: Operation, name: str) -> None:
        kind = _KINDS[op.opname]
        u = NetUnit(name, kind)
        idx = len(self.units)
        self.units.append(u)
        self.unit_of[op] = idx
        self.sites_of[idx] = []
        if kind == COMPUTE:
            u.pcus = op.attrs["pcus"]
            self.sites_of[idx] = self.place(op, op.attrs["coords"], u.pcus, pcu=True)
        elif kind == BUFFER:
            u.pmus = op.attrs["pmus"]
            self.sites_of[idx] = self.place(op, op.attrs["coords"], u.pmus, pcu=False)
            limit = u.pmus * self.arch.pmu_bytes
            if op.attrs["capacity"] > limit:
                raise self.err(op, f"capacity {op.attrs['capacity']} B exceeds its {u.pmus} PMU(s) "
                                   f"({limit} B on {self.arch.name}); give it more PMUs")
        elif kind in (MEM_READ, MEM_WRITE):
            tier = op.attrs["tier"]
            if getattr(self.arch.memory, tier) is None:
                have = [t for t in ("hbm", "ddr") if getattr(self.arch.memory, t) is not None]
                raise self.err(op, f"{self.arch.name} has no {tier.upper()} (it has {', '.join(have)})")
            self.sites_of[idx] = self.agcu_site(op)
        else:  # collective
            if op.attrs["group"] > self.opts.sockets:
                raise self.err(op, f"collective over {op.attrs['group']} sockets, but the program runs on "
                                   f"{self.opts.sockets} (simulate(..., sockets=N))")
            self.sites_of[idx] = self.agcu_site(op)

    def agcu_site(self, op: Operation) -> list[tuple[int, int]]:
        i = op.attrs["agcu"]
        if i < 0:
            return []
        if i >= self.arch.agcu.count:
            raise self.err(op, f"agcu {i} does not exist ({self.arch.name} has AGCUs 0 to {self.arch.agcu.count - 1})")
        return [self.arch.agcu_coord(i)]

    def place(self, op: Operation, coords, count: int, pcu: bool) -> list[tuple[int, int]]:
        if not coords:
            return []
        what = "PCU" if pcu else "PMU"
        if len(coords) != count:
            raise self.err(op, f"{len(coords)} coordinates for {count} {what}(s); give one [row, col] per {what}")
        g = self.arch.grid
        for r, c in coords:
            if not (0 <= r < g.rows and 0 <= c < g.cols):
                raise self.err(op, f"coordinate [{r}, {c}] is outside the {g.rows} x {g.cols} grid")
            if self.arch.is_pcu_site(r, c) != pcu:
                raise self.err(op, f"[{r}, {c}] is not a {what} site (checkerboard: PCUs where row+col is even)")
            other = self.sites.get((r, c))
            if other is not None:
                raise self.err(op, f"[{r}, {c}] is already used by unit '{other}'")
            self.sites[(r, c)] = self.units[-1].name
        return [tuple(c) for c in coords]

    # -- channels ------------------------------------------------------------------------------
    def add_channel(self, s: Operation, users: dict[Value, list[Operation]]) -> None:
        src_op = s.operands[0].defining_op
        (dst_op,) = users[s.results[0]]
        src, dst = self.unit_of[src_op], self.unit_of[dst_op]
        su, du = self.units[src], self.units[dst]
        total = self.nbytes(s)
        tiles = s.attrs["tiles"]
        if tiles > total and total > 0:
            raise self.err(s, f"{tiles} tiles of a {total}-byte tensor: tiles must not be smaller than a byte")
        largest = -(-total // tiles)
        if du.kind == BUFFER:
            if s.attrs["depth"]:
                raise self.err(s, "a stream into a placed.buffer takes its depth from the buffer's capacity; "
                                  "leave 'depth' unset")
            cap_bytes = dst_op.attrs["capacity"]
            capacity = cap_bytes // max(largest, 1)
            if capacity < 1:
                raise self.err(dst_op, f"capacity {cap_bytes} B is smaller than one {largest}-byte tile of its "
                                       f"input stream; use more tiles or a bigger buffer")
        else:
            capacity = s.attrs["depth"] or DEFAULT_DEPTH
        factor = self.coarsening(tiles, capacity if du.kind == BUFFER else None)
        if factor > 1:
            tiles = -(-tiles // factor)
            if du.kind == BUFFER:
                capacity = dst_op.attrs["capacity"] // -(-total // tiles)
        sizes = tuple((j + 1) * total // tiles - j * total // tiles for j in range(tiles))
        route, hops = self.route(s, src_op, dst_op, src, dst)
        keys: list[str] = []
        latency = 0.0
        if su.kind == MEM_READ:
            keys += self.memory_path(src_op)
            latency += self.tier_latency(src_op)
        keys += route
        if du.kind == MEM_WRITE:
            keys += self.memory_path(dst_op)[::-1]
            latency += self.tier_latency(dst_op)
        if du.kind == BUFFER:
            key = f"pmu write {du.name}"
            self.resources[key] = NetResource(
                key=key, tier="pmu", bytes_per_ns=du.pmus * self.arch.pmu.write_bytes_per_cycle * self.clock)
            keys.append(key)
        latency += hops * self.arch.mesh.hop_latency_cycles / self.clock
        name = base = f"{su.name} -> {du.name}"
        k = 1
        while any(c.name == name for c in self.channels):  # two streams between the same units
            name, k = f"{base} #{k}", k + 1
        ch = NetChannel(name=name, src=src, dst=dst, tiles=tiles, sizes=sizes, capacity=capacity, latency_ns=latency,
                         route=tuple(keys), hops=hops, coarsened=factor)
        su.outs.append(len(self.channels))
        du.ins.append(len(self.channels))
        self.channels.append(ch)

    def nbytes(self, s: Operation) -> int:
        t = s.results[0].type
        try:
            return math.ceil(t.nbytes.const_value())
        except DimError:
            raise self.err(s, f"type {t} is symbolic; placed programs need concrete shapes") from None

    def coarsening(self, tiles: int, buffer_slots: int | None) -> int:
        """Merge tiles so a stream has at most ``max_tiles`` per call, keeping a buffer's
        double buffering (at least 2 slots) when it had it."""
        if tiles <= self.opts.max_tiles:
            return 1
        f = -(-tiles // self.opts.max_tiles)
        if buffer_slots is not None:
            f = min(f, max(1, buffer_slots // 2))
        return f

    def memory_path(self, op: Operation) -> list[str]:
        tier = op.attrs["tier"]
        t = getattr(self.arch.memory, tier)
        self.resources.setdefault(tier, NetResource(key=tier, tier=tier, bytes_per_ns=t.bandwidth_gb_s))  # GB/s = B/ns
        keys = [tier]
        if op.attrs["agcu"] >= 0:
            key = f"agcu {op.attrs['agcu']}"
            self.resources.setdefault(key, NetResource(
                key=key, tier="agcu", bytes_per_ns=self.arch.agcu.bytes_per_cycle * self.clock))
            keys.append(key)
        return keys

    def tier_latency(self, op: Operation) -> float:
        return getattr(self.arch.memory, op.attrs["tier"]).latency_ns

    def route(self, s: Operation, src_op: Operation, dst_op: Operation, src: int, dst: int) -> tuple[list[str], int]:
        if self.opts.ideal_network:
            return [], 0
        links = s.attrs["route"]
        if links:
            return self.explicit_route(s, links, self.sites_of[src], self.sites_of[dst]), len(links)
        if s.attrs["hops"] >= 0:
            return [], s.attrs["hops"]
        if not self.sites_of[src] or not self.sites_of[dst]:
            return [], 0  # an unplaced end: the stream bypasses the mesh
        # A unit spanning several sites sends and receives at the ones nearest each other.
        a, b = min(((p, q) for p in self.sites_of[src] for q in self.sites_of[dst]),
                   key=lambda pq: abs(pq[0][0] - pq[1][0]) + abs(pq[0][1] - pq[1][1]))
        path = [a]
        r, c = a
        while c != b[1]:
            c += 1 if b[1] > c else -1
            path.append((r, c))
        while r != b[0]:
            r += 1 if b[0] > r else -1
            path.append((r, c))
        return [self.link(p, q) for p, q in zip(path, path[1:])], len(path) - 1

    def explicit_route(self, s: Operation, links, a, b) -> list[str]:
        g = self.arch.grid
        keys = []
        for i, (r0, c0, r1, c1) in enumerate(links):
            for r, c in ((r0, c0), (r1, c1)):
                if not (0 <= r < g.rows and 0 <= c < g.cols):
                    raise self.err(s, f"route link #{i} [{r0}, {c0}, {r1}, {c1}] leaves the {g.rows} x {g.cols} grid")
            if abs(r0 - r1) + abs(c0 - c1) != 1:
                raise self.err(s, f"route link #{i} [{r0}, {c0}, {r1}, {c1}] does not join neighbouring switches")
            if i and (r0, c0) != tuple(links[i - 1][2:]):
                raise self.err(s, f"route link #{i} starts at [{r0}, {c0}], not where link #{i - 1} ends")
            keys.append(self.link((r0, c0), (r1, c1)))
        if a and tuple(links[0][:2]) not in a:
            raise self.err(s, f"route starts at {list(links[0][:2])}, where the producer does not sit ({_fmt(a)})")
        if b and tuple(links[-1][2:]) not in b:
            raise self.err(s, f"route ends at {list(links[-1][2:])}, where the consumer does not sit ({_fmt(b)})")
        return keys

    def link(self, p: tuple[int, int], q: tuple[int, int]) -> str:
        key = f"link {p[0]},{p[1]}>{q[0]},{q[1]}"
        if key not in self.resources:
            self.resources[key] = NetResource(
                key=key, tier="mesh", bytes_per_ns=self.arch.mesh.link_bytes_per_cycle * self.clock)
        return key

    # -- per-unit timing -----------------------------------------------------------------------
    def finish_units(self, region: Graph) -> None:
        writers = {op.attrs["tensor"]: self.unit_of[op] for op in region.ops if op.opname == "placed.mem_write"}
        for op, idx in self.unit_of.items():
            u = self.units[idx]
            ports = [self.channels[c].tiles for c in u.ins + u.outs]
            u.n = max(ports, default=1)
            if u.kind == COMPUTE:
                try:
                    work = compute_work(op, self.arch)
                except CostError as e:
                    raise SimulationError(str(e)) from None
                u.flops = work.flops
                u.service_ns = work.cycles(u.pcus) / self.clock / u.n
                u.out_latency_ns = self.arch.pcu.stages / self.clock
            elif u.kind == BUFFER:
                out_bytes = sum(self.channels[c].bytes for c in u.outs)
                rate = u.pmus * self.arch.pmu.read_bytes_per_cycle * self.clock
                u.service_ns = out_bytes / rate / u.n
            elif u.kind == COLLECTIVE:
                self.collective(op, u)
            elif u.kind == MEM_READ and op.attrs["carried"]:
                w = writers.get(op.attrs["tensor"])
                if w is None:
                    raise self.err(op, f"carried read of '{op.attrs['tensor']}', but the section has no "
                                       "placed.mem_write of that tensor")
                u.carried_from = w
            if u.kind == MEM_READ and not u.outs:
                raise self.err(op, "reads a tensor nobody consumes (stream it to a unit)")
            firing = u.service_ns
            if u.resource is not None:
                firing = max(firing, u.resource_bytes / self.resources[u.resource].bytes_per_ns)
            # Outputs appear ``out_latency_ns`` after a firing ends; the firings that fit in
            # that time (at most one a cycle) are the pipeline it fills before it must stall.
            u.depth = 1 + math.ceil(u.out_latency_ns / max(firing, 1 / self.clock))

    def collective(self, op: Operation, u: NetUnit) -> None:
        """Per socket, by symmetry: a ring or one-step algorithm sends (p-1)/p of the data
        per phase; all_reduce is a reduce_scatter then an all_gather (two phases)."""
        p = op.attrs["group"]
        kind = op.attrs["kind"]
        s = self.arch.sockets
        in_bytes = sum(self.channels[c].bytes for c in u.ins)
        out_bytes = sum(self.channels[c].bytes for c in u.outs)
        phases = 2 if kind == "all_reduce" else 1
        data = out_bytes if kind == "all_gather" else in_bytes
        traffic = phases * (p - 1) / p * data
        steps_per_phase = (p - 1) if s.topology == "ring" else (1 if p > 1 else 0)
        key = "socket link"
        self.resources.setdefault(key, NetResource(key=key, tier="socket", bytes_per_ns=s.link_bandwidth_gb_s))
        u.resource = key
        u.resource_bytes = traffic / u.n
        u.out_latency_ns = phases * steps_per_phase * s.link_latency_ns


def _fmt(sites: list[tuple[int, int]]) -> str:
    shown = ", ".join(f"[{r}, {c}]" for r, c in sites[:4])
    return shown + (", ..." if len(sites) > 4 else "")


def netlist_bound(net: Netlist) -> tuple[float, str]:
    """(ns, what): the largest work / rate over resources and units, for one call."""
    work: dict[str, float] = {}
    for ch in net.channels:
        for key in ch.route:
            work[key] = work.get(key, 0.0) + ch.bytes / net.resources[key].bytes_per_ns
    for u in net.units:
        if u.resource is not None:
            rate = net.resources[u.resource].bytes_per_ns
            work[u.resource] = work.get(u.resource, 0.0) + u.resource_bytes * u.n / rate
        work[f"unit {u.name}"] = u.n * u.service_ns
    if not work:
        return 0.0, ""
    best = max(work, key=lambda k: (work[k], k))
    return work[best], best
