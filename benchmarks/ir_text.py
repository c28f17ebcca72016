"""Time the IR text format on a big module: print, parse, verify, and the round trip.

    python benchmarks/ir_text.py                  # about 10,000 ops
    python benchmarks/ir_text.py --blocks 500 --repeat 5

The module is a stack of transformer-like blocks built with the Builder: symbolic shapes
(``batch``, ``seq``, ``past+seq``), weights, reshapes with Dim attributes, locations, and one
fused ``group`` region per block, so the text exercises what real modules contain. Prints the
op count, the text size, and the median wall time of each step over --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rduflow.ir import (
    Builder, Graph, Module, TensorType, parse_module, print_module, verify_module,
)

D, H = 64, 4


def build(blocks: int) -> Module:
    m = Module()
    m.attrs = {"name": "ir_text benchmark", "blocks": blocks}
    g = m.add_graph(Graph("main", [TensorType(["batch", "seq", D], "bf16"), TensorType(["batch", "past", D], "bf16")],
                          ["x", "past_k"]))
    b = Builder(g, m)
    x, past_k = g.args
    for i in range(blocks):
        p = f"/blocks.{i}"
        scale = b.weight(f"blocks.{i}.ln.weight", TensorType([D], "bf16"))
        wq = b.weight(f"blocks.{i}.attn.q.weight", TensorType([D, D], "bf16"))
        h = b.emit("rms_norm", x, scale, epsilon=1e-6, loc=f"{p}/ln/RMSNorm")
        q = b.emit("matmul", h, wq, loc=f"{p}/attn/q/MatMul")
        k = b.emit("concat", past_k, h, axis=1, loc=f"{p}/attn/k/Concat")
        qh = b.emit("reshape", q, shape=["batch", "seq", H, D // H], loc=f"{p}/attn/Reshape")
        kh = b.emit("reshape", k, shape=["batch", "past+seq", H, D // H], loc=f"{p}/attn/Reshape_1")
        qt = b.emit("transpose", qh, perm=[0, 2, 1, 3], loc=f"{p}/attn/Transpose")
        kt = b.emit("transpose", kh, perm=[0, 2, 3, 1], loc=f"{p}/attn/Transpose_1")
        s = b.emit("matmul", qt, kt, loc=f"{p}/attn/MatMul")
        body = Graph("body", [s.type], ["s"])
        rb = Builder(body, m)
        e = rb.emit("softmax", body.args[0], axis=-1)
        body.set_outputs([rb.emit("mul", e, e)])
        a = b.op("group", [s], {"kind": "softmax", "unit": [i, 0]}, regions=[body], loc=f"{p}/attn/fused").results[0]
        a = b.emit("reduce_sum", a, axes=[3], keepdims=False, loc=f"{p}/attn/ReduceSum")
        a = b.emit("transpose", a, perm=[0, 2, 1], loc=f"{p}/attn/Transpose_2")
        a = b.emit("reshape", a, shape=["batch", "seq", H], loc=f"{p}/attn/Reshape_2")
        a = b.emit("expand", b.emit("reduce_mean", a, axes=[2], keepdims=True), shape=["batch", "seq", D])
        x = b.emit("add", x, a, loc=f"{p}/Add")
    g.set_outputs([x], ["hidden"])
    return m


def _median(f, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=500, help="blocks of 20 ops each (default: 10,000 ops)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    parse_module("module {\n}\n")  # builds the LALR tables, once per process
    t_tables = time.perf_counter() - t0
    m = build(args.blocks)
    ops = sum(1 for g in m.graphs.values() for _ in g.walk())
    t_print, text = _median(lambda: print_module(m), args.repeat)
    t_parse, m2 = _median(lambda: parse_module(text), args.repeat)
    t_verify, _ = _median(lambda: verify_module(m2), args.repeat)
    assert print_module(m2) == text, "round trip changed the text"
    mb = len(text.encode()) / 1e6
    print(f"module: {ops:,} ops, {len(m.weights):,} weights, text {mb:.2f} MB, {text.count(chr(10)):,} lines")
    print(f"parser tables: {t_tables * 1e3:8.1f} ms  (once per process)")
    print(f"print_module : {t_print * 1e3:8.1f} ms  ({ops / t_print:,.0f} ops/s)")
    print(f"parse_module : {t_parse * 1e3:8.1f} ms  ({ops / t_parse:,.0f} ops/s, {mb / t_parse:.2f} MB/s)")
    print(f"verify_module: {t_verify * 1e3:8.1f} ms  ({ops / t_verify:,.0f} ops/s)")
    print("round trip   : print(parse(print(m))) == print(m)")


if __name__ == "__main__":
    main()
