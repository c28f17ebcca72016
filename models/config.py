"""Model configurations: one dataclass for every family, read from presets or HF config.json.

A :class:`ModelConfig` holds exactly what the graph builders need. Architectural choices a
family fixes (GPT-2's LayerNorm and learned positions, Llama's RMSNorm and rotary
embeddings) follow from ``family``; choices a published config varies (biases, tied head,
sliding window, experts, rope scaling) are fields.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rduflow.ir.errors import RduflowError

FAMILIES = ("gpt2", "llama", "mistral", "mixtral", "qwen2")
# HF activation names: GPT-2's "gelu_new" is the tanh approximation; Llama-style MLPs use SiLU.
ACTIVATIONS = {"gpt2": ("gelu_new", "gelu_pytorch_tanh", "gelu"), "llama": ("silu",)}


class ModelError(RduflowError, ValueError):
    """A model name, configuration or build option rduflow cannot honour."""


# The most a config may ask for, per field: a few times the largest published model (Llama
# 3.1 405B: 126 layers, hidden 16384, intermediate 53248; vocabularies up to ~256k; contexts up
# to ~10M). Beyond these a value is a typo or a hostile file, and building or simulating it
# would run for hours; they are refused before anything is built.
LIMITS = {"vocab_size": 1 << 24, "hidden_size": 1 << 17, "intermediate_size": 1 << 20, "num_layers": 1024,
          "num_heads": 1024, "num_kv_heads": 1024, "head_dim": 1024, "max_position_embeddings": 1 << 25,
          "sliding_window": 1 << 25, "num_experts": 1024}


def check_limit(field: str, value: int, where: str) -> None:
    """Refuse a size beyond :data:`LIMITS` (checked before anything is sized by it)."""
    if value > LIMITS[field]:
        raise ModelError(f"{where}: {field} = {value} is above {LIMITS[field]}, the most rduflow accepts "
                         "(more than any published model has: a typo?)")


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3.1's frequency scaling of rotary embeddings (HF ``rope_type: "llama3"``)."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int


@dataclass(frozen=True)
class ModelConfig:
    name: str
    family: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    norm_eps: float
    tie_word_embeddings: bool
    hidden_act: str
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    # Attention sees keys at most this many positions back (inclusive of itself), on the
    # layers whose ``layer_types`` entry is "sliding_attention" (all layers when None).
    sliding_window: int | None = None
    layer_types: tuple[str, ...] | None = None
    num_experts: int = 0
    num_experts_per_tok: int = 0
    source: str = field(default="preset", compare=False)  # where it came from, for messages

    def __post_init__(self) -> None:
        where = f"model config '{self.name}' ({self.source})"
        if self.family not in FAMILIES:
            raise ModelError(f"{where}: unknown family '{self.family}'; rduflow builds {', '.join(FAMILIES)}")
        for f in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
                  "num_kv_heads", "head_dim", "max_position_embeddings"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ModelError(f"{where}: {f} must be a positive integer, got {v!r}")
            check_limit(f, v, where)
        if self.num_heads % self.num_kv_heads:
            raise ModelError(f"{where}: num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.head_dim % 2 and self.family != "gpt2":
            raise ModelError(f"{where}: rotary embeddings need an even head_dim, got {self.head_dim}")
        if self.family == "gpt2" and self.head_dim * self.num_heads != self.hidden_size:
            raise ModelError(f"{where}: GPT-2 needs hidden_size = num_heads * head_dim")
        allowed = ACTIVATIONS["gpt2" if self.family == "gpt2" else "llama"]
        if self.hidden_act not in allowed:
            raise ModelError(f"{where}: hidden_act '{self.hidden_act}' is not supported for {self.family} "
                             f"(use {' or '.join(allowed)})")
        if not self.norm_eps > 0:
            raise ModelError(f"{where}: the norm epsilon must be positive, got {self.norm_eps}")
        if self.sliding_window is not None and self.sliding_window <= 0:
            raise ModelError(f"{where}: sliding_window must be positive, got {self.sliding_window}")
        if self.sliding_window is not None:
            check_limit("sliding_window", self.sliding_window, where)
        check_limit("num_experts", self.num_experts, where)
        if self.layer_types is not None:
            if len(self.layer_types) != self.num_layers:
                raise ModelError(f"{where}: layer_types has {len(self.layer_types)} entries for {self.num_layers} layers")
            bad = set(self.layer_types) - {"full_attention", "sliding_attention"}
            if bad:
                raise ModelError(f"{where}: unknown layer_types {sorted(bad)}")
        if self.is_moe:
            if self.family != "mixtral":
                raise ModelError(f"{where}: experts are only built for the mixtral family")
            if not 0 < self.num_experts_per_tok <= self.num_experts:
                raise ModelError(f"{where}: num_experts_per_tok must be in 1..{self.num_experts}, "
                                 f"got {self.num_experts_per_tok}")
        elif self.family == "mixtral":
            raise ModelError(f"{where}: a mixtral config needs num_local_experts >= 1")
        if self.family == "gpt2" and (self.rope_scaling or self.sliding_window):
            raise ModelError(f"{where}: GPT-2 has learned positions and full attention")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def kv_groups(self) -> int:
        return self.num_heads // self.num_kv_heads

    def layer_window(self, layer: int) -> int | None:
        """The sliding window of one layer, or None where it attends to the whole past."""
        if self.sliding_window is None:
            return None
        if self.layer_types is not None and self.layer_types[layer] != "sliding_attention":
            return None
        return self.sliding_window

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        if d["layer_types"] is not None:
            d["layer_types"] = list(d["layer_types"])
        return d


# -- Hugging Face config.json ------------------------------------------------------------------
_MODEL_TYPES = {"gpt2": "gpt2", "llama": "llama", "mistral": "mistral", "mixtral": "mixtral", "qwen2": "qwen2"}


def load_config_json(path: str | Path, name: str | None = None) -> ModelConfig:
    """Read a Hugging Face ``config.json`` (gpt2, llama, mistral, mixtral or qwen2 model_type)."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except OSError as e:
        raise ModelError(f"cannot read {p}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise ModelError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(raw, dict):
        raise ModelError(f"{p}: expected a JSON object, as Hugging Face config.json files are")
    return config_from_hf(raw, name or p.parent.name or p.stem, source=str(p))


def config_from_hf(raw: dict[str, Any], name: str, source: str = "config.json") -> ModelConfig:
    r = _Reader(raw, source)
    model_type = r.get("model_type", str)
    family = _MODEL_TYPES.get(model_type)
    if family is None:
        raise ModelError(f"{source}: model_type '{model_type}' is not supported; "
                         f"rduflow builds {', '.join(_MODEL_TYPES)}")
    if family == "gpt2":
        return _gpt2(r, name, source)
    return _llama_like(r, family, name, source)


def _gpt2(r: _Reader, name: str, source: str) -> ModelConfig:
    hidden = r.get("n_embd", int)
    heads = r.get("n_head", int)
    for flag, default in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                          ("add_cross_attention", False)):
        if r.get(flag, bool, default) != default:
            raise ModelError(f"{source}: {flag}={not default} is not supported (GPT-2 as published has {default})")
    return ModelConfig(
        name=name, family="gpt2", vocab_size=r.get("vocab_size", int), hidden_size=hidden,
        intermediate_size=r.get("n_inner", int, None) or 4 * hidden, num_layers=r.get("n_layer", int),
        num_heads=heads, num_kv_heads=heads, head_dim=hidden // heads,
        max_position_embeddings=r.get("n_positions", int), norm_eps=r.get("layer_norm_epsilon", float, 1e-5),
        tie_word_embeddings=r.get("tie_word_embeddings", bool, True),
        hidden_act=r.get("activation_function", str, "gelu_new"),
        qkv_bias=True, o_bias=True, mlp_bias=True, source=source,
    )


