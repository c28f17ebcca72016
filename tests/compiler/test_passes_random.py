"""Random graphs through canonicalize, cse and dce: the interpreter gives the same outputs before and after,
the result verifies, and canonicalize reaches a fixpoint (running it again changes nothing)."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rduflow.compiler.passes import PassManager, parse_pipeline
from rduflow.compiler.passes.testing import assert_same_results, structural_text
from rduflow.ir import Builder, Graph, Module, TensorType, verify_module

SHAPES = [(6,), (2, 3), (3, 2), (1, 6), (6, 1), (1, 2, 3), (3, 1, 2)]  # all hold 6 elements


def build(data) -> Module:
    m = Module()
    g = m.add_graph(Graph("main", [TensorType([1, 2, 3], "f32")], ["x"]))
    b = Builder(g, m)
    values = [g.args[0]]

    def const(shape):
        kind = data.draw(st.sampled_from(["zero", "one", "splat", "random"]))
        fill = {"zero": 0.0, "one": 1.0}.get(kind)
        if kind == "splat":
            fill = data.draw(st.sampled_from([2.0, -0.5, 3.0]))
        arr = np.full(shape, fill, np.float32) if fill is not None else \
            np.random.default_rng(data.draw(st.integers(0, 99))).standard_normal(shape).astype(np.float32)
        return b.constant(arr)

    for _ in range(data.draw(st.integers(1, 16))):
        # Mostly extend the newest value, so that chains (transpose of transpose, x+0 of a folded value) form.
        v = values[-1] if data.draw(st.booleans()) else data.draw(st.sampled_from(values))
        shape = tuple(int(d) for d in v.type.shape)
        action = data.draw(st.sampled_from(
            ["binary", "binary", "binary", "unary", "reshape", "transpose", "transpose", "noop", "constant",
             "repeat"]))
        if action == "binary":
            other = const(data.draw(st.sampled_from([shape, ()]))) if data.draw(st.booleans()) else \
                data.draw(st.sampled_from([w for w in values if tuple(w.type.shape) == v.type.shape]))
            a, c = (v, other) if data.draw(st.booleans()) else (other, v)
            new = b.emit(data.draw(st.sampled_from(["add", "sub", "mul", "div"])), a, c)
        elif action == "unary":
            new = b.emit(data.draw(st.sampled_from(["neg", "exp", "tanh", "abs"])), v)
        elif action == "reshape":
            new = b.emit("reshape", v, shape=list(data.draw(st.sampled_from(SHAPES))))
        elif action == "transpose":
            new = b.emit("transpose", v, perm=list(data.draw(st.permutations(range(len(shape))))))
        elif action == "noop":
            kind = data.draw(st.sampled_from(["identity", "cast", "expand", "slice", "concat"]))
            attrs = {"identity": {}, "cast": {"to": "f32"}, "expand": {"shape": list(shape)},
                     "slice": {"axes": [0], "starts": [0], "ends": [shape[0]]}, "concat": {"axis": 0}}[kind]
            new = b.emit(kind, v, **attrs)
        elif action == "constant":
            new = const(shape)
        else:  # repeat an earlier op on the same operands: work for cse
            ops = [op for op in g.ops if op.opname != "constant"]
            if not ops:
                continue
            op = data.draw(st.sampled_from(ops))
            new = b.op(op.opname, op.operands, dict(op.attrs)).results[0]
        values.append(new)
    g.set_outputs([values[-1], data.draw(st.sampled_from(values))], ["last", "other"])
    verify_module(m)
    return m


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["canonicalize", "canonicalize,cse,dce", "cse,canonicalize", "dce,cse"]))
def test_passes_keep_the_meaning_of_random_graphs(data, pipeline):
    before = build(data)
    after = before.clone()
    PassManager(parse_pipeline(pipeline)).run(after)
    assert_same_results(before, after, {}, seeds=range(2))
    if pipeline.startswith("canonicalize"):
        once = structural_text(after)
        PassManager(parse_pipeline("canonicalize")).run(after)
        assert structural_text(after) == once
