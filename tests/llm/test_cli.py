"""``rduflow simulate`` and ``rduflow compare`` from the command line."""

import json

import pytest
from rduflow.inference.cli import main
from rduflow.models import build_onnx
from rduflow.models.export import save_onnx


def test_simulate_json(capsys):
    assert main(["simulate", "tiny-llama", "--arch", "h100-sxm", "--prompt", "24", "--gen", "6", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "tiny-llama" and d["output_tokens"] == 6


def test_simulate_summary_report_and_trace(tmp_path, capsys):
    html, trace = tmp_path / "r.html", tmp_path / "t.json"
    assert main(["simulate", "tiny-qwen2", "--arch", "a100-40gb", "--gpus", "2", "--prompt", "24", "--gen", "4",
                 "--weights", "int8", "--kv-dtype", "fp8", "--report", str(html), "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "TTFT" in out and "report:" in out
    assert html.read_text().startswith("<!DOCTYPE html>")
    events = json.loads(trace.read_text())["traceEvents"]
    assert {e["ph"] for e in events} >= {"X", "M"}
    assert any(e.get("args", {}).get("name", "").startswith("decode") for e in events if e["ph"] == "M")


def test_onnx_file_model(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    save_onnx(build_onnx("tiny-llama", "decode", weights="shape-only", seq="seq"), path)
    assert main(["simulate", str(path), "--arch", "h100-sxm", "--prompt", "16", "--gen", "3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model_source"] == str(path) and d["itl_ms"]["mean"] > 0


def test_compare_writes_table_and_plot(tmp_path, capsys):
    out = tmp_path / "cmp.md"
    assert main(["compare", "tiny-llama", "--target", "h100-sxm:1", "--target", "a100-80gb:2",
                 "--prompt", "16", "--gen", "4", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "h100-sxm x 1" in printed and "a100-80gb x 2" in printed
    assert "| target | TTFT ms |" in out.read_text()
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, message", [
    (["simulate", "tiny-llama", "--arch", "h100-sxm", "--sockets", "2"], "--gpus, not --sockets"),
    (["simulate", "tiny-llama", "--arch", "sn40l", "--gpus", "2"], "--sockets, not --gpus"),
    (["simulate", "no-such-model", "--arch", "h100-sxm"], "no model preset named 'no-such-model'"),
    (["simulate", "tiny-llama", "--arch", "no-such-arch"], "unknown architecture 'no-such-arch'"),
    (["simulate", "tiny-llama", "--arch", "h100-sxm", "--prompt", "8", "--prefix-cache", "8"], "--prefix-cache"),
    (["simulate", "tiny-llama", "--arch", "h100-sxm", "--gen", "0"], "--gen must be"),
    (["simulate", "tiny-llama", "--arch", "h100-sxm", "--report", "/no/such/dir/r.html"], "does not exist"),
    (["simulate", "tiny-llama", "--arch", "h100-sxm", "--spec-decode", "nope,k=2,accept=0.5"],
     "no model preset named 'nope'"),
    (["compare", "tiny-llama", "--target", "h100-sxm:x"], "--target takes ARCH or ARCH:N"),
])
def test_errors_are_one_line(argv, message, capsys):
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_prefill_only_onnx_file_is_refused(tmp_path, capsys):
    path = tmp_path / "p.onnx"
    save_onnx(build_onnx("tiny-llama", "prefill", weights="shape-only"), path)
    assert main(["simulate", str(path), "--arch", "h100-sxm"]) != 0
    assert "no 'past' dimension" in capsys.readouterr().err


def _without_wall_time(text: str) -> dict:
    d = json.loads(text)
    d["simulation"].pop("wall_s")
    return d


def test_simulate_prints_the_graph_passes_and_the_same_json(capsys):
    argv = ["simulate", "tiny-llama", "--arch", "h100-sxm", "--prompt", "16", "--gen", "3", "--weights", "fp8",
            "--kv-dtype", "int8", "--json"]
    assert main(argv) == 0
    plain = capsys.readouterr()
    assert main(argv + ["--print-ir-after", "quantize-weights,kv-cache"]) == 0
    printed = capsys.readouterr()
    assert _without_wall_time(printed.out) == _without_wall_time(plain.out)
    headers = [line for line in printed.err.splitlines() if line.startswith("// -----")]
    # decode graph, then prefill (whose cache outputs are named: it has no cache input)
    assert headers == ["// ----- IR after quantize-weights (pass 4) ----- //",
                       "// ----- IR after kv-cache{dtype=int8} (pass 5) ----- //",
                       "// ----- IR after quantize-weights (pass 4) ----- //",
                       "// ----- IR after kv-cache{dtype=int8,outputs=[present.0.key,present.0.value,present.1.key,"
                       "present.1.value]} (pass 5) ----- //"]
    assert "f8e4m3[" in printed.err and "i8[batch, 2, past+seq, 16]" in printed.err


def test_simulate_print_ir_after_all_on_an_onnx_file(tmp_path, capsys):
    from rduflow.ir import parse_module

    path = tmp_path / "m.onnx"
    save_onnx(build_onnx("tiny-llama", "decode", weights="shape-only", seq="seq"), path)
    assert main(["simulate", str(path), "--arch", "h100-sxm", "--prompt", "16", "--gen", "3", "--weights", "int4",
                 "--print-ir-after-all"]) == 0
    err = capsys.readouterr().err
    dumps = err.split("// ----- ")[1:]
    assert [d.split(" ----- //")[0] for d in dumps] == [
        "IR after canonicalize (pass 1)", "IR after cse (pass 2)", "IR after dce (pass 3)",
        "IR after quantize-weights{dtype=int4} (pass 1)"]
    last = parse_module(dumps[-1].split(" ----- //\n", 1)[1])  # each dump parses back as a module
    assert any("dequantize_linear" == op.opname for op in last.main.ops)
