"""Decoder graphs for GPT-2 and the Llama family (Llama 2/3.x, Mistral, Mixtral, Qwen2).

Each block follows its Hugging Face reference implementation op for op (see
docs/models.md); what is shared is written once:

* positions: query positions are ``past .. past+seq-1`` (``0 .. seq-1`` in prefill), taken
  from the shapes of ``input_ids`` and the cache, so the graph stays symbolic;
* the attention mask: built once from those positions, causal (and, for sliding-window
  layers, ``key > query - window``), added to the scores as 0 / -inf;
* attention: one MatMul per projection, ``MatMul -> Mul(scale) -> Add(mask) -> Softmax ->
  MatMul``. Grouped-query attention broadcasts each KV head over its query heads in the
  MatMul (queries as [batch, kv_heads, group, seq, head_dim]) instead of copying K and V;
* the KV cache: ``past_key_values.{i}.key/value`` in, ``present.{i}.key/value`` out, each
  [batch, kv_heads, length, head_dim], the new positions appended along ``length``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from .config import ModelConfig
from .onnx_writer import Dim, OnnxWriter
from .weights import Precision, WeightStore

FLOAT = TensorProto.FLOAT


@dataclass(frozen=True)
class Shapes:
    batch: Dim
    seq: Dim
    past: Dim | None  # None: prefill, no cache input

    @property
    def total(self) -> Dim:
        if self.past is None:
            return self.seq
        if isinstance(self.past, int) and isinstance(self.seq, int):
            return self.past + self.seq
        return f"{self.past}+{self.seq}"


class DecoderBuilder:
    def __init__(self, cfg: ModelConfig, precision: Precision, store: WeightStore, writer: OnnxWriter, shapes: Shapes):
        self.cfg = cfg
        self.p = precision
        self.act = precision.act_type.onnx
        self.store = store
        self.w = writer
        self.shapes = shapes
        self.decode = shapes.past is not None
        self.cache: list[tuple[str, str]] = []
        self.masks: dict[int | None, str] = {}

    # -- the whole model ---------------------------------------------------------------------
    def build(self) -> None:
        cfg, w, s = self.cfg, self.w, self.shapes
        ids = w.input("input_ids", TensorProto.INT64, [s.batch, s.seq])
        kv_shape = [s.batch, cfg.num_kv_heads, s.past, cfg.head_dim]
        if self.decode:
            self.cache = [(w.input(f"past_key_values.{i}.key", self.act, kv_shape),
                           w.input(f"past_key_values.{i}.value", self.act, kv_shape)) for i in range(cfg.num_layers)]
        self._positions(ids)
        gpt2 = cfg.family == "gpt2"
        x = self._gpt2_embed(ids) if gpt2 else self._gather("model.embed_tokens", ids)
        for i in range(cfg.num_layers):
            x = self._gpt2_block(i, x) if gpt2 else self._llama_block(i, x)
        if gpt2:
            x = self._layer_norm("transformer.ln_f", x)
        else:
            x = self._rms_norm("model.norm", x)
        self._lm_head(x, "transformer.wte.weight" if gpt2 else "model.embed_tokens.weight")
        out_kv = [s.batch, cfg.num_kv_heads, s.total, cfg.head_dim]
        for i in range(cfg.num_layers):
            w.output(f"present.{i}.key", self.act, out_kv)
            w.output(f"present.{i}.value", self.act, out_kv)

    def _gather(self, prefix: str, ids: str) -> str:
        table = self.store.param(f"{prefix}.weight", (self.cfg.vocab_size, self.cfg.hidden_size), "embedding")
        return self.w.op("Gather", [table, ids], prefix)

    def _lm_head(self, x: str, embedding: str) -> None:
        cfg, w = self.cfg, self.w
        if cfg.tie_word_embeddings:
            head = w.op("Transpose", [embedding], "lm_head.weight_t", perm=[1, 0])
        else:
            head = self.store.param("lm_head.weight", (cfg.hidden_size, cfg.vocab_size), "linear")
        w.op("MatMul", [x, head], "logits")
        w.output("logits", self.act, [self.shapes.batch, self.shapes.seq, cfg.vocab_size])

    # -- positions, rotary tables, masks ---------------------------------------------------------
    def _positions(self, ids: str) -> None:
        w = self.w
        i64 = np.int64
        zero, one = w.const("int.zero", 0, i64), w.const("int.one", 1, i64)
        seq_len = w.op("Shape", [ids], "seq_len", start=1, end=2)
        if self.decode:
            past_len = w.op("Shape", [self.cache[0][0]], "past_len", start=2, end=3)
            total = w.op("Add", [past_len, seq_len], "total_len")
            start = w.op("Squeeze", [past_len], "past_len_scalar")
            end = w.op("Squeeze", [total], "total_len_scalar")
            self.q_pos = w.op("Range", [start, end, one], "positions.query")
            self.k_pos = w.op("Range", [zero, end, one], "positions.key")
        else:
            end = w.op("Squeeze", [seq_len], "seq_len_scalar")
            self.q_pos = self.k_pos = w.op("Range", [zero, end, one], "positions")
        if self.cfg.family != "gpt2":
            self._rope_tables()

    def _rope_tables(self) -> None:
        """cos/sin [seq, head_dim] for the query positions, computed in f32 as HF does."""
        w = self.w
        pos = w.op("Cast", [self.q_pos], "rope.positions", to=FLOAT)
        pos = w.op("Unsqueeze", [pos, w.const("axes.last", [-1], np.int64)], "rope.positions_col")
        freqs = w.op("Mul", [pos, w.const("rope.inv_freq", rope_inv_freq(self.cfg))], "rope.freqs")
        emb = w.op("Concat", [freqs, freqs], "rope.angles", axis=-1)
        self.cos = self._in_f32("Cos", [emb], "rope.cos")
        self.sin = self._in_f32("Sin", [emb], "rope.sin")

    def _mask(self, window: int | None) -> str:
        """Additive attention mask [seq, total]: 0 where a query may see a key, -inf elsewhere."""
        if window in self.masks:
            return self.masks[window]
        w = self.w
        if not self.masks:  # first use: key positions as a row, query positions as a column
            keys = w.op("Unsqueeze", [self.k_pos, w.const("axes.first", [0], np.int64)], "mask.key_positions")
            queries = w.op("Unsqueeze", [self.q_pos, w.const("axes.last", [-1], np.int64)], "mask.query_positions")
            self._mask_pos = keys, queries
            self._causal = w.op("LessOrEqual", [keys, queries], "mask.causal_allowed")
        allowed, name = self._causal, "mask.causal"
        if window is not None:
            keys, queries = self._mask_pos
            lowest = w.op("Sub", [queries, w.const(f"mask.window_{window}_size", window, np.int64)], f"mask.window_{window}_start")
            inside = w.op("Greater", [keys, lowest], f"mask.window_{window}_inside")
            allowed = w.op("And", [allowed, inside], f"mask.window_{window}_allowed")
            name = f"mask.window_{window}"
        dt = self.p.act_type.numpy
        self.masks[window] = w.op("Where", [allowed, w.const("mask.zero", 0, dt), w.const("mask.neg_inf", -np.inf, dt)], name)
        return self.masks[window]

    # -- blocks ------------------------------------------------------------------------------------
    def _gpt2_embed(self, ids: str) -> str:
        tokens = self._gather("transformer.wte", ids)
        table = self.store.param("transformer.wpe.weight", (self.cfg.max_position_embeddings, self.cfg.hidden_size),
                                 "embedding")
        positions = self.w.op("Gather", [table, self.q_pos], "transformer.wpe")
        return self.w.op("Add", [tokens, positions], "transformer.embeddings")

    def _gpt2_block(self, i: int, x: str) -> str:
        cfg, w = self.cfg, self.w
        p = f"transformer.h.{i}"
        hsz = cfg.hidden_size
        h = self._layer_norm(f"{p}.ln_1", x)
        qkv = self._linear(h, f"{p}.attn.c_attn", hsz, 3 * hsz, bias=True)
        split = w.const("split.qkv", [hsz] * 3, np.int64)
        q, k, v = w.ops("Split", [qkv, split], [f"{p}.attn.q", f"{p}.attn.k", f"{p}.attn.v"], axis=-1)
        q = self._heads(q, cfg.num_heads, f"{p}.attn.q_heads")
        k = self._heads(k, cfg.num_heads, self._kv_name(i, "key", f"{p}.attn.k_heads"))
        v = self._heads(v, cfg.num_heads, self._kv_name(i, "value", f"{p}.attn.v_heads"))
        k, v = self._append_cache(i, k, v)
        ctx = self._attend(f"{p}.attn", q, k, v, self._mask(None), upcast=False)
        x = w.op("Add", [x, self._linear(ctx, f"{p}.attn.c_proj", hsz, hsz, bias=True)], f"{p}.attn_residual")
        h = self._layer_norm(f"{p}.ln_2", x)
        f = self._linear(h, f"{p}.mlp.c_fc", hsz, cfg.intermediate_size, bias=True)
        approx = "none" if cfg.hidden_act == "gelu" else "tanh"
        f = w.op("Gelu", [f], f"{p}.mlp.act", approximate=approx)
        f = self._linear(f, f"{p}.mlp.c_proj", cfg.intermediate_size, hsz, bias=True)
        return w.op("Add", [x, f], f"{p}.mlp_residual")

    def _llama_block(self, i: int, x: str) -> str:
        cfg, w = self.cfg, self.w
        p = f"model.layers.{i}"
        a = f"{p}.self_attn"
        hsz, d = cfg.hidden_size, cfg.head_dim
        h = self._rms_norm(f"{p}.input_layernorm", x)
        q = self._linear(h, f"{a}.q_proj", hsz, cfg.num_heads * d, bias=cfg.qkv_bias)
        k = self._linear(h, f"{a}.k_proj", hsz, cfg.num_kv_heads * d, bias=cfg.qkv_bias)
        v = self._linear(h, f"{a}.v_proj", hsz, cfg.num_kv_heads * d, bias=cfg.qkv_bias)
        q = self._rope(self._heads(q, cfg.num_heads, f"{a}.q_heads"), f"{a}.q_rope")
        k = self._rope(self._heads(k, cfg.num_kv_heads, f"{a}.k_heads"), self._kv_name(i, "key", f"{a}.k_rope"))
        v = self._heads(v, cfg.num_kv_heads, self._kv_name(i, "value", f"{a}.v_heads"))
        k, v = self._append_cache(i, k, v)
        ctx = self._attend(a, q, k, v, self._mask(cfg.layer_window(i)), upcast=True)
        o = self._linear(ctx, f"{a}.o_proj", cfg.num_heads * d, hsz, bias=cfg.o_bias)
        x = w.op("Add", [x, o], f"{p}.attn_residual")
        h = self._rms_norm(f"{p}.post_attention_layernorm", x)
        m = self._moe(f"{p}.mlp", h) if cfg.is_moe else self._swiglu(f"{p}.mlp", h)
        return w.op("Add", [x, m], f"{p}.mlp_residual")

    def _swiglu(self, p: str, h: str) -> str:
        cfg = self.cfg
        g = self._linear(h, f"{p}.gate_proj", cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        u = self._linear(h, f"{p}.up_proj", cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        m = self.w.op("Mul", [self._silu(g, f"{p}.act"), u], f"{p}.gated")
        return self._linear(m, f"{p}.down_proj", cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)

    def _moe(self, p: str, h: str) -> str:
        """Mixtral's sparse MoE: softmax over router logits, top-k, renormalise, weighted sum.

        Only the selected experts run: their weights are gathered per token ([..., k, in,
        out]) and applied by batched MatMuls, so FLOPs are those of k experts per token.
        """
        cfg, w = self.cfg, self.w
        hsz, ffn, e = cfg.hidden_size, cfg.intermediate_size, cfg.num_experts
        router = self.store.param(f"{p}.gate.weight", (hsz, e), "linear")
        logits = self._to_f32(w.op("MatMul", [h, router], f"{p}.router_logits"), f"{p}.router_logits_f32")
        probs = w.op("Softmax", [logits], f"{p}.router_probs", axis=-1)
        k = w.const("moe.top_k", [cfg.num_experts_per_tok], np.int64)
        top, idx = w.ops("TopK", [probs, k], [f"{p}.top_probs", f"{p}.top_experts"], axis=-1)
        total = w.op("ReduceSum", [top, w.const("axes.last", [-1], np.int64)], f"{p}.top_probs_sum", keepdims=1)
        weights = w.op("Div", [top, total], f"{p}.routing_weights")
        experts = f"{p}.experts"
        gate_w = w.op("Gather", [self.store.param(f"{experts}.gate_proj", (e, hsz, ffn), "linear", quantize=True), idx],
                      f"{experts}.gate_proj_selected", axis=0)
        up_w = w.op("Gather", [self.store.param(f"{experts}.up_proj", (e, hsz, ffn), "linear", quantize=True), idx],
                    f"{experts}.up_proj_selected", axis=0)
        down_w = w.op("Gather", [self.store.param(f"{experts}.down_proj", (e, ffn, hsz), "linear", quantize=True), idx],
                      f"{experts}.down_proj_selected", axis=0)
        # [batch, seq, hidden] -> [batch, seq, 1, 1, hidden]: one row per token, broadcast over its k experts.
        xr = w.op("Unsqueeze", [h, w.const("axes.moe_token_row", [2, 3], np.int64)], f"{experts}.token_rows")
        g = w.op("MatMul", [xr, gate_w], f"{experts}.gate")
        u = w.op("MatMul", [xr, up_w], f"{experts}.up")
        m = w.op("Mul", [self._silu(g, f"{experts}.act"), u], f"{experts}.gated")
        y = w.op("MatMul", [m, down_w], f"{experts}.down")
        y = w.op("Squeeze", [y, w.const("axes.moe_row", [3], np.int64)], f"{experts}.outputs")
        wcol = w.op("Unsqueeze", [weights, w.const("axes.last", [-1], np.int64)], f"{p}.routing_weights_col")
        # HF scales each expert's output by its f32 weight, then accumulates in the model dtype.
        y = self._in_f32("Mul", [self._to_f32(y, f"{experts}.outputs_f32"), wcol], f"{experts}.weighted")
        return w.op("ReduceSum", [y, w.const("axes.moe_k", [2], np.int64)], p, keepdims=0)

    # -- attention pieces ------------------------------------------------------------------------
    def _heads(self, x: str, n: int, out: str) -> str:
        """[batch, seq, n*head_dim] -> [batch, n, seq, head_dim]; queries of grouped attention
        -> [batch, kv_heads, group, seq, head_dim]."""
        cfg, w = self.cfg, self.w
        d, g = cfg.head_dim, cfg.kv_groups
        if n == cfg.num_heads and g > 1:
            shape = w.const("shape.query_groups", [0, 0, cfg.num_kv_heads, g, d], np.int64)
            x = w.op("Reshape", [x, shape], f"{out}_split")
            return w.op("Transpose", [x], out, perm=[0, 2, 3, 1, 4])
        x = w.op("Reshape", [x, w.const(f"shape.heads_{n}", [0, 0, n, d], np.int64)], f"{out}_split")
        return w.op("Transpose", [x], out, perm=[0, 2, 1, 3])

    def _rope(self, x: str, out: str) -> str:
        """HF's rotate_half form: x*cos + concat(-x2, x1)*sin."""
        w = self.w
        half = self.cfg.head_dim // 2
        x1, x2 = w.ops("Split", [x, w.const("split.rope_halves", [half, half], np.int64)], [f"{out}_x1", f"{out}_x2"],
                       axis=-1)
        rotated = w.op("Concat", [w.op("Neg", [x2], f"{out}_neg_x2"), x1], f"{out}_rotated", axis=-1)
        a = w.op("Mul", [x, self.cos], f"{out}_cos")
        b = w.op("Mul", [rotated, self.sin], f"{out}_sin")
        return w.op("Add", [a, b], out)

    def _kv_name(self, i: int, which: str, new_name: str) -> str:
        # In prefill the new keys/values are the whole cache: name them as the output directly.
        return new_name if self.decode else f"present.{i}.{which}"

    def _append_cache(self, i: int, k: str, v: str) -> tuple[str, str]:
        if not self.decode:
            return k, v
        past_k, past_v = self.cache[i]
        k = self.w.op("Concat", [past_k, k], f"present.{i}.key", axis=2)
        v = self.w.op("Concat", [past_v, v], f"present.{i}.value", axis=2)
        return k, v

    def _attend(self, p: str, q: str, k: str, v: str, mask: str, upcast: bool) -> str:
        """softmax(q k^T * scale + mask) v, merged back to [batch, seq, heads*head_dim]."""
        cfg, w = self.cfg, self.w
        grouped = cfg.kv_groups > 1
        kt = w.op("Transpose", [k], f"{p}.k_t", perm=[0, 1, 3, 2])
        if grouped:  # [batch, kv_heads, 1, ...] broadcasts over the query heads of each group
            group_axis = w.const("axes.group", [2], np.int64)
            kt = w.op("Unsqueeze", [kt, group_axis], f"{p}.k_t_grouped")
            v = w.op("Unsqueeze", [v, group_axis], f"{p}.v_grouped")
        scores = w.op("MatMul", [q, kt], f"{p}.scores")
        scale = w.const("attn.scale", cfg.head_dim ** -0.5, self.p.act_type.numpy)
        scores = w.op("Mul", [scores, scale], f"{p}.scores_scaled")
        scores = w.op("Add", [scores, mask], f"{p}.scores_masked")
        if upcast:  # Llama-family eager attention takes the softmax in f32
            probs = self._in_f32("Softmax", [self._to_f32(scores, f"{p}.scores_f32")], f"{p}.probs", axis=-1)
        else:
            probs = w.op("Softmax", [scores], f"{p}.probs", axis=-1)
        ctx = w.op("MatMul", [probs, v], f"{p}.context")
        ctx = w.op("Transpose", [ctx], f"{p}.context_t", perm=[0, 3, 1, 2, 4] if grouped else [0, 2, 1, 3])
        merge = w.const("shape.merge_heads", [0, 0, cfg.num_heads * cfg.head_dim], np.int64)
        return w.op("Reshape", [ctx, merge], f"{p}.context_merged")

    # -- layers ------------------------------------------------------------------------------------
    def _linear(self, x: str, prefix: str, k: int, n: int, bias: bool) -> str:
        weight = self.store.param(f"{prefix}.weight", (k, n), "linear", quantize=True)
        y = self.w.op("MatMul", [x, weight], f"{prefix}_matmul" if bias else prefix)
        if bias:
            y = self.w.op("Add", [y, self.store.param(f"{prefix}.bias", (n,), "bias")], prefix)
        return y

    def _layer_norm(self, prefix: str, x: str) -> str:
        hsz = self.cfg.hidden_size
        scale = self.store.param(f"{prefix}.weight", (hsz,), "norm")
        bias = self.store.param(f"{prefix}.bias", (hsz,), "bias")
        return self.w.op("LayerNormalization", [x, scale, bias], prefix, axis=-1, epsilon=self.cfg.norm_eps)

    def _rms_norm(self, prefix: str, x: str) -> str:
        """HF LlamaRMSNorm: in f32, x * rsqrt(mean(x^2) + eps), back to the model dtype, * weight."""
        w = self.w
        weight = self.store.param(f"{prefix}.weight", (self.cfg.hidden_size,), "norm")
        xf = self._to_f32(x, f"{prefix}.input_f32")
        sq = w.op("Pow", [xf, w.const("norm.two", 2.0, np.float32)], f"{prefix}.square")
        var = w.op("ReduceMean", [sq, w.const("axes.last", [-1], np.int64)], f"{prefix}.variance", keepdims=1)
        var = w.op("Add", [var, w.const(f"norm.eps_{self.cfg.norm_eps:g}", self.cfg.norm_eps, np.float32)],
                   f"{prefix}.variance_eps")
        inv = w.op("Reciprocal", [w.op("Sqrt", [var], f"{prefix}.rms")], f"{prefix}.inv_rms")
        normed = self._in_f32("Mul", [xf, inv], f"{prefix}.normalized")
        return w.op("Mul", [weight, normed], prefix)

    def _silu(self, x: str, out: str) -> str:
        return self.w.op("Mul", [x, self.w.op("Sigmoid", [x], f"{out}_sigmoid")], out)

    # -- precision -----------------------------------------------------------------------------------
    @property
    def _low(self) -> bool:
        """Activations narrower than f32: the places HF computes in f32 get explicit Casts."""
        return self.p.act != "f32"

    def _in_f32(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        """An op HF computes in f32 on f32 inputs; its result ``out`` is back in the model dtype."""
        y = self.w.op(op_type, inputs, f"{out}_f32" if self._low else out, **attrs)
        return self._to_act(y, out)

    def _to_f32(self, x: str, out: str) -> str:
        return self.w.op("Cast", [x], out, to=FLOAT) if self._low else x

    def _to_act(self, x: str, out: str) -> str:
        return self.w.op("Cast", [x], out, to=self.act) if self._low else x


def rope_inv_freq(cfg: ModelConfig) -> np.ndarray:
    """Rotary inverse frequencies in f32, with Llama 3.1's scaling when the config has it
    (HF ``_compute_default_rope_parameters`` / ``_compute_llama3_parameters``)."""
    d = cfg.head_dim
    inv = (1.0 / (np.float32(cfg.rope_theta) ** (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / d)))
    inv = inv.astype(np.float32)
    rs = cfg.rope_scaling
    if rs is None:
        return inv
    old = rs.original_max_position_embeddings
    low_wavelen = old / rs.low_freq_factor
    high_wavelen = old / rs.high_freq_factor
    wavelen = 2 * np.pi / inv
    scaled = np.where(wavelen > low_wavelen, inv / rs.factor, inv)
    smooth = (old / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor)
    smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)
