"""Typed operation and module attributes.

Attribute values are plain immutable Python values (int, float, str, bool, DType, Dim and
tuples of those) plus the two wrappers below and records (:class:`AttrRecord`: frozen
dataclasses that print as a list of their fields). Each op declares the kind of every
attribute (:class:`AttrSpec`); construction coerces values to that kind, so an attribute
parsed from text and one built in code are equal and print identically. Module attributes
with a declared kind are listed in :mod:`.program`.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, get_type_hints

import ml_dtypes
import numpy as np

from .dims import KEYWORDS, Dim
from .dtypes import DType
from .errors import RduflowError


@dataclass(frozen=True)
class SymbolRef:
    """A reference to a module-level symbol, printed ``@name`` (weights, graphs)."""

    name: str

    def __str__(self) -> str:
        return f"@{quote_name(self.name)}"


class Dense:
    """A small constant tensor held inline in the IR (shape arithmetic, scalars, masks).

    The array is a private read-only copy. Two Denses are equal when their element types,
    shapes and bits are (so ``nan == nan`` and ``0.0 != -0.0``, as a constant should be).
    """

    __slots__ = ("array",)

    def __init__(self, array: Any, dtype: DType | None = None):
        arr = np.array(array, dtype=dtype.numpy if dtype else None, copy=True, order="C")
        if arr.dtype.kind in "US":
            arr = arr.astype(object)
        elif arr.dtype == object and not all(isinstance(x, str) for x in arr.reshape(-1)):
            raise TypeError(f"a dense constant holds numbers, bools or strings, not {array!r}")
        elif not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        DType.from_numpy(arr.dtype)  # rejects element types the IR has no name for
        arr.flags.writeable = False
        self.array = arr

    @property
    def dtype(self) -> DType:
        return DType.from_numpy(self.array.dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def _key(self) -> tuple:
        if self.array.dtype == object:
            return (self.array.dtype.str, self.array.shape, tuple(self.array.reshape(-1).tolist()))
        return (self.array.dtype.str, self.array.shape, self.array.tobytes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dense) and self.array.dtype == other.array.dtype and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

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
    RECORD = "record"  # an instance of AttrSpec.record (an AttrRecord)
    RECORDS = "records"  # a list of them


_MISSING = object()


class AttrError(RduflowError, ValueError):
    pass


class AttrRecord:
    """Base of records: frozen dataclasses held as one attribute value, read by field name.

    A record's text form is the list of its fields in declaration order (:meth:`to_attr`);
    :meth:`from_attr` reads that list back, checking each field against its annotation
    (int, float, str, bool, ``tuple[int, ...]``, ``tuple[str, ...]`` or another record).
    A record with another text form (a string, say) overrides both.
    """

    def to_attr(self) -> Any:
        return tuple(_field_to_attr(getattr(self, f.name)) for f in fields(self))

    @classmethod
    def from_attr(cls, value: Any) -> AttrRecord:
        kinds = _record_fields(cls)
        if not isinstance(value, tuple) or len(value) != len(kinds):
            raise AttrError(f"{cls.__name__} is written [{', '.join(kinds)}], not {_shown(value)}")
        args = {}
        for (name, kind), v in zip(kinds.items(), value):
            if isinstance(kind, type):
                try:
                    args[name] = record_of(kind, v)
                except AttrError as e:
                    raise AttrError(f"{cls.__name__} field '{name}': {e}") from None
            else:
                try:
                    args[name] = coerce(kind, v)
                except AttrError:
                    raise AttrError(f"{cls.__name__} field '{name}' expects {kind.value}, "
                                    f"got {_shown(v)}") from None
        return cls(**args)


def _field_to_attr(v: Any) -> Any:
    return v.to_attr() if isinstance(v, AttrRecord) else v


_KIND_OF_TYPE = {int: AttrKind.INT, float: AttrKind.FLOAT, str: AttrKind.STR, bool: AttrKind.BOOL,
                 tuple[int, ...]: AttrKind.INTS, tuple[str, ...]: AttrKind.STRS}


@cache
def _record_fields(cls: type) -> dict[str, AttrKind | type]:
    """Each field's kind (or record class), from the dataclass annotations."""
    hints = get_type_hints(cls)
    out: dict[str, AttrKind | type] = {}
    for f in fields(cls):
        t = hints[f.name]
        if isinstance(t, type) and issubclass(t, AttrRecord):
            out[f.name] = t
        elif t in _KIND_OF_TYPE:
            out[f.name] = _KIND_OF_TYPE[t]
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: a record field cannot be a {t}")
    return out


