"""Tiny random-weight graphs run in onnxruntime and agree with transformers' own model classes."""

import dataclasses

import numpy as np
import pytest

from modelref import dense_weights, hf_config_json, hf_logits, hf_model, rel_err, run, session
from rduflow.models import build_onnx, get_config
from rduflow.models.presets import LLAMA32_ROPE
from rduflow.models.transformer import rope_inv_freq

TINY = ["tiny-gpt2", "tiny-llama", "tiny-mistral", "tiny-mixtral", "tiny-qwen2"]
TOL = 1e-4  # largest logit difference relative to the largest logit magnitude


def ids_for(cfg, batch=2, seq=11, seed=1):
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, (batch, seq)).astype(np.int64)


def prefill_logits(model, ids):
    return run(session(model), {"input_ids": ids})["logits"]


def assert_matches_hf(cfg, **build):
    model = build_onnx(cfg, "prefill", weights="random", **build)
    ids = ids_for(cfg)
    ours = prefill_logits(model, ids)
    assert rel_err(ours, hf_logits(hf_model(cfg, model), ids)) < TOL
    return model, ours


@pytest.mark.parametrize("name", TINY)
def test_prefill_logits_match_transformers(name):
    assert_matches_hf(get_config(name))


@pytest.mark.parametrize("name", TINY)
def test_decode_with_prefill_cache_reproduces_prefill_logits(name):
    cfg = get_config(name)
    prefill, decode = session(build_onnx(cfg, "prefill")), session(build_onnx(cfg, "decode"))
    ids = ids_for(cfg, seq=12, seed=2)
    full = run(prefill, {"input_ids": ids})["logits"]
    out = run(prefill, {"input_ids": ids[:, :5]})
    for t in range(5, 12):  # past grows from 5 to 11: beyond tiny-mistral's window of 4
        feeds = {"input_ids": ids[:, t:t + 1]}
        for i in range(cfg.num_layers):
            feeds[f"past_key_values.{i}.key"] = out[f"present.{i}.key"]
            feeds[f"past_key_values.{i}.value"] = out[f"present.{i}.value"]
        out = run(decode, feeds)
        assert out["present.0.key"].shape == (2, cfg.num_kv_heads, t + 1, cfg.head_dim)
        assert rel_err(out["logits"][:, 0], full[:, t]) < TOL


def test_decode_of_several_tokens_matches_prefill():
    cfg = get_config("tiny-mistral")
    ids = ids_for(cfg, seq=10, seed=3)
    prefill = session(build_onnx(cfg, "prefill"))
    full = run(prefill, {"input_ids": ids})["logits"]
    cache = run(prefill, {"input_ids": ids[:, :7]})
    feeds = {"input_ids": ids[:, 7:]}
    for i in range(cfg.num_layers):
        feeds[f"past_key_values.{i}.key"] = cache[f"present.{i}.key"]
        feeds[f"past_key_values.{i}.value"] = cache[f"present.{i}.value"]
    out = run(session(build_onnx(cfg, "decode", seq=3)), feeds)
    assert rel_err(out["logits"], full[:, 7:]) < TOL


def test_sliding_window_is_what_makes_mistral_match():
    cfg = get_config("tiny-mistral")
    model, ours = assert_matches_hf(cfg)
    unwindowed = dataclasses.replace(cfg, sliding_window=None)
    full_attention = prefill_logits(build_onnx(unwindowed, weights="random"), ids_for(cfg))
    assert rel_err(full_attention, ours) > 100 * TOL


def test_qwen2_with_sliding_layers_matches_transformers():
    cfg = dataclasses.replace(get_config("tiny-qwen2"), sliding_window=3,
                              layer_types=("full_attention", "sliding_attention"))
    assert hf_config_json(cfg)["layer_types"] == ["full_attention", "sliding_attention"]
    assert_matches_hf(cfg)


def test_llama_variants_match_transformers():
    base = get_config("tiny-llama")
    # Llama 2: multi-head attention, no rope scaling.
    assert_matches_hf(dataclasses.replace(base, num_kv_heads=base.num_heads, rope_scaling=None, rope_theta=10000.0))
    # Llama 3.2: tied embeddings, rope factor 32.
    assert_matches_hf(dataclasses.replace(base, tie_word_embeddings=True, rope_scaling=LLAMA32_ROPE))


@pytest.mark.parametrize("name", ["tiny-llama", "llama-3.1-405b", "llama-3.2-1b", "mistral-7b"])
def test_rope_frequencies_equal_transformers(name):
    import transformers
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    cfg = get_config(name)
    hf_cfg = transformers.AutoConfig.for_model(**hf_config_json(cfg))
    kind = hf_cfg.rope_parameters["rope_type"]
    theirs, scaling = ROPE_INIT_FUNCTIONS.get(kind, LlamaRotaryEmbedding.compute_default_rope_parameters)(hf_cfg)
    assert scaling == 1.0
    np.testing.assert_allclose(rope_inv_freq(cfg), theirs.numpy(), rtol=1e-6)
    assert (kind == "llama3") == (cfg.rope_scaling is not None)


@pytest.mark.parametrize("dtype", ["int8", "int4"])
@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-mixtral"])
def test_quantized_graphs_match_transformers_with_dequantized_weights(name, dtype):
    cfg = get_config(name)
    model, ours = assert_matches_hf(cfg, dtype=dtype, act_dtype="f32", quant_block=32)
    # The quantization is real: the weights differ from the f32 build of the same seed.
    f32 = dense_weights(build_onnx(cfg))
    key = "model.layers.0.self_attn.q_proj.weight" if cfg.family != "gpt2" else "transformer.h.0.attn.c_attn.weight"
    assert 0 < rel_err(dense_weights(model)[key], f32[key]) < 0.2


def test_f16_graph_runs_close_to_f32():
    cfg = get_config("tiny-llama")
    ids = ids_for(cfg)
    f16 = prefill_logits(build_onnx(cfg, dtype="f16"), ids)
    assert f16.dtype == np.float16
    assert rel_err(f16, prefill_logits(build_onnx(cfg), ids)) < 5e-3


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-mixtral"])
def test_bf16_graph_runs_in_the_ir_interpreter_close_to_transformers(name):
    # onnxruntime's CPU provider has no bf16 MatMul; rduflow's own importer and interpreter do.
    from rduflow.compiler.frontend.onnx import import_onnx
    from rduflow.ir import run as run_ir

    cfg = get_config(name)
    model = build_onnx(cfg, dtype="bf16")
    ids = ids_for(cfg, seq=7)
    logits = run_ir(import_onnx(model), {"input_ids": ids})["logits"]
    assert logits.dtype.name == "bfloat16"
    # bf16 rounding of weights and activations: about 1%, as for transformers' own bf16 model.
    assert rel_err(logits.astype(np.float32), hf_logits(hf_model(cfg, model), ids)) < 3e-2


def test_seed_changes_weights_and_variants_share_them():
    cfg = get_config("tiny-llama")
    a = dense_weights(build_onnx(cfg, "prefill", seed=0))
    b = dense_weights(build_onnx(cfg, "decode", seed=0))
    c = dense_weights(build_onnx(cfg, "prefill", seed=1))
    name = "model.layers.1.mlp.up_proj.weight"
    assert np.array_equal(a[name], b[name]) and not np.array_equal(a[name], c[name])
