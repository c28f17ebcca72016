"""Shape arithmetic is folded at import: what reaches the compiler is the dataflow of the model.

Exporters compute shapes with tensors (``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``).
The importer evaluates those subgraphs itself, symbolically, and writes the results as dims
attributes (``reshape {shape = [batch, sequence_length, 4, 8]}``), so none of those ONNX nodes
leaves an op behind. The check runs on the imported graph as is, and again after the
``canonicalize,cse,dce`` passes.
"""

from __future__ import annotations

import onnx
import pytest

from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.compiler.frontend.onnx.importer import INLINE_LIMIT
from rduflow.compiler.passes import PassManager, parse_pipeline
from rduflow.ir import Module

EXPORTERS = ("torchscript", "dynamo")
# Nodes that make run-time data out of shapes: their outputs are not shape arithmetic.
_DATA_SOURCES = {"Range", "ConstantOfShape"}


def shape_arithmetic_nodes(model: onnx.ModelProto) -> set[str]:
    """Names of the ONNX nodes that compute only on shapes and constants (what must fold away)."""
    g = model.graph
    known = {t.name for t in g.initializer
             if t.data_type == onnx.TensorProto.INT64 and len(t.dims) <= 1 and (not t.dims or t.dims[0] <= INLINE_LIMIT)}
    nodes = set()
    for n in g.node:
        inputs = [i for i in n.input if i]
        if n.op_type in ("Shape", "Size", "Constant") or (
                n.op_type not in _DATA_SOURCES and inputs and all(i in known for i in inputs)):
            known.update(n.output)
            nodes.add(n.name)
    return nodes


def _variants(path) -> list[tuple[str, Module]]:
    imported = import_onnx(path)
    canonical = import_onnx(path)
    PassManager(parse_pipeline("canonicalize,cse,dce")).run(canonical)
    return [("imported", imported), ("canonicalized", canonical)]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_llama_decode_has_no_shape_arithmetic(hf_export, exporter):
    path = hf_export("llama", "decode", exporter).path
    model = onnx.load(path, load_external_data=False)
    shape_nodes = shape_arithmetic_nodes(model)
    assert len(shape_nodes) > 20, "the export should be full of shape arithmetic to fold"
    for stage, module in _variants(path):
        g = module.main
        left = sorted({op.loc for op in g.ops if op.loc in shape_nodes})
        assert not left, f"{stage}: shape arithmetic nodes left ops behind: {left[:10]}"
        # Nothing computes on import-time values alone: such an op would have been folded.
        known = set()
        for op in g.ops:
            if op.opname in ("constant", "dims", "weight"):
                known.update(op.results)
            elif op.operands and all(v in known for v in op.operands):
                pytest.fail(f"{stage}: {op.where()} computes on constants only")
        # Integer values that remain are positions and the attention mask, not shapes.
        ints = {op.opname for op in g.ops if any(r.type.dtype.is_int for r in op.results)}
        assert ints <= {"range", "dims", "add", "mul", "reshape", "expand", "concat", "max"}, ints
        assert sum(op.opname == "dims" for op in g.ops) <= 1


def test_llama_decode_reads_like_the_model(hf_export):
    module = import_onnx(hf_export("llama", "decode", "torchscript").path)
    text = str(module)
    # heads split with the model's own dim names, not -1 or 0 placeholders
    assert "{shape = [batch, sequence_length, 4, 8]}" in text
    # positions of the new tokens: past..past+seq, no shape tensors involved
    assert "range() {limit = past_sequence_length+sequence_length, start = past_sequence_length}" in text
    # grouped-query attention: 2 key/value heads expanded to the 4 query heads
    assert "{shape = [batch, 2, 2, past_sequence_length+sequence_length, 8]}" in text
    assert "{shape = [batch, 4, past_sequence_length+sequence_length, 8]}" in text
    assert "Shape" not in {op.loc.rsplit("/", 1)[-1].split("_")[0] for op in module.main.ops if op.loc}
