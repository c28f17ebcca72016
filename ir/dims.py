"""Symbolic dimensions: polynomials over named symbols with rational coefficients.

One graph serves prefill (``seq=S``) and decode (``seq=1``, growing ``past``), so shapes
are expressions such as ``past+seq`` or ``batch*seq``. A :class:`Dim` is a canonical
polynomial (a sum of coefficient * product-of-symbols terms); two equal expressions
always compare and hash equal, which is what shape inference needs. Coefficients are
``Fraction`` so that costs (bytes of an int4 tensor are half its elements) share the
same algebra; shapes themselves are checked to be integral where it matters.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from functools import lru_cache, total_ordering

from .errors import RduflowError

# A monomial is a sorted tuple of symbol names, with repeats for powers: ("b", "s", "s").
Monomial = tuple[str, ...]
_NO_SYMBOLS: frozenset[str] = frozenset()


class DimError(RduflowError, ValueError):
    """An operation on dimensions that has no exact answer (e.g. inexact division)."""


# Words of the text format; a symbol spelled like one would read back as something else
# (``{n = nan}``), so they are not symbol names.
KEYWORDS = frozenset({
    "module", "weight", "graph", "region", "return", "as", "loc", "dense", "nan", "inf", "true",
    "false", "shape_only", "memory", "external", "onnx", "npz", "offset", "length",
})
_SYMBOL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.$]*")


def is_symbol_name(name: str) -> bool:
    """Whether ``name`` can name a dimension symbol (an identifier, not a keyword)."""
    return isinstance(name, str) and _SYMBOL_RE.fullmatch(name) is not None and name not in KEYWORDS


@total_ordering
class Dim:
    """An immutable polynomial; ints and Dims mix freely in arithmetic."""

    __slots__ = ("_terms", "_hash", "_int")

    def __init__(self, terms: Mapping[Monomial, Fraction | int] | None = None):
        clean = {m: c if type(c) is Fraction else Fraction(c) for m, c in (terms or {}).items() if c}
        self._terms: dict[Monomial, Fraction] = dict(sorted(clean.items(), key=_term_key)) if len(clean) > 1 else clean
        # The value of a constant integer, else None: shapes are mostly these, and arithmetic
        # and comparison on them take a fast path of plain ints.
        self._int: int | None = None
        # A constant hashes like the number it equals, since it compares equal to it.
        if not self._terms:
            self._hash = hash(0)
            self._int = 0
        elif len(self._terms) == 1 and () in self._terms:
            c = self._terms[()]
            self._hash = hash(c)
            if c.denominator == 1:
                self._int = c.numerator
        else:
            self._hash = hash(tuple(self._terms.items()))

    # -- construction ------------------------------------------------------------------
    @staticmethod
    def const(value: int | Fraction) -> Dim:
        return _const(value)

    @staticmethod
    def sym(name: str) -> Dim:
        if not is_symbol_name(name):
            raise DimError(
                f"{name!r} cannot name a dimension symbol: use letters, digits, '_', '.' or '$', "
                f"starting with a letter or '_', and none of the words {', '.join(sorted(KEYWORDS))}"
            )
        return Dim({(name,): 1})

    @staticmethod
    def of(value: DimLike) -> Dim:
        if isinstance(value, Dim):
            return value
        if isinstance(value, str):
            from .parser import parse_dim

            return parse_dim(value)
        if isinstance(value, bool) or not isinstance(value, (numbers.Integral, Fraction)):
            raise TypeError(f"cannot make a dimension from {value!r}")
        return Dim.const(value if isinstance(value, Fraction) else int(value))

    # -- queries -----------------------------------------------------------------------
    @property
    def terms(self) -> dict[Monomial, Fraction]:
        return dict(self._terms)

    @property
    def is_const(self) -> bool:
        return self._int is not None or (len(self._terms) == 1 and () in self._terms)  # terms are distinct

    @property
    def symbols(self) -> frozenset[str]:
        if self._int is not None:
            return _NO_SYMBOLS
        return frozenset(s for m in self._terms for s in m)

    def const_value(self) -> Fraction:
        if not self.is_const:
            raise DimError(f"dimension {self} is symbolic")
        return self._terms.get((), Fraction(0))

    def __int__(self) -> int:
        if self._int is not None:
            return self._int
        v = self.const_value()
        if v.denominator != 1:
            raise DimError(f"dimension {self} is not an integer")
        return int(v)

    def __float__(self) -> float:
        return float(self.const_value())

    def __bool__(self) -> bool:
        # Like an int: only the zero polynomial is false.
        return bool(self._terms)

    def maybe_int(self) -> int | None:
        """The integer value if this is a constant integer, else None."""
        return self._int

    # -- arithmetic --------------------------------------------------------------------
    def __add__(self, other: DimLike) -> Dim:
        o = Dim.of(other)
        if self._int is not None and o._int is not None:
            return _const(self._int + o._int)
        terms = dict(self._terms)
        for m, c in o._terms.items():
            terms[m] = terms.get(m, Fraction(0)) + c
        return Dim(terms)

    __radd__ = __add__

    def __neg__(self) -> Dim:
        return Dim({m: -c for m, c in self._terms.items()})

    def __sub__(self, other: DimLike) -> Dim:
        return self + (-Dim.of(other))

    def __rsub__(self, other: DimLike) -> Dim:
        return Dim.of(other) - self

    def __mul__(self, other: DimLike) -> Dim:
        o = Dim.of(other)
        if self._int is not None and o._int is not None:
            return _const(self._int * o._int)
        terms: dict[Monomial, Fraction] = {}
        for m1, c1 in self._terms.items():
            for m2, c2 in o._terms.items():
                m = tuple(sorted(m1 + m2))
                terms[m] = terms.get(m, Fraction(0)) + c1 * c2
        return Dim(terms)

    __rmul__ = __mul__

    def __truediv__(self, other: DimLike) -> Dim:
        """Exact division by a constant or by a single term (``batch*seq*64 / seq``)."""
        o = Dim.of(other)
        if not o._terms:
            raise DimError(f"cannot divide {self} by zero")
        if len(o._terms) != 1:
            raise DimError(f"cannot divide {self} by {o}: divisor is not a single term")
        (dm, dc), = o._terms.items()
        terms: dict[Monomial, Fraction] = {}
        for m, c in self._terms.items():
            rest = list(m)
            for s in dm:
                if s not in rest:
                    raise DimError(f"cannot divide {self} by {o} exactly")
                rest.remove(s)
            terms[tuple(rest)] = c / dc
        return Dim(terms)

    def __rtruediv__(self, other: DimLike) -> Dim:
        return Dim.of(other) / self

    def __floordiv__(self, other: DimLike) -> Dim:
        """Floor division of constants; for symbolic dims, division that must be exact."""
        q = self / other
        if self.is_const and Dim.of(other).is_const:
            return Dim.const(self.const_value() // Dim.of(other).const_value())
        if any(c.denominator != 1 for c in q._terms.values()):
            raise DimError(f"{self} is not divisible by {other}")
        return q

    def __rfloordiv__(self, other: DimLike) -> Dim:
        return Dim.of(other) // self

    # -- substitution and evaluation ---------------------------------------------------
    def subs(self, env: Mapping[str, DimLike]) -> Dim:
        result = Dim()
        for m, c in self._terms.items():
            term = Dim.const(c)
            for s in m:
                term = term * (Dim.of(env[s]) if s in env else Dim.sym(s))
            result = result + term
        return result

    def evaluate(self, env: Mapping[str, int]) -> Fraction:
        missing = self.symbols - set(env)
        if missing:
            raise DimError(f"no value for symbol(s) {', '.join(sorted(missing))} in {self}")
        return self.subs(env).const_value()

    # -- comparison --------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if type(other) is Dim:
            if self._int is not None and other._int is not None:
                return self._int == other._int
            return self._terms == other._terms
        if type(other) is int and self._int is not None:
            return self._int == other
        if isinstance(other, (numbers.Integral, Fraction)) and not isinstance(other, bool):
            other = Dim.of(other)
        return isinstance(other, Dim) and self._terms == other._terms

    def __lt__(self, other: DimLike) -> bool:
        # Only constants have an order; symbolic comparison is not decidable here.
        return self.const_value() < Dim.of(other).const_value()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Dim({str(self)!r})"

    def __str__(self) -> str:
        if not self._terms:
            return "0"
        out = ""
        for i, (m, c) in enumerate(self._terms.items()):
            neg = c < 0
            body = _format_term(m, abs(c))
            if i == 0:
                out = ("-" if neg else "") + body
            else:
                out += ("-" if neg else "+") + body
        return out


DimLike = Dim | int | Fraction | str


@lru_cache(maxsize=4096)
def _const(value: int | Fraction) -> Dim:
    # Dims are immutable, so the common small constants are shared.
    return Dim({(): value})


def _term_key(item: tuple[Monomial, Fraction]) -> tuple:
    # Higher degree first, then by name; the constant term comes last.
    m, _ = item
    return (-len(m), m)


def _format_term(m: Monomial, c: Fraction) -> str:
    parts = list(m)
    num, den = c.numerator, c.denominator
    if not parts:
        return str(num) if den == 1 else f"{num}/{den}"
    if num != 1:
        parts.insert(0, str(num))
    body = "*".join(parts)
    return body if den == 1 else f"{body}/{den}"


Shape = tuple[Dim, ...]


def shape_of(dims: Iterable[DimLike]) -> Shape:
    return tuple(Dim.of(d) for d in dims)


def numel(shape: Iterable[Dim]) -> Dim:
    n = Dim.const(1)
    for d in shape:
        n = n * d
    return n


def concrete(shape: Iterable[Dim]) -> tuple[int, ...] | None:
    """The shape as ints, or None when any dimension is symbolic."""
    out = []
    for d in shape:
        v = d.maybe_int()
        if v is None:
            return None
        out.append(v)
    return tuple(out)
