"""``build_onnx``: a model name or config in, a standard ONNX ModelProto out."""

from __future__ import annotations

import json
import re

import onnx

from .config import ModelConfig, ModelError
from .onnx_writer import Dim, OnnxWriter
from .presets import get_config, is_tiny
from .transformer import DecoderBuilder, Shapes
from .weights import Precision, WeightStore

VARIANTS = ("prefill", "decode")
WEIGHT_MODES = ("shape-only", "random")
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def resolve(model: str | ModelConfig) -> ModelConfig:
    if isinstance(model, ModelConfig):
        return model
    if isinstance(model, str):
        return get_config(model)
    raise ModelError(f"model must be a preset name or a ModelConfig, got {type(model).__name__}")


def build_onnx(
    model: str | ModelConfig,
    variant: str = "prefill",
    *,
    weights: str | None = None,
    seed: int = 0,
    dtype: str = "f32",
    act_dtype: str | None = None,
    quant_block: int = 128,
    batch: int | str | None = None,
    seq: int | str | None = None,
    past: int | str | None = None,
) -> onnx.ModelProto:
    """Build one variant of a model as ONNX.

    ``weights`` defaults to ``"random"`` for the tiny-* presets and ``"shape-only"``
    otherwise. ``dtype`` is the weight precision (f32, bf16, f16, or int8/int4 weight-only
    quantized); ``act_dtype`` the activation precision of quantized models (default bf16).
    ``batch``, ``seq`` and ``past`` fix a dimension to an int or rename its symbol; left
    out they are the dim_params ``batch``, ``seq`` (1 for decode) and ``past``.
    """
    cfg = resolve(model)
    if variant not in VARIANTS:
        raise ModelError(f"unknown variant '{variant}'; choose prefill or decode")
    weights = weights or ("random" if is_tiny(cfg) else "shape-only")
    if weights not in WEIGHT_MODES:
        raise ModelError(f"unknown weights mode '{weights}'; choose shape-only or random")
    precision = Precision.of(dtype, act_dtype, quant_block)
    if variant == "prefill" and past is not None:
        raise ModelError("past applies to the decode variant; a prefill graph starts from an empty cache")
    shapes = Shapes(
        batch=_dim("batch", batch, "batch", minimum=1),
        seq=_dim("seq", seq, "seq" if variant == "prefill" else 1, minimum=1),
        past=_dim("past", past, "past", minimum=0) if variant == "decode" else None,
    )
    writer = OnnxWriter()
    store = WeightStore(writer, precision, random=weights == "random", seed=seed,
                        location=f"{cfg.name}.shape-only.bin")
    DecoderBuilder(cfg, precision, store, writer, shapes).build()
    meta = {
        "rduflow.model": cfg.name,
        "rduflow.variant": variant,
        "rduflow.weights": weights if weights == "shape-only" else f"random(seed={seed})",
        "rduflow.dtype": precision.weights,
        "rduflow.act_dtype": precision.act,
        "rduflow.config": json.dumps(cfg.to_dict(), sort_keys=True),
    }
    doc = (f"{cfg.name} {variant} ({cfg.family}), {precision.weights} weights, {precision.act} activations; "
           f"built by rduflow.models")
    return writer.model(f"{cfg.name}-{variant}".replace(".", "_"), meta, doc)


def _dim(what: str, value: int | str | None, default: Dim, minimum: int) -> Dim:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ModelError(f"{what} must be an int or a symbol name, got {value!r}")
    if isinstance(value, int):
        if value < minimum:
            raise ModelError(f"{what} must be at least {minimum}, got {value}")
        return value
    if value.isdigit():
        return _dim(what, int(value), default, minimum)
    if not _SYMBOL.fullmatch(value):
        raise ModelError(f"{what} symbol '{value}' is not an identifier")
    return value
