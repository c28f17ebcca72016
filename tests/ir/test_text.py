"""The text format, feature by feature: exact printed form, parsing back, and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rduflow.ir import (
    Builder, Dense, Dim, DType, Graph, IRError, InMemory, Module, ParseError, SymbolRef, TensorType,
    module_diff, parse_file, parse_module, print_graph, print_module, verify_module,
)
from rduflow.ir.printer import MAX_INLINE_ELEMENTS

GOLDEN = """\
module {name = "tiny", version = 2} {
  weight @wte : f32[16, 8] = external("tiny.bin", offset=0, length=512)
  graph @main(%ids: i64[batch, seq], %past: f32[batch, past, 8]) -> (f32[batch, past+seq, 8], i64[seq]) {
    %wte = weight() {ref = @wte} : f32[16, 8]
    %emb = gather(%wte, %ids) : f32[batch, seq, 8] loc("/wte/Gather")
    %kv = concat(%past, %emb) {axis = 1} : f32[batch, past+seq, 8]
    %pos = range() {limit = past+seq, start = past} : i64[seq]
    %0 = group(%kv) {kind = "fused"} : f32[batch, past+seq, 8] region(%x: f32[batch, past+seq, 8]) {
      %y = gelu(%x) {approximate = "tanh"} : f32[batch, past+seq, 8]
      return %y
    } loc("grp")
    return %0 as "hidden", %pos
  }
}
"""


def build_golden() -> Module:
    m = Module()
    m.attrs = {"version": 2, "name": "tiny"}
    from rduflow.ir import ExternalFile

    g = m.add_graph(Graph("main", [TensorType(["batch", "seq"], "i64"), TensorType(["batch", "past", 8], "f32")],
                          ["ids", "past"]))
    b = Builder(g, m)
    ids, past = g.args
    wte = b.weight("wte", TensorType([16, 8], "f32"), ExternalFile("tiny.bin", 0, 512))
    emb = b.emit("gather", wte, ids, name="emb", loc="/wte/Gather")
    kv = b.emit("concat", past, emb, axis=1, name="kv")
    pos = b.emit("range", start="past", limit="past+seq", name="pos")
    region = Graph("body", [kv.type], ["x"])
    region.set_outputs([Builder(region, m).emit("gelu", region.args[0], approximate="tanh", name="y")])
    grp = b.op("group", [kv], {"kind": "fused"}, regions=[region], loc="grp")
    g.set_outputs([grp.results[0], pos], ["hidden", None])
    return m


def test_builder_module_prints_exactly_the_golden_text():
    m = build_golden()
    verify_module(m)
    assert print_module(m) == GOLDEN


def test_golden_text_parses_to_the_same_structure():
    m = parse_module(GOLDEN)
    verify_module(m)
    assert module_diff(build_golden(), m) == []
    assert [r.name for op in m.main.ops for r in op.results] == ["wte", "emb", "kv", "pos", "0"]
    g = m.main
    assert [op.opname for op in g.ops] == ["weight", "gather", "concat", "range", "group"]
    assert g.ops[1].loc == "/wte/Gather" and g.ops[1].srcpos == "<string>:5:5"
    assert g.output_names == ["hidden", None]
    assert g.ops[3].attrs == {"start": Dim.of("past"), "limit": Dim.of("past+seq"), "delta": 1, "dtype": DType.i64}
    assert g.ops[4].regions[0].ops[0].attrs["approximate"] == "tanh"


def test_parse_file_records_file_positions_and_base_dir(tmp_path):
    p = tmp_path / "m.rdu"
    p.write_text(GOLDEN)
    m = parse_file(p)
    assert m.base_dir == tmp_path
    assert m.main.ops[2].srcpos == f"{p}:6:5"
    with pytest.raises(ParseError, match="cannot read"):
        parse_file(tmp_path / "missing.rdu")
    (tmp_path / "bin.onnx").write_bytes(b"\x08\xff\xfe\x00")
    with pytest.raises(ParseError, match="not a text file"):
        parse_file(tmp_path / "bin.onnx")


def test_byte_order_mark_is_tolerated_in_files(tmp_path):
    p = tmp_path / "bom.rdu"
    p.write_bytes("\ufeff".encode() + GOLDEN.encode())
    assert print_module(parse_file(p)) == GOLDEN


def test_comments_and_whitespace_are_ignored():
    text = GOLDEN.replace("{name", "// a comment\n{name").replace("    %kv", "\n\n    // kv\n    %kv")
    assert print_module(parse_module(text)) == GOLDEN


def _attr_roundtrip(value) -> object:
    m = Module()
    m.attrs = {"v": value}
    text = print_module(m)
    m2 = parse_module(text)
    assert print_module(m2) == text
    return m2.attrs["v"]


@pytest.mark.parametrize("value, text", [
    (7, "7"), (-3, "-3"), (2**80, str(2**80)),
    (1.5, "1.5"), (-0.0, "-0.0"), (1e-05, "1e-05"), (1e300, "1e+300"), (5e-324, "5e-324"), (-2.0, "-2.0"),
    (math.inf, "inf"), (-math.inf, "-inf"),
    ("", '""'), ('say "hi"\\', '"say \\"hi\\"\\\\"'), ("a\nb\tc\r", '"a\\nb\\tc\\r"'),
    ("\x00\x7f\u2028\ud800", '"\\x00\\x7f\\u2028\\ud800"'), ("é😀", '"é😀"'),
    (True, "true"), (False, "false"), (DType.bf16, "!bf16"), (DType.f8e4m3, "!f8e4m3"),
    (Dim.of("past+seq"), "past+seq"), (Dim.of("batch*seq"), "batch*seq"), (Dim.of("s/2-1"), "s/2-1"),
    (SymbolRef("w"), "@w"), (SymbolRef("a b"), '@"a b"'), (SymbolRef("nan"), '@"nan"'),
    ((), "[]"), ((1, (2.5, ("x", ())), DType.i4), '[1, [2.5, ["x", []]], !i4]'),
    (Dense(np.array([[1, 2]], dtype=np.int8)), "dense<i8[1, 2] [1, 2]>"),
])
def test_attribute_values_of_every_kind(value, text):
    m = Module()
    m.attrs = {"v": value}
    assert print_module(m) == f"module {{v = {text}}} {{\n}}\n"
    back = _attr_roundtrip(value)
    if isinstance(value, float) and not math.isnan(value):
        assert math.copysign(1, back) == math.copysign(1, value) and back == value
    elif not isinstance(value, float):
        assert back == value and type(back) is type(value)


def test_nan_attribute():
    assert math.isnan(_attr_roundtrip(math.nan))


def test_attribute_names_that_need_quotes():
    m = Module()
    m.attrs = {"a b": 1, "loc": 2, "x.y$": 3, "": 4, "1st": 5}
    text = print_module(m)
    assert text == 'module {"" = 4, "1st" = 5, "a b" = 1, "loc" = 2, x.y$ = 3} {\n}\n'
    assert parse_module(text).attrs == m.attrs


def test_declared_defaults_are_omitted_and_restored():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([2, 3], "f32")], ["x"]))
    b = Builder(g, m)
    y = b.emit("softmax", g.args[0], name="y")
    z = b.emit("softmax", y, axis=0, log=True, name="z")
    g.set_outputs([z])
    text = print_module(m)
    assert "%y = softmax(%x) : f32[2, 3]" in text
    assert "%z = softmax(%y) {axis = 0, log = true} : f32[2, 3]" in text
    ops = parse_module(text).main.ops
    assert ops[0].attrs == {"axis": -1, "log": False} and ops[1].attrs == {"axis": 0, "log": True}


def test_symbolic_shapes_and_dim_attributes():
    text = """\
