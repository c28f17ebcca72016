"""Compiled programs compute what the model computes: fused, sectioned, sharded over 1, 2,
4 and 8 sockets, executed socket by socket with real collectives (``Compiled.run``)."""

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


@pytest.mark.parametrize("variant", ["prefill", "decode"])
def test_kv_heads_held_by_groups_of_sockets_keep_the_meaning(variant):
    """tiny-llama's 2 KV heads over 4 sockets: a KV head per pair of sockets, a query head per
    socket; the cache (decode: a past one in, appended in place) leaves a head per pair.
    (8 sockets, a KV head and its 2 query heads per group of 4, run in the test above.)"""
    m = tiny("tiny-llama", variant)
    env = SHAPES[variant]
    ins = inputs_for(m, env)
    c = compile_model(m, "sn40l", sockets=4, bindings=env)
    assert_close(c.run(ins), run(m, ins))
    spreads = {s.store: s.spread.text() for s in c.placed.attrs["memory.stores"]}
    assert spreads["present.*.key"] == spreads["present.*.value"] == "split:1:copies=2"
    assert spreads["model.layers.*.self_attn.q_proj.weight@split:1"] == "split:1"


@pytest.mark.parametrize("sockets", [4, 8])
def test_a_socket_holds_one_kv_head_of_the_cache_and_of_the_k_v_weights(sockets):
    """Not the whole, as replicating attention would: 1/2 of each (2 KV heads), per socket."""
    m = tiny("tiny-llama", "decode")
    c = compile_model(m, "sn40l", sockets=sockets, bindings=SHAPES["decode"])
    layer = c.placed.main.ops[1].regions[0]
    read: dict[str, int] = {}
    for op in layer.ops:
        if op.opname == "placed.mem_read":  # a cache is read in chunks along its length: add them up
            name = op.attrs["tensor"].split("@")[0].split("#")[0]
            read[name] = read.get(name, 0) + op.results[0].type.nbytes.const_value()
    for proj in ("k_proj", "v_proj"):
        whole = m.weights[f"model.layers.0.self_attn.{proj}.weight"].type.nbytes.const_value()
        assert read[f"model.layers.*.self_attn.{proj}.weight"] == whole // 2
    cache = 2 * 2 * 5 * 16 * 4  # batch, KV heads, past, head dim, f32
    assert read["present.*.key"] == read["present.*.value"] == cache // 2


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
