"""Weights are references into the ONNX file or its external data, read only when executing."""

from __future__ import annotations

import numpy as np
import onnx

from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.ir import ExternalFile, InMemory, OnnxInitializer, parse_module, print_module, run
from tiny_models import mlp, mlp_inputs, run_onnxruntime


def test_inline_initializers_are_onnx_references(tmp_path):
    onnx.save(mlp(), tmp_path / "m.onnx")
    module = import_onnx(tmp_path / "m.onnx")
    sources = {n: w.source for n, w in module.weights.items()}
    assert sources == {n: OnnxInitializer("m.onnx", n) for n in ("w1", "b1", "w2")}
    feeds = mlp_inputs()
    np.testing.assert_allclose(run(module, feeds)["y"], run_onnxruntime(mlp(), feeds)["y"], rtol=1e-5, atol=1e-6)


def test_external_data_is_read_lazily(tmp_path):
    m = mlp()
    onnx.save(m, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.bin", size_threshold=100)
    data = (tmp_path / "m.bin").read_bytes()
    (tmp_path / "m.bin").write_bytes(b"\0" * len(data))  # same size, wrong bytes: import must not care
    module = import_onnx(tmp_path / "m.onnx")
    w1 = module.weights["w1"]
    assert isinstance(w1.source, ExternalFile) and w1.source.path == "m.bin" and w1.source.length == 8 * 16 * 4
    (tmp_path / "m.bin").write_bytes(data)  # the real bytes arrive after import: running reads them now
    feeds = mlp_inputs()
    np.testing.assert_allclose(run(module, feeds)["y"], run_onnxruntime(str(tmp_path / "m.onnx"), feeds)["y"],
                               rtol=1e-5, atol=1e-6)


def test_small_external_shape_constants_are_read(tmp_path):
    """With size_threshold=0 even the reshape target is external; it is read to fold the shapes."""
    onnx.save(mlp(), tmp_path / "m.onnx", save_as_external_data=True, location="m.bin", size_threshold=0)
    module = import_onnx(tmp_path / "m.onnx")
    assert "eight" not in module.weights
    assert {op.opname for op in module.main.ops} >= {"reshape", "matmul"}


def test_model_proto_in_memory():
    module = import_onnx(mlp())
    assert all(isinstance(w.source, InMemory) for w in module.weights.values())
    feeds = mlp_inputs(3, 1)
    np.testing.assert_allclose(run(module, feeds)["y"], run_onnxruntime(mlp(), feeds)["y"], rtol=1e-5, atol=1e-6)


def test_printed_module_parses_back_and_runs(tmp_path):
    onnx.save(mlp(), tmp_path / "m.onnx", save_as_external_data=True, location="m.bin", size_threshold=100)
    module = import_onnx(tmp_path / "m.onnx")
    text = print_module(module)
    again = parse_module(text, base_dir=tmp_path)
    assert print_module(again) == text
    feeds = mlp_inputs(1, 4)
    np.testing.assert_allclose(run(again, feeds)["y"], run(module, feeds)["y"], rtol=0, atol=0)


def test_unused_initializers_are_not_weights():
    m = mlp()
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((64, 64), np.float32), "unused"))
    assert "unused" not in import_onnx(m).weights
