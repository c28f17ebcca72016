"""canonicalize: each rewrite on a small before/expected pair, plus the interpreter agreeing before and after."""

import numpy as np
import pytest

from rduflow.compiler.passes import PassManager, parse_pipeline
from rduflow.compiler.passes.canonicalize import Canonicalize
from rduflow.compiler.passes.testing import assert_same_results, assert_structural_equal
from rduflow.ir import parse_module


def canonicalize(text: str, pipeline: str = "canonicalize"):
    before = parse_module(text)
    after = before.clone()
    PassManager(parse_pipeline(pipeline)).run(after)
    return before, after


def check(before_text: str, expected_text: str, env: dict | None = None, pipeline: str = "canonicalize"):
    before, after = canonicalize(before_text, pipeline)
    assert_structural_equal(after, parse_module(expected_text))
    assert_same_results(before, after, env or {})


# -- algebraic identities ---------------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    "add(%x, %z)", "add(%z, %x)", "sub(%x, %z)", "mul(%x, %o)", "mul(%o, %x)", "div(%x, %o)",
])
def test_identity_operand_is_dropped(expr):
    check(f"""module {{ graph @main(%x: f32[n, 3]) -> (f32[n, 3]) {{
        %z = constant() {{value = dense<f32[3] [0.0, 0.0, 0.0]>}} : f32[3]
        %o = constant() {{value = dense<f32[] [1.0]>}} : f32[]
        %r = {expr} : f32[n, 3]
        return %r as "out" }} }}""",
          """module { graph @main(%x: f32[n, 3]) -> (f32[n, 3]) { return %x as "out" } }""", {"n": 2})


@pytest.mark.parametrize("expr", ["sub(%z, %x)", "div(%o, %x)", "mul(%x, %z)", "add(%x, %o)"])
def test_non_identities_are_kept(expr):
    # 0 - x, 1 / x, x * 0 (NaN and inf make it unsafe for floats) and x + 1 are not x.
    text = f"""module {{ graph @main(%x: f32[3]) -> (f32[3]) {{
        %z = constant() {{value = dense<f32[] [0.0]>}} : f32[]
        %o = constant() {{value = dense<f32[] [1.0]>}} : f32[]
        %r = {expr} : f32[3]
        return %r }} }}"""
    before, after = canonicalize(text)
    assert [op.opname for op in after.main.ops][-1] == expr.split("(")[0]
    assert_same_results(before, after, {})


def test_identity_that_broadcasts_is_kept():
    # x: f32[3] + zeros f32[2, 3] is f32[2, 3]: not x.
    text = """module { graph @main(%x: f32[3]) -> (f32[2, 3]) {
        %z = constant() {value = dense<f32[2, 3] [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]>} : f32[2, 3]
        %r = add(%x, %z) : f32[2, 3]
        return %r } }"""
    before, after = canonicalize(text)
    assert [op.opname for op in after.main.ops] == ["constant", "add"]


def test_integer_identities():
    check("""module { graph @main(%x: i32[4]) -> (i32[4]) {
        %o = constant() {value = dense<i32[] [1]>} : i32[]
        %r = div(%x, %o) : i32[4]
        %z = constant() {value = dense<i32[4] [0, 0, 0, 0]>} : i32[4]
        %s = add(%z, %r) : i32[4]
        return %s } }""", """module { graph @main(%x: i32[4]) -> (i32[4]) { return %x as "s" } }""")


# -- data movement -------------------------------------------------------------------------------------
def test_reshape_of_reshape_and_same_shape_reshape():
    check("""module { graph @main(%x: f32[b, 6]) -> (f32[b, 3, 2], f32[b, 6]) {
        %a = reshape(%x) {shape = [b, 2, 3]} : f32[b, 2, 3]
        %c = reshape(%a) {shape = [b, 3, 2]} : f32[b, 3, 2]
        %d = reshape(%x) {shape = [b, 6]} : f32[b, 6]
        return %c, %d } }""",
          """module { graph @main(%x: f32[b, 6]) -> (f32[b, 3, 2], f32[b, 6]) {
        %c = reshape(%x) {shape = [b, 3, 2]} : f32[b, 3, 2]
        return %c, %x as "d" } }""", {"b": 2})


