"""Properties of the engine on generated pipelines (hypothesis).

A generated pipeline reads an f32 tensor from HBM or DDR, passes it through compute stages
(elementwise multiplies on some PCUs) and PMU buffers, and writes it to HBM or DDR; every
stream has its own tile count and depth. Bounds are computed here from the generator's
own numbers, not from the engine's netlist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simhelpers import ROUND, muls

from rduflow.ir import TensorType
from rduflow.compiler.target import load_arch
from rduflow.simulator import PlacedProgram, simulate

COLS = 256  # f32 columns: a row is 1 KiB


@dataclass(frozen=True)
class Stage:
    kind: str  # compute | buffer
    muls: int = 1  # compute: FLOPs per element
    pcus: int = 1
    slots: int = 1  # buffer: capacity in input tiles


@dataclass(frozen=True)
class Chain:
    rows: int
    src: str
    dst: str
    stages: tuple[Stage, ...]
    tiles: tuple[int, ...]  # per stream: len(stages) + 1
    depths: tuple[int, ...]  # per stream (0: default); streams into buffers ignore it
    hbm_gb_s: float
    ddr_gb_s: float
    hbm_ns: float
    ddr_ns: float

    @property
    def nbytes(self) -> int:
        return self.rows * COLS * 4

    def arch(self):
        return load_arch("sn40l", {**ROUND, "memory.hbm.bandwidth_gb_s": self.hbm_gb_s,
                                   "memory.ddr.bandwidth_gb_s": self.ddr_gb_s,
                                   "memory.hbm.latency_ns": self.hbm_ns, "memory.ddr.latency_ns": self.ddr_ns})

    def program(self, repeat: int = 1):
        prog = PlacedProgram()
        sec = prog.section("chain", repeat=repeat)
        v = sec.mem_read("x", TensorType([self.rows, COLS], "f32"), tier=self.src)
        for i, s in enumerate(self.stages):
            if s.kind == "compute":
                v = sec.compute(f"c{i}", [sec.stream(v, self.tiles[i], depth=self.depths[i])], muls(s.muls), pcus=s.pcus)
            else:
                cap = s.slots * math.ceil(self.nbytes / self.tiles[i])
                v = sec.buffer(sec.stream(v, self.tiles[i]), pmus=math.ceil(cap / (512 * 1024)), capacity=cap,
                               name=f"b{i}")
        sec.mem_write(sec.stream(v, self.tiles[-1], depth=self.depths[-1]), "y", tier=self.dst)
        return prog.finish()

    def bound_ns(self) -> float:
        """max over resources and units of work / rate (clock 1 GHz: cycles = ns)."""
        b = self.nbytes
        work = [b * ((self.src == t) + (self.dst == t)) / bw for t, bw in (("hbm", self.hbm_gb_s), ("ddr", self.ddr_gb_s))]
        for s in self.stages:
            if s.kind == "compute":
                work.append(s.muls * self.rows * COLS / (128 * s.pcus))  # ROUND: 128 FLOP/cycle
            else:
                pmus = math.ceil(s.slots * math.ceil(b / 1) / (512 * 1024))
                work.append(b / (pmus * 128))  # sn40l PMU ports: 128 B/cycle
        return max(work)


@st.composite
def chains(draw, max_stages: int = 4) -> Chain:
    rows = draw(st.sampled_from([16, 32, 64]))
    n = draw(st.integers(1, max_stages))
    stages = []
    for _ in range(n):
        if draw(st.booleans()):
            stages.append(Stage("compute", muls=draw(st.integers(1, 8)), pcus=draw(st.integers(1, 8))))
        else:
            stages.append(Stage("buffer", slots=draw(st.integers(1, 6))))
    tiles = tuple(draw(st.sampled_from([1, 2, 4, 8, 16])) for _ in range(n + 1))
    depths = tuple(0 if i < n and stages[i].kind == "buffer" else draw(st.integers(0, 4)) for i in range(n + 1))
    return Chain(rows, draw(st.sampled_from(["hbm", "ddr"])), draw(st.sampled_from(["hbm", "ddr"])), tuple(stages),
                 tiles, depths, draw(st.floats(50, 4000)), draw(st.floats(20, 400)),
                 draw(st.floats(0, 500)), draw(st.floats(0, 800)))


def deeper(c: Chain, data) -> Chain:
    """``c`` with one stream one to four tiles deeper, or one buffer one to four slots bigger."""
    i = data.draw(st.integers(0, len(c.stages)))
    if i < len(c.stages) and c.stages[i].kind == "buffer":
        stages = list(c.stages)
        stages[i] = replace(stages[i], slots=stages[i].slots + data.draw(st.integers(1, 4)))
        return replace(c, stages=tuple(stages))
    depths = list(c.depths)
    depths[i] = max(depths[i] or 2, 1) + data.draw(st.integers(1, 4))
    return replace(c, depths=tuple(depths))


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(chains())
def test_never_below_the_analytical_bound(c: Chain):
    r = simulate(c.program(), c.arch())
    assert r.total_s * 1e9 >= c.bound_ns() * (1 - 1e-12)


@SETTINGS
@given(chains())
def test_bytes_are_conserved(c: Chain):
    r = simulate(c.program(), c.arch())
    for tier in ("hbm", "ddr"):
        expected = c.nbytes * ((c.src == tier) + (c.dst == tier))
        assert r.tiers[tier].bytes == expected if expected else tier not in r.tiers
        if expected:  # the bandwidth timeline accounts for the same bytes
            moved = sum(gbs * (t1 - t0) * 1e9 for t0, t1, gbs in r.bandwidth_timeline[tier])
            assert moved == pytest.approx(expected, rel=1e-9)
    assert [s.bytes for s in r.streams] == [c.nbytes] * (len(c.stages) + 1)
    buffers = sum(s.kind == "buffer" for s in c.stages)
    assert r.tiers.get("pmu", None) is None if not buffers else r.tiers["pmu"].bytes == buffers * c.nbytes


@SETTINGS
@given(chains(), st.sampled_from(["hbm", "ddr"]), st.floats(1.01, 4.0))
def test_more_bandwidth_is_never_slower(c: Chain, tier: str, factor: float):
    faster = replace(c, **{f"{tier}_gb_s": getattr(c, f"{tier}_gb_s") * factor})
    assert simulate(faster.program(), faster.arch()).total_s <= simulate(c.program(), c.arch()).total_s


@SETTINGS
@given(chains(), st.data())
def test_more_buffering_is_never_slower(c: Chain, data):
    """Without a resource shared by two streams (read and write tiers differ), a pipeline is a
    max-plus system and more buffering can only help. (With sharing it may not, in any
    engine that keeps its resources busy: test_hand_cases works a case out, and
    docs/simulator.md says why no arbiter avoids every case.)"""
    c = replace(c, dst="ddr" if c.src == "hbm" else "hbm")
    assert simulate(deeper(c, data).program(), c.arch()).total_s <= simulate(c.program(), c.arch()).total_s


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 5), st.sampled_from([1, 2, 4]), st.booleans())
def test_balanced_pipeline_reaches_its_throughput(k: int, pcus: int, memory_stage: bool):
    """k compute stages of 128 ns per tile each (4 x pcus multiplies of a 16 KiB row on pcus
    PCUs), 800 tiles. With memory_stage, the DDR read is a balanced stage too (16 KiB at
    128 B/ns = 128 ns; depth 8 covers its 600 ns latency). The analytical throughput is one
    tile per 128 ns: 800 x 128 ns, plus a fill and drain of a few tiles (under 2%)."""
    cols, n, s = 4096, 800, 128.0
    arch = load_arch("sn40l", {**ROUND, "memory.hbm.bandwidth_gb_s": 1e5, "memory.hbm.latency_ns": 10,
                               "memory.ddr.bandwidth_gb_s": 128 if memory_stage else 1e5})
    prog = PlacedProgram()
    sec = prog.section("balanced")
    v = sec.mem_read("x", TensorType([n, cols], "f32"), tier="ddr" if memory_stage else "hbm")
    depth = 8
    for i in range(k):
        v = sec.compute(f"s{i}", [sec.stream(v, n, depth=depth)], muls(4 * pcus), pcus=pcus)
        depth = 0
    sec.mem_write(sec.stream(v, n), "y")
    r = simulate(prog.finish(), arch, max_tiles=n)
    assert r.unit("s0").service_s * 1e9 == pytest.approx(s)
    ideal = n * s * 1e-9
    assert ideal <= r.total_s <= ideal * 1.02
