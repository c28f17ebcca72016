"""Tensor types: a shape of (possibly symbolic) dimensions and an element type."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .dims import Dim, DimLike, Shape, concrete, numel, shape_of
from .dtypes import DType


@dataclass(frozen=True)
class TensorType:
    shape: Shape
    dtype: DType

    def __init__(self, shape: Iterable[DimLike], dtype: DType | str):
        object.__setattr__(self, "shape", shape_of(shape))
        object.__setattr__(self, "dtype", DType(dtype) if isinstance(dtype, str) else dtype)
        # Types key the verifier's and the signatures' tables: hashed hundreds of thousands of
        # times per compile, so the hash (the one dataclass would compute) is kept.
        object.__setattr__(self, "_hash", hash((self.shape, self.dtype)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        return TensorType, (self.shape, self.dtype)  # the hash is made afresh: str hashes differ per process

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> Dim:
        return numel(self.shape)

    @property
    def nbytes(self) -> Dim:
        return self.numel * Dim.const(self.dtype.nbytes)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset().union(*(d.symbols for d in self.shape)) if self.shape else frozenset()

    def concrete_shape(self) -> tuple[int, ...] | None:
        return concrete(self.shape)

    def subs(self, env: Mapping[str, DimLike]) -> TensorType:
        return TensorType([d.subs(env) for d in self.shape], self.dtype)

    def with_shape(self, shape: Iterable[DimLike]) -> TensorType:
        return TensorType(shape, self.dtype)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(self.shape, dtype)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


def bytes_of(types: Iterable[TensorType]) -> Dim:
    total = Dim.const(0)
    for t in types:
        total = total + t.nbytes
    return total

