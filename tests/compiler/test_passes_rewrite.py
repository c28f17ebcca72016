"""The pattern-rewrite framework on its own: a pattern written outside canonicalize, the driver's guarantees."""

import pytest

from rduflow.compiler.passes import RewritePattern, apply_patterns_greedily
from rduflow.compiler.passes.rewrite import RewriteDidNotConverge
from rduflow.compiler.passes.testing import assert_same_results, assert_structural_equal
from rduflow.ir import parse_module, verify_module


class DoubleNegation(RewritePattern):
    """neg(neg(x)) -> x"""

    opnames = frozenset({"neg"})

    def match_and_rewrite(self, op, rewriter):
        inner = op.operands[0].defining_op
        if inner is None or inner.opname != "neg":
            return False
        rewriter.replace([inner.operands[0]])
        return True


class ExpandSub(RewritePattern):
    """sub(a, b) -> add(a, neg(b)): creates ops before the matched one."""

    opnames = frozenset({"sub"})

    def match_and_rewrite(self, op, rewriter):
        a, b = op.operands
        rewriter.replace([rewriter.emit("add", a, rewriter.emit("neg", b))])
        return True


def test_patterns_compose_to_a_fixpoint_in_program_order():
    # sub(x, neg(y)) -> add(x, neg(neg(y))) -> add(x, y): the new neg is looked at right away.
    before = parse_module("""module { graph @main(%x: f32[3], %y: f32[3]) -> (f32[3]) {
        %n = neg(%y) : f32[3]
        %r = sub(%x, %n) : f32[3] loc("model/sub")
        return %r as "out" } }""")
    after = before.clone()
    assert apply_patterns_greedily(after, [ExpandSub(), DoubleNegation()])
    verify_module(after)
    assert_structural_equal(after, parse_module("""module { graph @main(%x: f32[3], %y: f32[3]) -> (f32[3]) {
        %r = add(%x, %y) : f32[3] loc("model/sub")
        return %r as "out" } }"""))
    assert_same_results(before, after, {})
    assert not apply_patterns_greedily(after, [ExpandSub(), DoubleNegation()])


def test_replacing_with_a_different_type_is_refused():
    class Wrong(RewritePattern):
        opnames = frozenset({"exp"})

        def match_and_rewrite(self, op, rewriter):
            rewriter.replace([rewriter.emit("cast", op.operands[0], to="f16")])
            return True

    m = parse_module("""module { graph @main(%x: f32[3]) -> (f32[3]) {
        %e = exp(%x) : f32[3]
        return %e } }""")
    with pytest.raises(TypeError, match=r"types \(f16\[3\]\) differ from its results \(f32\[3\]\)"):
        apply_patterns_greedily(m, [Wrong()])


def test_a_pattern_that_never_settles_is_reported():
    class Spin(RewritePattern):
        def match_and_rewrite(self, op, rewriter):
            return True  # claims progress, changes nothing

    m = parse_module("""module { graph @main(%x: f32[3]) -> (f32[3]) {
        %e = exp(%x) : f32[3]
        return %e } }""")
    with pytest.raises(RewriteDidNotConverge, match=r"pattern Spin keeps rewriting 'exp'"):
        apply_patterns_greedily(m, [Spin()])
