"""A node's attributes with typed, checked accessors."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, helper, numpy_helper

from .context import ConversionError
from .dtypes import ir_dtype

_A = AttributeProto.AttributeType


class NodeAttrs:
    def __init__(self, node: onnx.NodeProto):
        self._raw = {a.name: a for a in node.attribute}

    def __contains__(self, name: str) -> bool:
        return name in self._raw

    def _get(self, name: str, kinds: tuple[int, ...], default: Any) -> Any:
        a = self._raw.get(name)
        if a is None:
            return default
        if a.type not in kinds:
            raise ConversionError(f"attribute '{name}' is {_A.Name(a.type)}, expected "
                                  f"{' or '.join(_A.Name(k) for k in kinds)}")
        return helper.get_attribute_value(a)

    def int(self, name: str, default: Any = None) -> Any:
        return self._get(name, (_A.INT,), default)

    def float(self, name: str, default: Any = None) -> Any:
        return self._get(name, (_A.FLOAT,), default)

    def str(self, name: str, default: Any = None) -> Any:
        v = self._get(name, (_A.STRING,), default)
        return v.decode() if isinstance(v, bytes) else v

    def ints(self, name: str, default: Any = None) -> Any:
        v = self._get(name, (_A.INTS,), default)
        return tuple(v) if v is not None else None

    def floats(self, name: str, default: Any = None) -> Any:
        v = self._get(name, (_A.FLOATS,), default)
        return tuple(v) if v is not None else None

    def tensor(self, name: str) -> np.ndarray | None:
        t = self._get(name, (_A.TENSOR,), None)
        if t is None:
            return None
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise ConversionError(f"attribute '{name}' stores its tensor externally, which is not supported")
        ir_dtype(t.data_type, f"attribute '{name}'")
        try:
            return numpy_helper.to_array(t)
        except Exception as e:  # malformed tensor data: onnx raises several kinds
            raise ConversionError(f"attribute '{name}' holds an unreadable tensor: {e}") from None

    def tensor_proto(self, name: str) -> onnx.TensorProto | None:
        return self._get(name, (_A.TENSOR,), None)
