"""``allocate``: PCUs for each compute unit, PMUs for each buffer.

PCUs go to units in proportion to their work, so that the pipeline's stages take equally
long (SambaNova's compiler does the same [SN40L III-A]): starting from each unit's
minimum, one PCU at a time goes to the unit that would otherwise take longest, until every
unit is faster than the section's memory time (more PCUs would only wait on memory) or the
chip's PCUs are used up. A unit's minimum is one PCU per memory stream of a big transfer
(each chunk lands on its own PCU) and, when the chip has enough PCUs for every unit's, as
many as let it keep up with its inputs arriving at memory speed: decode runs its units one
after the other (each waits for the previous one's single tile), so a unit slower than its
own inputs adds its whole compute time to the token's latency. A buffer gets the PMUs its
capacity needs, and more if its readers need more read bandwidth than that.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import ClassVar

from rduflow.compiler.passes import ModulePass, PassContext
from rduflow.ir import Module, Operation
from rduflow.compiler.target import RduArch, compute_work

from .design import CHUNK_MIN, Design, nbytes
from .errors import CompileError
from .distinct import distinct_sections, set_attrs


def landing_sites(mem_bytes: int, mem_streams: int) -> int:
    """PCUs a unit needs to take in ``mem_bytes`` from ``mem_streams`` memory streams: one
    per stream of a big transfer (its chunks, one per AGCU, each landing on its own PCU)."""
    return mem_streams if mem_bytes >= CHUNK_MIN and mem_streams > 1 else 1


def memory_bandwidth(arch: RduArch) -> float:
    tier = arch.memory.main
    return tier.bandwidth_gb_s


def design_needs(d: Design, arch: RduArch) -> tuple[int, int]:
    """(fewest PCUs, PMUs) a designed section needs."""
    pcus = 0
    for k, u in enumerate(d.units):
        if u.kind != "compute":
            continue
        mem = [i for i in d.inputs(k) if _from_memory(d, d.streams[i].src)]
        pcus += landing_sites(sum(d.stream_bytes(d.streams[i]) for i in mem), len(mem))
    pmus = sum(math.ceil(u.capacity / arch.pmu_bytes) for u in d.units if u.kind == "buffer")
    return pcus, pmus


def _from_memory(d: Design, k: int) -> bool:
    u = d.units[k]
    if u.kind == "read":
        return True
    return u.kind == "buffer" and any(_from_memory(d, d.streams[i].src) for i in d.inputs(k))


@dataclass(frozen=True)
class Allocate(ModulePass):
    """Give compute units PCUs in proportion to their work and buffers PMUs for capacity and bandwidth."""

    name: ClassVar[str] = "allocate"
    needs_target: ClassVar[bool] = True

    def apply(self, module: Module, ctx: PassContext) -> None:
        arch = ctx.target_for(self)
        for section, copies in distinct_sections(module, ("pcus", "pmus")):
            allocate_section(section, arch)
            set_attrs(section, copies, ("pcus", "pmus"))


def allocate_section(section: Operation, arch: RduArch) -> None:
    region = section.regions[0]
    clock = arch.clock_ghz
    units = [op for op in region.ops if op.opname == "placed.compute"]
    buffers = [op for op in region.ops if op.opname == "placed.buffer"]
    t_mem = memory_time(section, arch)
    work = {op: compute_work(op, arch) for op in units}
    cycles = {op: max(w.body_cycles, w.tail_cycles) for op, w in work.items()}
    bandwidth = memory_bandwidth(arch)
    latency = arch.memory.main.latency_ns
    floor, keep_up = {}, {}
    for op in units:
        mem = _memory_inputs(op)
        floor[op] = landing_sites(sum(_bytes(s) for s in mem), len(mem))
        # ns its inputs take at memory speed (a unit faster than a memory latency waits anyway)
        arrive = max(sum(_bytes(v.defining_op) for v in op.operands) / bandwidth, latency)
        keep_up[op] = max(floor[op], math.ceil(cycles[op] / (clock * arrive)))
    budget = arch.pcu.count
    if sum(floor.values()) > budget:
        raise CompileError(f"section '{section.attrs['name']}': {len(units)} compute units need at least "
                           f"{sum(floor.values())} PCUs, {arch.name} has {budget}")
    if sum(keep_up.values()) <= budget:
        floor = keep_up
    t_cmp = sum(cycles.values()) / (budget * clock)
    target = max(t_mem, t_cmp, latency)  # ns per call no unit needs to beat
    pcus = dict(floor)
    heap = [(-cycles[op] / pcus[op], i, op) for i, op in enumerate(units)]
    heapq.heapify(heap)
    spare = budget - sum(pcus.values())
    while spare > 0 and heap:
        neg, i, op = heapq.heappop(heap)
        if -neg / clock <= target:
            break
        pcus[op] += 1
        spare -= 1
        heapq.heappush(heap, (-cycles[op] / pcus[op], i, op))
    for op in units:
        op.attrs = {**op.attrs, "pcus": pcus[op]}
    pmu_rate = arch.pmu.read_bytes_per_cycle * clock  # bytes per ns, per PMU
    used = 0
    for op in buffers:
        out_bytes = sum(_bytes(s) for s in region.users().get(op.results[0], []))
        need = max(math.ceil(op.attrs["capacity"] / arch.pmu_bytes),
                   math.ceil(out_bytes / max(target, 1e-9) / pmu_rate) if target > 0 else 1, 1)
        op.attrs = {**op.attrs, "pmus": need}
        used += need
    if used > arch.pmu.count:
        raise CompileError(f"section '{section.attrs['name']}': buffers need {used} PMUs "
                           f"({sum(op.attrs['capacity'] for op in buffers) / 2**20:.1f} MiB), "
                           f"{arch.name} has {arch.pmu.count}")


def memory_time(section: Operation, arch: RduArch) -> float:
    """ns per call the section's memory traffic needs at full bandwidth."""
    per_tier: dict[str, int] = {}
    region = section.regions[0]
    users = region.users()
    for op in region.ops:
        if op.opname == "placed.mem_read":
            per_tier[op.attrs["tier"]] = per_tier.get(op.attrs["tier"], 0) + sum(_bytes(s) for s in users.get(op.results[0], []))
        elif op.opname == "placed.mem_write":
            per_tier[op.attrs["tier"]] = per_tier.get(op.attrs["tier"], 0) + _bytes(op.operands[0].defining_op)
    t = 0.0
    for tier, nb in per_tier.items():
        t = max(t, nb / getattr(arch.memory, tier).bandwidth_gb_s)
    return t


def _bytes(stream: Operation) -> int:
    return nbytes(stream.results[0].type)


def _memory_inputs(op: Operation) -> list[Operation]:
    """The input streams of a unit that come from memory (directly or through a buffer)."""
    return [s for s in (v.defining_op for v in op.operands) if memory_fed(s.operands[0].defining_op)]


def memory_fed(unit: Operation) -> bool:
    if unit.opname == "placed.mem_read":
        return True
    return unit.opname == "placed.buffer" and memory_fed(unit.operands[0].defining_op.operands[0].defining_op)
