"""Presets build graphs whose parameter counts are the published ones, exactly."""

import dataclasses

import pytest

from rduflow.models import ModelError, build_onnx, get_config, list_presets
from rduflow.models.stats import active_parameter_count, parameter_count

# From each model's Hugging Face safetensors index / model card.
PUBLISHED = {
    "gpt2": 124_439_808,
    "gpt2-xl": 1_557_611_200,
    "llama-2-7b": 6_738_415_616,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.1-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800,
    "llama-3.2-1b": 1_235_814_400,
    "llama-3.2-3b": 3_212_749_824,
    "llama-3.3-70b": 70_553_706_496,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "mixtral-8x22b": 140_620_634_112,  # mistralai/Mixtral-8x22B-v0.1 (config.json, safetensors)
    "qwen2.5-7b": 7_615_616_512,
}


# Active parameters per token as Mistral AI published them (rounded), with the exact count
# the graph gives. Mixtral 8x7B: "46.7B total parameters but only uses 12.9B parameters per
# token" (mistral.ai/news/mixtral-of-experts, Dec 2023); Mixtral 8x22B: "39B active
# parameters out of 141B" (mistral.ai/news/mixtral-8x22b, Apr 2024).
PUBLISHED_ACTIVE = {
    "mixtral-8x7b": (12.9e9, 0.05e9, 12_879_925_248),
    "mixtral-8x22b": (39e9, 0.5e9, 39_152_031_744),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_is_published(name):
    for variant in ("prefill", "decode"):
        model = build_onnx(name, variant)
        assert parameter_count(model) == PUBLISHED[name]
        if not get_config(name).is_moe:  # a dense model uses every parameter for every token
            assert active_parameter_count(model) == PUBLISHED[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_ACTIVE))
def test_active_parameters_are_published(name):
    published, rounding, exact = PUBLISHED_ACTIVE[name]
    active = active_parameter_count(build_onnx(name, "decode"))
    assert active == exact and abs(active - published) < rounding


@pytest.mark.parametrize("name", ["tiny-mixtral", "mixtral-8x7b", "mixtral-8x22b"])
def test_active_parameters_skip_the_unrouted_experts(name):
    # Independent of the graph walk: the experts a token does not pick, from the config.
    c = get_config(name)
    unpicked = c.num_layers * (c.num_experts - c.num_experts_per_tok) * 3 * c.hidden_size * c.intermediate_size
    for dtype in ("f32", "int4"):  # quantized experts are found through their DequantizeLinear
        model = build_onnx(name, dtype=dtype, weights="shape-only")
        assert active_parameter_count(model) == parameter_count(model) - unpicked


@pytest.mark.parametrize("dtype", ["bf16", "int8", "int4"])
def test_quantization_scales_are_not_parameters(dtype):
    assert parameter_count(build_onnx("llama-3.1-8b", dtype=dtype)) == PUBLISHED["llama-3.1-8b"]


def test_every_family_has_a_tiny_preset():
    presets = list_presets()
    assert set(PUBLISHED) <= set(presets)
    tiny = {get_config(n).family for n in presets if n.startswith("tiny-")}
    assert tiny == {"gpt2", "llama", "mistral", "mixtral", "qwen2"}


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ModelError, match="llama-3.1-8b"):
        get_config("llama3.1-8b")


def test_config_rejects_inconsistent_heads():
    with pytest.raises(ModelError, match="num_kv_heads"):
        dataclasses.replace(get_config("tiny-llama"), num_kv_heads=3)


def test_random_weights_refused_beyond_onnx_size_limit():
    with pytest.raises(ModelError, match="2 GiB"):
        build_onnx("llama-3.1-8b", weights="random")
