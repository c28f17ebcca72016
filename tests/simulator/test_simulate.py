"""simulate(): sections, loops, reuse, collectives, the mesh, results, traces, errors."""

import json

import numpy as np
import pytest
from simhelpers import ROUND, copy_program, muls

from rduflow.ir import TensorType, parse_module, print_module
from rduflow.compiler.target import load_arch
from rduflow.simulator import PlacedProgram, SimulationError, runner, simulate, write_chrome_trace

F32 = "f32"


def layer_program(repeat: int, carried: bool = True, names=("h", "w")):
    """A decoder-like kernel: h (carried between calls) @ W, W streamed from HBM through a
    PMU buffer, result written back to h."""
    h_name, w_name = names
    prog = PlacedProgram()
    sec = prog.section("layer", repeat=repeat)
    h = sec.mem_read(h_name, TensorType([1, 1024], F32), carried=carried)
    w = sec.mem_read(w_name, TensorType([1024, 1024], F32))
    wb = sec.buffer(sec.stream(w, 32), pmus=4, capacity=2 << 20)
    y = sec.compute("mm", [sec.stream(h, 1), sec.stream(wb, 32)], lambda b, x, w: b.emit("matmul", x, w), pcus=8)
    sec.mem_write(sec.stream(y, 1), h_name)
    return prog


def chain_program(repeat: int = 1, carried: bool = True):
    """h (4 KiB, carried) -> one multiply on 1 PCU -> h."""
    prog = PlacedProgram()
    sec = prog.section("chain", repeat=repeat)
    h = sec.mem_read("h", TensorType([1024], F32), carried=carried)
    y = sec.compute("mul", [sec.stream(h, 1)], muls(1), pcus=1)
    sec.mem_write(sec.stream(y, 1), "h")
    return prog.finish()


# -- loops ---------------------------------------------------------------------------------------
def test_carried_state_serialises_calls(round_arch):
    """One call: read 4096 B at 1024 B/ns (0-4) + 100 latency = 104; multiply 1024 FLOP at
    128/cycle: 104-112; +6 pipeline = 118; write 118-122 + 100 = 222 ns. A carried read waits
    for the previous call's write, so 20 looped calls take 20 x 222 = 4440 ns. Without the
    dependency the calls overlap: the write stream (2 credits, 104 ns round trip) then sets
    the pace, 52 ns a call."""
    assert simulate(chain_program(1), round_arch).total_s * 1e9 == pytest.approx(222)
    looped = simulate(chain_program(20), round_arch)
    assert looped.total_s * 1e9 == pytest.approx(20 * 222)
    assert looped.sections[0].per_call_s * 1e9 == pytest.approx(222)
    free = simulate(chain_program(20, carried=False), round_arch)
    assert free.sections[0].per_call_s * 1e9 == pytest.approx(52)


def test_extrapolated_loop_equals_full_simulation(round_arch, monkeypatch):
    prog = layer_program(40).finish()
    fast = simulate(prog, round_arch)
    monkeypatch.setattr(runner, "LOOP_EXACT", 1000)  # simulate all 40 calls event by event
    full = simulate(prog, round_arch)
    sf, ss = fast.sections[0], full.sections[0]
    assert sf.iterations_simulated < 40 == ss.iterations_simulated and sf.converged
    assert fast.total_s == pytest.approx(full.total_s, rel=1e-9)
    for a, b in zip(fast.units, full.units):
        assert (a.busy_s, a.stalled_input_s, a.stalled_output_s) == pytest.approx(
            (b.busy_s, b.stalled_input_s, b.stalled_output_s), rel=1e-6, abs=1e-15)
    assert [r.bytes for r in fast.resources] == [r.bytes for r in full.resources]
    assert [s.bytes for s in fast.streams] == [s.bytes for s in full.streams]
    weights = next(s for s in fast.streams if s.name == "w -> buffer#2")
    assert weights.bytes == 40 * 4 * 1024 * 1024
    assert fast.events < full.events / 3


