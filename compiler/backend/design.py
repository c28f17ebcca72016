"""What a section becomes on the chip: units, the streams between them, their buffers.

:func:`design_section` turns a section's region (fused groups over activations) into a
:class:`Design`; ``lower`` builds the ``placed.section`` from it and ``section`` uses it to
check that a section fits. The rules, each for a reason:

* **Memory.** Every activation the section takes and every weight it uses is read from
  memory (``read`` units, at AGCUs); every activation it gives back is written, except that
  an output made by appending to an input (a KV cache, ``concat(past, new)``) is written in
  place: only the new rows, after the old ones. A weight
  looked up by rows (an embedding ``gather``) is an *indexed* read of those rows only.
  Transfers of more than :data:`CHUNK_MIN` (weights: :data:`WEIGHT_CHUNK_MIN`) are cut into
  chunks along one axis, one AGCU each (:func:`transfer_agcus` of them), so that a stream is
  not held to one AGCU's (or one mesh link's) bandwidth: on SN40L one AGCU moves about a
  ninth of what HBM does, and a decode step's phases (attention, its output projection, the
  MLP) each read their own weights while the others wait, so each weight must reach the
  tier's bandwidth on its own, however few megabytes a socket holds. A KV cache is cut over
  them at any length. The consuming unit concatenates the chunks (or, for a write, splits
  its result).
* **Compute units.** Ops go to units in program order. Contractions (matmul, einsum,
  attention), reductions, softmax, normalisations and other heavy ops start a unit;
  elementwise ops and views join the unit that produces their operands when one unit
  produces all of them (units stay a DAG, and branches that run side by side, such as the
  gate and up projections, are not chained through a shared unit). A collective is a unit
  of its own. Values computed from constants alone (masks,
  rotary tables) are recomputed inside every unit that needs them.
* **Buffers (PMUs).** What comes from memory streams through a ring buffer of
  :data:`RING_TILES` tiles (the next tiles arrive while the PCUs use the current ones). A contraction streams its
  largest input and holds every other input bigger than :data:`RESIDENT_MIN` whole in a
  buffer (each tile of the streamed operand meets all of the other one). Where two paths
  from one unit meet again, the shorter one is buffered for the longer one's delay, so the
  producer is not held back and the pipeline does not stall.
* **Tiles.** Activations stream between units in tiles of rows, to and from memory in
  tiles of about :data:`TILE_BYTES`; at most :data:`MAX_TILES` per call (:func:`tiles_for`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx
from rduflow.ir import Graph, Operation, TensorType, Trait, Value

from .graphs import digraph, kahn_order
from .shard_rules import static_values
from .spmd import Spread

TILE_BYTES = 64 << 10
MAX_TILES = 256
RING_TILES = 4
RESIDENT_MIN = 64 << 10
CHUNK_MIN = 1 << 20
WEIGHT_CHUNK_MIN = RING_TILES * TILE_BYTES  # a chunk fills at least its buffer's ring: smaller ones gain nothing


@functools.lru_cache(maxsize=1 << 16)
def nbytes(t: TensorType) -> int:
    """Bytes of a tensor of concrete shape (rounded up for 4-bit types); called a lot, cached."""
    n = 1
    for d in t.shape:
        n *= int(d)
    return -(-n * t.dtype.bits // 8)


def tiles_for(t: TensorType, from_memory: bool = False) -> int:
    """Tiles a tensor streams as. Between units, activations stream by rows (all dims but the
    last), so that the streams of a pipeline advance together: a reduction over the last dim
    yields a tile per tile it takes, not one tile at the end, which would hold everything
    behind it. To and from memory, tiles are about TILE_BYTES: small ones would each pay
    the memory's latency."""
    nb = nbytes(t)
    if from_memory:
        return max(1, min(MAX_TILES, -(-nb // TILE_BYTES), nb))
    rows = 1
    for d in t.shape[:-1]:
        rows *= int(d)
    return max(1, min(MAX_TILES, rows, nb))


Chunk = tuple[int, int, int]  # (axis, start, stop)


@dataclass
class MemRef:
    """The tensor a read or write unit moves: its section slot and which part of it."""

    slot: tuple  # ("arg", i) | ("weight", k) | ("out", j)
    type: TensorType  # of what is moved (a chunk, or the gathered rows)
    chunk: Chunk | None = None  # the part of the socket's tensor; None: all of it
    weight: str | None = None
    spread: Spread = field(default_factory=Spread)  # how a weight is cut among the sockets
    indexed: bool = False  # reads only the rows its index operand selects


@dataclass
class Port:
    value: Value  # the flat value (for chunks: the whole value they are part of)
    chunk: Chunk | None = None

    @property
    def type(self) -> TensorType:
        if self.chunk is None:
            return self.value.type
        axis, lo, hi = self.chunk
        shape = list(self.value.type.shape)
        shape[axis] = hi - lo
        return TensorType(shape, self.value.type.dtype)


@dataclass
class Unit:
    kind: str  # compute, collective, read, write, buffer
    name: str
    ops: list[Operation] = field(default_factory=list)  # compute, collective: flat ops, in order
    outputs: list[Port] = field(default_factory=list)
    mem: MemRef | None = None
    capacity: int = 0  # buffers: bytes
    contraction: bool = False

    def port(self, value: Value, chunk: Chunk | None = None) -> int:
        for i, p in enumerate(self.outputs):
            if p.value is value and p.chunk == chunk:
                return i
        self.outputs.append(Port(value, chunk))
        return len(self.outputs) - 1


@dataclass
class Stream:
    src: int
    port: int
    dst: int
    tiles: int


@dataclass
class Design:
    name: str
    flat: Graph
    units: list[Unit]
    streams: list[Stream]
    static: dict[Value, bool]
    appends: dict[int, tuple[int, int]] = field(default_factory=dict)  # output -> (input, axis) it extends

    def inputs(self, k: int) -> list[int]:
        return [i for i, s in enumerate(self.streams) if s.dst == k]

    def graph(self) -> nx.DiGraph:
        """The units (by index) and streams as a graph: the view networkx walks."""
        return digraph(range(len(self.units)), [(s.src, s.dst) for s in self.streams])

    def order(self) -> list[int]:
        """Units in an order where every stream goes forward (Kahn's, first in first out)."""
        try:
            return kahn_order(self.graph())
        except nx.NetworkXUnfeasible:
            raise AssertionError(f"section '{self.name}': units form a cycle") from None

    def stream_bytes(self, s: Stream) -> int:
        return nbytes(self.units[s.src].outputs[s.port].type)


def flatten(region: Graph) -> Graph:
    """``region`` with fused groups inlined, nested attention groups kept whole."""
    flat = Graph("flat", region.arg_types, [a.name for a in region.args])
    vm = dict(zip(region.args, flat.args))
    _inline(region, flat, vm)
    flat.set_outputs([vm[v] for v in region.outputs])
    return flat


def _inline(src: Graph, dst: Graph, vm: dict[Value, Value]) -> None:
    for op in src.ops:
        if op.opname in ("group", "section") and op.attrs.get("fusion") != "attention":
            inner = op.regions[0]
            vm.update(zip(inner.args, [vm[v] for v in op.operands]))
            _inline(inner, dst, vm)
            vm.update(zip(op.results, [vm[v] for v in inner.outputs]))
        else:
            dst.append(op.clone(vm))


def transfer_agcus(arch) -> int:
    """AGCUs one transfer is cut over: as many as reach the memory tier's bandwidth (9 of the
    16 on SN40L); more would add streams, units and events without moving bytes faster."""
    tier = arch.memory.main
    return min(arch.agcu.count, math.ceil(tier.bandwidth_gb_s / (arch.agcu.bytes_per_cycle * arch.clock_ghz)))


def design_section(name: str, region: Graph, agcus: int,
                   appendable: Callable[[int, int], bool] | None = None) -> Design:
    """``appendable(i, j)``: whether output ``j`` may live in the same memory as input ``i``
    extended in place (a KV cache: the new rows are written after the old ones)."""
    return _Designer(name, region, agcus, appendable).run()


class _Designer:
    def __init__(self, name: str, region: Graph, agcus: int, appendable):
        self.name, self.agcus = name, agcus
        self.flat = flatten(region)
        self.appends: dict[int, tuple[int, int]] = {}
        for j, v in enumerate(self.flat.outputs):
            d = v.defining_op
            if (appendable is not None and d is not None and d.opname == "concat" and len(d.operands) == 2
                    and d.operands[0].owner is self.flat and appendable(d.operands[0].index, j)):
                self.appends[j] = (d.operands[0].index, d.attrs["axis"] % v.type.rank)
        self.append_axis = {i: k for i, k in self.appends.values()}
        self.static = static_values(self.flat)
        self.defs = {r: op for op in self.flat.ops for r in op.results}
        self.weight_slot = {op.results[0]: i for i, op in enumerate(o for o in self.flat.ops if o.opname == "weight")}
        self.units: list[Unit] = []
        self.streams: list[Stream] = []
        self.owner: dict[Value, int] = {}  # value -> compute/collective unit computing it
        self.sources: dict[Value, list[tuple[int, int]]] = {}  # value -> ports (several: chunks)
        self.index_reads: list[tuple[Value, int]] = []  # (index value, indexed read unit)
        self.inputs_of: dict[int, list[Value]] = {}

    def add(self, u: Unit) -> int:
        self.units.append(u)
        return len(self.units) - 1

    def run(self) -> Design:
        from .buffers import add_buffers

        self.cluster()
        self.merge_light_units()
        self.connect_units()
        self.write_outputs()
        design = Design(self.name, self.flat, self.units, self.streams, self.static, self.appends)
        add_buffers(design)
        return design

    # -- what values are ------------------------------------------------------------------------
    def weight_of(self, v: Value) -> tuple[Value, Spread] | None:
        """The weight op result behind a weight (or one socket's shard of it)."""
        d = self.defs.get(v)
        if d is not None and d.opname == "weight":
            return v, Spread()
        if d is not None and d.opname == "spmd.shard" and self.defs.get(d.operands[0]) is not None \
                and self.defs[d.operands[0]].opname == "weight":
            return d.operands[0], Spread(d.attrs["axis"], d.attrs["blocks"], d.attrs["stride"])
        return None

    def is_indexed(self, op: Operation) -> bool:
        return (op.opname == "gather" and op.attrs["axis"] == 0 and self.weight_of(op.operands[0]) is not None
                and op.operands[1] not in self.static)

    def local(self, v: Value) -> bool:
        """Computed inside each unit that uses it (constants, masks), not streamed in."""
        return v in self.static and self.weight_of(v) is None

    # -- compute units ---------------------------------------------------------------------------
    def cluster(self) -> None:
        for op in self.flat.ops:
            if all(r in self.static for r in op.results):
                continue  # constants and weights: recomputed or read where used
            if self.is_indexed(op):
                self.indexed_read(op)
                continue
            if op.opname == "placed.collective":
                k = self.add(Unit("collective", _unit_name(op, len(self.units)), ops=[op]))
            else:
                owners = {self.owner[v] for v in op.operands if v in self.owner}
                fed = {v for v in op.operands if not self.local(v) and v not in self.owner}
                # Join the producer only when it is the op's one source: an op combining two
                # units' results would make the later unit wait for the other one before it
                # starts, serialising branches that run side by side (gate and up projections).
                k = owners.pop() if len(owners) == 1 and not fed else None
                if k is None or not _joins(op) or self.units[k].kind != "compute":
                    k = self.add(Unit("compute", _unit_name(op, len(self.units))))
                self.units[k].ops.append(op)
                self.units[k].contraction |= op.opdef.kind == "matmul" or bool(op.regions)
            for r in op.results:
                self.owner[r] = k

    def merge_light_units(self) -> None:
        """A unit of views and elementwise ops only (a KV-cache concat) whose results go to one
        other unit moves into that unit: its inputs then stream straight to where they are used
        (a big stream between two units would be held to one mesh link's bandwidth)."""
        position = {op: i for i, op in enumerate(self.flat.ops)}
        appended = {self.flat.outputs[j] for j in self.appends}
        outputs = set(self.flat.outputs) - appended
        indices = {idx for idx, _ in self.index_reads}
        changed = True
        while changed:
            changed = False
            for k, u in enumerate(self.units):
                if u.kind != "compute" or not u.ops or not all(_joins(op) for op in u.ops):
                    continue
                mine = {r for op in u.ops for r in op.results}
                if mine & (outputs | indices):
                    continue
                users = {j for j, w in enumerate(self.units)
                         if j != k and any(v in mine for op in w.ops for v in op.operands)}
                if len(users) != 1:
                    continue
                (t,) = users
                if self.units[t].kind != "compute":
                    continue
                target = self.units[t]
                target.ops = sorted(target.ops + u.ops, key=position.__getitem__)
                target.contraction |= u.contraction
                for r in mine:
                    self.owner[r] = t
                u.ops = []
                changed = True
        keep = [k for k, u in enumerate(self.units) if u.kind != "compute" or u.ops or u.outputs]
        renumber = {old: new for new, old in enumerate(keep)}
        self.units = [self.units[k] for k in keep]
        self.owner = {v: renumber[k] for v, k in self.owner.items()}
        self.index_reads = [(idx, renumber[k]) for idx, k in self.index_reads]
        self.sources = {v: [(renumber[k], p) for k, p in ports] for v, ports in self.sources.items()}

    def indexed_read(self, op: Operation) -> None:
        w, spread = self.weight_of(op.operands[0])
        name = w.defining_op.attrs["ref"].name
        mem = MemRef(("weight", self.weight_slot[w]), op.results[0].type, weight=name, spread=spread, indexed=True)
        k = self.add(Unit("read", f"rows of {name}", outputs=[Port(op.results[0])], mem=mem))
        self.index_reads.append((op.operands[1], k))
        self.sources[op.results[0]] = [(k, 0)]

    def unit_inputs(self, u: Unit) -> list[Value]:
        """Values a compute or collective unit takes from outside, in order of first use
        (local values are recomputed inside, but what they are computed from is taken)."""
        inner = {r for op in u.ops for r in op.results}
        out: list[Value] = []
        stack = [v for op in u.ops for v in op.operands] + [p.value for p in u.outputs if self.local(p.value)]
        seen: set[Value] = set()
        for v in stack:
            if v in inner or v in seen:
                continue
            seen.add(v)
            if self.local(v):
                stack.extend(self.defs[v].operands)
            else:
                out.append(v)
        return out

    def connect_units(self) -> None:
        for k, u in enumerate(self.units):
            if u.kind in ("compute", "collective"):
                self.inputs_of[k] = self.unit_inputs(u)
        for k in list(self.inputs_of):
            for v in self.inputs_of[k]:
                self.feed(v, k)
        for idx, k in self.index_reads:
            self.feed(idx, k, chunks_ok=False)

    def feed(self, v: Value, k: int, chunks_ok: bool = True) -> None:
        """Streams carrying ``v`` into unit ``k`` (one per chunk when it was read in chunks)."""
        for src, port in self.source(v, chunks_ok and self.units[k].kind == "compute"):
            u = self.units[src]
            from_memory = u.kind == "read" and not u.mem.indexed
            self.streams.append(Stream(src, port, k, tiles_for(u.outputs[port].type, from_memory)))

    def source(self, v: Value, chunks_ok: bool) -> list[tuple[int, int]]:
        if v in self.sources:
            ports = self.sources[v]
            if len(ports) > 1 and not chunks_ok:
                raise AssertionError("a chunked read feeds a unit that cannot concatenate")
            return ports
        if v in self.owner:
            k = self.owner[v]
            return [(k, self.units[k].port(v))]
        if self.local(v):  # a constant that something else than a compute unit needs: compute it
            k = self.add(Unit("compute", f"const {v.name or len(self.units)}", ops=[]))
            self.units[k].outputs.append(Port(v))
            self.sources[v] = [(k, 0)]
            self.inputs_of[k] = self.unit_inputs(self.units[k])
            for w in self.inputs_of[k]:
                self.feed(w, k)
            return self.sources[v]
        w = self.weight_of(v)
        if w is not None:
            name = w[0].defining_op.attrs["ref"].name
            mem = MemRef(("weight", self.weight_slot[w[0]]), v.type, weight=name, spread=w[1])
        else:
            i = v.index
            mem = MemRef(("arg", i), v.type)
            name = v.name or f"arg{i}"
        chunkable = all(self.units[k].kind == "compute" for k in self.consumer_units(v))
        axis = self.append_axis.get(v.index) if w is None else None  # a cache is cut along its length
        self.sources[v] = self.read(v, mem, name, chunkable, axis)
        return self.sources[v]

    def consumer_units(self, v: Value) -> set[int]:
        out = {k for k, ins in self.inputs_of.items() if v in ins}
        out |= {k for idx, k in self.index_reads if idx is v}
        return out

    def read(self, v: Value, mem: MemRef, name: str, chunkable: bool, axis: int | None = None) -> list[tuple[int, int]]:
        n = min(self.agcus, nbytes(v.type) // (WEIGHT_CHUNK_MIN if mem.weight else CHUNK_MIN)) if chunkable else 1
        if axis is not None:
            # A cache goes over every AGCU at any length: a count that grew with the context
            # would make a step slower just before each new chunk and faster just after.
            n = min(self.agcus if chunkable else 1, int(v.type.shape[axis]))
        elif n > 1:
            axis = _chunk_axis(v.type, n)
        if n <= 1:
            axis = None
        if axis is None:
            return [(self.add(Unit("read", name, outputs=[Port(v)], mem=mem)), 0)]
        size = int(v.type.shape[axis])
        ports = []
        for j in range(n):
            chunk = (axis, size * j // n, size * (j + 1) // n)
            port = Port(v, chunk)
            ref = MemRef(mem.slot, port.type, chunk, mem.weight, mem.spread)
            ports.append((self.add(Unit("read", f"{name}#{j}", outputs=[port], mem=ref)), 0))
        return ports

    # -- outputs --------------------------------------------------------------------------------
    def write_outputs(self) -> None:
        """A write (or one per chunk) for each value the section gives back; for an output that
        extends an input in place, a write of the new part only."""
        for j, v in enumerate(self.flat.outputs):
            if j in self.appends:
                i, axis = self.appends[j]
                old, new = v.defining_op.operands
                start = int(old.type.shape[axis])
                src, port = self.source(new, False)[0]
                ref = MemRef(("out", j), new.type, (axis, start, start + int(new.type.shape[axis])))
                w = self.add(Unit("write", f"{v.name or j} (new)", mem=ref))
                self.streams.append(Stream(src, port, w, tiles_for(new.type, True)))
                continue
            if v in self.owner:
                k = self.owner[v]
            elif self.local(v):
                k = self.source(v, False)[0][0]
            else:  # an input or a weight given back as it is: copy it through a unit
                copy = Operation("identity", [v], [v.type], result_names=[v.name])
                self.flat.append(copy)  # the flat graph holds every op a unit clones
                k = self.add(Unit("compute", f"copy {v.name or j}", ops=[copy]))
                self.inputs_of[k] = [v]
                self.feed(v, k)
                v = copy.results[0]
            u = self.units[k]
            n = min(self.agcus, nbytes(v.type) // CHUNK_MIN) if u.kind == "compute" else 1
            axis = _chunk_axis(v.type, n) if n > 1 else None
            size = int(v.type.shape[axis]) if axis is not None else 0
            chunks = [None] if axis is None else [(axis, size * i // n, size * (i + 1) // n) for i in range(n)]
            for i, chunk in enumerate(chunks):
                port = u.port(v, chunk)
                ref = MemRef(("out", j), u.outputs[port].type, chunk)
                w = self.add(Unit("write", f"{v.name or j}" + (f"#{i}" if chunk else ""), mem=ref))
                self.streams.append(Stream(k, port, w, tiles_for(ref.type, True)))


def _joins(op: Operation) -> bool:
    """Light enough to stream inside its producer's unit: elementwise ops, views, and concat
    (a KV-cache append)."""
    return op.opdef.kind in ("elementwise", "shape") or op.opdef.has_trait(Trait.VIEW) or op.opname == "concat"


def _unit_name(op: Operation, k: int) -> str:
    return op.results[0].name if op.results and op.results[0].name else f"{op.opname}#{k}"


def _chunk_axis(t: TensorType, n: int) -> int | None:
    for a, d in enumerate(t.shape):
        if int(d) >= n:
            return a
    return None