def record_of(cls: type[AttrRecord], value: Any, name: str = "") -> AttrRecord:
    """``value`` as a ``cls`` record: itself if it is one whose text reads back equal, else read
    from its text form (a list of fields). Raises :class:`AttrError` naming ``name``."""
    try:
        if isinstance(value, cls):
            _check_fields(value)
            if cls.from_attr(value.to_attr()) != value:
                raise AttrError(f"{value!r} prints as {format_attr(value)}, which reads back as another value")
            return value
        if isinstance(value, AttrRecord):
            raise AttrError(f"expects a {cls.__name__}, got a {type(value).__name__}")
        return cls.from_attr(value)
    except AttrError as e:
        raise AttrError(f"attribute '{name}': {e}" if name else str(e)) from None


def _check_fields(record: AttrRecord) -> None:
    cls = type(record)
    for name, kind in _record_fields(cls).items():
        v = getattr(record, name)
        if isinstance(kind, type):
            if not isinstance(v, kind):
                raise AttrError(f"{cls.__name__} field '{name}' expects a {kind.__name__}, got {v!r}")
            _check_fields(v)
            continue
        try:
            ok = _same(coerce(kind, v), v)
        except AttrError:
            ok = False
        if not ok:
            raise AttrError(f"{cls.__name__} field '{name}' expects {kind.value}, got {v!r}")


def _shown(value: Any) -> str:
    try:
        return format_attr(value)
    except TypeError:
        return repr(value)


@dataclass(frozen=True)
class AttrSpec:
    kind: AttrKind
    default: Any = _MISSING
    doc: str = ""
    record: type[AttrRecord] | None = None  # the record class of a RECORD or RECORDS attribute

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def coerce(self, value: Any, name: str = "") -> Any:
        """``value`` in this spec's canonical form, or :class:`AttrError` naming ``name``."""
        if self.kind is AttrKind.RECORD:
            return record_of(self.record, value, name)
        if self.kind is AttrKind.RECORDS:
            if not isinstance(value, (tuple, list)):
                raise AttrError(f"attribute '{name}' expects a list of {self.record.__name__}, "
                                f"got {_shown(value)}")
            return tuple(record_of(self.record, v, f"{name}[{i}]") for i, v in enumerate(value))
        return coerce(self.kind, value, name)

    def check(self, value: Any, name: str = "") -> None:
        """Raise :class:`AttrError` unless ``value`` is already in canonical form (typed
        records, not their text form), as code reading it by field name expects."""
        canonical = self.coerce(value, name)
        if not _same(canonical, value):
            what = f"a list of {self.record.__name__}" if self.kind is AttrKind.RECORDS else \
                self.record.__name__ if self.kind is AttrKind.RECORD else self.kind.value
            raise AttrError(f"attribute '{name}' expects {what}, got {_shown(value)}")


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


_LIST_OF = {AttrKind.INTS: AttrKind.INT, AttrKind.FLOATS: AttrKind.FLOAT,
            AttrKind.STRS: AttrKind.STR, AttrKind.DIMS: AttrKind.DIM}


def coerce(kind: AttrKind, value: Any, name: str = "") -> Any:
    """Convert ``value`` to the canonical form of ``kind`` or raise :class:`AttrError`."""
    try:
        if kind is AttrKind.INT:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise TypeError
            return int(value)
        if kind is AttrKind.FLOAT:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
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
            return Dim.of(value)
        if kind in _LIST_OF:
            # A string is iterable but is not a list of anything here.
            if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
                raise TypeError
            return tuple(coerce(_LIST_OF[kind], v, name) for v in value)
        if kind is AttrKind.DENSE:
            return value if isinstance(value, Dense) else Dense(value)
        if kind is AttrKind.SYMBOL:
            if isinstance(value, SymbolRef):
                return value
            if not isinstance(value, str):
                raise TypeError
            return SymbolRef(value)
        if kind is AttrKind.ANY:
            return _freeze(value)
        if kind in (AttrKind.RECORD, AttrKind.RECORDS):
            raise AttrError(f"{_where(name)}: a record attribute is coerced by its AttrSpec (it names the record)")
    except AttrError:
        raise
    except (TypeError, ValueError) as e:
        raise AttrError(f"{_where(name)} expects {kind.value}, got {value!r}") from e
    raise AssertionError(kind)


def _where(name: str) -> str:
    return f"attribute '{name}'" if name else "attribute"


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (bool, int, float, str, Dim, DType, SymbolRef, Dense, AttrRecord)):
        return value
    raise TypeError(f"unsupported attribute value {value!r}")


# -- text form (shared by the printer, the parser and diagnostics) --------------------------
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
    if isinstance(value, (Dim, SymbolRef)):
        return str(value)
    if isinstance(value, Dense):
        return format_dense(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, AttrRecord):
        return format_attr(value.to_attr())
    raise TypeError(f"cannot print attribute value {value!r}")


