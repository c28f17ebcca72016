"""Every mistake a user can make gives one clear line on stderr and a non-zero exit, never a traceback."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from rduflow.inference.cli import main
from rduflow.compiler.passes import PASSES, ModulePass

GOOD = """module { graph @main(%x: f32[n, 4]) -> (f32[n, 4]) {
    %e = exp(%x) : f32[n, 4]
    return %e as "y" } }
"""


@dataclass(frozen=True)
class BreakTypes(ModulePass):
    """Leaves an op whose result type disagrees with its operands."""

    name: ClassVar[str] = "break-types"

    def apply(self, module, ctx):
        r = module.main.ops[0].results[0]
        r.type = r.type.with_dtype(r.type.dtype.__class__("f16"))


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setitem(PASSES, "break-types", f"{__name__}:BreakTypes")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.rdu").write_text(GOOD)
    (tmp_path / "syntax.rdu").write_text(GOOD.replace("exp(%x)", "exp(%x,"))
    (tmp_path / "invalid.rdu").write_text(GOOD.replace(": f32[n, 4]\n    return", ": f32[n, 5]\n    return")
                                          .replace("-> (f32[n, 4])", "-> (f32[n, 5])"))
    (tmp_path / "noweights.rdu").write_text("""module {
        weight @w : f32[4] = shape_only
        graph @main(%x: f32[n, 4]) -> (f32[n, 4]) {
        %w = weight() {ref = @w} : f32[4]
        %y = add(%x, %w) : f32[n, 4]
        return %y as "y" } }""")
    np.savez(tmp_path / "in.npz", x=np.ones((2, 4), np.float32))
    np.savez(tmp_path / "wrong_name.npz", z=np.ones((2, 4), np.float32))
    np.savez(tmp_path / "extra.npz", x=np.ones((2, 4), np.float32), z=np.ones(1))
    np.savez(tmp_path / "wrong_shape.npz", x=np.ones((2, 5), np.float32))
    np.savez(tmp_path / "wrong_rank.npz", x=np.ones((4,), np.float32))
    np.savez(tmp_path / "wrong_dtype.npz", x=np.ones((2, 4)))
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    return tmp_path


CASES = [
    (["opt", "missing.rdu"], r"missing.rdu: no such file"),
    (["opt", "syntax.rdu"], r"syntax.rdu:2:\d+: unexpected"),
    (["opt", "invalid.rdu", "-p", "cse"], r"the input IR is invalid, before any pass: .*'exp' .*invalid.rdu:2:5: "
                                          r"result type\(s\) \(f32\[n, 5\]\) differ from inferred"),
    (["opt", "invalid.rdu"], r"the input IR is invalid, before any pass"),
    (["opt", "good.rdu", "-p", "no-such-pass"], r"unknown pass 'no-such-pass' \(available: .*canonicalize, .*cse, .*dce"),
    (["opt", "good.rdu", "-p", "canonicalize{limit=3}"], r"pass 'canonicalize' has no option 'limit' \(options: "),
    (["opt", "good.rdu", "-p", "canonicalize{fold-limit=lots}"], r"option 'fold-limit' expects an int, got 'lots'"),
    (["opt", "good.rdu", "-p", "cse{"], r"bad pipeline 'cse\{': unexpected end"),
    (["opt", "good.rdu", "-p", "cse,break-types,dce"],
     r"IR is invalid after pass 'break-types' \(pipeline so far: cse,break-types\): .*'exp'"),
    (["opt", "good.rdu", "--print-ir-after=cse,no-such-pass"], r"--print-ir-after: unknown pass 'no-such-pass'"),
    (["opt"], r"opt: give a FILE"),
    (["opt", "good.rdu", "-o", "out.npz"], r"cannot be saved as .npz"),
    (["opt", "good.rdu", "-o", "no/such/dir/out.rdu"], r"folder no/such/dir does not exist"),
    (["run", "good.rdu", "--output", "o.npz"], r"the graph takes inputs \(x: f32\[n, 4\]\): give them with --inputs"),
    (["run", "good.rdu", "--inputs", "nope.npz", "--output", "o.npz"], r"nope.npz: no such file"),
    (["run", "good.rdu", "--inputs", "garbage.npz", "--output", "o.npz"], r"garbage.npz: not a readable .npz"),
    (["run", "good.rdu", "--inputs", "wrong_name.npz", "--output", "o.npz"],
     r"wrong_name.npz: no array for input\(s\) x \(the graph takes x: f32\[n, 4\]; the file has z\)"),
    (["run", "good.rdu", "--inputs", "extra.npz", "--output", "o.npz"], r"array\(s\) z match no graph input"),
    (["run", "good.rdu", "--inputs", "wrong_shape.npz", "--output", "o.npz"],
     r"input 'x' has shape \[2, 5\], the graph wants f32\[n, 4\]"),
    (["run", "good.rdu", "--inputs", "wrong_rank.npz", "--output", "o.npz"], r"input 'x' has shape \[4\]"),
    (["run", "good.rdu", "--inputs", "wrong_dtype.npz", "--output", "o.npz"],
     r"input 'x' is float64, the graph wants f32 .*astype\(np.float32\)"),
    (["run", "good.rdu", "--inputs", "in.npz", "--output", "o.txt"], r"outputs are written as .npz"),
    (["run", "noweights.rdu", "--inputs", "in.npz", "--output", "o.npz"], r"weight @w is shape-only"),
    (["demo", "--heads", "3"], r"d_model 32 is not divisible by heads 3"),
    (["demo", "--layers", "0"], r"layers must be at least 1"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_error_is_one_clear_line(files, capsys, argv, message):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("rduflow: error: "), err
    assert __import__("re").search(message, err), err
    assert not (files / "o.npz").exists() and not list(files.glob(".*.tmp"))


def test_good_inputs_work_with_the_same_files(files, capsys):
    assert main(["run", "good.rdu", "--inputs", "in.npz", "--output", "o.npz"]) == 0
    with np.load(files / "o.npz") as z:
        np.testing.assert_allclose(z["y"], np.exp(np.ones((2, 4), np.float32)))
