"""Tiny random Hugging Face models exported to ONNX by both PyTorch exporters.

``export(family, mode, exporter, folder)`` writes ``<family>_<mode>_<exporter>_op<opset>.onnx`` and
returns an :class:`Export` that makes matching random inputs for any batch, sequence and
past lengths. Modes: ``prefill`` (no past) and ``decode`` (past keys/values in, presents
out); BERT has only ``prefill``. Exporters: ``torchscript`` (``dynamo=False``, named
dynamic axes) and ``dynamo`` (``dynamo=True``, every dim dynamic, names chosen by torch).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FAMILIES = ("gpt2", "llama", "mistral", "mixtral", "qwen2", "phi", "phi3", "gpt_neox", "opt", "bert", "t5")
EXPORT_SIZES = (2, 3, 4)  # batch, seq, past at export time: none is 0 or 1, so none is specialised


def config(family: str):
    import transformers as T

    common = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                  vocab_size=100, max_position_embeddings=64)
    if family == "gpt2":
        return T.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100, n_positions=64)
    if family == "llama":  # grouped-query attention: 4 query heads share 2 key/value heads
        return T.LlamaConfig(**common, num_key_value_heads=2)
    if family == "mistral":
        return T.MistralConfig(**common, num_key_value_heads=2)  # sliding window 4096, its default
    if family == "mixtral":
        cfg = T.MixtralConfig(**common, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2)
        cfg._experts_implementation = "batched_mm"  # the default (grouped_mm) is a custom op no exporter knows
        return cfg
    if family == "qwen2":
        return T.Qwen2Config(**common, num_key_value_heads=2)
    if family == "phi":
        return T.PhiConfig(**common)
    if family == "phi3":
        return T.Phi3Config(**common, num_key_value_heads=2, pad_token_id=0)
    if family == "gpt_neox":
        return T.GPTNeoXConfig(**common)
    if family == "opt":
        return T.OPTConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, ffn_dim=64, vocab_size=100,
                           max_position_embeddings=64, word_embed_proj_dim=32, pad_token_id=1)
    if family == "bert":
        return T.BertConfig(**common, type_vocab_size=2)
    if family == "t5":
        return T.T5Config(num_layers=2, num_decoder_layers=2, d_model=32, d_kv=8, num_heads=4, d_ff=64,
                          vocab_size=100, decoder_start_token_id=0)
    raise ValueError(f"unknown family {family}")


@dataclass
class Export:
    path: Path
    family: str
    mode: str
    exporter: str
    make_inputs: Callable[[int, int, int, int], dict[str, np.ndarray]]

    def inputs(self, batch: int = 2, seq: int = 5, past: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
        return self.make_inputs(batch, seq, past, seed)


def _mask(rng, batch: int, length: int) -> np.ndarray:
    m = np.ones((batch, length), np.int64)
    if batch > 1 and length > 1:
        m[-1, 0] = 0  # one left-padded position: the mask path is exercised, not all ones
    return m


def export(family: str, mode: str, exporter: str, folder: Path, opset: int = 18) -> Export:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = config(family)
    path = Path(folder) / f"{family}_{mode}_{exporter}_op{opset}.onnx"
    if family == "bert":
        assert mode == "prefill", "BERT is an encoder: it has no decode form"
        model, make, args, names_in, names_out, axes = _bert(cfg)
    elif family == "t5":
        model, make, args, names_in, names_out, axes = _t5(cfg, mode == "decode")
    else:
        model, make, args, names_in, names_out, axes = _causal(cfg, mode == "decode")
    kw: dict = {"input_names": names_in, "output_names": names_out, "opset_version": opset}
    if exporter == "torchscript":
        kw.update(dynamo=False, dynamic_axes=axes)
    elif exporter == "dynamo":
        dyn = torch.export.Dim.DYNAMIC
        shapes = [{i: dyn for i in axes[n]} for n in names_in]
        kw.update(dynamo=True, dynamic_shapes=_nest(shapes, args))
    else:
        raise ValueError(f"unknown exporter {exporter}")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), **kw)
    return Export(path, family, mode, exporter, make)


def _nest(flat: list, args: tuple) -> tuple:
    """dynamic_shapes shaped like the positional args (the last one may be a tuple of past tensors)."""
    out, i = [], 0
    for a in args:
        if isinstance(a, tuple):
            out.append(tuple(flat[i:i + len(a)]))
            i += len(a)
        else:
            out.append(flat[i])
            i += 1
    return tuple(out)


def _causal(cfg, decode: bool):
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    class CausalLM(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, past=()):
            pairs = list(zip(past[0::2], past[1::2]))
            cache = DynamicCache(ddp_cache_data=pairs, config=self.m.config) if pairs else DynamicCache(config=self.m.config)
            out = self.m(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True)
            flat = [out.logits]
            for layer in out.past_key_values.layers:
                flat += [layer.keys, layer.values]
            return tuple(flat)

    m = AutoModelForCausalLM.from_config(cfg).eval()
    n = cfg.num_hidden_layers
    heads = cfg.num_attention_heads
    kvh = getattr(cfg, "num_key_value_heads", None) or heads
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    past_names = [f"past_key_values.{i}.{kv}" for i in range(n) for kv in ("key", "value")] if decode else []
    names_in = ["input_ids", "attention_mask"] + past_names
    names_out = ["logits"] + [f"present.{i}.{kv}" for i in range(n) for kv in ("key", "value")]
    axes = {"input_ids": {0: "batch", 1: "sequence_length"}, "attention_mask": {0: "batch", 1: "total_sequence_length"},
            "logits": {0: "batch", 1: "sequence_length"}}
    axes |= {p: {0: "batch", 2: "past_sequence_length"} for p in past_names}
    axes |= {p: {0: "batch", 2: "total_sequence_length"} for p in names_out[1:]}

    def make(batch, seq, past, seed):
        rng = np.random.default_rng(seed)
        past = past if decode else 0
        d = {"input_ids": rng.integers(0, cfg.vocab_size, (batch, seq), dtype=np.int64),
             "attention_mask": _mask(rng, batch, past + seq)}
        for p in past_names:
            d[p] = rng.standard_normal((batch, kvh, past, hd)).astype(np.float32)
        return d

    b, s, p = EXPORT_SIZES
    ex = {k: torch.from_numpy(v) for k, v in make(b, s, p, 0).items()}
    args = (ex["input_ids"], ex["attention_mask"], tuple(ex[p] for p in past_names))
    return CausalLM(m), make, args, names_in, names_out, axes


def _bert(cfg):
    import torch
    from transformers import BertModel

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state, out.pooler_output

    m = BertModel(cfg).eval()
    names_in = ["input_ids", "attention_mask", "token_type_ids"]
    names_out = ["last_hidden_state", "pooler_output"]
    axes = {n: {0: "batch", 1: "sequence_length"} for n in names_in} | {
        "last_hidden_state": {0: "batch", 1: "sequence_length"}, "pooler_output": {0: "batch"}}

    def make(batch, seq, past, seed):
        rng = np.random.default_rng(seed)
        return {"input_ids": rng.integers(0, cfg.vocab_size, (batch, seq), dtype=np.int64),
                "attention_mask": _mask(rng, batch, seq),
                "token_type_ids": (np.arange(seq)[None, :] >= seq // 2).astype(np.int64).repeat(batch, 0)}

    b, s, _ = EXPORT_SIZES
    ex = {k: torch.from_numpy(v) for k, v in make(b, s, 0, 0).items()}
    return Encoder(m), make, tuple(ex[n] for n in names_in), names_in, names_out, axes


def _t5(cfg, decode: bool):
    import torch
    from transformers import (
        DynamicCache,
        EncoderDecoderCache,
        T5ForConditionalGeneration,
    )

    n = cfg.num_decoder_layers
    h, dkv = cfg.num_heads, cfg.d_kv

    class Seq2Seq(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, encoder_input, attention_mask, decoder_input_ids, past=()):
            if decode:
                selfs = [(past[4 * i], past[4 * i + 1]) for i in range(n)]
                cross = [(past[4 * i + 2], past[4 * i + 3]) for i in range(n)]
                cache = EncoderDecoderCache(DynamicCache(ddp_cache_data=selfs, config=self.m.config),
                                            DynamicCache(ddp_cache_data=cross, config=self.m.config))
                out = self.m(encoder_outputs=(encoder_input,), attention_mask=attention_mask,
                             decoder_input_ids=decoder_input_ids, past_key_values=cache, use_cache=True)
            else:
                out = self.m(input_ids=encoder_input, attention_mask=attention_mask,
                             decoder_input_ids=decoder_input_ids, use_cache=True)
            flat = [out.logits]
            c = out.past_key_values
            for i in range(n):
                flat += [c.self_attention_cache.layers[i].keys, c.self_attention_cache.layers[i].values]
                if not decode:
                    flat += [c.cross_attention_cache.layers[i].keys, c.cross_attention_cache.layers[i].values]
            return tuple(flat)

    m = T5ForConditionalGeneration(cfg).eval()
    first = "encoder_hidden_states" if decode else "input_ids"
    past_names = [f"past_key_values.{i}.{w}.{kv}" for i in range(n) for w in ("decoder", "encoder")
                  for kv in ("key", "value")] if decode else []
    names_in = [first, "attention_mask", "decoder_input_ids"] + past_names
    names_out = ["logits"] + [f"present.{i}.{w}.{kv}" for i in range(n)
                              for w in (("decoder",) if decode else ("decoder", "encoder")) for kv in ("key", "value")]
    enc = "encoder_sequence_length"
    axes = {first: {0: "batch", 1: enc}, "attention_mask": {0: "batch", 1: enc},
            "decoder_input_ids": {0: "batch", 1: "decoder_sequence_length"},
            "logits": {0: "batch", 1: "decoder_sequence_length"}}
    for p in past_names:
        axes[p] = {0: "batch", 2: "past_sequence_length" if ".decoder." in p else enc}
    for p in names_out[1:]:
        axes[p] = {0: "batch", 2: "total_sequence_length" if ".decoder." in p else enc}

    def make(batch, seq, past, seed):
        rng = np.random.default_rng(seed)
        enc_len = seq + 2
        d = {}
        if decode:
            d[first] = rng.standard_normal((batch, enc_len, cfg.d_model)).astype(np.float32)
        else:
            d[first] = rng.integers(0, cfg.vocab_size, (batch, enc_len), dtype=np.int64)
        d["attention_mask"] = _mask(rng, batch, enc_len)
        d["decoder_input_ids"] = rng.integers(0, cfg.vocab_size, (batch, seq), dtype=np.int64)
        for p in past_names:
            length = past if ".decoder." in p else enc_len
            d[p] = rng.standard_normal((batch, h, length, dkv)).astype(np.float32)
        return d

    b, s, p = EXPORT_SIZES
    ex = {k: torch.from_numpy(v) for k, v in make(b, s, p, 0).items()}
    args = (ex[first], ex["attention_mask"], ex["decoder_input_ids"], tuple(ex[p] for p in past_names))
    return Seq2Seq(m), make, args, names_in, names_out, axes
