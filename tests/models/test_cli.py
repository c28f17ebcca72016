"""``rduflow models list | export`` through the real CLI entry point."""

import json

import onnx
import pytest

from modelref import hf_config_json
from rduflow.inference import cli
from rduflow.models import get_config, list_presets


@pytest.fixture(autouse=True)
def only_models_commands(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["rduflow.inference.cli.models"])


def test_list_names_every_preset(capsys):
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in list_presets():
        assert f"\n{name} " in out
    assert "8 experts, top-2" in out and "window 4096" in out


def test_list_json(capsys):
    assert cli.main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_presets()
    assert rows[list_presets().index("llama-3.1-405b")]["num_layers"] == 126


def test_export_tiny_decode_runs_checker(tmp_path, capsys):
    out = tmp_path / "d.onnx"
    assert cli.main(["models", "export", "tiny-mixtral", "--variant", "decode", "-o", str(out), "--past", "7"]) == 0
    assert "random(seed=0) weights" in capsys.readouterr().out
    onnx.checker.check_model(str(out), full_check=True)
    m = onnx.load(str(out))
    assert {p.key: p.value for p in m.metadata_props}["rduflow.variant"] == "decode"
    assert m.graph.input[1].type.tensor_type.shape.dim[2].dim_value == 7


def test_export_shape_only_from_a_config_json(tmp_path):
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(hf_config_json(get_config("llama-3.2-1b"))))
    out = tmp_path / "l.onnx"
    assert cli.main(["models", "export", str(cfg_path), "-o", str(out), "--dtype", "int4"]) == 0
    onnx.checker.check_model(str(out), full_check=True)
    assert (tmp_path / f"{tmp_path.name}.shape-only.bin").stat().st_size == 0


def test_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["models", "export", "llama-9", "-o", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model preset named 'llama-9'" in err
    assert cli.main(["models", "export", "tiny-llama", "-o", str(tmp_path / "no" / "x.onnx")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["models", "export", "tiny-llama", "--seq", "abc!", "-o", str(tmp_path / "x.onnx")]) == 1
    assert "not an identifier" in capsys.readouterr().err
