"""Folding shape arithmetic symbolically, and relating symbols the model says are equal."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.compiler.frontend.onnx.symbolic import Undecidable, compare, fold
from rduflow.ir import Dim, DType, TensorType, run
from tiny_models import model, run_onnxruntime


def _v(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def _i64(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


@pytest.mark.parametrize(("op", "a", "b", "want"), [
    ("equal", "batch", "-1", False), ("equal", "seq", "seq", True), ("less", "past+seq", "0", False),
    ("greater_equal", "past+seq", "past", True), ("less_equal", "seq", "seq+1", True),
    ("greater", "2*batch+1", "0", True)])
def test_decidable_comparisons(op, a, b, want):
    assert compare(op, Dim.of(a), Dim.of(b)) is want


@pytest.mark.parametrize(("op", "a", "b"), [("equal", "seq", "1"), ("less", "seq", "past"), ("greater", "seq", "0")])
def test_comparisons_that_depend_on_the_symbols(op, a, b):
    with pytest.raises(Undecidable):
        compare(op, Dim.of(a), Dim.of(b))


def test_symbolic_fold_of_shape_vector():
    shape = np.array([Dim.of("batch"), Dim.of("seq"), Dim.const(32)], dtype=object)
    (out,) = fold("gather", [shape, np.array([1, 0])], {"axis": 0}, [TensorType([2], DType.i64)])
    assert list(out) == [Dim.of("seq"), Dim.of("batch")]
    (prod,) = fold("reduce_prod", [shape], {"axes": (), "keepdims": False}, [TensorType([], DType.i64)])
    assert prod.item() == Dim.of("32*batch*seq")
    # when no symbol is left the value is an ordinary array
    (n,) = fold("gather", [shape, np.array(2)], {"axis": 0}, [TensorType([], DType.i64)])
    assert n.dtype == np.int64 and int(n) == 32


def test_exporter_expand_pattern_folds():
    """TorchScript's Expand: Where(Equal(shape, -1), ones, shape) needs batch != -1 decided."""
    x = _v("x", TensorProto.FLOAT, ["batch", 1, "seq"])
    y = _v("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus1", "seq4"], ["target"], axis=0),
        helper.make_node("ConstantOfShape", ["three"], ["ones"], value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("Mul", ["ones", "minus1"], ["neg"]),
        helper.make_node("Equal", ["target", "neg"], ["is_neg"]),
        helper.make_node("Where", ["is_neg", "ones", "target"], ["shape"]),
        helper.make_node("Expand", ["x", "shape"], ["y"], name="expand"),
    ]
    inits = [_i64("zero", 0), _i64("axes0", [0]), _i64("minus1", [-1]), _i64("seq4", [4]), _i64("three", [3])]
    m = model(nodes, [x], [y], inits)
    module = import_onnx(m)
    (op,) = [op for op in module.main.ops]
    assert op.opname == "expand" and [str(d) for d in op.attrs["shape"]] == ["batch", "1", "4"]
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 1, 4)).astype(np.float32)}
    np.testing.assert_array_equal(run(module, feeds)["y"], run_onnxruntime(m, feeds)["y"])


def test_mask_length_unified_with_past_plus_seq():
    """A mask of its own length ``total`` added to scores over past+seq keys: total = past+seq."""
    q = _v("q", TensorProto.FLOAT, ["batch", 2, "seq", 4])
    k = _v("k", TensorProto.FLOAT, ["batch", 2, "seq", 4])
    past = _v("past", TensorProto.FLOAT, ["batch", 2, "past", 4])
    mask = _v("mask", TensorProto.FLOAT, ["batch", 1, "seq", "total"])
    y = _v("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Concat", ["past", "k"], ["keys"], axis=2),
             helper.make_node("Transpose", ["keys"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["scores"]),
             helper.make_node("Add", ["scores", "mask"], ["y"])]
    m = model(nodes, [q, k, past, mask], [y])
    module = import_onnx(m)
    types = {a.name: str(a.type) for a in module.main.args}
    assert types["mask"] == "f32[batch, 1, seq, past+seq]"
    rng = np.random.default_rng(0)
    feeds = {"q": rng.standard_normal((2, 2, 3, 4)), "k": rng.standard_normal((2, 2, 3, 4)),
             "past": rng.standard_normal((2, 2, 5, 4)), "mask": rng.standard_normal((2, 1, 3, 8))}
    feeds = {n: v.astype(np.float32) for n, v in feeds.items()}
    np.testing.assert_allclose(run(module, feeds)["y"], run_onnxruntime(m, feeds)["y"], rtol=1e-5, atol=1e-5)


def test_positions_fold_to_a_shifted_range():
    past = _v("past", TensorProto.FLOAT, ["batch", "past_len", 4])
    ids = _v("ids", TensorProto.INT64, ["batch", "seq"])
    pos = _v("pos", TensorProto.INT64, None)
    nodes = [helper.make_node("Shape", ["ids"], ["s"]), helper.make_node("Gather", ["s", "one"], ["seq"], axis=0),
             helper.make_node("Shape", ["past"], ["ps"]), helper.make_node("Gather", ["ps", "one"], ["p"], axis=0),
             helper.make_node("Range", ["zero", "seq", "one"], ["r"]),
             helper.make_node("Add", ["r", "p"], ["pos"], name="positions")]
    m = model(nodes, [past, ids], [pos], [_i64("zero", 0), _i64("one", 1)])
    module = import_onnx(m)
    (op,) = module.main.ops
    assert op.opname == "range" and (str(op.attrs["start"]), str(op.attrs["limit"])) == ("past_len", "past_len+seq")
    feeds = {"past": np.zeros((1, 3, 4), np.float32), "ids": np.zeros((1, 2), np.int64)}
    np.testing.assert_array_equal(run(module, feeds)["pos"], [3, 4])


def test_nonzero_count_is_a_symbol_bound_when_run():
    x = _v("x", TensorProto.FLOAT, ["n"])
    y = _v("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("NonZero", ["x"], ["idx"]),
             helper.make_node("Squeeze", ["idx", "zero"], ["flat"]),
             helper.make_node("Gather", ["x", "flat"], ["y"], axis=0)]
    m = model(nodes, [x], [y], [_i64("zero", [0])])
    module = import_onnx(m)
    count = module.main.ops[0].attrs["count"]
    assert str(module.main.outputs[0].type) == f"f32[{count}]" and not count.is_const
    feeds = {"x": np.array([0.0, 2.0, 0.0, -1.0, 3.0], np.float32)}
    np.testing.assert_array_equal(run(module, feeds)["y"], [2.0, -1.0, 3.0])


def test_shape_from_run_time_data_becomes_bound_symbols():
    """Expand to a shape that is an input: its values are symbols, bound when the graph runs."""
    x = _v("x", TensorProto.FLOAT, [1, 3])
    s = _v("s", TensorProto.INT64, [2])
    y = _v("y", TensorProto.FLOAT, None)
    m = model([helper.make_node("Expand", ["x", "s"], ["y"])], [x, s], [y])
    module = import_onnx(m)
    assert [op.opname for op in module.main.ops] == ["bind_dims", "expand"]
    feeds = {"x": np.arange(3, dtype=np.float32).reshape(1, 3), "s": np.array([4, 3])}
    np.testing.assert_array_equal(run(module, feeds)["y"], run_onnxruntime(m, feeds)["y"])
