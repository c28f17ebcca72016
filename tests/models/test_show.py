"""``models show``: figures read off the imported graphs through the IR cost model."""

import json

import pytest

from rduflow.inference import cli
from rduflow.models import get_config
from rduflow.compiler.model_stats import model_stats


@pytest.fixture(scope="module")
def llama():
    return model_stats(get_config("llama-3.1-8b"), seq=1024, past=0)


def test_counts_and_bytes_come_from_the_graph(llama):
    cfg = get_config("llama-3.1-8b")
    assert llama.parameters == llama.active_parameters == 8_030_261_248
    assert llama.weight_bytes["bf16"] == 2 * llama.parameters
    assert llama.weight_bytes["f32"] == 4 * llama.parameters
    # int4 projections are half a byte, plus one bf16 scale per 128; embeddings and head stay bf16.
    kept = 2 * cfg.vocab_size * cfg.hidden_size + (2 * cfg.num_layers + 1) * cfg.hidden_size
    quantized = llama.parameters - kept
    assert llama.weight_bytes["int4"] == 2 * kept + quantized // 2 + 2 * (quantized // 128)
    # 32 layers, keys and values, 8 KV heads of 128, bf16
    assert llama.kv_bytes_per_token == 32 * 2 * 8 * 128 * 2


def test_flops_are_symbolic_and_match_the_weights_they_read(llama):
    cfg = get_config("llama-3.1-8b")
    assert "batch" in llama.prefill_flops and "seq" in llama.prefill_flops and "past" in llama.decode_flops
    # At past 0 a decode step is one multiply-add per weight of every MatMul (all but the
    # embedding lookup), plus norms, rope and softmax: well under 1% more.
    matmul_flops = 2 * (llama.parameters - cfg.vocab_size * cfg.hidden_size)
    assert 1 < llama.decode_flops_per_token / matmul_flops < 1.01
    assert llama.prefill_flops_per_token > llama.decode_flops_per_token  # attention over 1024 tokens


def test_mixtral_flops_are_those_of_two_experts():
    cfg = get_config("mixtral-8x7b")
    s = model_stats(cfg, seq=1, past=0)
    idle = (cfg.num_experts - cfg.num_experts_per_tok) * cfg.num_layers * 3 * cfg.hidden_size * cfg.intermediate_size
    assert s.active_parameters == s.parameters - idle
    # Every active parameter but the embedding lookup is one multiply-add per token.
    assert 1 < s.decode_flops_per_token / (2 * (s.active_parameters - cfg.vocab_size * cfg.hidden_size)) < 1.01


def test_show_cli(capsys, monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["rduflow.inference.cli.models"])
    assert cli.main(["models", "show", "tiny-mixtral", "--json", "--seq", "16", "--past", "8"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parameters"] == 189_248 and data["seq"] == 16 and data["past"] == 8
    # 2 layers x 2 of 4 experts unpicked x 3 projections of 64 x 96
    assert data["active_parameters"] == 189_248 - 2 * 2 * 3 * 64 * 96
    assert cli.main(["models", "show", "tiny-gpt2"]) == 0
    out = capsys.readouterr().out
    assert "parameters              112,384" in out and "active parameters       112,384" in out and "KiB" in out
