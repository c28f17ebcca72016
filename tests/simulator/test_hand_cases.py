"""Small cases worked out on paper (the derivations are in each test's docstring).

All use ``round_arch`` (conftest.py): 1 GHz, SIMD f32 128 FLOP/cycle/PCU, HBM 1024 B/ns and
100 ns latency, DDR 100 B/ns and 600 ns, PCU pipeline latency = 6 stages = 6 ns, no load or
launch cost; units unplaced (no mesh, no AGCU), so the only shared resources are the tiers.
"""

import pytest

from rduflow.ir import TensorType
from rduflow.simulator import PlacedProgram, simulate

from simhelpers import copy_program, muls


def two_stage(depth: int = 0):
    prog = PlacedProgram()
    sec = prog.section("two")
    x = sec.mem_read("x", TensorType([64, 1024], "f32"))
    a = sec.compute("A", [sec.stream(x, 8)], muls(1), pcus=4)
    b = sec.compute("B", [sec.stream(a, 8, depth=depth)], muls(8), pcus=1)
    sec.mem_write(sec.stream(b, 8), "y")
    return prog.finish()


def test_two_stage_pipeline_with_slow_consumer(round_arch):
    """HBM -> A (fast) -> B (slow) -> HBM, 8 tiles of 32 KiB (x is f32[64, 1024] = 256 KiB).

    Per tile: HBM 32768 B / 1024 B/ns = 32 ns; A = 8192 FLOP / (128 x 4 PCUs) = 16 ns;
    B = 8 x 8192 FLOP / (128 x 1 PCU) = 512 ns. Depth 2 everywhere.
    Tile 0 leaves HBM at 0-32, arrives at A at 32 + 100 (latency) = 132; A fires 132-148;
    its output reaches B at 148 + 6 (pipeline latency) = 154. From then on B is always fed
    (A runs 32x faster, two tiles ahead), so B fires back to back: 154 + 8 x 512 = 4250.
    B's last tile is written: 4250 + 32 (HBM) + 100 (latency) + 6 (B's pipeline) = 4388 ns.
    B: busy 8 x 512 = 4096, stalled on input 154 (fill), never on output.
    A: busy 8 x 16 = 128, and stalls on output because B holds it back (backpressure).
    """
    r = simulate(two_stage(), round_arch)
    assert r.total_s * 1e9 == pytest.approx(4388, abs=1e-6)
    b = r.unit("B")
    assert b.busy_s * 1e9 == pytest.approx(4096)
    assert b.stalled_input_s * 1e9 == pytest.approx(154)
    assert b.stalled_output_s == 0
    a = r.unit("A")
    assert a.busy_s * 1e9 == pytest.approx(128)
    assert a.stalled_output_s > 1e-6  # held back by B for most of the run
    assert r.sections[0].bottleneck == "unit B"
    assert r.sections[0].bound_s * 1e9 == pytest.approx(4096)


def test_slow_consumer_is_not_helped_by_deeper_buffers(round_arch):
    """B is the bottleneck, so a deeper A -> B channel changes nothing: 4388 ns again
    (A only stalls less)."""
    shallow, deep = simulate(two_stage(), round_arch), simulate(two_stage(depth=8), round_arch)
    assert deep.total_s == shallow.total_s
    assert deep.unit("A").stalled_output_s < shallow.unit("A").stalled_output_s


@pytest.mark.parametrize("depth, expected_ns", [(2, 6500), (8, 2300)])
def test_memory_bound_stream(round_arch, depth, expected_ns):
    """DDR -> HBM copy of 160000 B in 16 tiles of 10000 B.

    A tile occupies DDR for tau = 10000 / 100 = 100 ns (HBM, 9.8 ns, overlaps: cut-through)
    and arrives L = 600 + 100 = 700 ns of latency later; its credit returns on arrival.
    Depth 8: 8 x tau = 800 >= tau + L, so DDR never idles: T = 16 x 100 + 700 = 2300 ns
    (bandwidth bound). Depth 2: two tiles per round trip of tau + L = 800 ns; tile j+2 starts
    when tile j arrives, so tile 15 starts at tau + 7 x 800 = 5700 and arrives at
    5700 + 800 = 6500 ns (latency bound: Little's law).
    """
    r = simulate(copy_program(160000, 16, depth=depth), round_arch)
    assert r.total_s * 1e9 == pytest.approx(expected_ns)
    assert r.tiers["ddr"].bytes == 160000 and r.tiers["hbm"].bytes == 160000
    assert r.tiers["ddr"].achieved_gb_s == pytest.approx(160000 / expected_ns)


def _shared_ddr(depth: int):
    """B: y (2 tiles) from DDR, depth 1, into C (300 ns a tile), written to HBM.
    A: a copy of x (5 tiles) from DDR to HBM, ``depth`` tiles in flight."""
    prog = PlacedProgram()
    sec = prog.section("shared")
    y = sec.mem_read("y", TensorType([2, 3200], "f32"), tier="ddr")
    c = sec.compute("C", [sec.stream(y, 2, depth=1)], muls(12), pcus=1)
    sec.mem_write(sec.stream(c, 2), "z")
    x = sec.mem_read("x", TensorType([5, 3200], "f32"), tier="ddr")
    sec.mem_write(sec.stream(x, 5, depth=depth), "w")
    return prog.finish()


def test_a_deeper_buffer_can_delay_a_stream_it_shares_memory_with(round_arch):
    """Two streams share DDR (100 B/ns, 600 ns); every tile is 12800 B = 128 ns of DDR.
    C: 12 x 3200 FLOP / 128 = 300 ns a tile. A copy tile's slot comes back when it has
    landed: DDR, then HBM cut-through, + 600 + 100 ns.

    Depth 4: y0 0-128 (its read is issued first), x0-x3 128-640. y0 arrives at 728, C
    fires 728-1028 and frees y's slot: y1 finds DDR idle, 728-856, arrives 1456; C fires
    1456-1756; its tile is written 1762 (6 ns pipeline) + 12.5 (HBM) + 100 = 1874.5. A: x0
    lands at 256 + 700 = 956, which frees the slot for x4: 956-1084, lands 1784. Total
    1874.5 ns.

    Depth 5: x4 is issued at 0 too and takes DDR 640-768. y1, ready at 728, waits for it:
    768-896, arrives 1496, C fires 1496-1796, written at 1914.5. A is done at 1468. Total
    1914.5 ns: the deeper buffer made the run 40 ns slower.

    Serving y1 first would need the arbiter to know that C is on the critical path; one
    that lets it preempt x4 fails on another program instead (docs/simulator.md: no
    arbiter that keeps the resource busy and cannot see the future avoids every case)."""
    shallow, deep = simulate(_shared_ddr(4), round_arch), simulate(_shared_ddr(5), round_arch)
    assert shallow.total_s * 1e9 == pytest.approx(1874.5)
    assert deep.total_s * 1e9 == pytest.approx(1914.5)
