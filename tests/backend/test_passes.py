"""Each back-end pass on its own: what it decides, visible in the IR it leaves."""

import io

import numpy as np
import pytest
from backendhelpers import ODD_HEADS, SHAPES, assert_close, inputs_for, tiny
from rduflow.compiler.backend import CompileError, compile_model, shard
from rduflow.compiler.backend.bind import Bind
from rduflow.compiler.backend.execute import execute
from rduflow.compiler.backend.fuse import Fuse
from rduflow.compiler.backend.section import Sectioning
from rduflow.compiler.backend.shard import Shard
from rduflow.compiler.passes import (
    ALL,
    IRPrinter,
    PassContext,
    PassManager,
    PipelineError,
    available_passes,
    parse_pipeline,
)
from rduflow.ir import Builder, Graph, InMemory, Module, TensorType, print_module, run
from rduflow.compiler.target import load_arch


def _passes(module, *passes, target=None):
    PassManager(list(passes), context=PassContext(target=target)).run(module)
    return module


def _bound(name, variant):
    return _passes(tiny(name, variant), Bind(dims="batch=2,seq=3,past=5"))


def _ops(module, opname):
    return [op for g in module.graphs.values() for op in g.walk() if op.opname == opname]


# -- bind ---------------------------------------------------------------------------------------
def test_bind_fixes_shapes_and_asks_for_missing_ones():
    m = _bound("tiny-llama", "decode")
    assert not m.symbols
    with pytest.raises(Exception, match="past without a value.*--past"):
        _passes(tiny("tiny-llama", "decode"), Bind(dims="batch=1", complete=True))


# -- shard --------------------------------------------------------------------------------------
def _collectives(m):
    return [(op.attrs["kind"], str(op.results[0].type)) for op in _ops(m, "placed.collective")]


def test_shard_splits_heads_and_mlp_megatron_style():
    """2 sockets: Q/K/V/gate/up split by columns, O/down by rows, an all-reduce after each of
    the row-parallel projections; the KV cache arrives and leaves split by heads."""
    m = _passes(_bound("tiny-llama", "decode"), Shard(sockets=2))
    assert _collectives(m) == [("all_reduce", "f32[2, 1, 64]")] * 4
    shards = {(op.operands[0].name, op.attrs["axis"]) for op in _ops(m, "spmd.shard")}
    assert ("model.layers.0.self_attn.q_proj.weight", 1) in shards
    assert ("model.layers.0.self_attn.o_proj.weight", 0) in shards
    assert ("model.layers.0.mlp.down_proj.weight", 0) in shards
    assert m.attrs["spmd.args"][1].text() == "split:1"  # past_key_values.0.key, by KV head
    assert m.attrs["spmd.outputs"][0].text() == "split:2"  # logits, by vocabulary column


def _shards(m):
    return {op.operands[0].name: (op.attrs["parts"], op.attrs["stride"], str(op.results[0].type))
            for op in _ops(m, "spmd.shard")}


def test_shard_gives_each_kv_head_a_group_of_sockets():
    """tiny-llama has 2 KV heads and 4 query heads: over 4 sockets each KV head (its K/V
    columns, its cache) is held by a pair of sockets, and each socket of the pair takes one
    of the head's 2 query heads, so Q, O and the MLP stay split 4 ways."""
    m = _passes(_bound("tiny-llama", "decode"), Shard(sockets=4))
    assert _collectives(m) == [("all_reduce", "f32[2, 1, 64]")] * 4  # after O and down, nothing gathered
    shards = _shards(m)
    assert shards["model.layers.0.self_attn.k_proj.weight"] == (2, 2, "f32[64, 16]")  # a head per pair
    assert shards["model.layers.0.self_attn.v_proj.weight"] == (2, 2, "f32[64, 16]")
    assert shards["model.layers.0.self_attn.q_proj.weight"] == (4, 1, "f32[64, 16]")  # a query head each
    assert shards["model.layers.0.self_attn.o_proj.weight"] == (4, 1, "f32[16, 64]")
    assert shards["model.layers.0.mlp.down_proj.weight"] == (4, 1, "f32[32, 64]")
    assert tuple(s.text() for s in m.attrs["spmd.args"][1:]) == ("split:1:copies=2",) * 4  # the past KV cache, a head per pair
    assert tuple(s.text() for s in m.attrs["spmd.outputs"][1:]) == ("split:1:copies=2",) * 4
    assert str(m.main.args[1].type) == "f32[2, 1, 5, 16]"


