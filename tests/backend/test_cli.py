"""rduflow compile, and rduflow run --arch --sockets, through the command-line entry point."""

import json

import numpy as np
import onnx
from backendhelpers import inputs_for, tiny
from rduflow.inference.cli import main
from rduflow.ir import parse_file, print_module
from rduflow.models import build_onnx
from rduflow.simulator import simulate


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compile_a_preset_writes_program_summary_and_pictures(capsys, tmp_path):
    code, out, err = cli(capsys, "compile", "tiny-llama", "--arch", "sn40l", "--sockets", "2", "--past", "8",
                         "-o", tmp_path / "out", "--plot")
    assert code == 0, err
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"placed.rdu", "summary.json", "summary.txt", "section0.png", "section1.png", "section2.png"} <= files
    assert "model.layers.*" in out and "2 socket(s)" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["sockets"] == 2 and summary["sections"][1]["repeat"] == 2
    placed = parse_file(tmp_path / "out" / "placed.rdu")  # the written program reads back and simulates
    assert simulate(placed, "sn40l").total_s > 0


def test_compile_an_onnx_file_with_ir_printed_after_each_pass(capsys, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(build_onnx("tiny-gpt2", "prefill"), path)
    code, out, err = cli(capsys, "compile", path, "--arch", "sn40l", "--seq", "4", "--fusion", "none",
                         "--print-ir-after", "fuse,route", "-o", tmp_path / "out")
    assert code == 0, err
    assert "// ----- IR after fuse" in err and "// ----- IR after route" in err
    assert "fusion=none" in out


def test_compile_errors_are_one_line(capsys, tmp_path):
    code, _, err = cli(capsys, "compile", "tiny-llama", "--arch", "sn40l", "-o", tmp_path / "o")
    assert code == 1 and err.count("\n") == 1 and "seq without a value" in err and "--seq" in err
    code, _, err = cli(capsys, "compile", "no-such-model", "--arch", "sn40l", "-o", tmp_path / "o")
    assert code == 1 and "not a model preset" in err
    code, _, err = cli(capsys, "compile", "tiny-llama", "--arch", "sn40l", "--seq", "4", "--sockets", "99",
                       "-o", tmp_path / "o")
    assert code == 1 and "sockets must be 1 to 16" in err


def test_run_with_arch_executes_the_sharded_program(capsys, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(build_onnx("tiny-llama", "decode"), path)
    ins = inputs_for(tiny("tiny-llama", "decode"), {"batch": 1, "past": 6})
    np.savez(tmp_path / "in.npz", **ins)
    assert cli(capsys, "run", path, "--inputs", tmp_path / "in.npz", "--output", tmp_path / "a.npz")[0] == 0
    code, _, err = cli(capsys, "run", path, "--inputs", tmp_path / "in.npz", "--output", tmp_path / "b.npz",
                       "--arch", "sn40l", "--sockets", "2")
    assert code == 0, err
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    for k in a.files:
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-5 * float(np.abs(a[k]).max()))


def test_opt_takes_the_target_of_backend_passes_from_arch(capsys, tmp_path):
    path = tmp_path / "m.rdu"
    path.write_text(print_module(tiny("tiny-llama", "decode")))
    pipeline = 'bind{dims="batch=1,past=6",complete=true},fuse,section'
    code, out, err = cli(capsys, "opt", path, "--arch", "sn30", "-p", pipeline)
    assert code == 0, err
    assert "section" in out
    code, _, err = cli(capsys, "opt", path, "--arch", "h100-sxm", "-p", pipeline)
    assert code == 1 and "'h100-sxm' is a GPU architecture" in err
    code, _, err = cli(capsys, "opt", path, "-p", "section{arch=sn30}")
    assert code == 1 and "takes its target architecture from the pass context" in err