def _llama_like(r: _Reader, family: str, name: str, source: str) -> ModelConfig:
    hidden = r.get("hidden_size", int)
    heads = r.get("num_attention_heads", int)
    theta, scaling = _rope(r, source)
    bias = r.get("attention_bias", bool, False)
    window = None
    layer_types = None
    if family in ("mistral", "mixtral"):
        window = r.get("sliding_window", int, None)
    elif family == "qwen2" and r.get("use_sliding_window", bool, False):
        window = r.get("sliding_window", int, None)
    if family == "qwen2" and window is not None:
        types = r.get("layer_types", list, None)
        if types is None:
            start = r.get("max_window_layers", int, 28)
            layers = r.get("num_hidden_layers", int)
            check_limit("num_layers", layers, f"model config '{name}' ({source})")  # before a list that long
            types = ["sliding_attention" if i >= start else "full_attention" for i in range(layers)]
        layer_types = tuple(types)
    return ModelConfig(
        name=name, family=family, vocab_size=r.get("vocab_size", int), hidden_size=hidden,
        intermediate_size=r.get("intermediate_size", int), num_layers=r.get("num_hidden_layers", int),
        num_heads=heads, num_kv_heads=r.get("num_key_value_heads", int, None) or heads,
        head_dim=r.get("head_dim", int, None) or hidden // heads,
        max_position_embeddings=r.get("max_position_embeddings", int),
        norm_eps=r.get("rms_norm_eps", float, 1e-6),
        tie_word_embeddings=r.get("tie_word_embeddings", bool, False),
        hidden_act=r.get("hidden_act", str, "silu"),
        rope_theta=theta, rope_scaling=scaling,
        qkv_bias=True if family == "qwen2" else bias, o_bias=bias if family == "llama" else False,
        mlp_bias=r.get("mlp_bias", bool, False) if family == "llama" else False,
        sliding_window=window, layer_types=layer_types,
        num_experts=r.get("num_local_experts", int, 0) if family == "mixtral" else 0,
        num_experts_per_tok=r.get("num_experts_per_tok", int, 0) if family == "mixtral" else 0,
        source=source,
    )


