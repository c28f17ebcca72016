"""Import time of a 70B-class decoder exported shape-only: the graph loads, the weights are never read.

Builds, with onnx helpers, a Llama-70B-shaped decode graph (80 layers, hidden 8192, 64 query
heads on 8 key/value heads, MLP 28672, vocabulary 128256) written the way the TorchScript
exporter writes it: shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) around
every reshape, a KV cache per layer, and every weight in external data that is declared but
absent (about 140 GB of it). Then times ``import_onnx(path, shapes_only=True)``.

    python benchmarks/import_70b.py [--layers 80] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rduflow.compiler.frontend.onnx import import_onnx

HIDDEN, HEADS, KV_HEADS, MLP, VOCAB = 8192, 64, 8, 28672, 128256
HEAD = HIDDEN // HEADS


class Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.offset = 0
        self.n = 0

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def const(self, values, name: str) -> str:
        self.inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    def weight(self, name: str, shape: tuple[int, ...], dtype=TensorProto.BFLOAT16) -> str:
        """An external tensor: offset and length declared, no bytes written."""
        tensor = TensorProto(name=name, data_type=dtype, dims=shape, data_location=TensorProto.EXTERNAL)
        length = int(np.prod(shape)) * 2
        for k, v in (("location", "model.onnx.data"), ("offset", str(self.offset)), ("length", str(length))):
            tensor.external_data.add(key=k, value=v)
        self.offset += length
        self.inits.append(tensor)
        return name

    def dim(self, x: str, axis: int, name: str) -> str:
        """Shape(x)[axis] as a 1-element tensor, the exporter's way."""
        s = self.node("Shape", [x], f"{name}/Shape")
        g = self.node("Gather", [s, self.const(axis, f"{name}/axis")], f"{name}/Gather", axis=0)
        return self.node("Unsqueeze", [g, self.const([0], f"{name}/zero")], f"{name}/Unsqueeze")

    def reshape(self, x: str, dims: list[str], name: str) -> str:
        shape = self.node("Concat", dims, f"{name}/Concat", axis=0)
        return self.node("Reshape", [x, shape], f"{name}/Reshape")


def rms_norm(g: Graph, x: str, name: str) -> str:
    sq = g.node("Mul", [x, x], f"{name}/Mul")
    mean = g.node("ReduceMean", [sq, g.const([-1], f"{name}/axes")], f"{name}/ReduceMean")
    eps = g.node("Add", [mean, "eps"], f"{name}/Add")
    inv = g.node("Reciprocal", [g.node("Sqrt", [eps], f"{name}/Sqrt")], f"{name}/Reciprocal")
    return g.node("Mul", [g.node("Mul", [x, inv], f"{name}/Mul_1"), g.weight(f"{name}.weight", (HIDDEN,))],
                  f"{name}/Mul_2")


