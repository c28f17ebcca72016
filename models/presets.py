"""Published model configurations, as their Hugging Face config.json files state them.

The ``tiny-*`` presets are one small config per family, for tests: same architecture,
small enough to run with random weights in onnxruntime and transformers.
"""

from __future__ import annotations

import difflib
from dataclasses import replace

from .config import ModelConfig, ModelError, RopeScaling

# Llama 3.1 / 3.3 (factor 8) and 3.2 (factor 32) rope scaling, from their config.json files.
_LLAMA31_ROPE = RopeScaling(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)
LLAMA32_ROPE = replace(_LLAMA31_ROPE, factor=32.0)


def _gpt2(name: str, hidden: int, layers: int, heads: int, vocab: int = 50257, positions: int = 1024) -> ModelConfig:
    return ModelConfig(
        name=name, family="gpt2", vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden,
        num_layers=layers, num_heads=heads, num_kv_heads=heads, head_dim=hidden // heads,
        max_position_embeddings=positions, norm_eps=1e-5, tie_word_embeddings=True, hidden_act="gelu_new",
        qkv_bias=True, o_bias=True, mlp_bias=True,
    )


def _llama(name: str, hidden: int, inter: int, layers: int, heads: int, kv: int, *, vocab: int = 128256,
           positions: int = 131072, theta: float = 500000.0, rope: RopeScaling | None = _LLAMA31_ROPE,
           head_dim: int | None = None, tied: bool = False, eps: float = 1e-5, family: str = "llama",
           **extra) -> ModelConfig:
    return ModelConfig(
        name=name, family=family, vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
        num_layers=layers, num_heads=heads, num_kv_heads=kv, head_dim=head_dim or hidden // heads,
        max_position_embeddings=positions, norm_eps=eps, tie_word_embeddings=tied, hidden_act="silu",
        rope_theta=theta, rope_scaling=rope, **extra,
    )


_LLAMA2 = dict(vocab=32000, positions=4096, theta=10000.0, rope=None)
_LLAMA3 = dict(positions=8192, rope=None)
_MISTRAL = dict(vocab=32000, positions=32768, rope=None, family="mistral")

_PRESETS: dict[str, ModelConfig] = {c.name: c for c in [
    _gpt2("gpt2", 768, 12, 12),
    _gpt2("gpt2-xl", 1600, 48, 25),
    _llama("llama-2-7b", 4096, 11008, 32, 32, 32, **_LLAMA2),
    _llama("llama-2-70b", 8192, 28672, 80, 64, 8, **_LLAMA2),
    _llama("llama-3-8b", 4096, 14336, 32, 32, 8, **_LLAMA3),
    _llama("llama-3-70b", 8192, 28672, 80, 64, 8, **_LLAMA3),
    _llama("llama-3.1-8b", 4096, 14336, 32, 32, 8),
    _llama("llama-3.1-70b", 8192, 28672, 80, 64, 8),
    _llama("llama-3.1-405b", 16384, 53248, 126, 128, 8),
    _llama("llama-3.2-1b", 2048, 8192, 16, 32, 8, head_dim=64, tied=True, rope=LLAMA32_ROPE),
    _llama("llama-3.2-3b", 3072, 8192, 28, 24, 8, head_dim=128, tied=True, rope=LLAMA32_ROPE),
    _llama("llama-3.3-70b", 8192, 28672, 80, 64, 8),
    # Mistral 7B v0.1, the release with sliding-window attention.
    _llama("mistral-7b", 4096, 14336, 32, 32, 8, sliding_window=4096, **_MISTRAL),
    _llama("mixtral-8x7b", 4096, 14336, 32, 32, 8, vocab=32000, positions=32768, theta=1e6, rope=None,
           family="mixtral", num_experts=8, num_experts_per_tok=2),
    _llama("mixtral-8x22b", 6144, 16384, 56, 48, 8, vocab=32000, positions=65536, theta=1e6, rope=None,
           family="mixtral", num_experts=8, num_experts_per_tok=2),
    _llama("qwen2.5-7b", 3584, 18944, 28, 28, 4, vocab=152064, theta=1e6, rope=None, eps=1e-6,
           family="qwen2", qkv_bias=True),
    # One small config per family. tiny-llama keeps Llama 3.1's rope scaling: with head_dim 16
    # its frequencies fall in all three bands (kept, smoothed, divided by the factor).
    _gpt2("tiny-gpt2", 64, 2, 4, vocab=128, positions=64),
    _llama("tiny-llama", 64, 128, 2, 4, 2, vocab=128),
    _llama("tiny-mistral", 64, 128, 2, 4, 2, vocab=128, positions=256, sliding_window=4,
           family="mistral", rope=None, theta=10000.0),
    _llama("tiny-mixtral", 64, 96, 2, 4, 2, vocab=128, positions=256, family="mixtral", rope=None,
           theta=1e6, num_experts=4, num_experts_per_tok=2),
    _llama("tiny-qwen2", 64, 128, 2, 4, 2, vocab=128, positions=256, family="qwen2", rope=None,
           theta=1e6, eps=1e-6, qkv_bias=True),
]}


def list_presets() -> list[str]:
    return list(_PRESETS)


def get_config(name: str) -> ModelConfig:
    try:
        return _PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _PRESETS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `rduflow models list` shows them"
        raise ModelError(f"no model preset named '{name}'{hint}") from None


def is_tiny(config: ModelConfig) -> bool:
    """Small enough to default to random weights: the tiny-* test presets."""
    return config.name.startswith("tiny-") and _PRESETS.get(config.name) == config