def _rope(r: _Reader, source: str) -> tuple[float, RopeScaling | None]:
    # transformers 5 writes "rope_parameters"; older files "rope_theta" and "rope_scaling".
    params = r.get("rope_parameters", dict, None) or r.get("rope_scaling", dict, None) or {}
    theta = float(params.get("rope_theta", r.get("rope_theta", float, 10000.0)))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind in (None, "default"):
        return theta, None
    if kind != "llama3":
        raise ModelError(f"{source}: rope_type '{kind}' is not supported (rduflow builds 'default' and 'llama3')")
    try:
        return theta, RopeScaling(
            factor=float(params["factor"]), low_freq_factor=float(params["low_freq_factor"]),
            high_freq_factor=float(params["high_freq_factor"]),
            original_max_position_embeddings=int(params["original_max_position_embeddings"]),
        )
    except KeyError as e:
        raise ModelError(f"{source}: llama3 rope scaling needs the key {e.args[0]}") from None


class _Reader:
    """Typed access to config.json keys, with errors that name the file and key."""

    _MISSING = object()

    def __init__(self, raw: dict[str, Any], source: str):
        self.raw = raw
        self.source = source

    def get(self, key: str, kind: type, default: Any = _MISSING) -> Any:
        if key not in self.raw or self.raw[key] is None:
            if default is self._MISSING:
                raise ModelError(f"{self.source}: missing key '{key}'")
            return default
        v = self.raw[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if kind is int and isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise ModelError(f"{self.source}: key '{key}' should be {kind.__name__}, got {v!r}")
        return v

