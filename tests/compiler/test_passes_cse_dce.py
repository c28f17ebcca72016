"""cse and dce on before/expected pairs, with the interpreter agreeing before and after."""

import numpy as np

from rduflow.compiler.passes import PassManager, parse_pipeline
from rduflow.compiler.passes.testing import assert_same_results, assert_structural_equal
from rduflow.ir import Builder, Graph, InMemory, Module, TensorType, parse_module


def apply(pipeline: str, text: str):
    before = parse_module(text)
    after = before.clone()
    PassManager(parse_pipeline(pipeline)).run(after)
    return before, after


def check(pipeline: str, before_text: str, expected_text: str, env: dict | None = None):
    before, after = apply(pipeline, before_text)
    assert_structural_equal(after, parse_module(expected_text))
    if env is not None:
        assert_same_results(before, after, env)
    return after


# -- cse ---------------------------------------------------------------------------------------------------
def test_cse_merges_equal_ops_and_then_their_users():
    check("cse", """module { graph @main(%x: f32[n, 4]) -> (f32[n, 4]) {
        %a = exp(%x) : f32[n, 4]
        %b = exp(%x) : f32[n, 4]
        %c = neg(%a) : f32[n, 4]
        %d = neg(%b) : f32[n, 4]
        %r = sub(%c, %d) : f32[n, 4]
        return %r as "out" } }""",
          """module { graph @main(%x: f32[n, 4]) -> (f32[n, 4]) {
        %a = exp(%x) : f32[n, 4]
        %c = neg(%a) : f32[n, 4]
        %r = sub(%c, %c) : f32[n, 4]
        return %r as "out" } }""", {"n": 2})


def test_cse_commutative_operands_in_any_order():
    check("cse", """module { graph @main(%x: f32[4], %y: f32[4]) -> (f32[4], f32[4], f32[4], f32[4]) {
        %a = add(%x, %y) : f32[4]
        %b = add(%y, %x) : f32[4]
        %c = sub(%x, %y) : f32[4]
        %d = sub(%y, %x) : f32[4]
        return %a as "a", %b as "b", %c as "c", %d as "d" } }""",
          """module { graph @main(%x: f32[4], %y: f32[4]) -> (f32[4], f32[4], f32[4], f32[4]) {
        %a = add(%x, %y) : f32[4]
        %c = sub(%x, %y) : f32[4]
        %d = sub(%y, %x) : f32[4]
        return %a as "a", %a as "b", %c as "c", %d as "d" } }""", {})


def test_cse_keeps_ops_that_differ_in_attributes():
    text = """module { graph @main(%x: f32[4]) -> (f32[4], f32[4], f32[4], f32[4]) {
        %a = clip(%x) {min = 0.0} : f32[4]
        %b = clip(%x) {min = -0.0} : f32[4]
        %c = clip(%x) {min = 0.0} : f32[4]
        %d = clip(%x) {max = 0.0} : f32[4]
        return %a as "a", %b as "b", %c as "c", %d as "d" } }"""
    before, after = apply("cse", text)
    assert [op.results[0].name for op in after.main.ops] == ["a", "b", "d"]
    assert_same_results(before, after, {})


def test_cse_merges_equal_constants_and_weight_refs_but_not_unequal_ones():
    check("cse", """module {
        weight @w : f32[2] = shape_only
        graph @main() -> (f32[2], f32[2], f32[2], f32[2], f32[2]) {
        %a = constant() {value = dense<f32[2] [1.0, 2.0]>} : f32[2]
        %b = constant() {value = dense<f32[2] [1.0, 2.0]>} : f32[2]
        %c = constant() {value = dense<f32[2] [1.0, 3.0]>} : f32[2]
        %w1 = weight() {ref = @w} : f32[2]
        %w2 = weight() {ref = @w} : f32[2]
        return %a as "a", %b as "b", %c as "c", %w1 as "w1", %w2 as "w2" } }""",
          """module {
        weight @w : f32[2] = shape_only
        graph @main() -> (f32[2], f32[2], f32[2], f32[2], f32[2]) {
        %a = constant() {value = dense<f32[2] [1.0, 2.0]>} : f32[2]
        %c = constant() {value = dense<f32[2] [1.0, 3.0]>} : f32[2]
        %w1 = weight() {ref = @w} : f32[2]
        return %a as "a", %a as "b", %c as "c", %w1 as "w1", %w1 as "w2" } }""")


