"""Compiled programs compute what the model computes: fused, sectioned, sharded over 1, 2
and 8 sockets, executed socket by socket with real collectives (``Compiled.run``)."""

import pytest
from backendhelpers import SHAPES, assert_close, inputs_for, tiny
from rduflow.compiler.backend import compile_model
from rduflow.ir import run

TINY = ["tiny-llama", "tiny-gpt2", "tiny-mistral", "tiny-mixtral", "tiny-qwen2"]


@pytest.mark.parametrize("variant", ["prefill", "decode"])
@pytest.mark.parametrize("name", TINY)
def test_compiled_model_matches_the_graph(name, variant):
    m = tiny(name, variant)
    env = SHAPES[variant]
    ins = inputs_for(m, env)
    want = run(m, ins)
    for sockets in (1, 2, 8):
        c = compile_model(m, "sn40l", sockets=sockets, bindings=env)
        assert_close(c.run(ins), want)


@pytest.mark.parametrize("name, variant, sockets", [("tiny-llama", "decode", 2), ("tiny-gpt2", "prefill", 4)])
def test_unfused_program_matches_the_graph(name, variant, sockets):
    m = tiny(name, variant)
    env = SHAPES[variant]
    ins = inputs_for(m, env)
    c = compile_model(m, "sn40l", sockets=sockets, fusion="none", bindings=env)
    assert len(c.placed.main.ops) > 50  # one operator per section
    assert_close(c.run(ins), run(m, ins))


def test_other_inputs_same_program():
    """The program is compiled once; any inputs of its shapes run on it."""
    m = tiny("tiny-llama", "decode")
    c = compile_model(m, "sn40l", sockets=2, bindings=SHAPES["decode"])
    for seed in (1, 2):
        ins = inputs_for(m, SHAPES["decode"], seed)
        assert_close(c.run(ins), run(m, ins))
