"""A small built-in GPT-style model, written with the IR Builder, for ``rduflow demo``.

Token and position embeddings, ``layers`` pre-norm decoder blocks (causal multi-head
attention and a GELU MLP, each with a residual), a final layer norm and logits tied to the
token embedding. ``batch`` and ``seq`` stay symbolic; weights are seeded random arrays held
in memory, so the module runs in the interpreter as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rduflow.ir import Builder, DType, Graph, InMemory, Module, TensorType, Value
from rduflow.ir.errors import RduflowError


@dataclass(frozen=True)
class DemoConfig:
    vocab: int = 64
    d_model: int = 32
    heads: int = 2
    layers: int = 1
    max_seq: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab", "d_model", "heads", "layers", "max_seq"):
            if getattr(self, name) < 1:
                raise RduflowError(f"demo: {name} must be at least 1, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise RduflowError(f"demo: d_model {self.d_model} is not divisible by heads {self.heads}")


def build_demo(cfg: DemoConfig = DemoConfig()) -> Module:
    return _DemoBuilder(cfg).build()


class _DemoBuilder:
    def __init__(self, cfg: DemoConfig):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.module = Module()
        self.graph = self.module.add_graph(Graph("main", [TensorType(["batch", "seq"], DType.i64)], ["ids"]))
        self.b = Builder(self.graph, self.module)

    def weight(self, name: str, shape: tuple[int, ...], init: str = "normal") -> Value:
        if init == "ones":
            data = np.ones(shape, np.float32)
        elif init == "zeros":
            data = np.zeros(shape, np.float32)
        else:
            data = (0.02 * self.rng.standard_normal(shape)).astype(np.float32)
        return self.b.weight(name, TensorType(shape, DType.f32), InMemory(data))

    def scalar(self, x: float) -> Value:
        return self.b.constant(np.float32(x))

    def build(self) -> Module:
        cfg, b = self.cfg, self.b
        (ids,) = self.graph.args
        wte = self.weight("wte", (cfg.vocab, cfg.d_model))
        wpe = self.weight("wpe", (cfg.max_seq, cfg.d_model))
        pos = b.emit("range", start=0, limit="seq", name="positions")
        x = b.emit("add", b.emit("gather", wte, ids, axis=0), b.emit("gather", wpe, pos, axis=0), name="embed")
        mask = self.causal_mask()
        for i in range(cfg.layers):
            x = self.block(x, mask, f"h{i}")
        x = self.layer_norm(x, "ln_f")
        logits = b.emit("matmul", x, b.emit("transpose", wte, perm=[1, 0]), name="logits", loc="lm_head")
        self.graph.set_outputs([logits], ["logits"])
        return self.module

    def causal_mask(self) -> Value:
        """True above the diagonal: position j is hidden from position i < j."""
        b = self.b
        pos = b.emit("range", start=0, limit="seq")
        row = b.emit("reshape", pos, shape=["seq", 1])
        col = b.emit("reshape", pos, shape=[1, "seq"])
        return b.emit("less", row, col, name="causal_mask")

    def layer_norm(self, x: Value, name: str) -> Value:
        d = self.cfg.d_model
        return self.b.emit("layer_norm", x, self.weight(f"{name}.g", (d,), "ones"),
                           self.weight(f"{name}.b", (d,), "zeros"), loc=name)

    def linear(self, x: Value, n_in: int, n_out: int, name: str) -> Value:
        y = self.b.emit("matmul", x, self.weight(f"{name}.w", (n_in, n_out)), loc=name)
        return self.b.emit("add", y, self.weight(f"{name}.bias", (n_out,), "zeros"), loc=name)

    def block(self, x: Value, mask: Value, name: str) -> Value:
        b, d = self.b, self.cfg.d_model
        h, dh = self.cfg.heads, self.cfg.d_model // self.cfg.heads
        qkv = self.linear(self.layer_norm(x, f"{name}.ln_1"), d, 3 * d, f"{name}.attn.qkv")
        q, k, v = b.op("split", [qkv], {"axis": -1, "sizes": [d, d, d]}, loc=f"{name}.attn").results

        def heads(t: Value, perm: list[int]) -> Value:
            return b.emit("transpose", b.emit("reshape", t, shape=["batch", "seq", h, dh]), perm=perm)

        scores = b.emit("matmul", heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1]), loc=f"{name}.attn")
        scores = b.emit("mul", scores, self.scalar(1.0 / np.sqrt(dh)))
        scores = b.emit("where", mask, self.scalar(-1e9), scores)
        probs = b.emit("softmax", scores, axis=-1, loc=f"{name}.attn")
        ctx = b.emit("matmul", probs, heads(v, [0, 2, 1, 3]), loc=f"{name}.attn")
        ctx = b.emit("reshape", b.emit("transpose", ctx, perm=[0, 2, 1, 3]), shape=["batch", "seq", d])
        x = b.emit("add", x, self.linear(ctx, d, d, f"{name}.attn.proj"), name=f"{name}.attn_out")
        m = self.linear(self.layer_norm(x, f"{name}.ln_2"), d, 4 * d, f"{name}.mlp.fc")
        m = b.emit("gelu", m, approximate="tanh", loc=f"{name}.mlp")
        return b.emit("add", x, self.linear(m, 4 * d, d, f"{name}.mlp.proj"), name=f"{name}.out")
