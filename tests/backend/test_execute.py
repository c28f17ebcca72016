"""The SPMD executor: socket-local shards, collectives that combine sockets, memory parts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rduflow.compiler.backend.execute import collective, execute
from rduflow.compiler.backend.placed_run import Memory
from rduflow.compiler.backend.spmd import Spread
from rduflow.ir import (
    Builder,
    Graph,
    InterpreterError,
    Module,
    Operation,
    TensorType,
    run,
)


def _module(sockets, build, arg_spread="replicated", out_spread="replicated", arg_shape=(4, 6)):
    """A program of one socket's view: its argument is the socket's piece of x."""
    m = Module()
    g = m.add_graph(Graph("main", [TensorType(arg_shape, "f32")], ["x"]))
    b = Builder(g, m)
    g.set_outputs([build(b, g.args[0])], ["y"])
    m.attrs.update({"sockets": sockets, "spmd.args": (Spread.parse(arg_spread),), "spmd.outputs": (Spread.parse(out_spread),)})
    return m


def test_all_reduce_sums_the_sockets():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    m = _module(3, lambda b, x: b.emit("placed.collective", x, kind="all_reduce", group=3))
    np.testing.assert_array_equal(execute(m, {"x": x})["y"], 3 * x)


def test_split_input_all_gather_gives_the_whole_back():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    m = _module(2, lambda b, x: b.emit("placed.collective", x, kind="all_gather", group=2, axis=1), "split:1",
                arg_shape=(4, 3))
    np.testing.assert_array_equal(execute(m, {"x": x})["y"], x)


def test_reduce_scatter_gives_each_socket_its_part_of_the_sum():
    xs = [np.full((4, 6), s, np.float32) for s in range(2)]
    out = collective(Operation("placed.collective", [], [], {"kind": "reduce_scatter", "group": 2, "axis": 0}), xs, 2)
    assert [o.shape for o in out] == [(2, 6), (2, 6)] and all((o == 1).all() for o in out)


def test_shard_takes_the_sockets_part_and_split_outputs_are_put_together():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    m = _module(3, lambda b, x: b.emit("exp", b.emit("spmd.shard", x, axis=1, parts=3, blocks=[3, 3])),
                out_spread="split:1:3,3")
    np.testing.assert_allclose(execute(m, {"x": x})["y"], np.exp(x), rtol=1e-6)


def test_the_single_socket_interpreter_refuses_a_shard():
    m = _module(1, lambda b, x: b.emit("spmd.shard", x, axis=1, parts=2))
    with pytest.raises(InterpreterError, match="SPMD executor"):
        run(m, {"x": np.zeros((4, 6), np.float32)})


def test_shard_with_a_stride_gives_a_piece_to_each_group_of_sockets():
    """4 sockets, 2 pieces, stride 2: sockets 0 and 1 hold piece 0, sockets 2 and 3 piece 1."""
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    m = _module(4, lambda b, x: b.emit("spmd.shard", x, axis=1, parts=2, stride=2), out_spread="split:1:copies=2")
    np.testing.assert_array_equal(execute(m, {"x": x})["y"], x)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.lists(st.integers(1, 3), min_size=1, max_size=3), st.integers(0, 1))
def test_spread_parts_put_back_together(pieces, copies, block_mults, axis):
    blocks = tuple(m * pieces for m in block_mults)
    shape = [sum(blocks), 2] if axis == 0 else [2, sum(blocks)]
    x = np.arange(np.prod(shape)).reshape(shape)
    sp = Spread(axis, blocks, copies)
    parts = [sp.part(x, s, pieces * copies) for s in range(pieces * copies)]
    assert all(p.shape[axis] == sum(blocks) // pieces for p in parts)
    assert all(np.array_equal(parts[s], parts[s - s % copies]) for s in range(len(parts)))  # a group's copies
    np.testing.assert_array_equal(sp.assemble(parts), x)
    assert Spread.parse(sp.text()) == sp


def test_memory_parts_and_wholes():
    """A store written in parts reads back whole; a part written after a whole extends or updates it."""
    mem = Memory()
    key = ("t", 0)
    mem.write(key, (1, 0, 2), np.zeros((3, 2)))
    mem.write(key, (1, 2, 5), np.ones((3, 3)))
    assert mem.read(key, None).shape == (3, 5) and mem.read(key, (1, 2, 4)).sum() == 6
    mem.write(key, (1, 5, 6), np.full((3, 1), 7.0))  # an appended row (the KV cache)
    assert mem.read(key, None)[:, 5].tolist() == [7, 7, 7]
    mem.write(key, None, np.zeros((2, 2)))
    mem.write(key, (0, 1, 2), np.ones((1, 2)))  # inside the whole: updates it
    assert mem.read(key, None).tolist() == [[0, 0], [1, 1]]
