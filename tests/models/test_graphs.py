"""Every graph is standard ONNX: full checker, strict shape inference, the documented interface."""

import os

import onnx
import pytest
from onnx import TensorProto

from rduflow.models import ModelError, build_onnx, get_config, list_presets
from rduflow.models.export import save_onnx


def check_file(model: onnx.ModelProto, path) -> None:
    save_onnx(model, path)
    onnx.checker.check_model(str(path), full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


@pytest.mark.parametrize("name", list_presets())
@pytest.mark.parametrize("variant", ["prefill", "decode"])
def test_every_preset_passes_checker_and_shape_inference(name, variant, tmp_path):
    check_file(build_onnx(name, variant), tmp_path / "m.onnx")


@pytest.mark.parametrize("dtype", ["f32", "bf16", "f16", "int8", "int4"])
@pytest.mark.parametrize("name", ["gpt2", "mixtral-8x7b", "tiny-qwen2"])
def test_every_dtype_passes_checker_and_shape_inference(name, dtype, tmp_path):
    for variant in ("prefill", "decode"):
        check_file(build_onnx(name, variant, dtype=dtype), tmp_path / f"{variant}.onnx")


def _shape(vi: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_decode_interface():
    cfg = get_config("llama-3.1-8b")
    m = build_onnx(cfg, "decode", dtype="bf16")
    ins = {i.name: i for i in m.graph.input}
    outs = {o.name: o for o in m.graph.output}
    assert _shape(ins["input_ids"]) == ["batch", 1]
    assert ins["input_ids"].type.tensor_type.elem_type == TensorProto.INT64
    assert _shape(ins["past_key_values.31.value"]) == ["batch", 8, "past", 128]
    assert ins["past_key_values.0.key"].type.tensor_type.elem_type == TensorProto.BFLOAT16
    assert _shape(outs["present.0.key"]) == ["batch", 8, "past+1", 128]
    assert _shape(outs["logits"]) == ["batch", 1, 128256]
    assert len(ins) == 1 + 2 * cfg.num_layers and len(outs) == 1 + 2 * cfg.num_layers


def test_prefill_interface_and_fixed_dims():
    m = build_onnx("tiny-llama", "prefill", batch=2, seq=8)
    assert [i.name for i in m.graph.input] == ["input_ids"]
    assert _shape(m.graph.input[0]) == [2, 8]
    assert _shape(m.graph.output[1]) == [2, 2, 8, 16]
    m = build_onnx("tiny-llama", "decode", seq=4, past=60)
    assert _shape(m.graph.output[1]) == ["batch", 2, 64, 16]


def test_bad_dims_and_options_are_model_errors():
    for kwargs in ({"past": 3}, {"seq": 0}, {"batch": "2x"}, {"dtype": "fp8"}, {"weights": "zeros"}):
        with pytest.raises(ModelError):
            build_onnx("tiny-llama", "prefill", **kwargs)
    with pytest.raises(ModelError, match="variant"):
        build_onnx("tiny-llama", "train")


def test_one_matmul_per_projection_and_one_softmax_per_layer():
    cfg = get_config("tiny-llama")
    ops = [n.op_type for n in build_onnx(cfg).graph.node]
    # q, k, v, o, gate, up, down + scores and context per layer, and the LM head.
    assert ops.count("MatMul") == cfg.num_layers * 9 + 1
    assert ops.count("Softmax") == cfg.num_layers


def test_shape_only_weights_hold_no_data():
    m = build_onnx("tiny-llama", weights="shape-only")
    assert m.graph.initializer
    for t in m.graph.initializer:
        assert t.data_location == TensorProto.EXTERNAL and not t.raw_data
        assert {e.key: e.value for e in t.external_data}["location"] == "tiny-llama.shape-only.bin"
    r = build_onnx("tiny-llama", weights="random")
    assert all(t.raw_data for t in r.graph.initializer)


def test_quantized_weights_use_dequantize_linear():
    m = build_onnx("tiny-mixtral", dtype="int4", quant_block=32)
    dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    # q, k, v, o and the three expert tensors of each layer
    assert len(dq) == 7 * 2
    inits = {t.name: t for t in m.graph.initializer}
    assert inits["model.layers.0.self_attn.q_proj.weight"].data_type == TensorProto.INT4
    assert list(inits["model.layers.0.self_attn.q_proj.weight_scale"].dims) == [2, 64]
    assert list(inits["model.layers.0.mlp.experts.down_proj_scale"].dims) == [4, 3, 64]
    assert inits["model.embed_tokens.weight"].data_type == TensorProto.BFLOAT16
    m8 = build_onnx("tiny-llama", dtype="int8")
    assert list({t.name: t for t in m8.graph.initializer}["model.layers.0.mlp.down_proj.weight_scale"].dims) == [64]


def test_save_is_atomic_and_reports_bad_directories(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    save_onnx(build_onnx("tiny-gpt2"), path)
    assert onnx.load(str(path)).graph.node
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]  # random weights: no sidecar, no temp files
    with pytest.raises(ModelError, match="does not exist"):
        save_onnx(build_onnx("tiny-gpt2"), tmp_path / "missing" / "m.onnx")


def test_shape_only_export_writes_an_empty_weights_file(tmp_path):
    save_onnx(build_onnx("gpt2"), tmp_path / "gpt2.onnx")
    assert (tmp_path / "gpt2.shape-only.bin").stat().st_size == 0
