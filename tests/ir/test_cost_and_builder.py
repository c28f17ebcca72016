"""Symbolic costs from types, and the Builder's conveniences and checks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from rduflow.ir import (
    Builder, Dim, Graph, IRError, Module, TensorType, TypeInferenceError, graph_cost, op_cost, parse_module,
)


def _module() -> Module:
    return parse_module("""\
module {
  weight @w : bf16[64, 128] = shape_only
  graph @main(%x: bf16[batch, seq, 64]) -> (bf16[batch, seq, 128]) {
    %w = weight() {ref = @w} : bf16[64, 128]
    %y = matmul(%x, %w) : bf16[batch, seq, 128]
    %g = group(%y, %w) : bf16[batch, seq, 128] region(%a: bf16[batch, seq, 128], %b: bf16[64, 128]) {
      %e = exp(%a) : bf16[batch, seq, 128]
      %w2 = weight() {ref = @w} : bf16[64, 128]
      %s = add(%e, %e) : bf16[batch, seq, 128]
      return %s
    }
    return %g
  }
}
""")


def test_matmul_cost_is_symbolic_and_evaluates():
    mm = _module().main.ops[1]
    c = op_cost(mm)
    assert c.flops == Dim.of("2*batch*seq*64*128")
    assert c.bytes_read == Dim.of("batch*seq*64*2 + 64*128*2")
    assert c.bytes_written == Dim.of("batch*seq*128*2")
    assert c.subs({"batch": 1, "seq": 1}).flops == 16384


def test_group_moves_only_its_boundary():
    g = _module().main.ops[2]
    c = op_cost(g)
    n = Dim.of("batch*seq*128")
    assert c.flops == n * 2  # exp + add, one flop per element each
    # Operands (activation and weight) + the weight read inside; the intermediate %e stays on chip.
    assert c.bytes_read == n * 2 + 64 * 128 * 2 + 64 * 128 * 2
    assert c.bytes_written == n * 2


def test_graph_cost_sums_ops_and_int4_bytes_are_fractional():
    m = _module()
    total = graph_cost(m.main)
    assert total.flops == Dim.of("2*batch*seq*64*128 + 2*batch*seq*128")
    assert total.flops.evaluate({"batch": 2, "seq": 3}) == 2 * 3 * (2 * 64 * 128 + 2 * 128)
    assert TensorType([3], "i4").nbytes == Fraction(3, 2)


# -- Builder ---------------------------------------------------------------------------------------------
def test_emit_infers_types_and_names_results():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType(["n", 4], "f32")], ["x"]))
    b = Builder(g, m)
    y = b.emit("reduce_sum", g.args[0], axes=[1], keepdims=False, name="y", loc="/sum")
    assert y.type == TensorType(["n"], "f32") and y.name == "y" and y.defining_op.loc == "/sum"
    c = b.constant(np.array([1, 2], dtype=np.int32), name="c")
    assert c.type == TensorType([2], "i32")
    with pytest.raises(TypeInferenceError, match="element types differ \\(f32, i32\\)"):
        b.emit("add", y, c)


def test_multi_result_ops_get_all_their_results():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([6], "f32")], ["x"]))
    b = Builder(g, m)
    op = b.op("split", [g.args[0]], {"axis": 0, "sizes": [2, 4]})
    assert [r.type for r in op.results] == [TensorType([2], "f32"), TensorType([4], "f32")]
    with pytest.raises(IRError, match="has 2 results, not one"):
        b.emit("split", g.args[0], axis=0, sizes=[3, 3])
    with pytest.raises(IRError, match="2 result type\\(s\\) but 1 result name"):
        b.emit("split", g.args[0], axis=0, sizes=[3, 3], name="half")


def test_region_op_results_come_from_the_region():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([3], "f32")], ["x"]))
    body = Graph("body", [TensorType([3], "f32")], ["a"])
    body.set_outputs([Builder(body, m).emit("exp", body.args[0])])
    op = Builder(g, m).op("group", [g.args[0]], {"kind": "fused"}, regions=[body])
    assert [r.type for r in op.results] == [TensorType([3], "f32")] and body.parent_op is op


def test_weights_are_declared_once_with_one_type():
    m = Module()
    g = m.add_graph(Graph("main"))
    b = Builder(g, m)
    b.weight("w", TensorType([2], "f32"))
    b.weight("w", TensorType([2], "f32"))
    assert len(m.weights) == 1
    with pytest.raises(IRError, match="weight @w is declared f32\\[2\\], not f32\\[3\\]"):
        b.weight("w", TensorType([3], "f32"))
    with pytest.raises(IRError, match="needs a module"):
        Builder(g).weight("v", TensorType([2], "f32"))
    with pytest.raises(IRError, match="already has a weight @w"):
        from rduflow.ir import Weight

        m.add_weight(Weight("w", TensorType([2], "f32")))


def test_names_must_match_what_they_name():
    with pytest.raises(IRError, match="2 argument type\\(s\\) but 1 name"):
        Graph("g", [TensorType([1], "f32")] * 2, ["a"])
    g = Graph("g", [TensorType([1], "f32")], ["a"])
    with pytest.raises(IRError, match="1 output\\(s\\) but 2 output name"):
        g.set_outputs(g.args, ["x", "y"])
    from rduflow.ir import Operation

    with pytest.raises(IRError, match="1 result type\\(s\\) but 0 result name"):
        Operation("neg", g.args, [TensorType([1], "f32")], result_names=[])
    from rduflow.ir.attributes import AttrError

    with pytest.raises(AttrError, match="attribute names are strings"):
        Operation("neg", g.args, [TensorType([1], "f32")], {1: 2})