def test_shard_gives_kv_and_query_heads_to_groups_when_sockets_outnumber_query_heads():
    """Over 8 sockets the 4 query heads do not go round either: each group of 4 sockets holds
    a KV head with its 2 query heads, and the attention's output is cut 8 ways locally for O."""
    m = _passes(_bound("tiny-llama", "decode"), Shard(sockets=8))
    assert _collectives(m) == [("all_reduce", "f32[2, 1, 64]")] * 4
    shards = _shards(m)
    assert shards["model.layers.0.self_attn.q_proj.weight"] == (2, 4, "f32[64, 32]")
    assert shards["model.layers.0.self_attn.k_proj.weight"] == (2, 4, "f32[64, 16]")
    assert shards["model.layers.0.self_attn.context_merged"] == (4, 1, "f32[2, 1, 8]")  # a local slice
    assert shards["model.layers.0.self_attn.o_proj.weight"] == (8, 1, "f32[8, 64]")


@pytest.mark.parametrize("sockets", [2, 4])
def test_shard_replicates_attention_when_heads_do_not_divide(sockets):
    """3 KV heads over 2 or 4 sockets: attention stays whole, the MLP is split."""
    m = _passes(_passes(tiny(ODD_HEADS, "decode"), Bind(dims="batch=2,past=5")), Shard(sockets=sockets))
    assert _collectives(m) == [("all_reduce", "f32[2, 1, 48]")] * 2
    assert not any("self_attn" in name for name in _shards(m))
    assert tuple(s.text() for s in m.attrs["spmd.args"][1:]) == ("replicated",) * 4


def _kv_cache_then_a_max_over_heads():
    """x @ wk cut into 2 heads of 4 and appended to a past cache; the max over heads needs them all."""
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([2, 1, 8], "f32"), TensorType([2, 2, 3, 4], "f32")], ["x", "past"]))
    b = Builder(g, m)
    w = b.weight("wk", TensorType([8, 8], "f32"), InMemory(np.random.default_rng(0).standard_normal((8, 8), "f4")))
    k = b.emit("transpose", b.emit("reshape", b.emit("matmul", g.args[0], w), shape=[2, 1, 2, 4]), perm=[0, 2, 1, 3])
    present = b.emit("concat", g.args[1], k, axis=2)
    g.set_outputs([present, b.emit("reduce_max", present, axes=[1])], ["present", "y"])
    return m


@pytest.mark.parametrize("rounds", [1, 2])
def test_an_unsettled_plan_gathers_heads_held_by_groups(monkeypatch, rounds):
    """Stopped early, the layout assignment still computes the graph: 2 heads over 4 sockets are gathered
    from a head cut over a pair (round 1) or from a head per pair (round 2)."""
    monkeypatch.setattr(shard, "MAX_ROUNDS", rounds)
    m = _kv_cache_then_a_max_over_heads()
    ins = inputs_for(m, {})
    sharded = _passes(m.clone(), Shard(sockets=4))
    assert [k for k, _ in _collectives(sharded)] == ["all_gather"]
    assert_close(execute(sharded, ins), run(m, ins))


