"""The placed-program format: text round trip, builder, verifier diagnostics."""

import pytest

from rduflow.ir import Graph, Module, Operation, TensorType, VerifyError, op_cost, parse_module, print_module, verify_module
from rduflow.simulator import PlacedProgram

T = TensorType([64, 128], "bf16")


def small_program():
    prog = PlacedProgram(sockets=2)
    sec = prog.section("layer", repeat=3)
    x = sec.mem_read("h", T, agcu=0, carried=True)
    w = sec.mem_read("w", TensorType([128, 128], "bf16"), tier="ddr", agcu=1)
    wb = sec.buffer(sec.stream(w, 8), pmus=2, capacity=65536, coords=[[0, 1], [1, 0]], name="wbuf")
    y = sec.compute("mm", [sec.stream(x, 4, depth=3), sec.stream(wb, 8, hops=3)],
                    lambda b, x, w: b.emit("matmul", x, w), pcus=2, coords=[[2, 0], [2, 2]])
    y = sec.collective(sec.stream(y, 4, route=[[2, 0, 3, 0], [3, 0, 4, 0]]), "all_reduce", group=2, agcu=2)
    sec.mem_write(sec.stream(y, 4), "h", agcu=3)
    return prog.finish()


def test_print_parse_round_trip():
    m = small_program()
    text = print_module(m)
    assert "placed.section() {name = \"layer\", repeat = 3} region() {" in text
    assert "placed.stream(%mm) {route = [[2, 0, 3, 0], [3, 0, 4, 0]], tiles = 4}" in text
    back = parse_module(text)
    verify_module(back)
    assert print_module(back) == text


def test_compute_cost_is_its_ops():
    m = small_program()
    (section,) = m.main.ops
    mm = next(op for op in section.regions[0].ops if op.opname == "placed.compute")
    assert int(op_cost(mm).flops) == 2 * 64 * 128 * 128


def _section(build) -> Module:
    """A module whose one section's region is filled by ``build(region)``."""
    m = Module()
    g = m.add_graph(Graph("main"))
    region = Graph("region")
    build(region)
    region.set_outputs([])
    g.append(Operation("placed.section", [], [], {"name": "s"}, [region]))
    g.set_outputs([])
    return m


def _read(region, name="x"):
    return region.append(Operation("placed.mem_read", [], [T], {"tensor": name, "shape": T.shape, "dtype": T.dtype},
                                   result_names=[name])).result


def _stream(region, v, **attrs):
    return region.append(Operation("placed.stream", [v], [v.type], {"tiles": 2, **attrs})).result


def _write(region, v):
    region.append(Operation("placed.mem_write", [v], [], {"tensor": "y"}))


@pytest.mark.parametrize("build, message", [
    (lambda r: _write(r, _read(r)), "operand #0 must be a placed.stream result"),
    (lambda r: [_write(r, s) for s in [_stream(r, _read(r))] * 2], "feeds exactly one unit, this one feeds 2"),
    (lambda r: _write(r, _stream(r, _stream(r, _read(r)))), "a stream's operand must be a unit's result"),
    (lambda r: r.append(Operation("exp", [_read(r)], [T])), "holds placed units and streams only"),
    (lambda r: _write(r, _stream(r, _read(r), tiles=0)), "tiles must be >= 1"),
    (lambda r: _write(r, _stream(r, _read(r), route=[[0, 0, 0]])), "route' must be a list of [row0, col0, row1, col1]"),
    (lambda r: _write(r, _stream(r, _read(r), route=[[0, 0, 0, 1]], hops=1)), "either 'route' or 'hops'"),
])
def test_verifier_names_the_problem(build, message):
    with pytest.raises(VerifyError, match=message.replace("[", r"\[").replace("(", r"\(")):
        verify_module(_section(build))


def test_collective_types():
    prog = PlacedProgram(sockets=4)
    sec = prog.section("c")
    x = sec.mem_read("x", TensorType([8, 16], "f32"))
    g = sec.collective(sec.stream(x, 1), "all_gather", group=4, axis=1)
    s = sec.collective(sec.stream(x, 1), "reduce_scatter", group=4, axis=0)
    assert g.type == TensorType([8, 64], "f32") and s.type == TensorType([2, 16], "f32")
    with pytest.raises(Exception, match="not divisible by group 3"):
        sec.collective(sec.stream(x, 1), "reduce_scatter", group=3, axis=0)
    with pytest.raises(Exception, match="collective kind must be one of"):
        sec.collective(sec.stream(x, 1), "broadcast", group=4)


def test_compute_region_holds_ir_ops_only():
    prog = PlacedProgram()
    sec = prog.section("c")
    x = sec.mem_read("x", T)
    sec.compute("bad", [sec.stream(x, 1)], lambda b, x: b.emit("placed.stream", x, tiles=1), pcus=1)
    with pytest.raises(VerifyError, match="holds IR ops, not placed units"):
        prog.finish()
