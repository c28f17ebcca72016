"""Typed operation attributes.

Attribute values are plain immutable Python values (int, float, str, bool, DType, Dim and
tuples of those) plus the two wrappers below. Each op declares the kind of every attribute
(:class:`AttrSpec`); construction coerces values to that kind, so an attribute parsed from
text and one built in code are equal and print identically.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dims import Dim
from .dtypes import DType
from .errors import RduflowError


@dataclass(frozen=True)
class SymbolRef:
    """A reference to a module-level symbol, printed ``@name`` (weights, graphs)."""

    name: str

    def __str__(self) -> str:
        return f"@{_quote_symbol(self.name)}"


class Dense:
    """A small constant tensor held inline in the IR (shape arithmetic, scalars, masks)."""

    __slots__ = ("array",)

    def __init__(self, array: Any, dtype: DType | None = None):
        arr = np.asarray(array, dtype=dtype.numpy if dtype else None)
        arr = np.ascontiguousarray(arr)
        arr.flags.writeable = False
        self.array = arr

    @property
    def dtype(self) -> DType:
        return DType.from_numpy(self.array.dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Dense)
            and self.array.dtype == other.array.dtype
            and self.array.shape == other.array.shape
            and bool(np.array_equal(self.array, other.array, equal_nan=self.array.dtype.kind == "f"))
        )

    def __hash__(self) -> int:
        return hash((self.array.dtype.str, self.array.shape, self.array.tobytes()))

    def __repr__(self) -> str:
        return f"Dense({self.array!r})"


class AttrKind(enum.Enum):
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    DTYPE = "dtype"
    DIM = "dim"
    INTS = "ints"
    FLOATS = "floats"
    STRS = "strs"
    DIMS = "dims"
    DENSE = "dense"
    SYMBOL = "symbol"
    ANY = "any"  # free-form (nested lists of the above): compiler annotations


_MISSING = object()


@dataclass(frozen=True)
class AttrSpec:
    kind: AttrKind
    default: Any = _MISSING
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _MISSING


class AttrError(RduflowError, ValueError):
    pass


def coerce(kind: AttrKind, value: Any, name: str = "") -> Any:
    """Convert ``value`` to the canonical form of ``kind`` or raise :class:`AttrError`."""
    where = f"attribute '{name}'" if name else "attribute"
    try:
        if kind is AttrKind.INT:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError
            return int(value)
        if kind is AttrKind.FLOAT:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise TypeError
            return float(value)
        if kind is AttrKind.STR:
            if not isinstance(value, str):
                raise TypeError
            return value
        if kind is AttrKind.BOOL:
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise TypeError
        if kind is AttrKind.DTYPE:
            return value if isinstance(value, DType) else DType(value)
        if kind is AttrKind.DIM:
            return Dim.of(int(value) if isinstance(value, np.integer) else value)
        if kind is AttrKind.INTS:
            return tuple(coerce(AttrKind.INT, v, name) for v in value)
        if kind is AttrKind.FLOATS:
            return tuple(coerce(AttrKind.FLOAT, v, name) for v in value)
        if kind is AttrKind.STRS:
            return tuple(coerce(AttrKind.STR, v, name) for v in value)
        if kind is AttrKind.DIMS:
            return tuple(coerce(AttrKind.DIM, v, name) for v in value)
        if kind is AttrKind.DENSE:
            return value if isinstance(value, Dense) else Dense(value)
        if kind is AttrKind.SYMBOL:
            return value if isinstance(value, SymbolRef) else SymbolRef(str(value))
        if kind is AttrKind.ANY:
            return _freeze(value)
    except AttrError:
        raise
    except (TypeError, ValueError) as e:
        raise AttrError(f"{where} expects {kind.value}, got {value!r}") from e
    raise AssertionError(kind)


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (bool, int, float, str, Dim, DType, SymbolRef, Dense)):
        return value
    raise TypeError(f"unsupported attribute value {value!r}")


# -- text form (shared by the printer and by diagnostics) ----------------------------------
def format_attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, DType):
        return f"!{value.value}"
    if isinstance(value, Dim):
        return str(value)
    if isinstance(value, SymbolRef):
        return str(value)
    if isinstance(value, Dense):
        return format_dense(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    raise TypeError(f"cannot print attribute {value!r}")


def format_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    r = repr(float(x))
    return r if ("." in r or "e" in r) else r + ".0"


def format_dense(d: Dense) -> str:
    dt = d.dtype
    flat = d.array.reshape(-1)
    if dt.is_float:
        items = [format_float(float(v)) for v in flat]
    elif dt is DType.bool:
        items = ["true" if v else "false" for v in flat]
    elif dt is DType.string:
        items = [quote(str(v)) for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    shape = ", ".join(str(s) for s in d.shape)
    return f"dense<{dt.value}[{shape}] [{', '.join(items)}]>"


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _quote_symbol(name: str) -> str:
    import re

    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.$]*", name) else quote(name)