def layer(g: Graph, x: str, i: int, inputs: list, outputs: list) -> str:
    p = f"/model/layers.{i}"
    h = rms_norm(g, x, f"{p}/input_layernorm")
    b, s = g.dim(h, 0, f"{p}/attn/batch"), g.dim(h, 1, f"{p}/attn/seq")
    heads = {}
    for proj, n in (("q", HEADS), ("k", KV_HEADS), ("v", KV_HEADS)):
        y = g.node("MatMul", [h, g.weight(f"model.layers.{i}.self_attn.{proj}_proj.weight", (HIDDEN, n * HEAD))],
                   f"{p}/self_attn/{proj}_proj/MatMul")
        y = g.reshape(y, [b, s, g.const([n], f"{p}/{proj}/heads"), g.const([HEAD], f"{p}/{proj}/hd")], f"{p}/{proj}")
        heads[proj] = g.node("Transpose", [y], f"{p}/self_attn/{proj}/Transpose", perm=[0, 2, 1, 3])
    for kv in ("key", "value"):
        past = f"past_key_values.{i}.{kv}"
        inputs.append(helper.make_tensor_value_info(past, TensorProto.BFLOAT16, ["batch", KV_HEADS, "past", HEAD]))
        cur = g.node("Concat", [past, heads[kv[0]]], f"{p}/self_attn/{kv}/Concat", axis=2)
        outputs.append(cur)
        total = g.dim(cur, 2, f"{p}/{kv}/total")
        grouped = g.node("Unsqueeze", [cur, g.const([2], f"{p}/{kv}/two")], f"{p}/{kv}/Unsqueeze")
        shape = g.node("Concat", [b, g.const([KV_HEADS, HEADS // KV_HEADS], f"{p}/{kv}/groups"), total,
                                  g.const([HEAD], f"{p}/{kv}/hd")], f"{p}/{kv}/shape", axis=0)
        grouped = g.node("Expand", [grouped, shape], f"{p}/{kv}/Expand")
        heads[kv] = g.reshape(grouped, [b, g.const([HEADS], f"{p}/{kv}/heads"), total,
                                        g.const([HEAD], f"{p}/{kv}/hd2")], f"{p}/{kv}/merge")
    kt = g.node("Transpose", [heads["key"]], f"{p}/self_attn/kT", perm=[0, 1, 3, 2])
    scores = g.node("Mul", [g.node("MatMul", [heads["q"], kt], f"{p}/self_attn/MatMul"), "scale"],
                    f"{p}/self_attn/scale")
    probs = g.node("Softmax", [g.node("Add", [scores, "mask"], f"{p}/self_attn/mask")], f"{p}/self_attn/Softmax",
                   axis=-1)
    attn = g.node("Transpose", [g.node("MatMul", [probs, heads["value"]], f"{p}/self_attn/MatMul_1")],
                  f"{p}/self_attn/merge/Transpose", perm=[0, 2, 1, 3])
    attn = g.reshape(attn, [b, s, g.const([HIDDEN], f"{p}/hidden")], f"{p}/self_attn/merge")
    o = g.node("MatMul", [attn, g.weight(f"model.layers.{i}.self_attn.o_proj.weight", (HIDDEN, HIDDEN))],
               f"{p}/self_attn/o_proj/MatMul")
    x = g.node("Add", [x, o], f"{p}/Add")
    h = rms_norm(g, x, f"{p}/post_attention_layernorm")
    gate = g.node("MatMul", [h, g.weight(f"model.layers.{i}.mlp.gate_proj.weight", (HIDDEN, MLP))],
                  f"{p}/mlp/gate_proj/MatMul")
    up = g.node("MatMul", [h, g.weight(f"model.layers.{i}.mlp.up_proj.weight", (HIDDEN, MLP))],
                f"{p}/mlp/up_proj/MatMul")
    act = g.node("Mul", [gate, g.node("Sigmoid", [gate], f"{p}/mlp/Sigmoid")], f"{p}/mlp/silu")
    down = g.node("MatMul", [g.node("Mul", [act, up], f"{p}/mlp/Mul"),
                             g.weight(f"model.layers.{i}.mlp.down_proj.weight", (MLP, HIDDEN))],
                  f"{p}/mlp/down_proj/MatMul")
    return g.node("Add", [x, down], f"{p}/Add_1")


def build(path: Path, layers: int) -> int:
    g = Graph()
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
              helper.make_tensor_value_info("mask", TensorProto.BFLOAT16, ["batch", 1, "seq", "past + seq"])]
    g.inits += [helper.make_tensor("eps", TensorProto.BFLOAT16, [], [1e-5]),
                helper.make_tensor("scale", TensorProto.BFLOAT16, [], [HEAD ** -0.5])]
    outputs_kv: list[str] = []
    x = g.node("Gather", [g.weight("model.embed_tokens.weight", (VOCAB, HIDDEN)), "input_ids"], "/model/embed/Gather")
    for i in range(layers):
        x = layer(g, x, i, inputs, outputs_kv)
    x = rms_norm(g, x, "/model/norm")
    logits = g.node("MatMul", [x, g.weight("lm_head.weight", (HIDDEN, VOCAB))], "/lm_head/MatMul")
    outs = [helper.make_tensor_value_info(logits, TensorProto.BFLOAT16, None)]
    outs += [helper.make_tensor_value_info(n, TensorProto.BFLOAT16, None) for n in outputs_kv]
    graph = helper.make_graph(g.nodes, "llama70b", inputs, outs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, path)
    return g.offset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=80)
    ap.add_argument("--keep", metavar="DIR", help="write the model here (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        path = folder / "llama70b.onnx"
        t0 = time.perf_counter()
        data_bytes = build(path, args.layers)
        t1 = time.perf_counter()
        module = import_onnx(path, shapes_only=True)
        t2 = time.perf_counter()
        params = sum(int(np.prod([int(d) for d in w.type.shape])) for w in module.weights.values())
        nodes = len(onnx.load(path, load_external_data=False).graph.node)
        print(f"model: {args.layers} layers, {nodes} ONNX nodes, {params / 1e9:.1f}B parameters, "
              f"{data_bytes / 1e9:.0f} GB external data declared (absent), {path.stat().st_size / 1e6:.1f} MB .onnx")
        print(f"build {t1 - t0:.1f} s; import_onnx(shapes_only=True): {t2 - t1:.2f} s -> {len(module.main.ops)} IR ops")


if __name__ == "__main__":
    main()
