"""One test per verifier diagnostic; each names the op, its loc() and where it was parsed."""

from __future__ import annotations

import re

import pytest

from rduflow.ir import (
    Builder, Graph, Module, Operation, TensorType, VerifyError, Weight, parse_module, verify_module,
)
from rduflow.ir.verifier import verify_graph


def _diags(m: Module) -> list[str]:
    with pytest.raises(VerifyError) as e:
        verify_module(m)
    assert str(e.value) == "\n".join(e.value.diagnostics)
    return e.value.diagnostics


def _one(m: Module, pattern: str) -> str:
    ds = _diags(m)
    hits = [d for d in ds if re.search(pattern, d)]
    assert hits, ds
    return hits[0]


def _parsed(body: str, args: str = "%x: f32[4]", outs: str = "", weights: str = "") -> Module:
    ret_types = outs
    return parse_module(f"module {{\n{weights}  graph @main({args}) -> ({ret_types}) {{\n{body}\n  }}\n}}\n", "m.rdu")


def test_valid_module_passes():
    m = _parsed('    %y = neg(%x) : f32[4] loc("a")\n    return %y', outs="f32[4]")
    verify_module(m)


def test_result_type_must_match_inference_and_names_op_loc_and_position():
    m = _parsed('    %y = neg(%x) : f32[5] loc("/layer/Neg")\n    return %y', outs="f32[5]")
    d = _one(m, "differ from inferred")
    assert d == ("@main: 'neg' defining %y loc(\"/layer/Neg\") at m.rdu:3:5: result type(s) (f32[5]) "
                 "differ from inferred (f32[4])")


def test_inference_failure_is_reported():
    m = _parsed("    %y = add(%x, %z) : f32[4]\n    return", args="%x: f32[4], %z: f32[3]")
    assert "do not broadcast" in _one(m, "'add' defining %y at m.rdu:3:5")


def test_unknown_op():
    m = _parsed("    %y = frobnicate(%x) : f32[4]\n    return")
    _one(m, "'frobnicate' defining %y at m.rdu:3:5: unknown op 'frobnicate'")


def test_wrong_arity():
    m = _parsed("    %y = neg(%x, %x) : f32[4]\n    return")
    _one(m, "'neg' defining %y at m.rdu:3:5: takes 1 operand\\(s\\), has 2")
    m = _parsed("    %y = concat() {axis = 0} : f32[4]\n    return")
    _one(m, "takes at least 1 operand\\(s\\), has 0")


def test_wrong_number_of_regions():
    m = _parsed("    %y = neg(%x) : f32[4] region(%a: f32[4]) {\n      return %a\n    }\n    return")
    _one(m, "'neg' defining %y .*must have 0 region\\(s\\), has 1")
    m = _parsed("    %y = group(%x) : f32[4]\n    return")
    _one(m, "must have 1 region\\(s\\), has 0")


def test_missing_required_attribute():
    m = _parsed("    %y = reshape(%x) : f32[2, 2]\n    return")
    _one(m, "'reshape' defining %y at m.rdu:3:5: missing required attribute 'shape'")


def test_unknown_attribute_on_a_closed_op():
    m = _parsed("    %y = neg(%x) {colour = \"red\"} : f32[4]\n    return")
    _one(m, "unknown attribute 'colour' \\(allowed: none\\)")
    m = _parsed("    %y = softmax(%x) {axes = [0]} : f32[4]\n    return")
    _one(m, "unknown attribute 'axes' \\(allowed: axis, log\\)")


def test_attribute_of_the_wrong_kind_set_after_construction():
    m = _parsed("    %y = softmax(%x) : f32[4]\n    return")
    m.main.ops[0].attrs["axis"] = "last"
    _one(m, "'softmax' defining %y at m.rdu:3:5: attribute 'axis' expects int, got 'last'")


def test_open_attribute_that_is_not_an_ir_value():
    m = _parsed("    %y = group(%x) : f32[4] region(%a: f32[4]) {\n      return %a\n    }\n    return")
    m.main.ops[0].attrs["note"] = {"not": "allowed"}
    _one(m, "attribute 'note' expects any")


def test_use_before_definition():
    m = _parsed("    %a = neg(%x) : f32[4]\n    %b = neg(%a) : f32[4]\n    return %b", outs="f32[4]")
    g = m.main
    g.ops.reverse()
    _one(m, "'neg' defining %b at m.rdu:4:5: operand #0 %a is used before it is defined")


def test_regions_are_isolated_from_above():
    m = _parsed("    %y = neg(%x) : f32[4]\n    %g = group(%y) : f32[4] region(%a: f32[4]) {\n      return %a\n    }\n    return")
    region = m.main.ops[1].regions[0]
    b = Builder(region, m)
    inner = b.emit("add", region.args[0], m.main.ops[0].results[0], name="leak")  # uses outer %y
    region.set_outputs([inner])
    d = _one(m, "not defined in this graph")
    assert d.startswith("@main/group#0: 'add' defining %leak: operand #1 %y is not defined in this graph")