module {
  graph @main(%x: f32[batch*seq, 2*d+1], %y: i8[past+seq, 3*past*seq]) -> (f32[batch, seq, 2*d+1]) {
    %r = reshape(%x) {shape = [batch, seq, 2*d+1]} : f32[batch, seq, 2*d+1]
    return %r
  }
}
"""
    m = parse_module(text)
    verify_module(m)
    assert print_module(m) == text
    assert m.main.args[1].type.shape[1] == Dim.of("3*seq*past")


def test_value_names_are_kept_unique_and_printable():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([2], "f32")] * 3, ["x", "x", "bad name"]))
    b = Builder(g, m)
    a = b.emit("add", g.args[0], g.args[1], name="x_1")
    c = b.emit("neg", a, name=None)
    g.set_outputs([c, a])
    text = print_module(m)
    assert "graph @main(%x: f32[2], %x_1: f32[2], %0: f32[2])" in text
    assert "%x_1_1 = add(%x, %x_1)" in text and "%1 = neg(%x_1_1)" in text
    assert "return %1, %x_1_1" in text
    assert print_module(parse_module(text)) == text


def test_regions_nest_and_are_isolated_in_naming():
    text = """\
module {
  graph @main(%x: f32[4]) -> (f32[4]) {
    %0 = section(%x) {unit = [0, 1]} : f32[4] region(%x: f32[4]) {
      %0 = group(%x) : f32[4] region(%x: f32[4]) {
        %1 = exp(%x) : f32[4]
        return %1
      } loc("inner")
      return %0
    } loc("outer")
    return %0
  }
}
"""
    m = parse_module(text)
    verify_module(m)
    assert print_module(m) == text
    inner = m.main.ops[0].regions[0].ops[0]
    assert inner.opname == "group" and inner.loc == "inner" and inner.regions[0].ops[0].opname == "exp"


def test_ops_without_results_and_multiple_results():
    text = """\