def test_shard_splits_a_fused_qkv_projection_by_blocks():
    m = _passes(_bound("tiny-gpt2", "prefill"), Shard(sockets=4))
    (qkv,) = [op for op in _ops(m, "spmd.shard") if op.operands[0].name == "transformer.h.0.attn.c_attn.weight"]
    assert qkv.attrs["blocks"] == (64, 64, 64) and str(qkv.results[0].type) == "f32[64, 48]"


@pytest.mark.parametrize("sockets", [2, 8])
def test_sharded_graph_runs_like_the_model(sockets):
    m = _bound("tiny-qwen2", "prefill")
    ins = inputs_for(m, SHAPES["prefill"])
    assert_close(execute(_passes(m.clone(), Shard(sockets=sockets)), ins), run(m, ins))


# -- fuse ---------------------------------------------------------------------------------------
def test_fuse_auto_makes_a_group_per_layer_with_attention_inside():
    m = _passes(_bound("tiny-llama", "prefill"), Fuse())
    groups = m.main.ops
    assert [g.attrs["fusion"] for g in groups] == ["block", "layer", "layer", "block"]
    assert [g.attrs["name"] for g in groups[1:3]] == ["model.layers.0", "model.layers.1"]
    layer = groups[1].regions[0]
    assert len(layer.ops) > 20  # a whole decoder layer in one group
    (attention,) = [op for op in layer.ops if op.opname == "group"]
    assert attention.attrs["fusion"] == "attention"
    assert [op.opname for op in attention.regions[0].ops if op.opname in ("matmul", "softmax")] == \
        ["matmul", "softmax", "matmul"]
    assert 'group(' in print_module(m) and 'fusion = "attention"' in print_module(m)


def test_fuse_none_puts_every_operator_in_its_own_group():
    m = _bound("tiny-llama", "prefill")
    ops = [op for op in m.main.ops if op.opname not in ("weight", "constant", "dims")]
    _passes(m, Fuse(mode="none"))
    assert len(m.main.ops) == len(ops)
    assert all(len([o for o in g.regions[0].ops if o.opname not in ("weight", "constant", "dims")]) == 1
               for g in m.main.ops)


@pytest.mark.parametrize("mode", ["auto", "none"])
def test_fused_graph_runs_like_the_model(mode):
    m = _bound("tiny-mistral", "decode")
    ins = inputs_for(m, SHAPES["decode"])
    assert_close(execute(_passes(m.clone(), Shard(sockets=2), Fuse(mode=mode)), ins), run(m, ins))


# -- section ------------------------------------------------------------------------------------
def test_sections_split_a_layer_that_does_not_fit():
    """On a chip of 12 PCUs a decoder layer (more compute units than that) is cut in parts."""
    small = load_arch("sn40l", {"pcu.count": 12, "pmu.count": 12, "grid.rows": 4, "grid.cols": 6, "agcu.count": 4})
    m = tiny("tiny-llama", "prefill")
    c = compile_model(m, small, bindings=SHAPES["prefill"])
    assert len(c.placed.main.ops) > 4
    assert all(s.pcus <= 12 and s.pmus <= 12 for s in c.summary.sections)
    ins = inputs_for(m, SHAPES["prefill"])
    assert_close(c.run(ins), run(m, ins))


def test_a_model_too_big_for_memory_is_an_error_with_sizes():
    tight = load_arch("sn40l", {"memory.hbm.capacity_gib": 1e-4, "memory.ddr.capacity_gib": 1e-4})
    with pytest.raises(CompileError, match=r"does not fit: each of the 1 socket\(s\) needs [0-9.]+ KiB "
                                           r"\(weights .*\) and sn40l has .* HBM \+ .* DDR per socket"):
        compile_model(tiny("tiny-llama", "decode"), tight, bindings=SHAPES["decode"])


