"""Outputs that cannot be written (issue 15, section 2): one line naming the path and the reason,
before the work where the path can be checked, and nothing half written left behind.

Running as root ignores folder permissions, so besides read-only folders (skipped where chmod
does not bite) every command is also tried on a path through a regular file."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rduflow.compiler.loading import LoadError
from rduflow.inference.cli import main
from rduflow.models import build_onnx
from rduflow.models.export import save_onnx

GOOD = """module { graph @main(%x: f32[n, 4]) -> (f32[n, 4]) {
    %e = exp(%x) : f32[n, 4]
    return %e as "y" } }
"""


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.rdu").write_text(GOOD)
    (tmp_path / "file.txt").write_text("a regular file")
    np.savez(tmp_path / "in.npz", x=np.ones((2, 4), np.float32))
    save_onnx(build_onnx("tiny-llama", "prefill", weights="shape-only"), tmp_path / "tiny.onnx")
    return tmp_path


def _commands(out):
    return [
        ["run", "good.rdu", "--inputs", "in.npz", "--output", f"{out}/o.npz"],
        ["opt", "good.rdu", "-o", f"{out}/o.rdu"],
        ["demo", "-o", f"{out}/o.rdu"],
        ["import", "tiny.onnx", "--shapes-only", "-o", f"{out}/o.rdu"],
        ["compile", "good.rdu", "--arch", "sn40l", "-o", f"{out}/compiled"],
        ["models", "export", "tiny-llama", "-o", f"{out}/o.onnx"],
        ["simulate", "tiny-llama", "--arch", "h100-sxm", "--report", f"{out}/r.html"],
        ["simulate", "tiny-llama", "--arch", "h100-sxm", "--trace", f"{out}/t.json"],
        ["compare", "tiny-llama", "--target", "h100-sxm", "-o", f"{out}/c.md"],
        ["compare", "tiny-llama", "--target", "h100-sxm", "--plot", f"{out}/c.png"],
    ]


def _refused_before_the_work(argv, capsys, monkeypatch):
    """Each command fails on its output path before it loads, compiles or simulates anything."""
    def no_work(*a, **k):
        raise AssertionError("the work started")

    monkeypatch.setattr("rduflow.inference.run.check_context", no_work)  # the first thing a simulation does
    for name in ("rduflow.inference.cli.ir.load_module", "rduflow.inference.cli.compile.load_model",
                 "rduflow.inference.cli.importer.import_onnx", "rduflow.inference.cli.models.build_onnx",
                 "rduflow.compiler.demo.build_demo"):
        monkeypatch.setattr(name, no_work)
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rduflow: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv", _commands("file.txt/sub"), ids=lambda a: " ".join(a[:1] + a[-2:-1]))
def test_output_under_a_regular_file(argv, files, capsys, monkeypatch):
    before = sorted(files.iterdir())
    err = _refused_before_the_work(argv, capsys, monkeypatch)
    assert "file.txt is not a folder" in err
    assert sorted(files.iterdir()) == before


@pytest.mark.parametrize("argv", _commands("ro"), ids=lambda a: " ".join(a[:1] + a[-2:-1]))
def test_output_in_a_read_only_folder(argv, files, capsys, monkeypatch):
    ro = files / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: folder permissions do not bite (test_output_under_a_regular_file checks)")
        err = _refused_before_the_work(argv, capsys, monkeypatch)
        assert "cannot write in folder ro" in err and "Permission denied" in err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_run_output_in_a_missing_folder(files, capsys):
    assert main(["run", "good.rdu", "--inputs", "in.npz", "--output", "/nonexistent/o.npz"]) == 1
    assert capsys.readouterr().err == "rduflow: error: --output /nonexistent/o.npz: folder /nonexistent does not exist\n"


def test_compare_plot_format_is_checked_first(files, capsys, monkeypatch):
    err = _refused_before_the_work(["compare", "tiny-llama", "--target", "h100-sxm", "--plot", "c.txt"],
                                   capsys, monkeypatch)
    assert "--plot c.txt: matplotlib cannot write .txt images" in err


def test_compare_writes_both_files_or_neither(files, monkeypatch):
    from rduflow.inference import compare as cmp
    from rduflow.inference.config import RunConfig
    from rduflow.inference.report import figures

    runs = cmp.compare([("h100-sxm", 1)], lambda arch, n: RunConfig("tiny-llama", arch, n, prompt=16, gen=4))

    class Broken:
        def savefig(self, f, **kw):
            f.write(b"\x89PNG half")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(figures, "compare_figure", lambda runs: Broken())
    with pytest.raises(LoadError, match="c.png: cannot write: No space"):
        cmp.write_outputs(runs, files / "c.md", files / "c.png")
    assert not (files / "c.md").exists() and not [p for p in files.iterdir() if p.name.startswith(".")]


def _cli(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "rduflow.inference.cli", *argv], capture_output=True, text=True,
                          timeout=300, **kw)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [["opt", "good.rdu"], ["demo"], ["opt", "--list-passes"]])
def test_stdout_that_refuses_writes(argv, files):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "rduflow.inference.cli", *argv], stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=300, cwd=files)
    assert r.returncode == 1
    assert r.stderr == "rduflow: error: standard output: cannot write: No space left on device\n"


def _limit_file_size():
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # the trace is about 5.6 KB


def test_trace_under_a_file_size_limit_leaves_no_truncated_json(files):
    r = _cli("simulate", "tiny-llama", "--arch", "h100-sxm", "--prompt", "16", "--gen", "4", "--trace", "t.json",
             cwd=files, preexec_fn=_limit_file_size)
    assert r.returncode == 1, r.stderr
    assert r.stderr == "rduflow: error: t.json: cannot write: File too large\n"
    assert not (files / "t.json").exists() and not [p for p in files.iterdir() if p.name.startswith(".")]
