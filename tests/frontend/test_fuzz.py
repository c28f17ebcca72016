"""Fuzzing: mutated valid models either import or raise OnnxImportError, never anything else.

Mutations edit the protobuf (operator types, inputs, attributes, dims, element types, node
order, opsets) or its serialized bytes. An OnnxImportError must also be a real diagnosis:
a converter crash that the importer's safety net turned into "internal error" fails here.
"""

from __future__ import annotations

import random

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rduflow.compiler.frontend.onnx import OnnxImportError, import_onnx
from rduflow.ir import print_module
from rduflow.ir.errors import RduflowError
from rduflow.models import build_onnx
from tiny_models import mlp

OP_TYPES = ["Add", "Mul", "MatMul", "Reshape", "Gather", "Concat", "Slice", "Unsqueeze", "Squeeze", "Shape",
            "Transpose", "Softmax", "Where", "Expand", "Range", "Cast", "Split", "LayerNormalization", "TopK",
            "Relu", "ReduceSum", "Conv", "NoSuchOp", "Trilu", "Gemm", "CumSum", "OneHot", "NonZero"]
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _names(m: onnx.ModelProto) -> list[str]:
    g = m.graph
    return [i.name for i in g.input] + [t.name for t in g.initializer] + [o for n in g.node for o in n.output]


@st.composite
def mutations(draw, base: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(base)
    g = m.graph
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["op_type", "input", "drop_input", "attr", "drop_node", "swap", "init_dims",
                                     "init_dtype", "input_dim", "input_dtype", "opset", "output"]))
        nodes = list(g.node)
        if not nodes:
            break
        node = g.node[draw(st.integers(0, len(nodes) - 1))]
        if kind == "op_type":
            node.op_type = draw(st.sampled_from(OP_TYPES))
        elif kind == "input" and node.input:
            node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(_names(m)))
        elif kind == "drop_input" and node.input:
            del node.input[draw(st.integers(0, len(node.input) - 1))]
        elif kind == "attr" and node.attribute:
            a = node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
            if a.type == onnx.AttributeProto.INT:
                a.i = draw(st.integers(-6, 10))
            elif a.type == onnx.AttributeProto.INTS:
                a.ints[:] = draw(st.lists(st.integers(-6, 10), max_size=5))
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = draw(st.floats(allow_nan=True))
            else:
                a.type = draw(st.sampled_from([onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT]))
        elif kind == "drop_node":
            g.node.remove(node)
        elif kind == "swap" and len(nodes) > 1:
            i, j = draw(st.integers(0, len(nodes) - 1)), draw(st.integers(0, len(nodes) - 1))
            a, b = onnx.NodeProto(), onnx.NodeProto()
            a.CopyFrom(g.node[i])
            b.CopyFrom(g.node[j])
            g.node[i].CopyFrom(b)
            g.node[j].CopyFrom(a)
        elif kind == "init_dims" and g.initializer:
            t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
            t.dims[:] = draw(st.lists(st.integers(0, 9), max_size=4))
        elif kind == "init_dtype" and g.initializer:
            t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
            t.data_type = draw(st.integers(0, 25))
        elif kind == "input_dim" and g.input:
            dims = g.input[0].type.tensor_type.shape.dim
            if dims:
                d = dims[draw(st.integers(0, len(dims) - 1))]
                if draw(st.booleans()):
                    d.dim_value = draw(st.integers(-1, 9))
                else:
                    d.dim_param = draw(st.sampled_from(["batch", "seq", "2*seq", "a b", "", "inf", "s+1"]))
        elif kind == "input_dtype" and g.input:
            g.input[0].type.tensor_type.elem_type = draw(st.integers(0, 25))
        elif kind == "opset":
            m.opset_import[0].version = draw(st.integers(1, 30))
        elif kind == "output" and g.output:
            g.output[0].name = draw(st.sampled_from(_names(m) + ["ghost"]))
    return m


def _check(m) -> None:
    try:
        import_onnx(m)
    except OnnxImportError as e:
        assert "internal error" not in str(e), str(e)


@SETTINGS
@given(data=st.data())
def test_mutated_mlp(data):
    _check(data.draw(mutations(mlp())))


@pytest.fixture(scope="module")
def gpt2_model(hf_export):
    return onnx.load(hf_export("gpt2", "decode", "torchscript").path)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_gpt2_export(gpt2_model, data):
    _check(data.draw(mutations(gpt2_model)))


@SETTINGS
@given(data=st.data())
def test_mutated_bytes(tmp_path_factory, data):
    raw = bytearray(mlp().SerializeToString())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    path = tmp_path_factory.mktemp("fuzz") / "m.onnx"
    path.write_bytes(bytes(raw[:cut]))
    _check(path)


def _strings(msg) -> set[str]:
    """Every string value in a protobuf message (names, op types, dim_params, domains, locations, ...)."""
    out = set()
    for fd, value in msg.ListFields():
        if fd.type == fd.TYPE_STRING:
            out.update([value] if isinstance(value, str) else value)
        elif fd.type == fd.TYPE_MESSAGE:
            for sub in ([value] if hasattr(value, "ListFields") else value):
                out |= _strings(sub)
    return {s for s in out if s}


# A lone continuation byte, an invalid byte, a truncated two-byte sequence, an encoded surrogate.
BAD_UTF8 = [b"\x80", b"\xff", b"\xc3", b"\xed\xa0\x80"]


def test_invalid_utf8_in_any_string_is_an_rduflow_error():
    """Strings of small models turned into invalid UTF-8 (same length, so the protobuf still parses):
    the import fails with one RduflowError, or succeeds and the module prints; nothing else."""
    rng = random.Random(15)
    models = [mlp(), build_onnx("tiny-llama", "decode", weights="shape-only")]
    refused = 0
    for _ in range(120):
        m = rng.choice(models)
        data = m.SerializeToString()
        text = rng.choice(sorted(_strings(m))).encode()
        bad = rng.choice(BAD_UTF8)
        i = rng.randrange(len(text))
        mutant = (text[:i] + bad + text[i:])[: len(text)] if len(text) >= len(bad) else bad[: len(text)]
        data = data.replace(text, mutant, rng.choice([1, -1]))  # the first occurrence, or all
        proto = onnx.ModelProto()
        proto.ParseFromString(data)
        try:
            print_module(import_onnx(proto, shapes_only=True))
        except RduflowError as e:
            assert "\n" not in str(e) and "internal error" not in str(e), str(e)
            refused += "not valid UTF-8" in str(e)
    assert refused > 100  # the mutants did reach the strings
