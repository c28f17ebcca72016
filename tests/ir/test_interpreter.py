"""The interpreter on small graphs, checked against numpy written out independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rduflow.ir import (
    Builder, Graph, InMemory, InterpreterError, Module, TensorType, parse_module, print_module, run,
)

RNG = np.random.default_rng(0)


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def test_mlp_block_with_layer_norm_and_weights():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType(["batch", "seq", 8], "f32")], ["x"]))
    b = Builder(g, m)
    w1 = RNG.standard_normal((8, 16)).astype(np.float32)
    w2 = RNG.standard_normal((16, 8)).astype(np.float32)
    scale = RNG.standard_normal(8).astype(np.float32)
    bias = RNG.standard_normal(8).astype(np.float32)
    x = g.args[0]
    h = b.emit("layer_norm", x, b.weight("ln.s", TensorType([8], "f32"), InMemory(scale)),
               b.weight("ln.b", TensorType([8], "f32"), InMemory(bias)), epsilon=1e-5)
    h = b.emit("matmul", h, b.weight("w1", TensorType([8, 16], "f32"), InMemory(w1)))
    h = b.emit("gelu", h, approximate="tanh")
    h = b.emit("matmul", h, b.weight("w2", TensorType([16, 8], "f32"), InMemory(w2)))
    y = b.emit("add", h, x)
    g.set_outputs([y], ["out"])

    xv = RNG.standard_normal((2, 3, 8)).astype(np.float32)
    got = run(m, {"x": xv})["out"]

    xd = xv.astype(np.float64)
    mu = xd.mean(-1, keepdims=True)
    var = ((xd - mu) ** 2).mean(-1, keepdims=True)
    ref = (xd - mu) / np.sqrt(var + 1e-5) * scale + bias
    ref = _gelu_tanh(ref @ w1) @ w2 + xd
    assert got.dtype == np.float32 and got.shape == (2, 3, 8)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def _kv_module() -> Module:
    # A decode-style step: past keys plus new ones, positions past..past+seq, masked softmax.
    return parse_module("""\
module {
  graph @main(%past_k: f32[past, 4], %k: f32[seq, 4], %q: f32[seq, 4], %mask: bool[seq, past+seq]) -> (f32[seq, past+seq], i64[seq]) {
    %keys = concat(%past_k, %k) {axis = 0} : f32[past+seq, 4]
    %kt = transpose(%keys) {perm = [1, 0]} : f32[4, past+seq]
    %s = matmul(%q, %kt) : f32[seq, past+seq]
    %ninf = constant() {value = dense<f32[] [-inf]>} : f32[]
    %sm = where(%mask, %s, %ninf) : f32[seq, past+seq]
    %p = softmax(%sm) {axis = -1} : f32[seq, past+seq]
    %pos = range() {limit = past+seq, start = past} : i64[seq]
    return %p as "probs", %pos as "positions"
  }
}
""")


def test_symbols_bound_from_shapes_including_past_plus_seq():
    m = _kv_module()
    past_k, k, q = (RNG.standard_normal(s).astype(np.float32) for s in [(5, 4), (2, 4), (2, 4)])
    mask = np.tril(np.ones((2, 7), dtype=bool), k=5)
    out = run(m, {"past_k": past_k, "k": k, "q": q, "mask": mask})
    assert out["positions"].tolist() == [5, 6]
    s = q.astype(np.float64) @ np.concatenate([past_k, k]).T.astype(np.float64)
    s = np.where(mask, s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(out["probs"], e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert out["probs"][0, 6] == 0.0  # masked


def test_past_solved_from_a_sum_even_when_only_the_sum_has_it():
    m = parse_module("""\
module {
  graph @main(%a: f32[seq], %b: f32[past+seq]) -> (i64[past]) {
    %r = range() {limit = past, start = 0} : i64[past]
    return %r
  }
}
""")
    out = run(m, [np.zeros(3, np.float32), np.zeros(10, np.float32)])
    assert out["r"].tolist() == list(range(7))


def test_batch_times_seq_and_positional_inputs():
    m = parse_module("""\
module {
  graph @main(%x: f32[batch*seq, 2], %y: f32[batch, 1]) -> (f32[batch, seq, 2]) {
    %r = reshape(%x) {shape = [batch, seq, 2]} : f32[batch, seq, 2]
    return %r
  }
}
""")
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    out = run(m, [x, np.zeros((3, 1), np.float32)])
    np.testing.assert_array_equal(out["r"], x.reshape(3, 2, 2))


def test_group_regions_execute_their_body():
    m = parse_module("""\
module {
  graph @main(%x: f32[3]) -> (f32[3], f32[3]) {
    %g, %h = group(%x) {kind = "fused"} : f32[3], f32[3] region(%a: f32[3]) {
      %e = exp(%a) : f32[3]
      %n = section(%e) : f32[3] region(%b: f32[3]) {
        %c = neg(%b) : f32[3]
        return %c
      }
      return %e, %n
    }
    return %g, %h as "neg_exp"
  }
}
""")
    x = np.array([0.0, 1.0, -2.0], dtype=np.float32)
    out = run(m, {"x": x})
    np.testing.assert_allclose(out["g"], np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(out["neg_exp"], -np.exp(x), rtol=1e-6)


def test_output_keys_and_repeats():
    m = parse_module("""\