def test_cse_does_not_cross_region_boundaries_but_works_inside():
    check("cse", """module { graph @main(%x: f32[4]) -> (f32[4]) {
        %e = exp(%x) : f32[4]
        %g = group(%e) : f32[4] region(%y: f32[4]) {
          %a = exp(%y) : f32[4]
          %b = exp(%y) : f32[4]
          %c = add(%a, %b) : f32[4]
          return %c
        }
        %h = group(%e) : f32[4] region(%y: f32[4]) {
          %a = exp(%y) : f32[4]
          %b = exp(%y) : f32[4]
          %c = add(%a, %b) : f32[4]
          return %c
        }
        %r = add(%g, %h) : f32[4]
        return %r as "out" } }""",
          """module { graph @main(%x: f32[4]) -> (f32[4]) {
        %e = exp(%x) : f32[4]
        %g = group(%e) : f32[4] region(%y: f32[4]) {
          %a = exp(%y) : f32[4]
          %c = add(%a, %a) : f32[4]
          return %c
        }
        %h = group(%e) : f32[4] region(%y: f32[4]) {
          %a = exp(%y) : f32[4]
          %c = add(%a, %a) : f32[4]
          return %c
        }
        %r = add(%g, %h) : f32[4]
        return %r as "out" } }""", {})


def test_cse_keeps_the_name_callers_see():
    # %b is an unnamed output: after merging it must still be called "b", not "a".
    before, after = apply("cse", """module { graph @main(%x: f32[2]) -> (f32[2], f32[2]) {
        %a = exp(%x) : f32[2]
        %b = exp(%x) : f32[2]
        return %a, %b } }""")
    assert_same_results(before, after, {})
    assert after.main.output_names == [None, "b"]


# -- dce ---------------------------------------------------------------------------------------------------
def test_dce_removes_dead_chains_and_unreferenced_weights():
    check("dce", """module {
        weight @used : f32[4] = shape_only
        weight @dead : f32[4] = shape_only
        weight @never : f32[9] = shape_only
        graph @main(%x: f32[4], %unused_arg: f32[3]) -> (f32[4]) {
        %u = weight() {ref = @used} : f32[4]
        %d = weight() {ref = @dead} : f32[4]
        %a = mul(%d, %x) : f32[4]
        %b = exp(%a) : f32[4]
        %r = add(%x, %u) : f32[4]
        return %r as "out" } }""",
          """module {
        weight @used : f32[4] = shape_only
        graph @main(%x: f32[4], %unused_arg: f32[3]) -> (f32[4]) {
        %u = weight() {ref = @used} : f32[4]
        %r = add(%x, %u) : f32[4]
        return %r as "out" } }""")


def test_dce_inside_regions_and_of_unused_region_ops():
    check("dce", """module { graph @main(%x: f32[4]) -> (f32[4]) {
        %g = group(%x) : f32[4] region(%y: f32[4]) {
          %dead = exp(%y) : f32[4]
          %c = neg(%y) : f32[4]
          return %c
        }
        %h = group(%x) : f32[4] region(%y: f32[4]) {
          %c = neg(%y) : f32[4]
          return %c
        }
        return %g as "out" } }""",
          """module { graph @main(%x: f32[4]) -> (f32[4]) {
        %g = group(%x) : f32[4] region(%y: f32[4]) {
          %c = neg(%y) : f32[4]
          return %c
        }
        return %g as "out" } }""", {})


def test_dce_keeps_ops_it_does_not_know_to_be_pure():
    from rduflow.ir import Operation

    m = Module()
    g = m.add_graph(Graph("main", [TensorType([2], "f32")], ["x"]))
    g.append(Operation("mystery_side_effect", [g.args[0]], [TensorType([2], "f32")]))
    g.set_outputs([g.args[0]])
    PassManager(parse_pipeline("dce"), verify_each=False).run(m)
    assert [op.opname for op in g.ops] == ["mystery_side_effect"]


def test_dce_drops_in_memory_weight_and_keeps_used_data():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([2], "f32")], ["x"]))
    b = Builder(g, m)
    w = b.weight("w", TensorType([2], "f32"), InMemory(np.float32([1, 2])))
    b.weight("gone", TensorType([2], "f32"), InMemory(np.float32([3, 4])))
    g.set_outputs([b.emit("add", g.args[0], w)], ["y"])
    PassManager(parse_pipeline("dce")).run(m)
    assert list(m.weights) == ["w"]


def test_canonicalize_cse_dce_together():
    check("canonicalize,cse,dce", """module { graph @main(%x: f32[b, 4]) -> (f32[b, 4]) {
        %z = constant() {value = dense<f32[] [0.0]>} : f32[]
        %x0 = add(%x, %z) : f32[b, 4]
        %t1 = transpose(%x0) {perm = [1, 0]} : f32[4, b]
        %t2 = transpose(%t1) {perm = [1, 0]} : f32[b, 4]
        %e1 = exp(%t2) : f32[b, 4]
        %e2 = exp(%x) : f32[b, 4]
        %r = add(%e1, %e2) : f32[b, 4]
        return %r as "out" } }""",
          """module { graph @main(%x: f32[b, 4]) -> (f32[b, 4]) {
        %e1 = exp(%x) : f32[b, 4]
        %r = add(%e1, %e1) : f32[b, 4]
        return %r as "out" } }""", {"b": 3})
