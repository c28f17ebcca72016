"""Counts read off a built ONNX graph: parameters and weight bytes (no import, no compiler).

``rduflow.compiler.model_stats`` adds the FLOPs and bytes of the imported graphs.
"""

from __future__ import annotations

import math

import onnx

from .weights import ELEM_TYPES

# The precision costs are quoted at: Llama-family checkpoints are published in bf16.
STATS_DTYPE = "bf16"


def parameter_count(model: onnx.ModelProto) -> int:
    scales = _scales(model)
    return sum(math.prod(t.dims) for t in model.graph.initializer if t.name not in scales)


def weight_bytes(model: onnx.ModelProto) -> int:
    bits = {e.onnx: e.bits for e in ELEM_TYPES.values()}
    return sum((math.prod(t.dims) * bits[t.data_type] + 7) // 8 for t in model.graph.initializer)


def _scales(model: onnx.ModelProto) -> set[str]:
    return {n.input[i] for n in model.graph.node if n.op_type == "DequantizeLinear" for i in (1, 2) if i < len(n.input)}