def test_kernel_looping_saves_launches_and_overlaps_calls():
    """Without looping each call pays a launch (1 us on sn40l) and runs alone:
    load + 10 x (launch + one call). Looped: one launch, and the next call's weights stream
    in while this one computes."""
    arch = load_arch("sn40l")
    prog = layer_program(10).finish()
    one = simulate(layer_program(1).finish(), arch)
    single = one.sections[0].per_call_s
    unlooped = simulate(prog, arch, kernel_looping=False)
    assert unlooped.total_s == pytest.approx(10e-6 + 10 * (1e-6 + single), rel=1e-12)
    looped = simulate(prog, arch)
    assert looped.sections[0].launch_s == pytest.approx(1e-6)
    assert looped.total_s < unlooped.total_s - 9e-6


def test_identical_sections_are_one_kernel(round_arch):
    """Sections that differ only in tensor names are calls of one kernel: looped together,
    simulated once; a different kernel costs a program load."""
    prog = PlacedProgram()
    for i in range(2):
        sec = prog.section(f"layer{i}")
        h = sec.mem_read("h", TensorType([1, 1024], F32), carried=True)
        w = sec.mem_read(f"w{i}", TensorType([1024, 1024], F32))
        wb = sec.buffer(sec.stream(w, 32), pmus=4, capacity=2 << 20)
        y = sec.compute("mm", [sec.stream(h, 1), sec.stream(wb, 32)], lambda b, x, w: b.emit("matmul", x, w), pcus=8)
        sec.mem_write(sec.stream(y, 1), "h")
    two = simulate(prog.finish(), round_arch)
    repeated = simulate(layer_program(2).finish(), round_arch)
    assert [s.calls for s in two.sections] == [2]
    assert two.total_s == repeated.total_s and two.events == repeated.events

    arch = load_arch("sn40l")
    mixed = PlacedProgram()
    for tiles in (1, 2):  # different tilings: different kernels
        sec = mixed.section("k")
        x = sec.mem_read("x", TensorType([1024], F32))
        sec.mem_write(sec.stream(x, tiles), "y")
    r = simulate(mixed.finish(), arch)
    assert [s.load_s for s in r.sections] == [pytest.approx(10e-6)] * 2


# -- collectives and the mesh --------------------------------------------------------------------
def allreduce_program():
    prog = PlacedProgram(sockets=8)
    sec = prog.section("ar")
    x = sec.mem_read("x", TensorType([262144], F32))  # 1 MiB
    y = sec.collective(sec.stream(x, 16), "all_reduce", group=8)
    sec.mem_write(sec.stream(y, 16), "y")
    return prog.finish()


def test_all_reduce_traffic_and_latency():
    """Per socket, an all-reduce sends 2 x (p-1)/p of the data: 2 x 7/8 x 1 MiB = 1835008 B,
    28672 ns at 64 GB/s; the link is the bottleneck. Fully connected it takes 2 steps of 1 us
    of latency, a ring 2 x 7: the ring ends exactly 12 us later."""
    fc = simulate(allreduce_program(), "sn40l")
    assert fc.tiers["socket"].bytes == pytest.approx(1835008)
    assert fc.sections[0].bottleneck == "socket link"
    assert fc.sections[0].per_call_s >= 1835008 / 64e9
    ring = simulate(allreduce_program(), load_arch("sn40l", {"sockets.topology": "ring"}))
    assert ring.sections[0].per_call_s - fc.sections[0].per_call_s == pytest.approx(12e-6, rel=1e-9)
    with pytest.raises(SimulationError, match="collective over 8 sockets, but the program runs on 4"):
        simulate(allreduce_program(), "sn40l", sockets=4)


def two_streams(shared: bool):
    """Two 64 KiB streams from PMU buffers to PCUs along row 0; shared: both cross the links
    (0,2)->(0,3)->(0,4)."""
    prog = PlacedProgram()
    sec = prog.section("mesh")
    ends = [((0, 1), (0, 4)), ((0, 3), (0, 6))] if shared else [((0, 1), (0, 4)), ((2, 1), (2, 4))]
    for i, (src, dst) in enumerate(ends):
        x = sec.mem_read(f"x{i}", TensorType([16384], F32))
        b = sec.buffer(sec.stream(x, 16), pmus=1, capacity=1 << 18, coords=[src])
        route = [[src[0], c, src[0], c + 1] for c in range(src[1], dst[1])]
        y = sec.compute(f"c{i}", [sec.stream(b, 16, route=route)], muls(1), pcus=1, coords=[dst])
        sec.mem_write(sec.stream(y, 16), f"y{i}")
    return prog.finish()


