"""clone() and specialize(): new modules, originals untouched, symbols substituted everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from irgen import modules

from rduflow.ir import (
    Builder, Dim, DimError, Graph, InMemory, Module, TensorType, module_diff, parse_module, print_module, run,
    specialize, verify_module,
)

PREFILL = """\
module {n = past+seq}  {
  weight @cache : f32[layers, 4] = shape_only
  graph @main(%past_k: f32[past, 4], %k: f32[seq, 4]) -> (f32[past+seq, 4], i64[seq], f32[past+seq, 2, 2]) {
    %keys = concat(%past_k, %k) {axis = 0} : f32[past+seq, 4]
    %pos = range() {limit = past+seq, start = past} : i64[seq]
    %r = reshape(%keys) {shape = [past+seq, 2, 2]} : f32[past+seq, 2, 2]
    %g = group(%r) {note = [seq, 1]} : f32[past+seq, 2, 2] region(%a: f32[past+seq, 2, 2]) {
      %t = slice(%a) {axes = [0], ends = [past+seq], starts = [past]} : f32[seq, 2, 2]
      %c = concat(%a, %t) {axis = 0} : f32[past+2*seq, 2, 2]
      %s = slice(%c) {axes = [0], ends = [past+seq], starts = [0]} : f32[past+seq, 2, 2]
      return %s
    }
    return %keys, %pos, %g
  }
}
"""


def test_specialize_substitutes_types_attributes_weights_and_regions():
    m = parse_module(PREFILL)
    verify_module(m)
    before = print_module(m)
    d = specialize(m, {"seq": 1})
    verify_module(d)
    assert print_module(m) == before  # the original is untouched
    text = print_module(d)
    assert "seq" not in text
    assert "graph @main(%past_k: f32[past, 4], %k: f32[1, 4]) -> (f32[past+1, 4], i64[1], f32[past+1, 2, 2])" in text
    assert "%pos = range() {limit = past+1, start = past} : i64[1]" in text
    assert "%r = reshape(%keys) {shape = [past+1, 2, 2]}" in text
    assert "{note = [1, 1]}" in text and "region(%a: f32[past+1, 2, 2])" in text
    assert "%c = concat(%a, %t) {axis = 0} : f32[past+2, 2, 2]" in text
    assert d.attrs["n"] == Dim.of("past+1")
    assert print_module(parse_module(text)) == text


def test_fully_specialized_graph_runs_like_the_symbolic_one():
    m = parse_module(PREFILL)
    c = specialize(m, {"past": 3, "seq": 2, "layers": 1})
    verify_module(c)
    assert c.main.ops[0].results[0].type.concrete_shape() == (5, 4)
    assert c.weights["cache"].type == TensorType([1, 4], "f32")
    assert m.weights["cache"].type == TensorType(["layers", 4], "f32")
    feeds = {"past_k": np.arange(12, dtype=np.float32).reshape(3, 4), "k": np.ones((2, 4), np.float32)}
    a, b = run(m, feeds), run(c, feeds)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_specialize_by_expression():
    m = parse_module(PREFILL)
    c = specialize(m, {"seq": "chunk*4", "past": Dim.of("chunk*4")})
    verify_module(c)
    assert c.main.args[1].type.shape[0] == Dim.of("4*chunk")
    assert c.main.ops[0].results[0].type.shape[0] == Dim.of("8*chunk")


def test_specialize_errors():
    m = parse_module(PREFILL)
    with pytest.raises(DimError, match="the module has no symbol sq \\(its symbols: layers, past, seq\\)"):
        specialize(m, {"sq": 1})
    with pytest.raises(DimError, match="seq = -1 is not a non-negative integer"):
        specialize(m, {"seq": -1})
    m2 = parse_module("module {\n  graph @main(%x: f32[seq-2]) -> () {\n    return\n  }\n}\n")
    with pytest.raises(DimError, match="argument %x would have type f32\\[-1\\]"):
        specialize(m2, {"seq": 1})


def test_module_symbols():
    assert parse_module(PREFILL).symbols == {"past", "seq", "layers"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(modules(), st.data())
def test_specializing_generated_modules_keeps_them_valid(m, data):
    syms = sorted(m.symbols)
    env = {s: data.draw(st.integers(1, 5)) for s in syms if data.draw(st.booleans())}
    before = print_module(m)
    s = specialize(m, env)
    verify_module(s)
    assert print_module(m) == before
    assert not (s.symbols & set(env))
    text = print_module(s)
    assert print_module(parse_module(text)) == text


# -- clone ----------------------------------------------------------------------------------------------
def test_clone_copies_structure_and_shares_weight_data():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([2], "f32")], ["x"]))
    b = Builder(g, m)
    data = np.ones(2, np.float32)
    w = b.weight("w", TensorType([2], "f32"), InMemory(data))
    y = b.emit("add", g.args[0], w, name="y", loc="here")
    g.set_outputs([y], ["out"])
    m.attrs["k"] = 1
    c = m.clone()
    assert module_diff(m, c, names=True) == []
    assert c.weights["w"] is not m.weights["w"] and c.weights["w"].source.array is data
    assert c.main is not g and c.main.ops[1] is not g.ops[1] and c.main.ops[1].loc == "here"
    assert c.main.ops[1].operands[0] is c.main.args[0] and c.main.ops[1].parent is c.main
    c.weights["w"].type = TensorType([3], "f32")
    c.main.ops[1].attrs["extra"] = 2
    assert m.weights["w"].type == TensorType([2], "f32") and "extra" not in g.ops[1].attrs


def test_graph_clone_reports_the_value_map():
    m = parse_module(PREFILL)
    vm = {}
    g2 = m.main.clone(vm)
    old_ops = list(m.main.walk())
    new_ops = list(g2.walk())
    assert len(old_ops) == len(new_ops)
    for a, b in zip(old_ops, new_ops):
        assert a is not b and a.opname == b.opname and a.srcpos == b.srcpos
        for r in a.results:
            assert vm[r] in b.results
    assert [vm[v] for v in m.main.outputs] == g2.outputs
    for op in g2.walk():
        for r in op.regions:
            assert r.parent_op is op
