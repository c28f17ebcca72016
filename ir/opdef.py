"""Operation definitions and their registry.

Each op is a subclass of :class:`OpDef` registered by name. It declares its attributes,
arity and :class:`Trait` set (the properties passes ask about with :meth:`OpDef.has_trait`,
never by listing op names) and supplies four things, all functions of types and attributes
only:

* ``infer``: result types from operand types (shape inference, symbolic dims included);
* ``verify``: extra checks beyond arity, attributes and inferred types;
* ``evaluate``: numpy reference semantics (used by the interpreter);
* ``cost``: FLOPs and bytes read/written, as :class:`Cost` polynomials over the symbols.

Costs are derived here once per op kind, never written per model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .attributes import AttrSpec
from .dims import Dim
from .errors import RduflowError
from .types import TensorType, bytes_of

if TYPE_CHECKING:
    from .core import Operation


class TypeInferenceError(RduflowError, ValueError):
    """Operand types or attributes an op cannot accept."""


@dataclass(frozen=True)
class Cost:
    flops: Dim
    bytes_read: Dim
    bytes_written: Dim

    @staticmethod
    def zero() -> Cost:
        z = Dim.const(0)
        return Cost(z, z, z)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops + other.flops, self.bytes_read + other.bytes_read,
                    self.bytes_written + other.bytes_written)

    def subs(self, env: Mapping[str, int]) -> Cost:
        return Cost(self.flops.subs(env), self.bytes_read.subs(env), self.bytes_written.subs(env))


@dataclass
class EvalContext:
    """What ``evaluate`` may need besides its inputs: symbol values and weights."""

    env: dict[str, int]
    load_weight: Any = None  # callable(name) -> np.ndarray
    run_region: Any = None  # callable(graph, inputs) -> list[np.ndarray]
    op: Operation | None = None

    def dim(self, d: Dim) -> int:
        return int(d.evaluate(self.env))

    def dims(self, ds: Sequence[Dim]) -> tuple[int, ...]:
        return tuple(self.dim(d) for d in ds)


class Trait(Enum):
    """A property of an op, declared on its definition (``OpDef.traits``)."""

    PURE = "pure"  # no effects: an unused one may be erased, two equal ones merged
    COMMUTATIVE = "commutative"  # its (two) operands may be swapped
    CONSTANT_LIKE = "constant_like"  # no operands, its value known before any input (weights, constants, shapes)
    VIEW = "view"  # its result is its one operand's elements rearranged (no arithmetic, no indices)
    INLINE_REGION = "inline_region"  # running it is running its region on its operands (a call)
    # Linearity, how partial sums pass through it (``shard``): f(x + y) = f(x) + f(y) with
    # ADDITIVE: every operand split into summands together; MULTILINEAR: any one operand,
    # the others fixed (a product); LINEAR_IN_FIRST: the first operand, the others fixed (a quotient).
    ADDITIVE = "additive"
    MULTILINEAR = "multilinear"
    LINEAR_IN_FIRST = "linear_in_first"


class OpDef:
    name: ClassVar[str]
    attrs: ClassVar[dict[str, AttrSpec]] = {}
    operands: ClassVar[tuple[int, int | None]] = (0, None)  # min, max (None: unbounded)
    num_regions: ClassVar[int] = 0
    # The one category reports group work by (FLOPs per kind): elementwise, matmul, reduction,
    # normalization, softmax, data_movement, shape, constant, structure, placed.
    kind: ClassVar[str] = "elementwise"
    traits: ClassVar[frozenset[Trait]] = frozenset({Trait.PURE})  # a subclass adds to or removes from its base's
    open_attrs: ClassVar[bool] = False  # accept attributes it does not declare (annotations)
    # Attributes that name things without changing what the op computes: structural
    # signatures (ir/signature.py) ignore them, so one decoder layer matches the next.
    naming_attrs: ClassVar[tuple[str, ...]] = ()
    doc: ClassVar[str] = ""

    @classmethod
    def has_trait(cls, trait: Trait) -> bool:
        return trait in cls.traits

    @classmethod
    def infer(cls, types: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        raise NotImplementedError(f"{cls.name}: no type inference")

    @classmethod
    def verify(cls, op: Operation) -> None:
        """Op-specific checks beyond arity, attribute kinds and type agreement."""

    @classmethod
    def evaluate(cls, inputs: list[np.ndarray], attrs: Mapping[str, Any], ctx: EvalContext) -> list[np.ndarray]:
        raise NotImplementedError(f"{cls.name}: no reference semantics")

    @classmethod
    def flops(cls, ins: Sequence[TensorType], outs: Sequence[TensorType], attrs: Mapping[str, Any]) -> Dim:
        return Dim.const(0)

    @classmethod
    def cost(cls, ins: Sequence[TensorType], outs: Sequence[TensorType], attrs: Mapping[str, Any]) -> Cost:
        return Cost(cls.flops(ins, outs, attrs), bytes_of(ins), bytes_of(outs))


_REGISTRY: dict[str, type[OpDef]] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"op '{cls.name}' registered twice")
    _REGISTRY[cls.name] = cls
    return cls


_loaded = False  # the built-in ops are registered (looked up hundreds of thousands of times per compile)


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        from . import ops  # noqa: F401  (registers the built-in ops)

        _loaded = True


def lookup_opdef(name: str) -> type[OpDef] | None:
    _ensure_loaded()
    return _REGISTRY.get(name)


def get_opdef(name: str) -> type[OpDef]:
    d = lookup_opdef(name)
    if d is None:
        raise KeyError(f"unknown op '{name}'")
    return d


def all_opdefs() -> dict[str, type[OpDef]]:
    _ensure_loaded()
    return dict(_REGISTRY)
