"""``rduflow import MODEL.onnx [-o OUT.rdu] [--shapes-only]``."""

from __future__ import annotations

import numpy as np
from rduflow.compiler.loading import load_module
import onnx
from onnx import TensorProto, helper

from rduflow.inference.cli import main
from rduflow.ir import parse_file, run
from tiny_models import mlp, mlp_inputs, model, run_onnxruntime


def test_prints_the_ir(tmp_path, capsys):
    onnx.save(mlp(), tmp_path / "m.onnx")
    assert main(["import", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("module {") and "graph @main(%x: f32[batch, seq, 8])" in out
    assert 'reshape(%x) {shape = [batch*seq, 8]}' in out


def test_writes_a_file_that_runs_from_anywhere(tmp_path, capsys):
    onnx.save(mlp(), tmp_path / "m.onnx", save_as_external_data=True, location="m.bin", size_threshold=100)
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "m.rdu"
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    text = target.read_text()
    # weight files are read only inside the model's folder: the data outside it moved beside it
    assert '"../' not in text and 'npz("m.npz", "b1")' in text
    feeds = mlp_inputs()
    np.testing.assert_allclose(run(parse_file(target), feeds)["y"], run_onnxruntime(mlp(), feeds)["y"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run(load_module(target), feeds)["y"], run_onnxruntime(mlp(), feeds)["y"],
                               rtol=1e-5, atol=1e-6)


def test_unsupported_operators_exit_2_with_one_line(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], name="pool"),
             helper.make_node("GlobalAveragePool", ["p"], ["y"], name="gap")]
    onnx.save(model(nodes, [x], [y]), tmp_path / "cnn.onnx")
    target = tmp_path / "cnn.rdu"
    target.write_text("previous contents\n")
    assert main(["import", str(tmp_path / "cnn.onnx"), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "ai.onnx MaxPool" in err and "ai.onnx GlobalAveragePool" in err
    assert target.read_text() == "previous contents\n"  # a failed import leaves OUT as it was


def test_corrupt_file_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(mlp().SerializeToString()[:40])
    assert main(["import", str(tmp_path / "bad.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rduflow: error: ") and err.count("\n") == 1


def test_shapes_only_without_external_data(tmp_path, capsys):
    onnx.save(mlp(), tmp_path / "m.onnx", save_as_external_data=True, location="m.bin", size_threshold=100)
    (tmp_path / "m.bin").unlink()
    assert main(["import", str(tmp_path / "m.onnx")]) == 1
    assert "--shapes-only" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "m.onnx"), "--shapes-only"]) == 0
    assert "weight @w1 : f32[8, 16] = shape_only" in capsys.readouterr().out
