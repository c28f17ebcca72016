"""Test helpers: run our ONNX graphs in onnxruntime and the same weights in transformers."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from rduflow.models import ModelConfig


def hf_config_json(cfg: ModelConfig) -> dict:
    """The config.json Hugging Face publishes for such a model (rope in the pre-5.x form)."""
    if cfg.family == "gpt2":
        return {
            "model_type": "gpt2", "vocab_size": cfg.vocab_size, "n_positions": cfg.max_position_embeddings,
            "n_embd": cfg.hidden_size, "n_layer": cfg.num_layers, "n_head": cfg.num_heads,
            "n_inner": cfg.intermediate_size, "activation_function": cfg.hidden_act,
            "layer_norm_epsilon": cfg.norm_eps, "tie_word_embeddings": cfg.tie_word_embeddings,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        }
    d = {
        "model_type": cfg.family, "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.max_position_embeddings, "rms_norm_eps": cfg.norm_eps,
        "tie_word_embeddings": cfg.tie_word_embeddings, "hidden_act": cfg.hidden_act, "rope_theta": cfg.rope_theta,
    }
    if cfg.rope_scaling:
        rs = cfg.rope_scaling
        d["rope_scaling"] = {"rope_type": "llama3", "factor": rs.factor, "low_freq_factor": rs.low_freq_factor,
                             "high_freq_factor": rs.high_freq_factor,
                             "original_max_position_embeddings": rs.original_max_position_embeddings}
    if cfg.family == "llama":
        d["attention_bias"] = cfg.qkv_bias
        d["mlp_bias"] = cfg.mlp_bias
    if cfg.family in ("mistral", "mixtral"):
        d["sliding_window"] = cfg.sliding_window
    if cfg.family == "qwen2":
        d["use_sliding_window"] = cfg.sliding_window is not None
        if cfg.sliding_window is not None:
            d["sliding_window"] = cfg.sliding_window
            d["layer_types"] = list(cfg.layer_types) if cfg.layer_types else None
    if cfg.family == "mixtral":
        d["num_local_experts"] = cfg.num_experts
        d["num_experts_per_tok"] = cfg.num_experts_per_tok
        d["router_jitter_noise"] = 0.0
    return d


def dense_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every parameter as f32, dequantized where a DequantizeLinear reads it (keyed by the
    quantized tensor's name; scales are folded in and not listed)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {name: a.astype(np.float32) for name, a in inits.items()}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        q = inits[node.input[0]].astype(np.float32)
        scale = inits[node.input[1]].astype(np.float32)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        axis = attrs.get("axis", 1)
        if scale.ndim == 1:
            shape = [1] * q.ndim
            shape[axis] = -1
            scale = scale.reshape(shape)
        else:
            scale = np.repeat(scale, attrs["block_size"], axis=axis)
            scale = scale[tuple(slice(0, n) for n in q.shape)]
        out[node.input[0]] = q * scale
        del out[node.input[1]]
    return out


def hf_model(cfg: ModelConfig, model: onnx.ModelProto):
    """The transformers model class of ``cfg``'s family, in f32, holding ``model``'s weights."""
    import torch
    import transformers

    hf_cfg = transformers.AutoConfig.for_model(**hf_config_json(cfg))
    ref = transformers.AutoModelForCausalLM.from_config(hf_cfg, attn_implementation="eager", dtype=torch.float32)
    dense = dense_weights(model)
    state = {}
    for name, a in dense.items():
        if cfg.family == "gpt2":
            state[name] = a  # GPT-2's Conv1D already stores [in, out]
        elif name.endswith(("experts.gate_proj", "experts.up_proj")):
            continue  # fused below
        elif name.endswith("experts.down_proj"):
            state[name] = a.transpose(0, 2, 1)
            prefix = name.removesuffix("down_proj")
            gate, up = dense[prefix + "gate_proj"], dense[prefix + "up_proj"]
            state[prefix + "gate_up_proj"] = np.concatenate([gate.transpose(0, 2, 1), up.transpose(0, 2, 1)], axis=1)
        elif a.ndim == 2 and not name.endswith("embed_tokens.weight"):
            state[name] = a.T  # nn.Linear stores [out, in]
        else:
            state[name] = a
    if cfg.tie_word_embeddings:
        state["lm_head.weight"] = state["transformer.wte.weight" if cfg.family == "gpt2" else "model.embed_tokens.weight"]
    ref.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
    return ref.eval()


def hf_logits(ref, ids: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return ref(input_ids=torch.from_numpy(ids)).logits.float().numpy()


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    # Extended optimizations swap DequantizeLinear->MatMul for MatMulNBits kernels that also
    # quantize the activations; the basic level keeps the graph's own arithmetic.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference relative to the reference's largest magnitude."""
    return float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))