def test_activations_spill_to_ddr_before_weights():
    """HBM that holds the weights and nothing more: inputs, outputs and activations go to DDR."""
    m = _passes(_bound("tiny-llama", "prefill"), Fuse())
    weights = sum(w.type.nbytes.const_value() for w in m.weights.values())
    arch = load_arch("sn40l", {"memory.hbm.capacity_gib": float(weights / 2**30)})
    _passes(m, Sectioning(), target=arch)
    spilled = m.attrs["memory.ddr"]
    assert "input:input_ids" in spilled and "output:logits" in spilled
    assert not any(s.startswith("weight:") for s in spilled)


# -- lower: repetition, memory -------------------------------------------------------------------
def test_identical_layers_become_one_repeated_section():
    c = compile_model(tiny("tiny-llama", "decode"), "sn40l", sockets=2, bindings=SHAPES["decode"])
    names = [(op.attrs["name"], op.attrs["repeat"]) for op in c.placed.main.ops]
    assert names == [("model.embed_tokens", 1), ("model.layers.*", 2), ("logits", 1)]
    layer = c.placed.main.ops[1].regions[0]
    reads = {op.attrs["tensor"]: op.attrs for op in layer.ops if op.opname == "placed.mem_read"}
    assert reads["model.embed_tokens"]["carried"]  # the hidden state, from call to call
    assert reads["model.layers.*.mlp.down_proj.weight@split:0"]["per_call"]  # each layer's own weights
    key = {s.store: s for s in c.placed.attrs["memory.stores"]}["present.*.key"]
    assert (key.kind, key.spread.text(), key.sources) == ("cache:2", "split:1", ("past_key_values.0.key", "past_key_values.1.key"))


def test_kv_cache_is_appended_in_place():
    """Decode writes the new key/value rows only, after the cache it read."""
    c = compile_model(tiny("tiny-llama", "decode"), "sn40l", bindings=SHAPES["decode"])
    layer = c.placed.main.ops[1].regions[0]
    writes = [op for op in layer.ops if op.opname == "placed.mem_write" and op.attrs["tensor"].startswith("present")]
    assert [str(w.operands[0].type) for w in writes] == ["f32[2, 2, 1, 16]"] * 2
    assert all(w.attrs["tensor"].endswith("#2:5-6") for w in writes)


def test_big_transfers_are_chunked_over_agcus():
    """A big weight is read in chunks, one per AGCU, over as many AGCUs as reach HBM's
    bandwidth: 1800 GB/s over 128 B x 1.6 GHz = 204.8 GB/s per AGCU -> 9."""
    from rduflow.compiler.frontend.onnx import import_onnx
    from rduflow.models import build_onnx

    m = import_onnx(build_onnx("llama-3.2-1b", "decode", dtype="bf16"), shapes_only=True)
    c = compile_model(m, "sn40l", bindings={"batch": 1, "past": 256})
    layer = c.placed.main.ops[1]
    assert layer.attrs["repeat"] == 16
    reads = [op for op in layer.regions[0].ops if op.opname == "placed.mem_read"
             and op.attrs["tensor"].startswith("model.layers.*.mlp.down_proj")]
    assert len(reads) == 9 and len({op.attrs["agcu"] for op in reads}) == 9
    assert sorted(op.results[0].type.shape[0] for op in reads) == sorted(8192 * (i + 1) // 9 - 8192 * i // 9
                                                                          for i in range(9))


# -- allocate -----------------------------------------------------------------------------------
def test_pcus_follow_the_work_in_a_pipeline():
    """Prefill: units get PCUs in proportion to their work, so stages take about as long."""
    from rduflow.compiler.target.work import compute_work

    m = tiny("tiny-llama", "prefill")
    c = compile_model(m, "sn40l", bindings={"batch": 4, "seq": 64})
    layer = c.placed.main.ops[1].regions[0]
    arch = c.arch
    units = [op for op in layer.ops if op.opname == "placed.compute"]
    times = {op.results[0].name: compute_work(op, arch).cycles(op.attrs["pcus"]) for op in units}
    matmuls = [t for n, t in times.items() if n.endswith(("q_proj", "gate_proj", "up_proj", "down_proj", "o_proj"))]
    assert max(matmuls) < 2.5 * min(matmuls)
    assert sum(op.attrs["pcus"] for op in units) <= arch.pcu.count