def test_mesh_links_are_shared():
    arch = load_arch("sn40l", {**ROUND, "mesh.link_bytes_per_cycle": 8})
    apart, shared = simulate(two_streams(False), arch), simulate(two_streams(True), arch)
    link = shared.resource("link 0,3>0,4")
    assert link.bytes == 2 * 65536  # both streams cross it
    assert shared.total_s > 1.8 * apart.total_s  # 8 B/ns links: the shared ones serve twice the bytes
    ideal = simulate(two_streams(True), arch, ideal_network=True)
    assert ideal.total_s < apart.total_s and "mesh" not in ideal.tiers


def test_automatic_routes_are_dimension_order():
    prog = PlacedProgram()
    sec = prog.section("xy")
    x = sec.mem_read("x", TensorType([1024], F32))
    b = sec.buffer(sec.stream(x, 1), pmus=1, capacity=4096, coords=[[1, 0]])
    y = sec.compute("c", [sec.stream(b, 1)], muls(1), pcus=1, coords=[[3, 3]])
    sec.mem_write(sec.stream(y, 1), "y")
    r = simulate(prog.finish(), "sn40l")
    links = sorted(res.name for res in r.resources if res.tier == "mesh")
    # Along the row first (x), then down the column (y).
    assert links == ["link 1,0>1,1", "link 1,1>1,2", "link 1,2>1,3", "link 1,3>2,3", "link 2,3>3,3"]


# -- cost control --------------------------------------------------------------------------------
def test_coarsened_tiles_keep_the_answer(round_arch):
    """A DDR -> HBM copy of 16 MiB in 8192 tiles is bandwidth bound (16 MiB / 100 B/ns); with
    at most 256 simulated tiles per stream the time stays within 0.5% and the work shrinks."""
    prog = copy_program(16 << 20, 8192, depth=64)
    fine = simulate(prog, round_arch, max_tiles=8192)
    coarse = simulate(prog, round_arch)
    assert fine.total_s == pytest.approx((16 << 20) / 100e9, rel=0.01)
    assert coarse.total_s == pytest.approx(fine.total_s, rel=0.005)
    assert coarse.events * 10 < fine.events
    assert coarse.tiers["ddr"].bytes == fine.tiers["ddr"].bytes == 16 << 20


def test_cost_does_not_grow_with_layers_or_weight_bytes(round_arch):
    """80 calls cost what 20 do (both simulate the same few iterations). A stream of 16384
    tiles is simulated as 256 tiles, exactly as if written with 256; 4x the bytes in 4x the
    tiles is again 256 simulated tiles: about the same work for 4x the time."""
    r20, r80 = simulate(layer_program(20).finish(), round_arch), simulate(layer_program(80).finish(), round_arch)
    assert r20.events == r80.events
    assert r80.total_s > 3.9 * r20.total_s

    def wide(rows: int, tiles: int):
        prog = PlacedProgram()
        sec = prog.section("s")
        w = sec.mem_read("w", TensorType([rows, 1024], F32))
        sec.mem_write(sec.stream(w, tiles, depth=4), "v")
        return prog.finish()

    written, coarsened = simulate(wide(16384, 256), round_arch), simulate(wide(16384, 16384), round_arch)
    assert (coarsened.events, coarsened.total_s) == (written.events, written.total_s)
    assert coarsened.streams[0].coarsened == 64
    bigger = simulate(wide(4 * 16384, 4 * 16384), round_arch)
    assert bigger.events <= 1.1 * written.events
    assert bigger.total_s == pytest.approx(4 * written.total_s, rel=0.01)


