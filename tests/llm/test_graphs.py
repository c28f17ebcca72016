"""The graphs a run simulates: precision transforms change stored types in the IR itself."""

import pytest
from rduflow.ir import DType, verify_module
from rduflow.inference import LlmSimError
from rduflow.inference.graphs import load_graphs, precision_passes, run_passes


def _weight_bytes(module):
    return float(sum(w.type.nbytes.const_value() for w in module.weights.values()))


def _matmul_weight_dtypes(module):
    return {w.type.dtype for w in module.weights.values() if w.type.rank >= 2 and "embed" not in w.name}


@pytest.mark.parametrize("dtype, narrow, ratio", [("fp8", DType.f8e4m3, 0.5), ("int8", DType.i8, 0.5),
                                                  ("int4", DType.i4, 0.25)])
def test_quantize_weights(dtype, narrow, ratio):
    m = load_graphs("tiny-llama", "bf16", "bf16").decode.clone()  # loaded graphs are shared: change a copy
    before = _weight_bytes(m)
    run_passes(m, precision_passes(dtype, "bf16"))
    verify_module(m)
    n = sum(w.type.dtype == narrow for w in m.weights.values())  # the weights stored narrow
    assert n == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the LM head
    assert narrow in _matmul_weight_dtypes(m)
    # the stored bytes shrink by about the width ratio (plus scales for integers)
    assert _weight_bytes(m) < before * (ratio + 0.5 * (1 - ratio))


def test_fp8_preset_keeps_embedding_wide():
    g = load_graphs("tiny-llama", "fp8", "bf16")
    assert g.decode.weights["model.embed_tokens.weight"].type.dtype == DType.bf16
    assert g.decode.weights["lm_head.weight"].type.dtype == DType.f8e4m3


@pytest.mark.parametrize("kv, narrow", [("fp8", DType.f8e4m3), ("int8", DType.i8)])
def test_kv_cache_stored_narrow(kv, narrow):
    g = load_graphs("tiny-llama", "bf16", kv)
    cache_in = [a for a in g.decode.main.args if a.name.startswith("past_key_values")]
    assert cache_in and all(a.type.dtype == narrow for a in cache_in)
    outs = dict(zip(g.decode.main.output_names, g.decode.main.outputs))
    assert outs["present.0.key"].type.dtype == narrow
    pre = dict(zip(g.prefill.main.output_names, g.prefill.main.outputs))
    assert pre["present.1.value"].type.dtype == narrow and pre["logits"].type.dtype == DType.bf16


def test_kv_dtype_needs_a_cache():
    m = load_graphs("tiny-llama", "bf16", "bf16").prefill.clone()
    with pytest.raises(LlmSimError, match="no KV-cache input"):
        run_passes(m, precision_passes(None, "fp8"))