def test_reshape_chain_keeps_inner_reshape_with_other_users():
    check("""module { graph @main(%x: f32[6]) -> (f32[3, 2], f32[2, 3]) {
        %a = reshape(%x) {shape = [2, 3]} : f32[2, 3]
        %c = reshape(%a) {shape = [3, 2]} : f32[3, 2]
        return %c, %a } }""",
          """module { graph @main(%x: f32[6]) -> (f32[3, 2], f32[2, 3]) {
        %a = reshape(%x) {shape = [2, 3]} : f32[2, 3]
        %c = reshape(%x) {shape = [3, 2]} : f32[3, 2]
        return %c, %a } }""")


def test_transposes_compose():
    check("""module { graph @main(%x: f32[2, 3, 4]) -> (f32[3, 4, 2]) {
        %a = transpose(%x) {perm = [1, 0, 2]} : f32[3, 2, 4]
        %b = transpose(%a) {perm = [0, 2, 1]} : f32[3, 4, 2]
        return %b } }""",
          """module { graph @main(%x: f32[2, 3, 4]) -> (f32[3, 4, 2]) {
        %b = transpose(%x) {perm = [1, 2, 0]} : f32[3, 4, 2]
        return %b } }""", {})


def test_transposes_that_cancel_vanish():
    check("""module { graph @main(%x: f32[b, h, s, d]) -> (f32[b, h, s, d]) {
        %a = transpose(%x) {perm = [0, 2, 1, 3]} : f32[b, s, h, d]
        %c = transpose(%a) {perm = [0, 2, 1, 3]} : f32[b, h, s, d]
        return %c as "out" } }""",
          """module { graph @main(%x: f32[b, h, s, d]) -> (f32[b, h, s, d]) { return %x as "out" } }""",
          {"b": 1, "h": 2, "s": 3, "d": 2})


def test_square_transpose_that_swaps_is_kept():
    text = """module { graph @main(%x: f32[3, 3]) -> (f32[3, 3]) {
        %a = transpose(%x) {perm = [1, 0]} : f32[3, 3]
        return %a } }"""
    before, after = canonicalize(text)
    assert_structural_equal(after, before)


@pytest.mark.parametrize("op", [
    "identity(%x) : f32[n, 4]",
    "cast(%x) {to = !f32} : f32[n, 4]",
    "expand(%x) {shape = [n, 4]} : f32[n, 4]",
    "expand(%x) {shape = [4]} : f32[n, 4]",
    "transpose(%x) {perm = [0, 1]} : f32[n, 4]",
    "slice(%x) {axes = [0, 1], starts = [0, 0], ends = [n, 4]} : f32[n, 4]",
    "slice(%x) {axes = [1], starts = [-4], ends = [100]} : f32[n, 4]",
    "concat(%x) {axis = 1} : f32[n, 4]",
])
def test_no_op_is_removed(op):
    check(f"""module {{ graph @main(%x: f32[n, 4]) -> (f32[n, 4]) {{
        %r = {op}
        return %r as "out" }} }}""", """module { graph @main(%x: f32[n, 4]) -> (f32[n, 4]) { return %x as "out" } }""",
          {"n": 3})


@pytest.mark.parametrize("op", [
    "slice(%x) {axes = [1], starts = [0], ends = [4], steps = [-1]} : f32[n, 0]",
    "slice(%x) {axes = [1], starts = [1], ends = [4]} : f32[n, 3]",
    "cast(%x) {to = !f16} : f16[n, 4]",
    "expand(%x) {shape = [2, n, 4]} : f32[2, n, 4]",
])
def test_ops_that_change_something_are_kept(op):
    before, after = canonicalize(f"""module {{ graph @main(%x: f32[n, 4]) -> ({op.split(' : ')[1]}) {{
        %r = {op}
        return %r }} }}""")
    assert len(after.main.ops) == 1
    assert_same_results(before, after, {"n": 3})


def test_reversing_slice_of_same_shape_is_kept():
    text = """module { graph @main(%x: f32[4]) -> (f32[4]) {
        %r = slice(%x) {axes = [0], starts = [-1], ends = [-5], steps = [-1]} : f32[4]
        return %r } }"""
    before, after = canonicalize(text)
    assert [op.opname for op in after.main.ops] == ["slice"]
    assert_same_results(before, after, {})


