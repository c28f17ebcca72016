"""Quantized weights: onnxruntime's MatMulNBits (int4) and ONNX blocked int4 DequantizeLinear, against ORT."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.ir import op_cost, run
from tiny_models import model, run_onnxruntime


def _nbits_model(k: int, n: int, block: int, zero_points: str, bias: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    blocks = -(-k // block)
    b = rng.integers(0, 256, (n, blocks, block // 2), dtype=np.uint8)
    scales = (rng.random(n * blocks).astype(np.float32) + 0.5) * 0.05
    inits = [numpy_helper.from_array(b, "b"), numpy_helper.from_array(scales, "scales")]
    inputs = ["a", "b", "scales"]
    if zero_points == "packed":
        inits.append(numpy_helper.from_array(rng.integers(0, 256, n * -(-blocks // 2), dtype=np.uint8), "zp"))
        inputs.append("zp")
    elif zero_points == "float":
        inits.append(numpy_helper.from_array((rng.random(n * blocks) * 15).astype(np.float32), "zp"))
        inputs.append("zp")
    if bias:
        inputs += ["", "", "bias"] if zero_points == "none" else ["", "bias"]
        inits.append(numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "bias"))
    node = helper.make_node("MatMulNBits", inputs, ["y"], name="q", domain="com.microsoft",
                            K=k, N=n, bits=4, block_size=block)
    return model([node], [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", "seq", k])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", n])], inits,
                 extra_opsets=[("com.microsoft", 1)])


@pytest.mark.parametrize(("k", "n", "block", "zero_points", "bias"), [
    (64, 24, 32, "none", False), (80, 16, 32, "packed", True), (96, 8, 16, "float", False), (64, 8, 64, "packed", False)])
def test_matmul_nbits_matches_onnxruntime(k, n, block, zero_points, bias):
    m = _nbits_model(k, n, block, zero_points, bias)
    module = import_onnx(m)
    feeds = {"a": np.random.default_rng(1).standard_normal((2, 3, k)).astype(np.float32)}
    want = run_onnxruntime(m, feeds)["y"]
    np.testing.assert_allclose(run(module, feeds)["y"], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_matmul_nbits_reads_half_a_byte_per_weight():
    module = import_onnx(_nbits_model(64, 24, 32, "none", False))
    (op,) = [op for op in module.main.ops if op.opname == "matmul_nbits"]
    cost = op_cost(op).subs({"batch": 1, "seq": 1})
    weight_bytes = 64 * 24 // 2
    assert int(cost.bytes_read) == 64 * 4 + weight_bytes + 24 * 2 * 4  # activations, int4 codes, scales
    assert int(cost.flops) == 2 * 64 * 24


def test_blocked_int4_dequantize_matmul_matches_onnxruntime():
    rng = np.random.default_rng(0)
    k, n, block = 64, 16, 32
    w = helper.make_tensor("w_q", TensorProto.INT4, [k, n], rng.integers(-8, 8, k * n).tolist())
    scale = numpy_helper.from_array((rng.random((k // block, n)) * 0.1).astype(np.float32), "w_s")
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["w"], axis=0, block_size=block),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    m = model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", k])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n])], [w, scale], opset=21)
    m.ir_version = 10
    feeds = {"x": rng.standard_normal((3, k)).astype(np.float32)}
    want = run_onnxruntime(m, feeds)["y"]
    got = run(import_onnx(m), feeds)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
