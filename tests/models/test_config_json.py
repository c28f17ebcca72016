"""A user's Hugging Face config.json gives the same config as the preset it describes."""

import dataclasses
import json
import time

import pytest

from modelref import hf_config_json
from rduflow.models import ModelError, get_config, list_presets, load_config_json
from rduflow.models.config import LIMITS


def write(tmp_path, raw) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw) if not isinstance(raw, str) else raw)
    return str(path)


@pytest.mark.parametrize("name", list_presets())
def test_published_config_json_round_trips(name, tmp_path):
    cfg = get_config(name)
    assert load_config_json(write(tmp_path, hf_config_json(cfg)), name=name) == cfg


@pytest.mark.parametrize("name", ["llama-3.1-8b", "mixtral-8x7b", "tiny-qwen2", "gpt2"])
def test_config_written_by_transformers_loads(name, tmp_path):
    import transformers

    cfg = get_config(name)
    transformers.AutoConfig.for_model(**hf_config_json(cfg)).to_json_file(tmp_path / "config.json")
    loaded = load_config_json(tmp_path / "config.json", name=name)
    assert loaded == cfg


def test_name_defaults_to_the_directory(tmp_path):
    d = tmp_path / "my-llama"
    d.mkdir()
    cfg = load_config_json(write(d, hf_config_json(get_config("tiny-llama"))))
    assert cfg.name == "my-llama"
    assert dataclasses.replace(cfg, name="tiny-llama") == get_config("tiny-llama")


@pytest.mark.parametrize("raw, message", [
    ("{not json", "not valid JSON"),
    ([1, 2], "JSON object"),
    ({"model_type": "bert"}, "model_type 'bert' is not supported"),
    ({"model_type": "llama", "hidden_size": 64}, "missing key 'num_attention_heads'"),
    ({**hf_config_json(get_config("tiny-llama")), "hidden_size": "64"}, "'hidden_size' should be int"),
    ({**hf_config_json(get_config("tiny-llama")), "rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
     "rope_type 'yarn' is not supported"),
    ({**hf_config_json(get_config("tiny-llama")), "hidden_act": "gelu"}, "hidden_act 'gelu'"),
])
def test_bad_config_json_names_file_and_field(raw, message, tmp_path):
    path = write(tmp_path, raw)
    with pytest.raises(ModelError, match=message) as e:
        load_config_json(path)
    assert "config.json" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        load_config_json(tmp_path / "nope.json")


@pytest.mark.parametrize("preset, key, value, field", [
    ("tiny-llama", "num_hidden_layers", 1e9, "num_layers"),  # ran for minutes
    ("tiny-qwen2", "num_hidden_layers", 1e9, "num_layers"),  # a 1e9-entry layer_types list before the check
    ("tiny-llama", "hidden_size", 1 << 20, "hidden_size"),
    ("tiny-llama", "vocab_size", 10**12, "vocab_size"),
    ("tiny-llama", "max_position_embeddings", 10**10, "max_position_embeddings"),
    ("tiny-mistral", "sliding_window", 10**10, "sliding_window"),
])
def test_sizes_beyond_any_published_model_are_refused_at_once(tmp_path, preset, key, value, field):
    raw = hf_config_json(get_config(preset))
    if preset == "tiny-qwen2":
        raw.update(use_sliding_window=True, sliding_window=64)
    raw[key] = value
    start = time.monotonic()
    with pytest.raises(ModelError) as e:
        load_config_json(write(tmp_path, raw))
    assert time.monotonic() - start < 1
    message = str(e.value)
    assert f"{field} = {int(value)} is above {LIMITS[field]}, the most rduflow accepts" in message
    assert "config.json" in message and "\n" not in message


def test_every_preset_is_within_the_limits():
    for name in list_presets():
        cfg = get_config(name)
        assert all((getattr(cfg, f) or 0) <= limit for f, limit in LIMITS.items()), name
