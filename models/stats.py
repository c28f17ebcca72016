"""Counts read off a built ONNX graph: parameters, active parameters and weight bytes (no
import, no compiler).

``rduflow.compiler.model_stats`` adds the FLOPs and bytes of the imported graphs.
"""

from __future__ import annotations

import math

import onnx
from onnx import numpy_helper

from .weights import ELEM_TYPES

# The precision costs are quoted at: Llama-family checkpoints are published in bf16.
STATS_DTYPE = "bf16"


def parameter_count(model: onnx.ModelProto) -> int:
    scales = _scales(model)
    return sum(math.prod(t.dims) for t in model.graph.initializer if t.name not in scales)


def active_parameter_count(model: onnx.ModelProto) -> int:
    """Parameters one token's forward pass uses: all of them, less the routed experts it skips.

    A routed expert table is an initializer (or its DequantizeLinear) that a ``Gather`` on
    axis 0 indexes by the indices output of a ``TopK``: a token reads ``k`` of its ``E``
    rows, so ``k / E`` of its elements count. Everything else counts whole, the embedding
    table included, as published active counts do (Mixtral 8x7B's 12.9B includes it). A
    dense model has no such Gather: its active count is its parameter count.
    """
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    idle = 0
    for n in model.graph.node:
        if n.op_type != "Gather" or any(a.name == "axis" and a.i != 0 for a in n.attribute):
            continue
        router = producer.get(n.input[1])
        if router is None or router.op_type != "TopK" or router.output[1] != n.input[1]:
            continue
        table = n.input[0]
        if table in producer and producer[table].op_type == "DequantizeLinear":
            table = producer[table].input[0]
        experts = inits[table].dims[0]
        k = int(_constant(producer[router.input[1]]).reshape(-1)[0])
        idle += math.prod(inits[table].dims) // experts * (experts - k)
    return parameter_count(model) - idle


def _constant(node: onnx.NodeProto):
    return numpy_helper.to_array(next(a.t for a in node.attribute if a.name == "value"))


def weight_bytes(model: onnx.ModelProto) -> int:
    bits = {e.onnx: e.bits for e in ELEM_TYPES.values()}
    return sum((math.prod(t.dims) * bits[t.data_type] + 7) // 8 for t in model.graph.initializer)


def _scales(model: onnx.ModelProto) -> set[str]:
    return {n.input[i] for n in model.graph.node if n.op_type == "DequantizeLinear" for i in (1, 2) if i < len(n.input)}
