"""Canonicalization: constant folding, algebraic identities, no-op and redundant data movement.

Every rewrite keeps the value of every result exactly, with one documented exception
shared with XLA's simplifier: ``x + 0`` becomes ``x`` for floats too, so ``-0.0 + 0.0``
(which is ``+0.0``) gives ``-0.0``; the two compare equal. Rewrites that can change a value
are not done: ``x * 0`` is not ``0`` for floats (NaN, inf), ``x - x`` is not ``0``.

Add a pattern by writing a :class:`RewritePattern` and listing it in :func:`patterns`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rduflow.ir import DType, Module, Operation, Trait, Value
from rduflow.ir.opdef import EvalContext, lookup_opdef
from rduflow.ir.printer import MAX_INLINE_ELEMENTS

from .base import ModulePass, option
from .context import PassContext
from .rewrite import RewritePattern, Rewriter, apply_patterns_greedily


def constant_array(v: Value) -> np.ndarray | None:
    op = v.defining_op
    return op.attrs["value"].array if op is not None and op.opname == "constant" else None


def splat(v: Value) -> Any:
    """The value every element of a constant equals (0 for a tensor of zeros), else None."""
    arr = constant_array(v)
    if arr is None or arr.size == 0 or arr.dtype == object:
        return None
    first = arr.flat[0]
    return first.item() if bool(np.all(arr == first)) else None


class RemoveNoOp(RewritePattern):
    """Ops that give back their operand: identity, cast to the same dtype, reshape or expand to
    the same shape, the identity transpose, a full-range slice, a concat of one operand."""

    opnames = frozenset({"identity", "cast", "reshape", "expand", "transpose", "slice", "concat"})

    def match_and_rewrite(self, op: Operation, rewriter: Rewriter) -> bool:
        if len(op.operands) != 1 or len(op.results) != 1:
            return False
        (x,) = op.operands
        if x.type != op.result.type:
            return False
        if op.opname == "transpose" and tuple(op.attrs["perm"]) != tuple(range(x.type.rank)):
            return False
        if op.opname == "slice" and not _full_range(op):
            return False
        rewriter.replace([x])
        return True


def _full_range(op: Operation) -> bool:
    """A step-1 slice starting at 0 on each axis; with an unchanged shape it must end at the end."""
    x = op.operands[0].type
    steps = op.attrs["steps"] or (1,) * len(op.attrs["axes"])
    for axis, start, step in zip(op.attrs["axes"], op.attrs["starts"], steps):
        s = start.maybe_int()
        if step != 1 or s is None:
            return False
        begin = x.shape[axis] + s if s < 0 else start
        if begin != 0:
            return False
    return True


class DropIdentityOperand(RewritePattern):
    """``x+0``, ``0+x``, ``x-0``, ``x*1``, ``1*x``, ``x/1`` -> ``x`` when the result has ``x``'s type
    (a constant that broadcasts ``x`` to a bigger shape is kept)."""

    opnames = frozenset({"add", "sub", "mul", "div"})
    # op -> (identity element, operand positions where it may stand)
    IDENTITIES: ClassVar[dict[str, tuple[int, tuple[int, ...]]]] = {
        "add": (0, (0, 1)), "sub": (0, (1,)), "mul": (1, (0, 1)), "div": (1, (1,)),
    }

    def match_and_rewrite(self, op: Operation, rewriter: Rewriter) -> bool:
        identity, positions = self.IDENTITIES[op.opname]
        for i in positions:
            other = op.operands[1 - i]
            if other.type == op.result.type and splat(op.operands[i]) == identity:
                rewriter.replace([other])
                return True
        return False


class ComposeReshapes(RewritePattern):
    """``reshape(reshape(x))`` -> ``reshape(x)``: row-major order makes the inner one irrelevant."""

    opnames = frozenset({"reshape"})

    def match_and_rewrite(self, op: Operation, rewriter: Rewriter) -> bool:
        inner = op.operands[0].defining_op
        if inner is None or inner.opname != "reshape":
            return False
        op.operands = [inner.operands[0]]
        return True


class ComposeTransposes(RewritePattern):
    """``transpose(transpose(x, p), q)`` -> ``transpose(x, r)`` with ``r[i] = p[q[i]]``."""

    opnames = frozenset({"transpose"})

    def match_and_rewrite(self, op: Operation, rewriter: Rewriter) -> bool:
        inner = op.operands[0].defining_op
        if inner is None or inner.opname != "transpose":
            return False
        p, q = inner.attrs["perm"], op.attrs["perm"]
        op.operands = [inner.operands[0]]
        op.attrs = {**op.attrs, "perm": tuple(p[i] for i in q)}
        return True


@dataclass
class FoldConstants(RewritePattern):
    """An op whose operands are all constants becomes constants, computed by the op's own
    reference semantics (``OpDef.evaluate``), when its results hold at most ``limit`` elements."""

    limit: int

    def match_and_rewrite(self, op: Operation, rewriter: Rewriter) -> bool:
        inputs = [constant_array(v) for v in op.operands]
        if not inputs or op.regions or any(a is None for a in inputs):
            return False
        opdef = lookup_opdef(op.opname)
        if opdef is None or not opdef.has_trait(Trait.PURE):
            return False
        shapes = [r.type.concrete_shape() for r in op.results]
        if any(s is None for s in shapes) or any(r.type.dtype is DType.string for r in op.results):
            return False
        if sum(int(np.prod(s, dtype=np.int64)) for s in shapes) > self.limit:
            return False
        try:
            outs = opdef.evaluate([a.copy() for a in inputs], op.attrs, EvalContext(env={}, op=op))
        except Exception:  # it fails at run time too: leave it for the interpreter to report there
            return False
        outs = [np.asarray(o) for o in outs]
        if len(outs) != len(op.results) or any(
                o.shape != s or o.dtype != r.type.dtype.numpy for o, s, r in zip(outs, shapes, op.results)):
            return False
        rewriter.replace([rewriter.constant(o) for o in outs])
        return True


def patterns(fold_limit: int) -> list[RewritePattern]:
    """The canonicalization patterns, cheapest first (forwarding an operand beats computing a constant)."""
    return [RemoveNoOp(), DropIdentityOperand(), ComposeReshapes(), ComposeTransposes(), FoldConstants(fold_limit)]


@dataclass(frozen=True)
class Canonicalize(ModulePass):
    """Fold constants, remove algebraic no-ops and redundant reshapes/transposes, erase dead ops."""

    name: ClassVar[str] = "canonicalize"
    # By default folded constants stay small enough to print inline, so `rduflow opt` output is self-contained.
    fold_limit: int = option(MAX_INLINE_ELEMENTS, "largest result, in elements, that constant folding may create")
    max_sweeps: int = option(10, "give up after this many sweeps over a graph without reaching a fixpoint")

    def __post_init__(self) -> None:
        if self.fold_limit < 0:
            raise ValueError(f"fold-limit must be >= 0, got {self.fold_limit}")
        if self.max_sweeps < 1:
            raise ValueError(f"max-sweeps must be >= 1, got {self.max_sweeps}")

    def apply(self, module: Module, ctx: PassContext) -> None:
        apply_patterns_greedily(module, patterns(self.fold_limit), max_sweeps=self.max_sweeps)
