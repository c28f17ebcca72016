"""Placement and routing are legal, and better than placing at random."""

import itertools

import pytest
from backendhelpers import tiny
from rduflow.compiler.backend import compile_model
from rduflow.compiler.backend.design import nbytes
from rduflow.compiler.backend.place import Floorplan, random_placement
from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.models import build_onnx
from rduflow.simulator import simulate


@pytest.fixture(scope="module")
def programs():
    """A decode step of a 1B model (weights streamed in chunks over all AGCUs) and a prefill
    of a tiny one (big compute units): both kinds of sections."""
    m = import_onnx(build_onnx("llama-3.2-1b", "decode", dtype="bf16"), shapes_only=True)
    decode = compile_model(m, "sn40l", bindings={"batch": 1, "past": 512})
    prefill = compile_model(tiny("tiny-llama", "prefill"), "sn40l", sockets=2, bindings={"batch": 4, "seq": 64})
    return [decode, prefill]


def _sites(op):
    return [tuple(c) for c in op.attrs["coords"]]


def test_placement_is_legal(programs):
    for c in programs:
        arch = c.arch
        g = arch.grid
        for section in c.placed.main.ops:
            region = section.regions[0]
            taken: dict[tuple[int, int], str] = {}
            pcus = pmus = 0
            where = {}
            for op in region.ops:
                if op.opname in ("placed.compute", "placed.buffer"):
                    pcu = op.opname == "placed.compute"
                    count = op.attrs["pcus" if pcu else "pmus"]
                    sites = _sites(op)
                    assert len(sites) == count >= 1
                    for r, col in sites:
                        assert 0 <= r < g.rows and 0 <= col < g.cols
                        assert arch.is_pcu_site(r, col) == pcu, "a PCU on a PMU tile or the other way round"
                        assert (r, col) not in taken, f"tile {(r, col)} used twice"
                        taken[(r, col)] = op.results[0].name
                    if pcu:
                        pcus += count
                    else:
                        pmus += count
                        assert op.attrs["capacity"] <= count * arch.pmu_bytes
                    where[op] = set(sites)
                elif op.opname in ("placed.mem_read", "placed.mem_write", "placed.collective"):
                    assert 0 <= op.attrs["agcu"] < arch.agcu.count
                    where[op] = {arch.agcu_coord(op.attrs["agcu"])}
            assert pcus <= arch.pcu.count and pmus <= arch.pmu.count
            users = region.users()
            for s in (op for op in region.ops if op.opname == "placed.stream"):
                src, (dst,) = s.operands[0].defining_op, users[s.results[0]]
                route = [tuple(link) for link in s.attrs["route"]]
                if not route:
                    assert s.attrs["hops"] == 0 and where[src] & where[dst], "an unrouted stream between far units"
                    continue
                assert route[0][:2] in where[src] and route[-1][2:] in where[dst]
                for a, b in itertools.pairwise(route):
                    assert a[2:] == b[:2]
                for r0, c0, r1, c1 in route:
                    assert abs(r0 - r1) + abs(c0 - c1) == 1
                    assert 0 <= min(r0, r1) and max(r0, r1) < g.rows and 0 <= min(c0, c1) and max(c0, c1) < g.cols


def test_the_simulator_runs_the_placed_programs(programs):
    for c in programs:
        r = simulate(c.placed, c.arch)
        assert r.total_s > 0 and not any("deadlock" in s.name for s in r.sections)


def test_placement_beats_random_placement(programs):
    """Total weighted hop count (bytes x hops over all streams) at most half of a random
    legal placement's, on every distinct section with more than a few units."""
    for c in programs:
        for section in {op.attrs["name"]: op for op in c.placed.main.ops}.values():
            placed = Floorplan.from_placed(section, c.arch)
            if len(placed.units) < 8:
                continue
            randoms = []
            for seed in range(3):
                lay = Floorplan(section, c.arch)
                random_placement(lay, seed)
                randoms.append(lay.hops())
            assert placed.hops() < 0.5 * min(randoms), section.attrs["name"]


def test_routes_add_up_to_the_hops_the_placement_promised(programs):
    """A stream's route is as long as the distance between the sites it joins (or two hops
    longer, around a busy link), never a wander."""
    c = programs[0]
    section = c.placed.main.ops[1]
    lay = Floorplan(section, c.arch)
    for u in lay.units:
        if u.kind == "agcu":
            u.agcu = u.op.attrs["agcu"]
        else:
            u.sites = [tuple(s) for s in u.op.attrs["coords"]]
    routed = sum(nbytes(n.stream.results[0].type) * len(n.stream.attrs["route"]) for n in lay.nets)
    assert lay.hops() <= routed <= 1.5 * lay.hops()


def test_annealing_cost_pieces_match_numpy_bit_for_bit():
    """Annealing keeps a move by comparing costs, so the plain-Python cost must give numpy's
    floats exactly (the same sums in the same order), or placements would change."""
    import random

    import numpy as np
    from rduflow.compiler.backend.place import distance_field, mean_distance_from_centre, nearest_hops

    rng = random.Random(0)
    for trial in range(3000):
        n = rng.randint(2, 300) if trial % 5 == 0 else rng.randint(2, 40)
        pts = [(rng.randrange(40), rng.randrange(40)) for _ in range(n)]
        p = np.array(pts, dtype=np.int64)
        assert mean_distance_from_centre(pts) == float(np.abs(p - p.mean(0)).sum(-1).mean())
        other = [(rng.randrange(40), rng.randrange(40)) for _ in range(rng.randint(1, 40))]
        q = np.array(other, dtype=np.int64)
        assert nearest_hops(pts, other) == int(np.abs(p[:, None, :] - q[None, :, :]).sum(-1).min())
    for _ in range(50):
        rows, cols = rng.randint(1, 20), rng.randint(1, 20)
        sites = [(rng.randrange(rows), rng.randrange(cols)) for _ in range(rng.randint(1, 30))]
        field = distance_field(sites, rows, cols)
        assert field == [[min(abs(r - a) + abs(c - b) for a, b in sites) for c in range(cols)] for r in range(rows)]


def test_a_remembered_placement_is_the_one_annealing_gives(programs):
    """place_section reuses the placement of a section with the same units and nets; it is
    the placement a fresh annealing of the same section gives."""
    from rduflow.compiler.backend.place import anneal, assign_agcus, construct, place_section

    for c in programs:
        for section in {op.attrs["name"]: op for op in c.placed.main.ops}.values():
            placed = Floorplan.from_placed(section, c.arch)
            fresh = Floorplan(section, c.arch)
            assign_agcus(fresh)
            construct(fresh)
            anneal(fresh, 0, 1.0)
            again = place_section(section, c.arch)  # remembered from compiling it
            for u, v, w in zip(placed.units, fresh.units, again.units):
                assert (u.agcu, u.sites) == (v.agcu, v.sites) == (w.agcu, w.sites)
