"""The MODEL argument of simulate, compare and compile: a preset, a Hugging Face config.json
(or its folder), an ONNX file or IR text, read the same way; an exporter's dimension names
given their roles (``--dim`` for what the graph does not show); export defaults that simulate."""

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest
from rduflow.compiler.loading import save_module
from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.inference.cli import build_parser, main
from rduflow.inference.model_source import resolve_model
from rduflow.models import build_onnx
from rduflow.models.export import save_onnx

GPU = ["--arch", "h100-sxm", "--prompt", "16", "--gen", "3"]  # the fastest backend: roles do not depend on it
HF_NAMES = {"batch": "batch_size", "seq": "sequence_length", "past": "past_sequence_length"}
TINY_LLAMA_HF = {"model_type": "llama", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}


def one_line_error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rduflow: error: "), err
    return err


@pytest.fixture
def config_folder(tmp_path) -> Path:
    folder = tmp_path / "my-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_LLAMA_HF))
    return folder


@pytest.fixture
def hf_named_decode(tmp_path) -> Path:
    """A decode graph whose dimensions carry Hugging Face's names."""
    path = tmp_path / "hf_decode.onnx"
    save_onnx(build_onnx("tiny-llama", "decode", weights="shape-only", **HF_NAMES), path)
    return path


# -- one resolver -------------------------------------------------------------------------------
def test_every_kind_of_model_argument_resolves(tmp_path, config_folder, hf_named_decode):
    assert resolve_model("tiny-llama").is_preset
    by_file, by_folder = resolve_model(str(config_folder / "config.json")), resolve_model(str(config_folder))
    assert by_file.config == by_folder.config and by_file.config.name == "my-llama"
    assert by_folder.path == config_folder / "config.json"
    renamed = tmp_path / "llama-config"  # JSON without the suffix: told by its content
    renamed.write_text(json.dumps(TINY_LLAMA_HF))
    assert resolve_model(str(renamed)).config is not None
    assert resolve_model(str(hf_named_decode)).is_file_model
    ir = tmp_path / "m.rdu"
    save_module(import_onnx(hf_named_decode, shapes_only=True), ir)
    assert resolve_model(str(ir)).path == ir


@pytest.mark.parametrize("command", [["simulate"], ["compare", "--target", "h100-sxm:1"],
                                     ["compile", "--arch", "sn40l", "--seq", "4"]])
def test_config_json_and_its_folder_work_in_every_command(command, config_folder, tmp_path, capsys):
    out = ["-o", str(tmp_path / ("o" if command[0] == "compile" else "c.md"))] if command[0] != "simulate" else []
    extra = ["--prompt", "16", "--gen", "3"] if command[0] != "compile" else []
    arch = ["--arch", "h100-sxm"] if command[0] == "simulate" else []
    for model in (config_folder, config_folder / "config.json"):
        assert main([command[0], str(model), *command[1:], *arch, *extra, *out]) == 0
    if command[0] == "simulate":
        capsys.readouterr()
        assert main(["simulate", str(config_folder), *GPU, "--json"]) == 0
        d = json.loads(capsys.readouterr().out)
        assert d["model"] == "my-llama" and d["model_source"] == str(config_folder / "config.json")


@pytest.mark.parametrize("command", [["simulate"], ["compare", "--target", "h100-sxm:1"],
                                     ["compile", "--arch", "sn40l", "-o", "OUT"], ["models", "show"]])
