"""Small ONNX models built with onnx.helper, for tests that need a model but not a real export."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


def model(nodes, inputs, outputs, initializers=(), opset: int = OPSET, extra_opsets=()) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "tiny", list(inputs), list(outputs), initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, v) for d, v in extra_opsets]]
    return helper.make_model(graph, opset_imports=opsets)


def mlp(hidden: int = 16, seed: int = 0) -> onnx.ModelProto:
    """x[batch, seq, 8] -> Reshape via Shape arithmetic -> MatMul/Add/Gelu-ish -> y[batch, seq, 8]."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((8, hidden)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.standard_normal((hidden,)).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, 8)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Shape", ["x"], ["x_shape"], name="shape"),
        helper.make_node("Constant", [], ["idx"], name="idx", value=numpy_helper.from_array(np.array([0, 1], np.int64))),
        helper.make_node("Gather", ["x_shape", "idx"], ["bs"], name="gather", axis=0),
        helper.make_node("Constant", [], ["minus1"], name="minus1", value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["minus1", "eight"], ["flat_shape"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w1"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
        helper.make_node("Tanh", ["hb"], ["act"], name="act"),
        helper.make_node("MatMul", ["act", "w2"], ["o"], name="fc2"),
        helper.make_node("Concat", ["bs", "eight"], ["out_shape"], name="concat_out", axis=0),
        helper.make_node("Reshape", ["o", "out_shape"], ["y"], name="unflatten"),
    ]
    eight = numpy_helper.from_array(np.array([8], np.int64), "eight")
    return model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 8])],
                 [w1, b1, w2, eight])


def mlp_inputs(batch: int = 2, seq: int = 3, seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((batch, seq, 8)).astype(np.float32)}


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want|: the error relative to the output's scale."""
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    if not want.size:
        return 0.0
    scale = max(float(np.abs(want).max()), 1e-6)
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) / scale


def ort_session(m: onnx.ModelProto | str):
    """An onnxruntime session running the graph as written: its optimizer's fusions (int4
    DequantizeLinear+MatMul into a kernel that quantizes activations) would change the reference."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = m if isinstance(m, str) else m.SerializeToString()
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run_onnxruntime(m: onnx.ModelProto | str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort_session(m)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
