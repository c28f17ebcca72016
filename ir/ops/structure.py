"""Constants, weight references, and region-holding ops (fused groups, sections)."""

from __future__ import annotations

from ..attributes import AttrKind, AttrSpec
from ..opdef import Cost, OpDef, Trait, TypeInferenceError, register
from ..types import TensorType


@register
class Constant(OpDef):
    """A small tensor held inline (``dense<...>``)."""

    name = "constant"
    traits = OpDef.traits | {Trait.CONSTANT_LIKE}
    operands = (0, 0)
    kind = "constant"
    attrs = {"value": AttrSpec(AttrKind.DENSE)}

    @classmethod
    def infer(cls, types, attrs):
        v = attrs["value"]
        return [TensorType(v.shape, v.dtype)]

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        return [attrs["value"].array.copy()]

    @classmethod
    def cost(cls, ins, outs, attrs):
        return Cost.zero()


@register
class WeightRef(OpDef):
    """A module weight (``@name``): its type is the weight's; its data is read only to execute."""

    name = "weight"
    naming_attrs = ("ref",)
    traits = OpDef.traits | {Trait.CONSTANT_LIKE}
    operands = (0, 0)
    kind = "constant"
    attrs = {"ref": AttrSpec(AttrKind.SYMBOL)}

    @classmethod
    def infer(cls, types, attrs):
        raise TypeInferenceError("weight types come from the module's weight table")

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        return [ctx.load_weight(attrs["ref"].name)]

    @classmethod
    def cost(cls, ins, outs, attrs):
        # Reading a weight is charged to the op consuming it, not here.
        return Cost.zero()


class RegionOp(OpDef):
    """An op whose single region computes its results from its operands.

    Region arguments receive the operands in order; the region's outputs are the results.
    Attributes are open: passes annotate groups (kind, placement) freely.
    """

    operands = (0, None)
    num_regions = 1
    kind = "structure"
    traits = OpDef.traits | {Trait.INLINE_REGION}
    open_attrs = True

    @classmethod
    def infer(cls, types, attrs):
        raise TypeInferenceError(f"{cls.name} result types come from its region")

    @classmethod
    def verify(cls, op):
        from ..verifier import VerifyError

        (region,) = op.regions
        if [a.type for a in region.args] != [v.type for v in op.operands]:
            raise VerifyError(op, "region argument types differ from the operand types")
        if [v.type for v in region.outputs] != [r.type for r in op.results]:
            raise VerifyError(op, "region output types differ from the result types")

    @classmethod
    def evaluate(cls, inputs, attrs, ctx):
        return ctx.run_region(ctx.op.regions[0], inputs)

    @classmethod
    def cost(cls, ins, outs, attrs):
        raise TypeError("region op costs are the sum of their ops: use ir.cost.op_cost")


@register
class Group(RegionOp):
    """Operators fused to run as one streaming pipeline."""

    name = "group"
    naming_attrs = ("name",)


@register
class Section(RegionOp):
    """A unit of execution that fits one socket (the compiler back end cuts graphs into these)."""

    name = "section"
    naming_attrs = ("name",)


