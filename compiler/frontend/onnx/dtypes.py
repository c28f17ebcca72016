"""ONNX element types and the IR's."""

from __future__ import annotations

from onnx import TensorProto

from rduflow.ir import DType

from .errors import OnnxImportError

_TO_IR = {
    TensorProto.FLOAT: DType.f32, TensorProto.DOUBLE: DType.f64, TensorProto.FLOAT16: DType.f16,
    TensorProto.BFLOAT16: DType.bf16, TensorProto.FLOAT8E4M3FN: DType.f8e4m3, TensorProto.FLOAT8E5M2: DType.f8e5m2,
    TensorProto.INT64: DType.i64, TensorProto.INT32: DType.i32, TensorProto.INT16: DType.i16,
    TensorProto.INT8: DType.i8, TensorProto.INT4: DType.i4, TensorProto.UINT64: DType.u64,
    TensorProto.UINT32: DType.u32, TensorProto.UINT16: DType.u16, TensorProto.UINT8: DType.u8,
    TensorProto.UINT4: DType.u4, TensorProto.BOOL: DType.bool, TensorProto.STRING: DType.string,
}
_TO_ONNX = {v: k for k, v in _TO_IR.items()}


def ir_dtype(elem_type: int, what: str) -> DType:
    """The IR element type of an ONNX one; ``what`` names the tensor for the message."""
    dt = _TO_IR.get(elem_type)
    if dt is None:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else str(elem_type)
        supported = ", ".join(sorted(TensorProto.DataType.Name(k) for k in _TO_IR))
        raise OnnxImportError(f"{what} has element type {name}, which the IR lacks (supported: {supported})")
    return dt


def onnx_dtype(dt: DType) -> int:
    return _TO_ONNX[dt]