# -- the pipeline in the pass manager ----------------------------------------------------------------
def test_every_backend_pass_is_registered_and_prints_after():
    names = set(available_passes())
    assert {"bind", "shard", "fuse", "section", "lower", "allocate", "place", "route"} <= names
    out = io.StringIO()
    compile_model(tiny("tiny-gpt2", "decode"), "sn40l", sockets=2, bindings=SHAPES["decode"],
                  instruments=[IRPrinter(after=ALL, stream=out)])
    text = out.getvalue()
    for p in ("bind", "shard", "fuse", "section", "lower", "allocate", "place", "route"):
        assert f"// ----- IR after {p}" in text
    assert "placed.section" in text and 'fusion = "layer"' in text


def test_backend_passes_run_from_pipeline_text():
    m = tiny("tiny-llama", "decode")
    PassManager(parse_pipeline('bind{dims="batch=2,past=5"},shard{sockets=2},fuse,section,lower,allocate,'
                               'place,route'), context=PassContext(target=load_arch("sn40l"))).run(m)
    assert all(op.opname == "placed.section" for op in m.main.ops)


def test_ideal_network_routes_nothing():
    c = compile_model(tiny("tiny-llama", "decode"), "sn40l", bindings=SHAPES["decode"], ideal_network=True)
    streams = [op for s in c.placed.main.ops for op in s.regions[0].ops if op.opname == "placed.stream"]
    assert all(op.attrs["hops"] == 0 and not op.attrs["route"] for op in streams)
    assert c.summary.ideal_network and all(s.max_link_bytes == 0 for s in c.summary.sections)


def test_gpu_architecture_is_refused():
    with pytest.raises(CompileError, match="GPU architecture"):
        compile_model(tiny("tiny-llama", "decode"), "h100-sxm", bindings=SHAPES["decode"])


def test_summary_text_and_json():
    c = compile_model(tiny("tiny-llama", "decode"), "sn40l", sockets=2, bindings=SHAPES["decode"])
    import json

    d = json.loads(c.summary.to_json())
    assert d["sockets"] == 2 and [s["repeat"] for s in d["sections"]] == [1, 2, 1]
    assert "model.layers.*" in c.summary.to_text() and "PCUs: up to" in c.summary.to_text()
    assert np.isclose(d["memory"]["weights"], c.placed.attrs["memory.bytes"].weights)


def test_a_placed_program_round_trips_through_text_with_typed_memory_tables():
    """The text of a placed program parses back into the same typed records; it runs alike."""
    from rduflow.ir import parse_module, verify_module
    from rduflow.ir.program import MemoryStore, ModelOutput, Spread

    m = tiny("tiny-llama", "decode")
    c = compile_model(m, "sn40l", sockets=2, bindings=SHAPES["decode"])
    text = print_module(c.placed)
    back = parse_module(text)
    verify_module(back)
    assert print_module(back) == text and back.attrs == c.placed.attrs
    assert all(isinstance(s, MemoryStore) and isinstance(s.spread, Spread) for s in back.attrs["memory.stores"])
    assert all(isinstance(o, ModelOutput) for o in back.attrs["memory.outputs"])
    back.weights = dict(c.placed.weights)  # held in memory: the text names them, not their data
    ins = inputs_for(m, SHAPES["decode"])
    assert_close(execute(back, ins), c.run(ins))


def test_a_pass_that_needs_a_target_fails_before_any_pass_without_one():
    m = tiny("tiny-llama", "decode")
    before = print_module(m)
    with pytest.raises(PipelineError, match="pass 'section' needs a target architecture"):
        PassManager(parse_pipeline("canonicalize,fuse,section")).run(m)
    assert print_module(m) == before
