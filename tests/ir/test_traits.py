"""Op traits: declared on the definitions, asked with ``has_trait``."""

import pytest
from rduflow.ir import Trait, all_opdefs, get_opdef


def _with(trait: Trait) -> set[str]:
    return {name for name, d in all_opdefs().items() if d.has_trait(trait)}


def test_views_rearrange_one_operand():
    assert _with(Trait.VIEW) == {"reshape", "transpose", "slice", "split", "expand", "spmd.shard"}
    for name in _with(Trait.VIEW):
        assert get_opdef(name).operands[0] >= 1


def test_constant_like_ops_take_no_operands():
    assert _with(Trait.CONSTANT_LIKE) == {"weight", "constant", "dims"}
    assert all(get_opdef(n).operands == (0, 0) for n in _with(Trait.CONSTANT_LIKE))


def test_ops_are_pure_unless_they_have_effects():
    impure = set(all_opdefs()) - _with(Trait.PURE)
    assert impure == {"bind_dims"} | {n for n in all_opdefs() if n.startswith("placed.")}


def test_commutative_binaries():
    assert _with(Trait.COMMUTATIVE) == {"add", "mul", "max", "min", "equal", "and", "or", "xor",
                                        "bitwise_and", "bitwise_or"}
    assert all(get_opdef(n).operands == (2, 2) for n in _with(Trait.COMMUTATIVE))


def test_linearity():
    assert _with(Trait.ADDITIVE) == {"add", "sub", "neg", "identity", "reduce_sum", "reduce_mean"}
    assert _with(Trait.MULTILINEAR) == {"mul"}
    assert _with(Trait.LINEAR_IN_FIRST) == {"div"}


def test_inline_regions_are_calls():
    assert _with(Trait.INLINE_REGION) == {"group", "section", "placed.compute"}
    assert all(get_opdef(n).num_regions == 1 for n in _with(Trait.INLINE_REGION))


@pytest.mark.parametrize("name", ["add", "reshape", "placed.compute"])
def test_a_subclass_keeps_its_base_traits_unless_it_removes_them(name):
    d = get_opdef(name)
    base = d.__mro__[1]
    assert base.traits - d.traits <= {Trait.PURE}