# -- constant folding ------------------------------------------------------------------------------------
def test_constant_chain_folds_with_the_ops_own_semantics():
    check("""module { graph @main(%x: f32[2, 2]) -> (f32[2, 2]) {
        %a = constant() {value = dense<f32[4] [1.0, 2.0, 3.0, 4.0]>} : f32[4]
        %b = reshape(%a) {shape = [2, 2]} : f32[2, 2]
        %c = transpose(%b) {perm = [1, 0]} : f32[2, 2]
        %d = exp(%c) : f32[2, 2]
        %r = mul(%x, %d) : f32[2, 2]
        return %r } }""",
          f"""module {{ graph @main(%x: f32[2, 2]) -> (f32[2, 2]) {{
        %d = constant() {{value = dense<f32[2, 2] [{', '.join(repr(float(v)) for v in np.exp(np.float32([1, 3, 2, 4])))}]>}} : f32[2, 2]
        %r = mul(%x, %d) : f32[2, 2]
        return %r }} }}""")


def test_folding_respects_the_size_limit():
    text = """module { graph @main() -> (f32[8, 8]) {
        %a = constant() {value = dense<f32[] [2.0]>} : f32[]
        %b = expand(%a) {shape = [8, 8]} : f32[8, 8]
        return %b } }"""
    _, small = canonicalize(text, "canonicalize{fold-limit=63}")
    assert [op.opname for op in small.main.ops] == ["constant", "expand"]
    _, big = canonicalize(text, "canonicalize{fold-limit=64}")
    assert [op.opname for op in big.main.ops] == ["constant"]
    np.testing.assert_array_equal(big.main.ops[0].attrs["value"].array, np.full((8, 8), 2.0, np.float32))


def test_folding_multi_result_op_and_integer_semantics():
    # split folds into two constants; div on ints truncates toward zero (the op's own semantics).
    check("""module { graph @main() -> (i32[2], i32[1]) {
        %a = constant() {value = dense<i32[3] [-7, 7, 9]>} : i32[3]
        %b = constant() {value = dense<i32[] [2]>} : i32[]
        %q = div(%a, %b) : i32[3]
        %s, %t = split(%q) {axis = 0, sizes = [2, 1]} : i32[2], i32[1]
        return %s, %t } }""",
          """module { graph @main() -> (i32[2], i32[1]) {
        %s = constant() {value = dense<i32[2] [-3, 3]>} : i32[2]
        %t = constant() {value = dense<i32[1] [4]>} : i32[1]
        return %s, %t } }""")


def test_ops_without_constant_operands_or_with_symbolic_results_are_not_folded():
    text = """module { graph @main(%x: f32[n]) -> (f32[n], i64[n]) {
        %a = constant() {value = dense<f32[] [2.0]>} : f32[]
        %b = expand(%a) {shape = [n]} : f32[n]
        %c = add(%x, %b) : f32[n]
        %r = range() {limit = n, start = 0} : i64[n]
        return %c, %r } }"""
    before, after = canonicalize(text)
    assert_structural_equal(after, before)


def test_failing_evaluation_is_left_for_run_time():
    # gather out of range: folding must not crash; the op stays.
    text = """module { graph @main() -> (f32[1]) {
        %a = constant() {value = dense<f32[2] [1.0, 2.0]>} : f32[2]
        %i = constant() {value = dense<i64[1] [5]>} : i64[1]
        %g = gather(%a, %i) {axis = 0} : f32[1]
        return %g } }"""
    _, after = canonicalize(text)
    assert [op.opname for op in after.main.ops] == ["constant", "constant", "gather"]


def test_unused_pure_ops_are_erased_and_names_kept():
    _, after = canonicalize("""module { graph @main(%x: f32[2]) -> (f32[2]) {
        %unused = exp(%x) : f32[2]
        %a = constant() {value = dense<f32[2] [1.0, 2.0]>} : f32[2]
        %b = neg(%a) : f32[2]
        %r = add(%x, %b) : f32[2]
        return %r } }""")
    assert [(op.opname, op.results[0].name) for op in after.main.ops] == [("constant", "b"), ("add", "r")]


def test_regions_are_canonicalized_on_their_own():
    check("""module { graph @main(%x: f32[4]) -> (f32[4]) {
        %g = group(%x) : f32[4] region(%y: f32[4]) {
          %z = constant() {value = dense<f32[] [0.0]>} : f32[]
          %a = add(%y, %z) : f32[4]
          %e = exp(%a) : f32[4]
          return %e
        }
        return %g } }""",
          """module { graph @main(%x: f32[4]) -> (f32[4]) {
        %g = group(%x) : f32[4] region(%y: f32[4]) {
          %e = exp(%y) : f32[4]
          return %e
        }
        return %g } }""")


def test_options_are_checked():
    with pytest.raises(ValueError):
        Canonicalize(fold_limit=-1)
    assert Canonicalize(fold_limit=5).spec() == "canonicalize{fold-limit=5}"