# -- results -------------------------------------------------------------------------------------
def test_deterministic_and_text_round_trip(round_arch):
    prog = layer_program(12).finish()
    a = simulate(prog, round_arch).to_json()
    assert simulate(prog, round_arch).to_json() == a
    assert simulate(parse_module(print_module(prog)), round_arch).to_json() == a


def test_results_show_fill_drain_and_utilisation(round_arch):
    """Fill of the two-stage pipeline of test_hand_cases: B's first tile is done at
    154 + 512 = 666 and leaves its pipeline at 672. At 666 B also took its second input,
    which frees A to take its next one, whose slot lets the source read another tile: HBM is
    busy with that read 666-698. The write waits for it, takes 698-730, and lands 100 ns
    later: 830 ns. (Contention, visible.) Drain: A holds the outputs of up to two firings (its
    6 ns pipeline is shorter than one 16 ns firing: depth 1 + 1), so it runs ahead of B. Its
    input tiles arrive at 132, 164, 264, 296, 396, 428 (two in flight, 32 ns of HBM and 100 ns
    each); it hands tiles 0-2 to B's stream (B takes tile 0 at 154), tile 3 waits in it from
    318, tile 4 from 418, and firing 5 must wait until firing 3's output is handed over: at
    666, when B takes tile 1. Then A takes x5, and its slot lets the source send the last
    input tile, x7, at 666. From there to the end, 4388 ns, the pipeline drains: 3722 ns."""
    from test_hand_cases import two_stage

    s = simulate(two_stage(), round_arch).sections[0]
    assert s.fill_s * 1e9 == pytest.approx(830)
    assert s.drain_s * 1e9 == pytest.approx(4388 - 666)
    r = simulate(layer_program(1).finish(), round_arch)
    assert 0 < r.pcu_utilisation <= r.pcu_allocated <= 1 and 0 < r.pmu_utilisation <= 1
    assert r.flops == 2 * 1024 * 1024
    data = json.loads(r.to_json())
    assert data["tiers"]["hbm"]["bytes"] == 4 * (1024 + 1024 * 1024 + 1024)
    assert len(data["bandwidth_timeline"]["hbm"]) == 200


