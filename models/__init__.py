"""The model library: standard ONNX graphs of published LLMs, built without downloading anything.

    from rduflow.models import build_onnx, get_config, list_presets, load_config_json
    model = build_onnx("llama-3.1-8b", "decode", dtype="bf16")   # shape-only weights
    tiny = build_onnx("tiny-llama", "prefill")                    # random weights, runnable

See docs/models.md for the graph conventions (inputs, outputs, cache, masks, weights).
"""

from .build import VARIANTS, WEIGHT_MODES, build_onnx
from .config import ModelConfig, ModelError, RopeScaling, load_config_json
from .presets import get_config, list_presets
from .weights import ACT_DTYPES, WEIGHT_DTYPES

__all__ = [
    "ACT_DTYPES", "ModelConfig", "ModelError", "RopeScaling", "VARIANTS", "WEIGHT_DTYPES", "WEIGHT_MODES",
    "build_onnx", "get_config", "list_presets", "load_config_json",
]
