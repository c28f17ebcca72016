"""Element types of the IR and their numpy counterparts.

bf16, fp8 and int4 have no numpy dtype of their own; ``ml_dtypes`` (a dependency of
onnx) provides them, so the interpreter can hold such tensors exactly.
"""

from __future__ import annotations

import enum
from fractions import Fraction

import ml_dtypes
import numpy as np


class DType(enum.Enum):
    f64 = "f64"
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    f8e4m3 = "f8e4m3"
    f8e5m2 = "f8e5m2"
    i64 = "i64"
    i32 = "i32"
    i16 = "i16"
    i8 = "i8"
    i4 = "i4"
    u64 = "u64"
    u32 = "u32"
    u16 = "u16"
    u8 = "u8"
    u4 = "u4"
    bool = "bool"
    string = "string"

    @property
    def bits(self) -> int:
        return _BITS[self]

    @property
    def nbytes(self) -> Fraction:
        """Bytes per element (a fraction for 4-bit types)."""
        return Fraction(self.bits, 8)

    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @property
    def is_int(self) -> bool:
        return self in _INTS

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(_NUMPY[self])

    @staticmethod
    def from_numpy(dt: np.dtype | type) -> DType:
        dt = np.dtype(dt)
        for k, v in _NUMPY.items():
            if np.dtype(v) == dt:
                return k
        if dt.kind in "US":
            return DType.string
        raise ValueError(f"numpy dtype {dt} has no IR element type")

    def __str__(self) -> str:
        return self.value


_BITS = {
    DType.f64: 64, DType.f32: 32, DType.f16: 16, DType.bf16: 16,
    DType.f8e4m3: 8, DType.f8e5m2: 8,
    DType.i64: 64, DType.i32: 32, DType.i16: 16, DType.i8: 8, DType.i4: 4,
    DType.u64: 64, DType.u32: 32, DType.u16: 16, DType.u8: 8, DType.u4: 4,
    DType.bool: 8, DType.string: 64,
}
_FLOATS = {DType.f64, DType.f32, DType.f16, DType.bf16, DType.f8e4m3, DType.f8e5m2}
_INTS = {DType.i64, DType.i32, DType.i16, DType.i8, DType.i4,
         DType.u64, DType.u32, DType.u16, DType.u8, DType.u4}
_NUMPY = {
    DType.f64: np.float64, DType.f32: np.float32, DType.f16: np.float16,
    DType.bf16: ml_dtypes.bfloat16,
    DType.f8e4m3: ml_dtypes.float8_e4m3fn, DType.f8e5m2: ml_dtypes.float8_e5m2,
    DType.i64: np.int64, DType.i32: np.int32, DType.i16: np.int16, DType.i8: np.int8,
    DType.i4: ml_dtypes.int4,
    DType.u64: np.uint64, DType.u32: np.uint32, DType.u16: np.uint16, DType.u8: np.uint8,
    DType.u4: ml_dtypes.uint4,
    DType.bool: np.bool_, DType.string: np.object_,
}