module {
  graph @main(%x: i32[2]) -> (i32[2], i32[2], i32[2]) {
    return %x, %x, %x as "named"
  }
}
""")
    out = run(m, {"x": np.array([1, 2], dtype=np.int32)})
    assert list(out) == ["x", "1", "named"]


def test_weights_from_files_relative_to_the_module(tmp_path):
    np.savez(tmp_path / "w.npz", w=np.array([1.0, 2.0], dtype=np.float32))
    (tmp_path / "m.rdu").write_text("""\
module {
  weight @w : f32[2] = npz("w.npz", "w")
  graph @main(%x: f32[2]) -> (f32[2]) {
    %w = weight() {ref = @w} : f32[2]
    %y = mul(%x, %w) : f32[2]
    return %y
  }
}
""")
    from rduflow.ir import parse_file

    out = run(parse_file(tmp_path / "m.rdu"), {"x": np.array([3.0, 4.0], dtype=np.float32)})
    assert out["y"].tolist() == [3.0, 8.0]


@pytest.mark.parametrize("inputs, message", [
    ({"past_k": np.zeros((5, 4), np.float32), "k": np.zeros((2, 4), np.float32),
      "q": np.zeros((2, 4), np.float32)}, "missing input 'mask' \\(bool\\[seq, past\\+seq\\]\\)"),
    ({"past_k": np.zeros((5, 4), np.float32), "k": np.zeros((2, 4), np.float32), "q": np.zeros((2, 4), np.float32),
      "mask": np.zeros((2, 7), bool), "extra": 1}, "unknown input\\(s\\) extra"),
    ({"past_k": np.zeros((5, 4), np.float32), "k": np.zeros((2, 4), np.float32), "q": np.zeros((2, 4), np.float32),
      "mask": np.zeros((2, 9), bool)}, "input %mask: dim past\\+seq is 7 by the other inputs, array has 9"),
    ({"past_k": np.zeros((5, 4), np.float32), "k": np.zeros((2, 4), np.float32), "q": np.zeros((2, 4), np.float64),
      "mask": np.zeros((2, 7), bool)}, "%q: input is float64\\[2, 4\\], type says f32\\[seq, 4\\] = \\[2, 4\\]"),
    ({"past_k": np.zeros((5, 4, 1), np.float32), "k": np.zeros((2, 4), np.float32), "q": np.zeros((2, 4), np.float32),
      "mask": np.zeros((2, 7), bool)}, "input %past_k has rank 3, type f32\\[past, 4\\] has rank 2"),
    ({"past_k": np.zeros((5, 3), np.float32), "k": np.zeros((2, 4), np.float32), "q": np.zeros((2, 4), np.float32),
      "mask": np.zeros((2, 7), bool)}, "input %past_k: dim 4 is 4 by the other inputs, array has 3"),
])
def test_input_errors_are_clear(inputs, message):
    with pytest.raises(InterpreterError, match=message):
        run(_kv_module(), inputs)


def test_unsolvable_symbols():
    m = parse_module("module {\n  graph @main(%x: f32[2*n]) -> () {\n    return\n  }\n}\n")
    with pytest.raises(InterpreterError, match="no integer n gives 2\\*n = 5"):
        run(m, [np.zeros(5, np.float32)])
    m = parse_module("module {\n  graph @main(%x: f32[a+b]) -> () {\n    return\n  }\n}\n")
    with pytest.raises(InterpreterError, match="cannot determine a, b from a\\+b"):
        run(m, [np.zeros(5, np.float32)])
    with pytest.raises(InterpreterError, match="takes 1 inputs, 2 given"):
        run(m, [np.zeros(5, np.float32)] * 2)
    with pytest.raises(InterpreterError, match="module has no graph @nope"):
        run(m, [], graph="nope")


def test_evaluation_failures_name_the_op():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([2], "f32")], ["x"]))
    b = Builder(g, m)
    y = b.emit("mul", g.args[0], b.weight("w", TensorType([2], "f32")), name="y", loc="/mul")
    g.set_outputs([y])
    with pytest.raises(InterpreterError, match="'weight' defining %w: evaluation failed: weight @w is shape-only"):
        run(m, {"x": np.zeros(2, np.float32)})
    # A wrong result type is caught where it is produced, not downstream.
    y.type = TensorType([3], "f32")
    m.weights["w"].source = InMemory(np.ones(2, np.float32))
    with pytest.raises(InterpreterError, match="'mul' defining %y loc\\(\"/mul\"\\): result is float32\\[2\\]"):
        run(m, {"x": np.zeros(2, np.float32)})


def test_undefined_operand_is_reported_not_a_key_error():
    m = _kv_module()
    g = m.main
    g.ops.insert(0, g.ops.pop(2))  # matmul before its operand %kt
    with pytest.raises(InterpreterError, match="'matmul' defining %s at <string>:5:5: operand #1 %kt has no value here"):
        run(m, {"past_k": np.zeros((5, 4), np.float32), "k": np.zeros((2, 4), np.float32),
                "q": np.zeros((2, 4), np.float32), "mask": np.zeros((2, 7), bool)})


def test_interpreting_a_printed_and_parsed_module_gives_the_same_results():
    m = _kv_module()
    m2 = parse_module(print_module(m))
    feeds = {"past_k": RNG.standard_normal((3, 4)).astype(np.float32), "k": RNG.standard_normal((1, 4)).astype(np.float32),
             "q": RNG.standard_normal((1, 4)).astype(np.float32), "mask": np.ones((1, 4), bool)}
    a, b = run(m, feeds), run(m2, feeds)
    assert all(np.array_equal(a[k], b[k]) for k in a)