module {
  graph @main(%x: f32[6]) -> (f32[2], f32[4]) {
    %a, %b = split(%x) {axis = 0, sizes = [2, 4]} : f32[2], f32[4]
    group() {note = "no results"} region() {
      return
    }
    return %a, %b
  }
}
"""
    m = parse_module(text)
    verify_module(m)
    assert print_module(m) == text
    assert [r.name for r in m.main.ops[0].results] == ["a", "b"]


def test_large_constants_print_as_weight_references_never_data():
    m = Module()
    g = m.add_graph(Graph("main", [], []))
    b = Builder(g, m)
    b.weight("table", TensorType([2], "f32"))
    big = b.constant(np.arange(MAX_INLINE_ELEMENTS + 1, dtype=np.float32), name="table")
    small = b.constant(np.arange(MAX_INLINE_ELEMENTS, dtype=np.int16), name="small")
    g.set_outputs([big, small])
    text = print_module(m)
    assert "weight @table.1 : f32[257] = memory" in text
    assert "%table_1 = weight() {ref = @table.1} : f32[257]" in text
    assert "255" in text and "256.0" not in text  # small inline, large not
    m2 = parse_module(text)
    verify_module(m2)
    assert print_module(m2) == text
    assert big.defining_op.opname == "constant"  # printing does not change the module
    assert "%table_1 = weight() {ref = @table.1} : f32[257]" in print_graph(g)


def test_print_graph_alone():
    m = build_golden()
    text = print_graph(m.main)
    assert text.startswith("graph @main(%ids: i64[batch, seq], %past: f32[batch, past, 8])")
    assert text.endswith("  return %0 as \"hidden\", %pos\n}\n")


def test_unprintable_attribute_is_an_ir_error_naming_the_op():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([2], "f32")], ["x"]))
    op = Builder(g, m).op("neg", [g.args[0]], names=["y"])
    op.attrs["bad"] = {"a": 1}
    g.set_outputs([op.results[0]])
    with pytest.raises(IRError, match="'neg' defining %y: attribute 'bad'"):
        print_module(m)


def test_mutated_attribute_lists_still_print():
    m = Module()
    m.attrs = {"l": [1, [2, np.int64(3)], np.float32(0.5), np.bool_(True)]}
    assert print_module(m) == "module {l = [1, [2, 3], 0.5, true]} {\n}\n"


# -- errors: position and message -----------------------------------------------------------------------
def _err(text: str) -> ParseError:
    with pytest.raises(ParseError) as e:
        parse_module(text, "m.rdu")
    return e.value


_BODY = "module {\n  graph @main(%x: f32[4]) -> (f32[4]) {\n    // body\n    LINE4\n    return %y\n  }\n}\n"


@pytest.mark.parametrize("line4, col, message", [
    # 1234567890123456789012345
    ("%y = neg(%nope) : f32[4]", 14, "use of undefined value %nope"),
    ("%x = neg(%x) : f32[4]", 5, "value %x is defined twice"),
    ("%y = neg(%x) : q32[4]", 20, "unknown element type 'q32'"),
    ("%y = neg(%x) : f32[s/t]", 25, "cannot divide s by t exactly"),
    ("%y = neg(%x) : f32[nan]", 24, "'nan' cannot name a dimension symbol"),
    ("%y = neg {%x} : f32[4]", 14, "unexpected '{' \\(expected '\\('\\)"),
    ("%y = neg(%x) {}", 5, "'neg' names 1 result\\(s\\) but gives 0 type\\(s\\)"),
    ("%y = softmax(%x) {axis = 1.5} : f32[4]", 10, "'softmax': attribute 'axis' expects int, got 1.5"),
    ("%y = neg(%x) {a = dense<i8[1] [999]>} : f32[4]", 29, "999 is out of range for i8"),
])
def test_parse_errors_name_line_and_column(line4, col, message):
    import re

    with pytest.raises(ParseError) as e:
        parse_module(_BODY.replace("LINE4", line4), "m.rdu")
    assert (e.value.filename, e.value.line, e.value.column) == ("m.rdu", 4, col), str(e.value)
    assert str(e.value).startswith(f"m.rdu:4:{col}: ")
    assert re.search(message, str(e.value)), str(e.value)


@pytest.mark.parametrize("text, message", [
    ('module {\n  weight @w : f32[1] = memory\n  weight @w : f32[1] = memory\n}', "3:11: weight @w is declared twice"),
    ("module {\n  graph @g() -> () {\n    return\n  }\n  graph @g() -> () {\n    return\n  }\n}", "5:10: graph @g is defined twice"),
    ("module {\n  graph @g(%a: f32[1], %a: f32[1]) -> () {\n    return\n  }\n}", "2:24: argument %a is declared twice"),
    ("module {\n  graph @g(%a: f32[1]) -> (f32[2]) {\n    return %a\n  }\n}", "2:10: graph @g returns \\(f32\\[1\\]\\) but declares \\(f32\\[2\\]\\)"),
    ('module {a = 1, a = 2} {\n}', "1:16: attribute 'a' is given twice"),
    ('module {a = "\\q"} {\n}', "1:13: unknown escape"),
    ('module {a = "unterminated} {\n}', "1:13: unexpected character"),
    ('module {a = 1e999} {\n}', "1:13: 1e999 is out of range"),
    ('module {a = !f99} {\n}', "1:14: unknown element type '!f99'"),
    ("module {\n  graph @g() -> () {\n    return\n  }\n", "5:1: unexpected end of input"),
    ("module {\n  graph @g(%x: f32[4]) -> () {\n    %y = neg(%x", "3:16: unexpected end of input"),
    ("module {\n  graph @g() -> () {\n    return\n  }\n} trailing", "5:3: unexpected 'trailing'"),
])
def test_structural_parse_errors(text, message):
    import re

    e = _err(text)
    assert re.search(message, str(e)), str(e)


def test_parse_error_lists_what_was_expected():
    e = _err("module {\n  graph @g( -> () {\n")
    assert "expected" in str(e) and "')'" in str(e) and "a %value" in str(e)


def test_deeply_nested_regions_are_a_parse_error_not_a_crash():
    depth = 3000
    text = "module {\n graph @g() -> () {\n" + "group() region() {\n" * depth + "return\n}\n" * depth + "return\n}\n}\n"
    try:
        m = parse_module(text)
    except ParseError as e:
        assert "nested too deeply" in str(e)
    else:
        assert len(list(m.graphs["g"].walk())) == depth


def test_inmemory_weights_print_as_memory_and_lose_data_on_parse():
    m = Module()
    g = m.add_graph(Graph("main"))
    w = Builder(g, m).weight("w", TensorType([2], "f32"), InMemory(np.ones(2, dtype=np.float32)))
    g.set_outputs([w])
    m2 = parse_module(print_module(m))
    assert m.weights["w"].has_data and not m2.weights["w"].has_data
    assert module_diff(m, m2) == []