def test_region_argument_and_result_types_must_match_the_op():
    text = "    %g = group(%x) : f32[4] region(%a: f32[3]) {\n      return %a\n    } loc(\"G\")\n    return"
    d = _one(_parsed(text), "region argument types differ")
    assert "'group' defining %g loc(\"G\") at m.rdu:3:5" in d
    text = "    %g = group(%x) : f32[5] region(%a: f32[4]) {\n      return %a\n    }\n    return"
    _one(_parsed(text), "region output types differ from the result types")


def test_region_with_wrong_parent():
    m = _parsed("    %g = group(%x) : f32[4] region(%a: f32[4]) {\n      return %a\n    }\n    return")
    m.main.ops[0].regions[0].parent_op = None
    _one(m, "region #0 has the wrong parent")


def test_weight_references():
    w = "  weight @w : f32[4] = shape_only\n"
    _one(_parsed("    %y = weight() {ref = @nope} : f32[4]\n    return", weights=w),
         "'weight' defining %y at m.rdu:4:5: refers to undeclared weight @nope")
    _one(_parsed("    %y = weight() {ref = @w} : f32[2]\n    return", weights=w),
         "result type must be the weight's type f32\\[4\\]")
    verify_module(_parsed("    %y = weight() {ref = @w} : f32[4]\n    return", weights=w))


def test_outputs_must_be_defined_in_the_graph():
    m = _parsed("    %g = group(%x) : f32[4] region(%a: f32[4]) {\n      %i = neg(%a) : f32[4]\n      return %i\n    }\n    return")
    inner = m.main.ops[0].regions[0].ops[0].results[0]
    m.main.set_outputs([inner])
    _one(m, "@main: output #0 %i is not defined in this graph")


def test_output_names_count():
    m = _parsed("    return %x", outs="f32[4]")
    m.main.output_names = ["a", "b"]
    _one(m, "@main: 2 output names for 1 outputs")


def test_ownership_links():
    m = _parsed("    %y = neg(%x) : f32[4]\n    return %y", outs="f32[4]")
    other = Graph("other", [TensorType([4], "f32")])
    m.main.args.append(other.args[0])
    _one(m, "@main: argument #1 %\\? belongs to another graph")
    m = _parsed("    %y = neg(%x) : f32[4]\n    return %y", outs="f32[4]")
    m.main.ops[0].parent = None
    _one(m, "op is listed in a graph that does not own it")
    m = _parsed("    %y = neg(%x) : f32[4]\n    %z = neg(%x) : f32[4]\n    return %y", outs="f32[4]")
    m.main.ops[1].results[0] = m.main.ops[0].results[0]
    ds = _diags(m)
    assert any("result defined twice" in d for d in ds) and any("belongs to another op" in d for d in ds)


def test_dimensions_must_be_non_negative_integers():
    m = _parsed("    return", args="%x: f32[-1, 3/2, s/2]")
    ds = _diags(m)
    assert any("argument #0 %x: type f32[-1, 3/2, s/2] has dimension -1" in d for d in ds)
    assert any("has dimension 3/2" in d for d in ds)
    assert not any("dimension s/2" in d for d in ds)  # symbolic: an even s is fine
    m = Module(weights=[Weight("w", TensorType([-2], "f32"))])
    _one(m, "weight @w: type f32\\[-2\\] has dimension -2")


def test_table_names_must_match():
    m = _parsed("    return")
    m.graphs["alias"] = m.graphs.pop("main")
    _one(m, "@alias: graph is listed under another name than its own \\(@main\\)")


def test_every_problem_is_reported_at_once():
    m = _parsed("    %a = frob(%x) : f32[4]\n    %b = neg(%x) : f32[9]\n    return")
    ds = _diags(m)
    assert len(ds) == 2 and "unknown op 'frob'" in ds[0] and "differ from inferred" in ds[1]


def test_verify_graph_without_module_skips_weight_table():
    g = Graph("g")
    op = Operation("weight", [], [TensorType([2], "f32")], {"ref": "w"})
    g.append(op)
    verify_graph(g)
    g.append(Operation("neg", [], [TensorType([2], "f32")]))
    with pytest.raises(VerifyError, match="takes 1 operand"):
        verify_graph(g)


def test_what_the_verifier_remembers_never_hides_a_problem():
    """Inferred types are remembered per op signature and well-formed types as such: an op
    with the signature of one already verified is still checked against its own results."""
    m = _parsed('    %y = neg(%x) : f32[4]\n    %z = neg(%x) : f32[4]\n    return %y, %z', outs="f32[4], f32[4]")
    verify_module(m)
    verify_module(m)
    m = _parsed('    %y = neg(%x) : f32[4]\n    %z = neg(%x) : f32[5]\n    return %y, %z', outs="f32[4], f32[5]")
    assert "result type(s) (f32[5]) differ from inferred (f32[4])" in _one(m, "defining %z")
