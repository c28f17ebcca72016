"""Structural signatures: equal for graphs that compute alike, names aside (ir/signature.py)."""

from rduflow.ir import parse_module
from rduflow.ir.signature import graph_signature, op_signature

LAYER = """module {{
  weight @{w} : f32[4, 4] = external("w.bin", offset=0)
  graph @main(%x: f32[2, 4]) -> (f32[2, 4]) {{
    %w = weight() {{ref = @{w}}} : f32[4, 4]
    %y = matmul(%x, %w) : f32[2, 4]
    %z = group(%y) {{name = "{group}"}} : f32[2, 4] region(%a: f32[2, 4]) {{
      %b = {op}(%a, %a) : f32[2, 4]
      return %b
    }}
    return %z as "out"
  }}
}}"""


def _main(**kw):
    return parse_module(LAYER.format(**{"w": "layers.0.w", "group": "layers.0", "op": "add", **kw})).main


def test_names_declared_as_naming_attributes_do_not_count():
    assert graph_signature(_main()) == graph_signature(_main(w="layers.7.w", group="layers.7"))


def test_what_an_op_computes_counts():
    assert graph_signature(_main()) != graph_signature(_main(op="mul"))


def test_skip_drops_further_attributes():
    group = _main().ops[-1]
    renamed = _main(group="other").ops[-1]
    assert op_signature(group) == op_signature(renamed)
    assert op_signature(group, skip=("name",)) == op_signature(renamed, skip=("name",))
