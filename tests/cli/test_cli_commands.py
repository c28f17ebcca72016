"""rduflow opt / run / demo, end to end through the command-line entry point."""

import re
import subprocess
import sys

import numpy as np
import pytest

from rduflow.inference.cli import main
from rduflow.compiler.demo import DemoConfig, build_demo
from rduflow.ir import parse_file, parse_module, run

TEXT = """module { graph @main(%x: f32[n, 4]) -> (f32[n, 4]) {
    %z = constant() {value = dense<f32[] [0.0]>} : f32[]
    %a = add(%x, %z) : f32[n, 4]
    %b = exp(%a) : f32[n, 4]
    %c = exp(%a) : f32[n, 4]
    %r = add(%b, %c) : f32[n, 4]
    return %r as "out" } }
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.rdu"
    path.write_text(TEXT)
    return path


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def dump_headers(err: str) -> list[str]:
    return re.findall(r"^// ----- (.*) ----- //$", err, flags=re.M)


# -- opt ---------------------------------------------------------------------------------------------------
def test_opt_prints_the_optimized_ir(capsys, model):
    code, out, err = cli(capsys, "opt", model, "-p", "canonicalize,cse,dce")
    assert code == 0 and err == ""
    m = parse_module(out)
    assert [op.opname for op in m.main.ops] == ["exp", "add"]


def test_opt_without_passes_round_trips(capsys, model):
    code, out, _ = cli(capsys, "opt", model)
    assert code == 0 and out == parse_module(out).__str__() and len(parse_module(out).main.ops) == 5


def test_opt_writes_to_a_file(capsys, model, tmp_path):
    code, out, err = cli(capsys, "opt", model, "-p", "cse", "-o", tmp_path / "o.rdu")
    assert code == 0 and out == "" and "wrote" in err
    assert [op.opname for op in parse_file(tmp_path / "o.rdu").main.ops] == ["constant", "add", "exp", "add"]


def test_print_ir_flags(capsys, model):
    _, out, err = cli(capsys, "opt", model, "-p", "canonicalize,cse,dce", "--print-ir-after-all")
    assert dump_headers(err) == ["IR after canonicalize (pass 1)", "IR after cse (pass 2)", "IR after dce (pass 3)"]
    _, _, err = cli(capsys, "opt", model, "-p", "canonicalize,cse,dce", "--print-ir-after=cse,dce")
    assert dump_headers(err) == ["IR after cse (pass 2)", "IR after dce (pass 3)"]
    _, _, err = cli(capsys, "opt", model, "-p", "cse,dce", "--print-ir-before-all")
    assert dump_headers(err) == ["IR before cse (pass 1)", "IR before dce (pass 2)"]
    _, _, err = cli(capsys, "opt", model, "-p", "dce,cse,cse", "--print-ir-after-change")
    assert dump_headers(err) == ["IR after cse (pass 2)"]
    _, _, err = cli(capsys, "opt", model, "-p", "dce,cse,dce", "--print-ir-after=dce", "--print-ir-after-change")
    assert dump_headers(err) == []


def test_time_passes_prints_a_table(capsys, model):
    code, out, err = cli(capsys, "opt", model, "-p", "canonicalize{fold-limit=16},cse", "--time-passes")
    assert code == 0
    assert "Pass execution timing report" in err and "canonicalize{fold-limit=16}" in err and "cse" in err
    parse_module(out)  # the table stays off stdout


def test_list_passes(capsys):
    code, out, _ = cli(capsys, "opt", "--list-passes")
    assert code == 0
    assert re.search(r"^canonicalize: .*\n    fold-limit: int \(default \d+\)", out, flags=re.M)
    assert re.search(r"^cse: ", out, flags=re.M) and re.search(r"^dce: ", out, flags=re.M)


# -- demo and run ------------------------------------------------------------------------------------------
def test_demo_prints_a_module_that_verifies(capsys):
    code, out, _ = cli(capsys, "demo", "--layers", "2")
    assert code == 0
    m = parse_module(out)
    assert m.main.args[0].name == "ids" and str(m.main.outputs[0].type) == "f32[batch, seq, 64]"
    assert "weight @h1.mlp.proj.w : f32[128, 32] = memory" in out


def test_demo_saved_then_run_gives_the_interpreters_answer(capsys, tmp_path):
    assert cli(capsys, "demo", "-o", tmp_path / "demo.rdu")[0] == 0
    ids = np.array([[5, 9, 2, 7], [0, 63, 1, 1]], np.int64)
    np.savez(tmp_path / "in.npz", ids=ids)
    want = run(build_demo(DemoConfig()), {"ids": ids})["logits"]
    for pipeline in ("", "canonicalize,cse,dce"):
        code, out, err = cli(capsys, "run", tmp_path / "demo.rdu", "--inputs", tmp_path / "in.npz",
                             "--output", tmp_path / "out.npz", "-p", pipeline)
        assert code == 0, err
        assert out == "logits: float32[2, 4, 64]\n"
        with np.load(tmp_path / "out.npz") as z:
            assert z.files == ["logits"]
            np.testing.assert_array_equal(z["logits"], want)


def test_run_a_graph_without_inputs(capsys, tmp_path):
    (tmp_path / "c.rdu").write_text("""module { graph @main() -> (i64[3]) {
        %r = range() {start = 2, limit = 5} : i64[3]
        return %r as "r" } }""")
    code, out, _ = cli(capsys, "run", tmp_path / "c.rdu", "--output", tmp_path / "o.npz")
    assert code == 0 and out == "r: int64[3]\n"
    with np.load(tmp_path / "o.npz") as z:
        assert z["r"].tolist() == [2, 3, 4]


def test_console_entry_point_runs_as_a_program(tmp_path):
    (tmp_path / "m.rdu").write_text(TEXT)
    ok = subprocess.run([sys.executable, "-m", "rduflow.inference.cli", "opt", str(tmp_path / "m.rdu"), "-p", "cse"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "graph @main" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "rduflow.inference.cli", "opt", str(tmp_path / "m.rdu"), "-p", "zap"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("rduflow: error: unknown pass 'zap'") and bad.stderr.count("\n") == 1