def test_a_bad_model_argument_is_one_line_naming_it(command, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad_json = tmp_path / "config.json"
    bad_json.write_text("{not json")
    args = [a.replace("OUT", str(tmp_path / "o")) for a in command[1:]]
    for model, says in ((tmp_path / "missing.onnx", "no such file"), (empty, "without a config.json"),
                        (bad_json, "not valid JSON"), ("no-such-model", "not a model preset")):
        argv = command[:1] + ([command[1]] if command[0] == "models" else []) + [str(model)]
        argv += [] if command[0] == "models" else args
        err = one_line_error(capsys, argv)
        assert str(model) in err and says in err, err


def test_models_show_refuses_a_model_file_in_one_line(hf_named_decode, capsys):
    err = one_line_error(capsys, ["models", "show", str(hf_named_decode)])
    assert "preset name or a Hugging Face config.json" in err


# -- dimension roles ----------------------------------------------------------------------------
def test_hugging_face_dimension_names_simulate_and_compile(hf_named_decode, tmp_path, capsys):
    assert main(["simulate", str(hf_named_decode), *GPU, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["itl_ms"]["mean"] > 0
    assert main(["compile", str(hf_named_decode), "--arch", "sn40l", "--seq", "1", "--past", "8",
                 "-o", str(tmp_path / "o")]) == 0


def test_ir_text_with_other_names_simulates(hf_named_decode, tmp_path, capsys):
    ir = tmp_path / "m.rdu"
    save_module(import_onnx(hf_named_decode, shapes_only=True), ir)
    assert main(["simulate", str(ir), *GPU]) == 0


def test_dim_overrides_name_a_role_or_fix_a_value(tmp_path, capsys):
    # A decode graph whose past is "ctx": --dim says what it is (as the graph shows), or fixes it.
    path = tmp_path / "d.onnx"
    save_onnx(build_onnx("tiny-llama", "decode", weights="shape-only", seq="seq", past="ctx"), path)
    assert main(["simulate", str(path), *GPU, "--dim", "ctx=past"]) == 0
    assert main(["compile", str(path), "--arch", "sn40l", "--seq", "1", "--dim", "ctx=8",
                 "-o", str(tmp_path / "o")]) == 0
    err = one_line_error(capsys, ["simulate", str(path), *GPU, "--dim", "nope=past"])
    assert "nope" in err and "ctx" in err  # names the dimensions there are
    err = one_line_error(capsys, ["simulate", "tiny-llama", *GPU, "--dim", "seq=past"])
    assert "--dim applies to ONNX and IR files" in err
    with pytest.raises(SystemExit):
        main(["simulate", str(path), *GPU, "--dim", "ctx=sideways"])
    assert "neither a role" in capsys.readouterr().err
    # a run sets batch, seq and past itself: fixing one would simulate one thing and report another
    err = one_line_error(capsys, ["simulate", str(path), *GPU, "--dim", "batch=4"])
    assert "--dim batch=4" in err and "--batch" in err
    err = one_line_error(capsys, ["simulate", str(path), *GPU, "--dim", "ctx=8"])
    assert "ctx is the past dimension" in err


def test_every_hint_names_a_flag_that_exists(hf_named_decode, capsys):
    err = one_line_error(capsys, ["compile", str(hf_named_decode), "--arch", "sn40l", "-o", "/tmp/unused"])
    flags = set(re.findall(r"--[a-z][a-z-]*", err))
    assert flags >= {"--past", "--seq"}
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["compile"]
    known = {s for a in sub._actions for s in a.option_strings}
    assert flags <= known, flags - known


# -- exports from Hugging Face, by PyTorch -------------------------------------------------------
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_plain_hugging_face_decode_export_simulates(exporter, tmp_path, capsys):
    pytest.importorskip("transformers")
    sys.path.insert(0, str(Path(__file__).parent.parent / "frontend"))
    from hf_models import export

    e = export("llama", "decode", exporter, tmp_path)  # attention_mask [batch, total_sequence_length]
    capsys.readouterr()  # the exporter's progress
    assert main(["simulate", str(e.path), *GPU, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["itl_ms"]["mean"] > 0


# -- models export ------------------------------------------------------------------------------
def test_exported_decode_variant_simulates_as_it_is(tmp_path, capsys):
    path = tmp_path / "d.onnx"
    assert main(["models", "export", "tiny-llama", "--variant", "decode", "-o", str(path)]) == 0
    assert main(["simulate", str(path), *GPU]) == 0
    fixed = tmp_path / "fixed.onnx"  # --seq 1 still gives the one-token graph compile --variant decode builds
    assert main(["models", "export", "tiny-llama", "--variant", "decode", "--seq", "1", "-o", str(fixed)]) == 0
    assert "seq" not in import_onnx(fixed, shapes_only=True).symbols


def test_export_uses_the_umask(tmp_path, capsys):
    old = os.umask(0o027)
    try:
        assert main(["models", "export", "tiny-llama", "-o", str(tmp_path / "m.onnx")]) == 0
        assert main(["models", "export", "llama-3.2-1b", "-o", str(tmp_path / "big.onnx")]) == 0
    finally:
        os.umask(old)
    for f in tmp_path.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f
