"""Kernel formation: what a GPU stack would launch for a decoder, derived from the graph."""

import pytest
from rduflow.ir import Builder, Graph, Module, TensorType
from rduflow.simulator.gpu import GpuModelError, GpuProgram, form_kernels
from rduflow.inference.graphs import load_graphs


def _kinds(module):
    return [k.kind for k in form_kernels(module).kernels]


def test_llama_decoder_layer_is_seven_kernels(tiny):
    kinds = _kinds(tiny.decode)
    # embedding + first norm, then per layer: QKV GEMM (with rope and the cache append in its
    # epilogue), fused attention, O GEMM, add + norm, gate/up GEMM with SiLU, down GEMM,
    # add + norm; then the LM head.
    layer = ["gemm", "attention", "gemm", "pointwise", "gemm", "gemm", "pointwise"]
    assert kinds == ["pointwise"] + layer * 2 + ["gemm"]


def test_horizontal_and_epilogue_fusion(tiny):
    f = form_kernels(tiny.decode)
    qkv = f.kernels[1]
    assert sum(op.opname == "matmul" for op in qkv.ops) == 3
    assert any(op in f.appends for op in qkv.ops), "the KV append runs in the QKV epilogue"
    gate_up = f.kernels[5]
    assert {op.opname for op in gate_up.ops} == {"matmul", "sigmoid", "mul"}


def test_attention_never_writes_scores(tiny):
    """Fused attention: the bytes of the attention kernel do not grow with the number of
    query heads times the context (the score matrix), only with q, k, v and the output."""
    prog = GpuProgram(tiny.decode)
    env = {"batch": 1, "seq": 1}
    runs = [prog.run("h100-sxm", bindings=dict(env, past=p)) for p in (64, 128)]
    att = [next(k for k in r.kernels if k.kind == "attention").hbm_bytes for r in runs]
    # tiny-llama: 2 KV heads x 16 dims, bf16; K and V of 64 more positions per layer.
    assert att[1] - att[0] == pytest.approx(64 * 2 * 16 * 2 * 2)


def test_weights_read_as_stored(tiny, wide, wide_int4):
    env = {"batch": 1, "seq": 1, "past": 16}
    bf16 = GpuProgram(wide.decode).run("h100-sxm", bindings=env)
    int4 = GpuProgram(wide_int4.decode).run("h100-sxm", bindings=env)
    gemm = lambda r: sum(k.hbm_bytes for k in r.kernels if k.kind == "gemm")
    # int4 weights (plus bf16 scales per block of 128) are about a quarter of bf16 ones.
    assert 0.25 < gemm(int4) / gemm(bf16) < 0.35


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-mixtral", "tiny-qwen2", "tiny-mistral"])
def test_other_families_form_and_cost(name):
    g = load_graphs(name, "bf16", "bf16")
    for module, env in ((g.prefill, {"batch": 2, "seq": 8}), (g.decode, {"batch": 2, "seq": 1, "past": 8})):
        f = form_kernels(module)
        assert any(k.kind == "attention" for k in f.kernels)
        r = GpuProgram(module).run("a100-80gb", bindings=env, gpus=2)
        assert r.total_s > 0 and r.hbm_bytes > 0


def test_regions_are_refused():
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([4], "f32")], ["x"]))
    inner = Graph("region", [TensorType([4], "f32")], ["a"])
    inner.set_outputs([Builder(inner).emit("neg", inner.args[0])])
    op = Builder(g).op("group", [g.args[0]], {}, regions=[inner])
    g.set_outputs([op.results[0]])
    with pytest.raises(GpuModelError, match="unfused graph"):
        form_kernels(m)


def test_value_classes_are_the_shard_passs_static_values(tiny):
    """Free values (weights, shapes) are the ones the RDU ``shard`` pass replicates."""
    from rduflow.compiler.backend.shard_rules import static_values

    f = form_kernels(tiny.decode)
    static = static_values(f.graph)
    for v, c in f.value_class.items():
        assert c == ("act" if v not in static else "weight" if static[v] else "static")
