"""Helpers shared by the op families: broadcasting, axes, argument checks."""

from __future__ import annotations

from collections.abc import Sequence

from ..dims import Dim, Shape
from ..opdef import TypeInferenceError
from ..types import TensorType


def broadcast(*shapes: Shape) -> Shape:
    """Numpy broadcasting over symbolic dims: equal dims, or one of them is 1."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dim: Dim | None = None
        for s in shapes:
            j = i - (rank - len(s))
            if j < 0:
                continue
            d = s[j]
            if d == 1:
                dim = dim if dim is not None else d
            elif dim is None or dim == 1:
                dim = d
            elif dim != d:
                raise TypeInferenceError(
                    f"shapes {' and '.join(_fmt(x) for x in shapes)} do not broadcast (dim {dim} vs {d})"
                )
        out.append(dim if dim is not None else Dim.const(1))
    return tuple(out)


def axis(a: int, rank: int) -> int:
    if not -rank <= a < max(rank, 1):
        raise TypeInferenceError(f"axis {a} out of range for rank {rank}")
    return a % rank if rank else 0


def axes(axs: Sequence[int], rank: int) -> tuple[int, ...]:
    out = tuple(sorted(axis(a, rank) for a in axs))
    if len(set(out)) != len(out):
        raise TypeInferenceError(f"repeated axis in {list(axs)}")
    return out


def int_indices(t: TensorType, what: str) -> None:
    if not t.dtype.is_int:
        raise TypeInferenceError(f"{what} indices must be integers, got {t.dtype}")


def same_dtype(types: Sequence[TensorType], what: str) -> None:
    dts = {t.dtype for t in types}
    if len(dts) > 1:
        raise TypeInferenceError(f"{what}: operand element types differ ({', '.join(sorted(str(d) for d in dts))})")


def _fmt(s: Shape) -> str:
    return "[" + ", ".join(str(d) for d in s) + "]"
