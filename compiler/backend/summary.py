"""What the back end made of a model: sections, units, PCU and PMU use, memory, link load."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from rduflow.ir import Module, Operation
from rduflow.ir.program import MEMORY_BYTES, SOCKETS
from rduflow.ir.signature import graph_signature
from rduflow.compiler.target import RduArch

from .allocate import memory_time
from .design import nbytes
from .route import link_loads

BUSIEST = 8


@dataclass
class SectionSummary:
    name: str
    repeat: int
    compute_units: int
    buffers: int
    memory_units: int
    collectives: int
    pcus: int
    pmus: int
    agcus: int  # distinct AGCUs its memory traffic and collectives use
    memory_bytes: int  # per call: read + written, HBM and DDR
    memory_us: float  # per call, at the memory's full bandwidth
    weighted_hops: float  # per call: sum over streams of bytes x mesh hops
    links_used: int
    max_link_bytes: int  # per call, the most that streams moving at the same time put on one link
    max_link: str
    link_us: float  # per call: that link's bytes at link rate
    busiest_links: list[tuple[str, int]]  # the most loaded links ("r0,c0>r1,c1"), bytes per call


@dataclass
class CompileSummary:
    arch: str
    sockets: int
    fusion: str
    ideal_network: bool
    sections: list[SectionSummary]
    calls: int  # section calls per run of the program (repeats counted)
    distinct_sections: int
    max_pcus: int
    max_pmus: int
    pcu_count: int
    pmu_count: int
    memory: dict[str, int]  # per socket: weights, inputs_outputs, activations_peak, hbm, ddr
    compile_s: float

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(asdict(self), indent=indent)

    def to_text(self) -> str:
        gib = 1 << 30
        m = self.memory
        network = ", ideal network" if self.ideal_network else ""
        lines = [
            f"{self.arch}, {self.sockets} socket(s), fusion={self.fusion}{network}: compiled in {self.compile_s:.2f} s",
            f"{len(self.sections)} placed section(s) ({self.distinct_sections} distinct), {self.calls} call(s) per run",
            (f"PCUs: up to {self.max_pcus} of {self.pcu_count} ({self.max_pcus / self.pcu_count:.0%}); "
             f"PMUs: up to {self.max_pmus} of {self.pmu_count} ({self.max_pmus / self.pmu_count:.0%})"),
            (f"memory per socket: weights {m.get('weights', 0) / gib:.3f} GiB, inputs/outputs "
             f"{m.get('inputs_outputs', 0) / gib:.3f} GiB, activations {m.get('activations_peak', 0) / gib:.3f} GiB "
             f"(HBM {m.get('hbm', 0) / gib:.3f} GiB, DDR {m.get('ddr', 0) / gib:.3f} GiB)"),
            "",
            (f"{'section':40} {'x':>4} {'units':>6} {'bufs':>5} {'mem':>5} {'PCUs':>5} {'PMUs':>5} {'AGCUs':>5} "
             f"{'mem MB':>8} {'mem us':>8} {'link us':>8} {'MB-hops':>9}"),
        ]
        for s in self.sections:
            lines.append(f"{s.name[:40]:40} {s.repeat:>4} {s.compute_units:>6} {s.buffers:>5} {s.memory_units:>5} "
                         f"{s.pcus:>5} {s.pmus:>5} {s.agcus:>5} {s.memory_bytes / 1e6:>8.2f} {s.memory_us:>8.2f} "
                         f"{s.link_us:>8.2f} {s.weighted_hops / 1e6:>9.2f}")
        return "\n".join(lines) + "\n"


def summarize(placed: Module, arch: RduArch, *, fusion: str, ideal: bool, seconds: float) -> CompileSummary:
    known: dict[tuple, SectionSummary] = {}
    sections = []
    for op in placed.main.ops:  # sections that differ only in names have the same figures
        key = graph_signature(op.regions[0])
        if key not in known:
            known[key] = section_summary(op, arch)
        sections.append(replace(known[key], name=op.attrs["name"], repeat=op.attrs["repeat"]))
    memory = placed.attrs.get(MEMORY_BYTES)
    return CompileSummary(
        arch=arch.name, sockets=placed.attrs.get(SOCKETS, 1), fusion=fusion, ideal_network=ideal,
        sections=sections, calls=sum(s.repeat for s in sections), distinct_sections=len(known),
        max_pcus=max((s.pcus for s in sections), default=0), max_pmus=max((s.pmus for s in sections), default=0),
        pcu_count=arch.pcu.count, pmu_count=arch.pmu.count, memory=memory.as_dict() if memory else {},
        compile_s=seconds)


def section_summary(op: Operation, arch: RduArch) -> SectionSummary:
    ops = op.regions[0].ops
    kinds = [o.opname for o in ops]
    streams = [o for o in ops if o.opname == "placed.stream"]
    load = link_loads(op, by_phase=True)
    busiest = sorted(load, key=lambda k: (-load[k], k))[:BUSIEST]
    link = busiest[0] if busiest else None
    rate = arch.mesh.link_bytes_per_cycle * arch.clock_ghz  # bytes per ns
    mem = 0
    users = op.regions[0].users()
    for o in ops:
        if o.opname == "placed.mem_read":
            mem += sum(nbytes(s.results[0].type) for s in users.get(o.results[0], []))
        elif o.opname == "placed.mem_write":
            mem += nbytes(o.operands[0].type)
    return SectionSummary(
        name=op.attrs["name"], repeat=op.attrs["repeat"], compute_units=kinds.count("placed.compute"),
        buffers=kinds.count("placed.buffer"),
        memory_units=kinds.count("placed.mem_read") + kinds.count("placed.mem_write"),
        collectives=kinds.count("placed.collective"),
        pcus=sum(o.attrs["pcus"] for o in ops if o.opname == "placed.compute"),
        pmus=sum(o.attrs["pmus"] for o in ops if o.opname == "placed.buffer"),
        agcus=len({o.attrs["agcu"] for o in ops if "agcu" in o.attrs and o.attrs["agcu"] >= 0}),
        memory_bytes=mem, memory_us=memory_time(op, arch) / 1e3,
        weighted_hops=float(sum(nbytes(s.results[0].type) * len(s.attrs["route"]) for s in streams)),
        links_used=len(load), max_link_bytes=load[link] if link else 0, max_link=_link(link) if link else "",
        link_us=(load[link] / rate / 1e3) if link else 0.0, busiest_links=[(_link(k), load[k]) for k in busiest])


def _link(k: tuple[int, int, int, int]) -> str:
    return "{},{}>{},{}".format(*k)
