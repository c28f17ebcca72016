"""Bad input gets one clear OnnxImportError naming the file and the node or field."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rduflow.compiler.frontend.onnx import OnnxImportError, UnsupportedOperatorsError, import_onnx
from hostile_paths import ESCAPES, hostile_location
from tiny_models import mlp, model


def _error(m, **kw) -> OnnxImportError:
    with pytest.raises(OnnxImportError) as e:
        import_onnx(m, **kw)
    assert "\n" not in str(e.value)
    return e.value


def test_unsupported_operators_are_listed_all_at_once():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c1"], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w"], ["c2"], name="conv2"),
             helper.make_node("Frobnicate", ["c2"], ["y"], name="frob", domain="com.example")]
    m = model(nodes, [x], [y], [w], extra_opsets=[("com.example", 1)])
    e = _error(m)
    assert isinstance(e, UnsupportedOperatorsError) and e.exit_code == 2
    assert [(op.domain, op.op_type, op.count, op.first_node) for op in e.ops] == [
        ("", "Conv", 2, "conv1"), ("com.example", "Frobnicate", 1, "frob")]
    assert "ai.onnx Conv" in str(e) and "2 node(s), first 'conv1'" in str(e) and "com.example Frobnicate" in str(e)


def test_truncated_file(tmp_path):
    data = mlp().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 3])
    e = _error(path)
    assert str(path) in str(e)


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01" * 10)
    assert "not a readable ONNX model" in str(_error(path)) or "no graph" in str(_error(path))


def test_missing_file(tmp_path):
    assert "no such file" in str(_error(tmp_path / "absent.onnx"))


def test_undefined_tensor_names_the_node():
    m = mlp()
    m.graph.node[6].input[0] = "nowhere"
    e = _error(m)
    assert "node 'fc1' (MatMul) uses 'nowhere'" in str(e)


def test_nodes_out_of_order():
    m = mlp()
    nodes = list(m.graph.node)
    nodes[6], nodes[7] = nodes[7], nodes[6]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    assert "not topologically sorted" in str(_error(m))


def test_wrong_arity_against_the_schema():
    m = mlp()
    m.graph.node[6].input.append("b1")
    assert "node 'fc1' (MatMul) has 3 input(s)" in str(_error(m))


def test_dtype_the_ir_lacks():
    x = helper.make_tensor_value_info("x", TensorProto.COMPLEX64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.COMPLEX64, [2])
    e = _error(model([helper.make_node("Identity", ["x"], ["y"])], [x], [y]))
    assert "graph input 'x'" in str(e) and "COMPLEX64" in str(e) and "which the IR lacks" in str(e)


def test_old_opset_says_how_to_upgrade():
    m = mlp()
    m.opset_import[0].version = 11
    assert "convert_version(model, 13)" in str(_error(m))


def test_input_without_shape():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    assert "has no shape" in str(_error(model([helper.make_node("Relu", ["x"], ["y"])], [x], [y])))


def test_reshape_to_a_run_time_shape_is_refused():
    """A target computed from data gets symbols of its own; nothing proves they keep the element count."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    s = helper.make_tensor_value_info("s", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    e = _error(model([helper.make_node("Reshape", ["x", "s"], ["y"], name="r")], [x, s], [y]))
    assert "node 'r' (Reshape)" in str(e) and "changes the element count" in str(e)


def test_attribute_operand_must_be_constant():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    a = helper.make_tensor_value_info("a", TensorProto.INT64, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    e = _error(model([helper.make_node("CumSum", ["x", "a"], ["y"], name="c")], [x, a], [y]))
    assert "node 'c' (CumSum): input 'axis' must be constant" in str(e)


def test_type_mismatch_names_the_node():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    e = _error(model([helper.make_node("Add", ["x", "z"], ["y"], name="add")], [x, z], [y]))
    assert "node 'add' (Add)" in str(e) and "do not broadcast" in str(e)


def test_external_data(tmp_path):
    m = mlp()
    onnx.save(m, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.bin", size_threshold=100)
    (tmp_path / "m.bin").unlink()
    e = _error(tmp_path / "m.onnx")
    assert "external data file 'm.bin' is missing" in str(e) and "--shapes-only" in str(e)
    module = import_onnx(tmp_path / "m.onnx", shapes_only=True)
    assert {w.source.describe() for w in module.weights.values()} == {"shape_only"}


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "sub/../../x.bin", "C:\\w.bin"] + ESCAPES)
def test_external_locations_outside_the_folder_are_refused(tmp_path, location):
    if location in ESCAPES:  # a kind of escape, set up in the model's folder
        tmp_path = tmp_path / "model"
        tmp_path.mkdir()
        location = hostile_location(location, tmp_path)
    m = mlp()
    t = next(t for t in m.graph.initializer if t.name == "w1")
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    onnx.save(m, tmp_path / "m.onnx")
    for shapes_only in (False, True):
        e = _error(tmp_path / "m.onnx", shapes_only=shapes_only)
        assert "initializer 'w1'" in str(e) and "model's folder" in str(e)


def _with_bytes(m: onnx.ModelProto, old: bytes, new: bytes) -> onnx.ModelProto:
    """``m`` with a string's bytes replaced (same length, so the protobuf framing holds)."""
    assert len(old) == len(new)
    data = m.SerializeToString()
    assert old in data
    out = onnx.ModelProto()
    out.ParseFromString(data.replace(old, new))
    return out


@pytest.mark.parametrize(("old", "new", "field"), [
    (b"Reshape", b"Re\xffhape", "graph.node[5].op_type"),  # was a TypeError in the schema check
    (b"gather", b"ga\xc3her", "graph.node[2].name"),  # was an AttributeError in the printer
    (b"batch", b"b\x80tch", "graph.input[0].type.tensor_type.shape.dim[0].dim_param"),  # a TypeError in parse_dim
])
def test_invalid_utf8_strings_name_the_field(old, new, field):
    e = _error(_with_bytes(mlp(), old, new))
    assert f"{field} is not valid UTF-8" in str(e) and "re-export" in str(e)


def test_invalid_utf8_from_the_command_line_is_one_line(tmp_path, capsys):
    from rduflow.inference.cli import main

    (tmp_path / "m.onnx").write_bytes(mlp().SerializeToString().replace(b"Reshape", b"Re\xffhape"))
    assert main(["import", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rduflow: error: ") and err.count("\n") == 1 and "not valid UTF-8" in err
