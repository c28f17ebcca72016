"""Models exported from Hugging Face by PyTorch's exporters compile and keep their meaning.

Their inputs carry an attention mask and dim names of the exporters' choosing
(``past_sequence_length``, or dynamo's ``s43``), and the mask is built inside the first
layer; compiled for 1, 2 and 8 sockets, the placed program gives the imported graph's
outputs, with the two decoder layers found and looped.
"""

import sys
from pathlib import Path

import pytest
from backendhelpers import assert_close
from rduflow.compiler.backend import compile_model
from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.ir import run
from rduflow.ir.interpreter import bind_symbols

sys.path.insert(0, str(Path(__file__).parent.parent / "frontend"))
from hf_models import export

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    return {(f, m): export(f, m, "torchscript", folder) for f, m in [("llama", "decode"), ("gpt2", "prefill")]}


@pytest.mark.parametrize("family, mode", [("llama", "decode"), ("gpt2", "prefill")])
def test_exported_model_compiles_and_matches(exports, family, mode):
    e = exports[(family, mode)]
    m = import_onnx(e.path)
    ins = e.inputs(2, 4 if mode == "prefill" else 1, 3)
    env = bind_symbols(m.main.args, [ins[a.name] for a in m.main.args])
    want = run(m, ins)
    for sockets in (1, 2, 8):
        c = compile_model(m, "sn40l", sockets=sockets, bindings=env)
        assert_close(c.run(ins), want)
        collectives = [op for s in c.placed.main.ops for op in s.regions[0].ops if op.opname == "placed.collective"]
        assert bool(collectives) == (sockets > 1)
        assert [op.attrs["repeat"] for op in c.placed.main.ops] == [1, 2, 1]  # the two layers, looped
