"""`rduflow run` and `opt` on an ONNX file: inputs and outputs keep their ONNX names (needs the importer)."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, save

from rduflow.inference.cli import main

if not hasattr(pytest.importorskip("rduflow.compiler.frontend.onnx"), "import_onnx"):
    pytest.skip("the ONNX importer is not in this tree yet", allow_module_level=True)


def test_run_onnx_matches_onnxruntime(tmp_path, capsys):
    import onnxruntime as ort

    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=[numpy_helper.from_array(w, "w")])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "tiny.onnx")
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)

    code = main(["run", str(tmp_path / "tiny.onnx"), "--inputs", str(tmp_path / "in.npz"),
                 "--output", str(tmp_path / "out.npz"), "-p", "canonicalize,cse,dce"])
    out, err = capsys.readouterr()
    assert code == 0, err
    want = ort.InferenceSession(str(tmp_path / "tiny.onnx")).run(None, {"x": x})[0]
    with np.load(tmp_path / "out.npz") as z:
        assert z.files == ["y"]
        np.testing.assert_allclose(z["y"], want, rtol=1e-5, atol=1e-6)

    assert main(["opt", str(tmp_path / "tiny.onnx"), "--shapes-only", "-p", "dce"]) == 0
    assert "graph @main" in capsys.readouterr().out