def format_float(x: float) -> str:
    """The shortest text that reads back as the same double (``-0.0`` included)."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    r = repr(float(x))
    return r if ("." in r or "e" in r) else r + ".0"


def _bits_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype(f"<u{dt.itemsize}")


def format_dense(d: Dense) -> str:
    dt = d.dtype
    flat = d.array.reshape(-1)
    if dt.is_float:
        # Decimal text is exact for every finite value and the infinities. NaNs other than
        # the type's canonical one keep their sign and payload as raw bits, ``0x7fc1``.
        canonical = np.array(np.nan, dtype=d.array.dtype).view(_bits_dtype(d.array.dtype))
        bits = flat.view(_bits_dtype(d.array.dtype))
        width = 2 * d.array.dtype.itemsize
        items = [
            format_float(float(v)) if not math.isnan(float(v)) or b == canonical else f"0x{int(b):0{width}x}"
            for v, b in zip(flat, bits)
        ]
    elif dt is DType.bool:
        items = ["true" if v else "false" for v in flat]
    elif dt is DType.string:
        items = [quote(str(v)) for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    shape = ", ".join(str(s) for s in d.shape)
    return f"dense<{dt.value}[{shape}] [{', '.join(items)}]>"


@dataclass(frozen=True)
class RawBits:
    """A dense element written as its bit pattern (``0x7fc1``): NaNs with a sign or payload."""

    bits: int


def _show(v: Any) -> str:
    return f"0x{v.bits:x}" if isinstance(v, RawBits) else format_attr(v)


def dense_from_values(dt: DType, shape: Sequence[int], values: Sequence[Any]) -> Dense:
    """Build a Dense from parsed scalars, refusing values the element type cannot hold."""
    n = int(np.prod(shape, dtype=object))
    if len(values) != n:
        raise AttrError(f"dense of shape {list(shape)} needs {n} value(s), has {len(values)}")
    npdt = dt.numpy
    if dt.is_float:
        udt = _bits_dtype(npdt)
        bits = np.zeros(n, dtype=udt)
        for i, v in enumerate(values):
            if isinstance(v, RawBits):
                if v.bits >= 1 << (8 * npdt.itemsize):
                    raise AttrError(f"bit pattern 0x{v.bits:x} is wider than {dt}")
                bits[i] = v.bits
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise AttrError(f"{dt} dense holds numbers, not {_show(v)}")
            try:
                fv = float(v)
            except OverflowError:
                raise AttrError(f"{v} is out of range for {dt}") from None
            with np.errstate(over="ignore"):
                x = np.array(fv, dtype=np.float64).astype(npdt)
            if math.isfinite(fv) and not np.isfinite(x.astype(np.float64)):
                raise AttrError(f"{v} is out of range for {dt}")
            if math.isinf(fv) and not np.isinf(x.astype(np.float64)):
                raise AttrError(f"{dt} has no infinity")
            bits[i] = x.view(udt)
        return Dense(bits.view(npdt).reshape(shape))
    if dt is DType.bool:
        if not all(isinstance(v, bool) for v in values):
            raise AttrError("bool dense holds true/false only")
        return Dense(np.array(values, dtype=np.bool_).reshape(shape))
    if dt is DType.string:
        if not all(isinstance(v, str) for v in values):
            raise AttrError("string dense holds quoted strings only")
        arr = np.empty(n, dtype=object)
        arr[:] = list(values)
        return Dense(arr.reshape(shape))
    info = ml_dtypes.iinfo(npdt)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise AttrError(f"{dt} dense holds integers, not {_show(v)}")
        if not info.min <= v <= info.max:
            raise AttrError(f"{v} is out of range for {dt} ({info.min} to {info.max})")
    wide = np.uint64 if dt is DType.u64 else np.int64
    return Dense(np.array(values, dtype=wide).astype(npdt).reshape(shape))


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_ESCAPE_RE = re.compile(r'\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)', re.S)


def quote(s: str) -> str:
    """A double-quoted string literal; unprintable characters are escaped, so it fits one line."""
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def unquote(literal: str) -> str:
    """The inverse of :func:`quote`; raises ``ValueError`` on an unknown escape."""
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        raise ValueError(f"not a string literal: {literal}")

    def one(m: re.Match) -> str:
        e = m.group(1)
        if e in _UNESCAPES:
            return _UNESCAPES[e]
        if len(e) > 1:
            code = int(e[1:], 16)
            if code > 0x10FFFF:
                raise ValueError(f"escape \\{e} is not a character")
            return chr(code)
        raise ValueError(f"unknown escape '\\{e}' in string (use \\\\ for a backslash)")

    return _ESCAPE_RE.sub(one, literal[1:-1])


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.$]*")


def quote_name(name: str) -> str:
    """A symbol or attribute name as written: bare if it reads back as itself, else quoted."""
    return name if _NAME_RE.fullmatch(name) and name not in KEYWORDS else quote(name)