def test_chrome_trace(round_arch, tmp_path):
    r = simulate(layer_program(12).finish(), round_arch, trace=True)
    path = tmp_path / "t.json"
    write_chrome_trace(r, path)
    events = json.loads(path.read_text())["traceEvents"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert {"sections", "units", "bandwidth", "layer/mm", "layer/w"} <= names
    busy = [e for e in events if e["ph"] == "X" and e["name"] == "busy"]
    assert busy and all(e["dur"] > 0 for e in busy)
    assert any(e["ph"] == "X" and e["name"].endswith("calls extrapolated") for e in events)
    assert any(e["ph"] == "C" and e["name"] == "hbm GB/s" for e in events)
    with pytest.raises(SimulationError, match="trace=True"):
        write_chrome_trace(simulate(layer_program(1).finish(), round_arch), path)


# -- errors --------------------------------------------------------------------------------------
def placed(build):
    prog = PlacedProgram()
    build(prog.section("s"))
    return prog.finish()


def read(sec, tier="hbm", agcu=-1):
    return sec.mem_read("x", TensorType([1024], F32), tier=tier, agcu=agcu)


@pytest.mark.parametrize("build, message", [
    (lambda s: s.mem_write(s.stream(read(s, agcu=16), 1), "y"), "agcu 16 does not exist (sn40l has AGCUs 0 to 15)"),
    (lambda s: s.compute("c", [s.stream(read(s), 1)], muls(1), pcus=1, coords=[[40, 0]]),
     "coordinate [40, 0] is outside the 40 x 52 grid"),
    (lambda s: s.compute("c", [s.stream(read(s), 1)], muls(1), pcus=1, coords=[[0, 1]]),
     "[0, 1] is not a PCU site"),
    (lambda s: s.compute("c", [s.stream(read(s), 1)], muls(1), pcus=2, coords=[[0, 0]]),
     "1 coordinates for 2 PCU(s)"),
    (lambda s: s.compute("c", [s.stream(read(s), 1)], muls(1), pcus=2000), "units use 2000 PCUs, sn40l has 1040"),
    (lambda s: s.buffer(s.stream(read(s), 1), pmus=1, capacity=100), "capacity 100 B is smaller than one 4096-byte tile"),
    (lambda s: s.buffer(s.stream(read(s), 1), pmus=1, capacity=1 << 20), "exceeds its 1 PMU(s) (524288 B on sn40l)"),
    (lambda s: s.compute("c", [s.stream(read(s), 1, route=[[0, 0, 0, 1], [0, 2, 0, 3]])], muls(1), pcus=1),
     "route link #1 starts at [0, 2], not where link #0 ends"),
    (lambda s: s.compute("c", [s.stream(read(s), 1, route=[[0, 0, 1, 1]])], muls(1), pcus=1),
     "does not join neighbouring switches"),
    (lambda s: s.mem_write(s.stream(s.mem_read("h", TensorType([4], F32), carried=True), 1), "g"),
     "carried read of 'h', but the section has no placed.mem_write of that tensor"),
])
def test_invalid_programs_name_the_unit(build, message):
    with pytest.raises(SimulationError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        simulate(placed(build), "sn40l")


def test_deadlock_is_reported(round_arch):
    """A fork-join whose short branch holds 1 tile while the long one (a reduction) needs all
    8 before the join can take its first: A cannot hand over its second tile."""
    prog = PlacedProgram()
    sec = prog.section("fork")
    x = sec.mem_read("x", TensorType([8, 256], F32))
    a = sec.compute("A", [sec.stream(x, 8)], muls(1), pcus=1)
    b = sec.compute("B", [sec.stream(a, 8)], lambda b, v: b.emit("reduce_sum", v, axes=[0]), pcus=1)
    c = sec.compute("C", [sec.stream(a, 8, depth=1), sec.stream(b, 1)], lambda b, v, s: b.emit("add", v, s), pcus=1)
    sec.mem_write(sec.stream(c, 8), "y")
    with pytest.raises(SimulationError, match="section 'fork' deadlocks: ") as e:
        simulate(prog.finish(), round_arch)
    assert "'A' cannot hand tiles to A -> C (full)" in str(e.value)
    assert "'C' waits for B -> C (0 of 1 tiles) before firing 1 of 8" in str(e.value)


def test_invalid_targets():
    prog = placed(lambda s: s.mem_write(s.stream(read(s), 1), "y"))
    with pytest.raises(SimulationError, match="'h100-sxm' is a GPU architecture"):
        simulate(prog, "h100-sxm")
    with pytest.raises(SimulationError, match="sn10 has no HBM"):
        simulate(prog, "sn10")
    with pytest.raises(SimulationError, match="sockets must be 1 to 16 on sn40l, is 32"):
        simulate(prog, "sn40l", sockets=32)


def test_symbolic_shapes_are_refused():
    prog = PlacedProgram()
    sec = prog.section("s")
    x = sec.mem_read("x", TensorType(["n", 4], F32))
    sec.mem_write(sec.stream(x, 1), "y")
    with pytest.raises(SimulationError, match=r"type f32\[n, 4\] is symbolic"):
        simulate(prog.finish(), "sn40l")


def test_loop_tries_see_every_cycle_after_a_slow_fill():
    """Decode layers settle into per-call times that repeat with a cycle of up to MAX_CYCLE
    calls after a fill of a few calls (a 70B decode step on 16 sockets: a 4-cycle from its
    fifth call). The second try at a loop must find such a cycle, as the first finds a
    cycle of 1 after one fill call (prefill)."""
    fill = [5.0, 4.0, 3.5, 3.2, 3.1]
    for c in range(1, runner.MAX_CYCLE + 1):
        times = fill + [1.0 + 0.1 * k for k in range(c)] * 10
        inc, _ = runner._steady(list(np.cumsum(times[:runner.LOOP_TRIES[1]])))
        assert runner._cycle(inc) == c
    inc, _ = runner._steady(list(np.cumsum([5.0] + [1.0] * 10)[:runner.LOOP_TRIES[0]]))
    assert runner._cycle(inc) == 1
