"""Hugging Face models exported by both PyTorch exporters import and run like onnxruntime runs them.

Tiny random configs (2 layers, hidden 32) of GPT-2, Llama (grouped-query attention: 4 query
heads on 2 key/value heads), Mixtral (mixture of experts, top-2 of 4) and BERT, in prefill
and KV-cache decode form. Each import is run on the IR interpreter at sizes other than the
export's (so nothing was specialised to them), including a one-token decode step, and
compared with onnxruntime: relative error below 1e-4 (f32).
"""

from __future__ import annotations

import numpy as np
import pytest

from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.ir import run
from tiny_models import ort_session, relative_error

EXPORTERS = ("torchscript", "dynamo")
CASES = [(f, m, e) for f in ("gpt2", "llama", "mixtral") for m in ("prefill", "decode") for e in EXPORTERS]
CASES += [("bert", "prefill", e) for e in EXPORTERS]
# (batch, seq, past): a prompt, and one new token on a longer cache
SIZES = ((2, 5, 3), (1, 1, 6))


def check_against_onnxruntime(exported, sizes=SIZES) -> float:
    module = import_onnx(exported.path)
    for a in module.main.args:
        assert a.type.symbols, f"input %{a.name} was specialised to {a.type}"
    sess = ort_session(str(exported.path))
    worst = 0.0
    for b, s, p in sizes:
        feeds = exported.inputs(b, s, p)
        want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        got = run(module, feeds)
        assert set(got) == set(want), "outputs keep their ONNX names"
        for name, w in want.items():
            assert got[name].dtype == w.dtype, name
            worst = max(worst, relative_error(got[name], w))
    return worst


@pytest.mark.parametrize(("family", "mode", "exporter"), CASES, ids=["-".join(c) for c in CASES])
def test_matches_onnxruntime(hf_export, family, mode, exporter):
    assert check_against_onnxruntime(hf_export(family, mode, exporter)) < 1e-4


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_sliding_window_cache(hf_export, exporter):
    """Mistral keeps the last 4095 positions: min(past+seq, 4095) is a symbol bound at run time."""
    e = hf_export("mistral", "decode", exporter)
    assert check_against_onnxruntime(e, sizes=((2, 5, 3), (1, 1, 6))) < 1e-4
    module = import_onnx(e.path)
    assert any(op.opname == "bind_dims" for op in module.main.ops)


def test_opset_23_fused_operators(hf_export):
    """At opset 23 the dynamo exporter emits Attention, RotaryEmbedding and RMSNormalization."""
    import onnx

    e = hf_export("llama", "decode", "dynamo", opset=23)
    ops = {n.op_type for n in onnx.load(e.path, load_external_data=False).graph.node}
    assert {"Attention", "RotaryEmbedding", "RMSNormalization"} <= ops
    # onnxruntime's RotaryEmbedding wants the cos/sin caches' batch to be the input's: batch 1 only
    assert check_against_onnxruntime(e, sizes=((1, 5, 3), (1, 1, 6))) < 1e-4


def test_decode_graph_keeps_symbolic_cache_length(hf_export):
    """Past and present caches are typed with the model's own dim names, related as past+seq."""
    module = import_onnx(hf_export("llama", "decode", "torchscript").path)
    g = module.main
    types = {a.name: str(a.type) for a in g.args}
    assert types["past_key_values.0.key"] == "f32[batch, 2, past_sequence_length, 8]"
    outs = dict(zip(g.output_names, (str(v.type) for v in g.outputs)))
    assert outs["present.0.key"] == "f32[batch, 2, past_sequence_length+sequence_length, 8]"
    assert outs["logits"] == "f32[batch, sequence_length, 100]"


def test_unrelated_dynamo_symbols_are_unified(hf_export):
    """dynamo names every input dim on its own (s43, s56...): broadcasting and matmuls relate them."""
    module = import_onnx(hf_export("gpt2", "decode", "dynamo").path)
    g = module.main
    batch = {a.type.shape[0] for a in g.args}
    assert len(batch) == 1, f"the batch dims of the inputs were not unified: {batch}"
    # each past tensor had a length symbol of its own; attention (q @ k^T, then @ v) relates them
    past = {a.type.shape[2] for a in g.args if a.name.startswith("past_key_values.")}
    assert len(past) == 1, past
    (p,) = past
    ids = next(a for a in g.args if a.name == "input_ids")
    present = dict(zip(g.output_names, g.outputs))["present.1.value"]
    assert present.type.shape[2] == p + ids.type.shape[1]


def test_ops_keep_onnx_node_names_as_locations(hf_export):
    e = hf_export("gpt2", "prefill", "torchscript")
    import onnx

    names = {n.name for n in onnx.load(e.path, load_external_data=False).graph.node}
    module = import_onnx(e.path)
    locs = [op.loc for op in module.main.ops if op.loc is not None]
    assert locs and set(locs) <= names
    matmuls = [op for op in module.main.ops if op.opname == "matmul"]
    assert all(op.loc for op in matmuls)


def test_weights_are_lazy_references(hf_export):
    from rduflow.ir import OnnxInitializer

    e = hf_export("gpt2", "prefill", "torchscript")
    module = import_onnx(e.path)
    assert module.weights and all(isinstance(w.source, OnnxInitializer) for w in module.weights.values())
    wte = module.weights["m.transformer.wte.weight"]
    assert str(wte.type) == "f32[100, 32]"
    assert np.asarray(wte.load(module.base_dir)).shape == (100, 32)
