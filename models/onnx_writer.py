"""A small layer over ``onnx.helper`` that keeps generated graphs readable.

Every value gets a name the caller chooses (``model.layers.3.self_attn.q``), every node is
named after its first output, and constants shared across layers (reshape targets, axes)
are emitted once under a descriptive name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 21  # DequantizeLinear on INT4 tensors with blocked scales needs opset 21
IR_VERSION = 10  # the first IR version with INT4 element types

Dim = int | str  # a fixed extent or an ONNX dim_param


class OnnxWriter:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._names: set[str] = set()
        self._consts: dict[str, bytes] = {}

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise AssertionError(f"value name '{name}' used twice")  # a builder bug, not a user error
        self._names.add(name)
        return name

    # -- graph interface -------------------------------------------------------------------
    def input(self, name: str, elem_type: int, shape: Sequence[Dim]) -> str:
        self.inputs.append(helper.make_tensor_value_info(self._claim(name), elem_type, list(shape)))
        return name

    def output(self, name: str, elem_type: int, shape: Sequence[Dim]) -> None:
        if name not in self._names:
            raise AssertionError(f"graph output '{name}' is not produced by any node")
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))

    def initializer(self, tensor: TensorProto) -> str:
        self._claim(tensor.name)
        self.initializers.append(tensor)
        return tensor.name

    # -- nodes -----------------------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[str], out: str, **attrs: Any) -> str:
        return self.ops(op_type, inputs, [out], **attrs)[0]

    def ops(self, op_type: str, inputs: Sequence[str], outs: Sequence[str], **attrs: Any) -> list[str]:
        for o in outs:
            self._claim(o)
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outs), name=outs[0], **attrs))
        return list(outs)

    def const(self, name: str, value: Any, dtype: Any = None) -> str:
        """A Constant node; asking again for the same name and value returns the same one."""
        arr = np.asarray(value, dtype=dtype)
        key = arr.dtype.str.encode() + repr(arr.shape).encode() + arr.tobytes()
        if name in self._consts:
            if self._consts[name] != key:
                raise AssertionError(f"constant '{name}' requested with two different values")
            return name
        self._consts[name] = key
        return self.op("Constant", [], name, value=numpy_helper.from_array(arr, name))

    def model(self, graph_name: str, metadata: dict[str, str], doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers, doc_string=doc)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="rduflow.models")
        helper.set_model_props(m, metadata)
        return m
