"""``rduflow serve`` from the command line: outputs, several targets, bad input as one line."""

import json

import pytest

from rduflow.inference.cli import main


def run(capsys, *argv):
    try:
        code = main(["serve", *argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


FAST = ["tiny-llama", "--target", "h100-sxm:1", "--requests", "40", "--rate", "500", "--input-len", "uniform:16,64",
        "--output-len", "8", "--no-cache", "-q"]


def test_json_report_and_several_targets(capsys):
    code, out, _ = run(capsys, *FAST, "--target", "h200-sxm:1", "--json", "--slo", "ttft=5ms,itl=1ms")
    assert code == 0
    reports = json.loads(out)
    assert [r["arch"] for r in reports] == ["h100-sxm", "h200-sxm"]
    for r in reports:
        assert r["schema"] == "rduflow.serve/1" and r["requests"]["completed"] == 40
        assert set(r["ttft_ms"]) == {"mean", "p50", "p90", "p99"}
        assert r["goodput"]["slo"] == "ttft=5ms,itl=1ms"


def test_buckets_on_an_rdu(capsys):
    code, out, _ = run(capsys, "tiny-llama", "--target", "sn40l:1", "--scheduler", "buckets", "--batch-buckets", "1,4",
                       "--seq-buckets", "128", "--requests", "12", "--rate", "1000", "--input-len", "uniform:16,64",
                       "--output-len", "8", "--no-cache", "-q", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["scheduler"] == "buckets" and d["requests"]["completed"] == 12
    assert d["steps"]["mean_batch"] > 1  # padded batches of up to 4


def test_max_rate_finds_a_rate_that_meets_the_slo(capsys):
    code, out, _ = run(capsys, "tiny-llama", "--target", "h100-sxm:1", "--requests", "200", "--input-len", "512",
                       "--output-len", "8", "--no-cache", "-q", "--max-rate", "--slo", "ttft=0.3ms",
                       "--no-host-overheads", "--json")
    assert code == 0
    d = json.loads(out)
    found = d["max_rate"]
    assert found["max_rate_per_s"] and found["lowest_failing_rate_per_s"] > found["max_rate_per_s"]
    assert found["lowest_failing_rate_per_s"] / found["max_rate_per_s"] <= 1.05 + 1e-9
    assert d["report"]["goodput"]["fraction"] >= 0.9


@pytest.mark.parametrize("extra, message", [
    (["--rate", "-2"], "--rate must be positive"),
    (["--rate", "x"], "--rate takes requests per second"),
    (["--slo", "ttft=fast"], "a unit (ms or s)"),
    (["--slo", "ttft=5"], "give ttft=5 a unit"),
    (["--slo", "ttft=5ms,ttft=6ms"], "gives ttft twice"),
    (["--slo", ""], "--slo takes NAME=VALUE"),
    (["--slo", "ttftx=5ms"], "cannot read 'ttftx=5ms'"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
    (["--requests", "0"], "--requests must be at least 1"),
    (["--requests", "2.5"], "invalid int value"),
    (["--stages", "4:10"], "leave out --rate"),
    (["--batch-buckets", "1,4"], "add --scheduler buckets"),
    (["--report", "same.html", "--trace", "same.html"], "name the same file"),
    (["--target", "h100-sxm:3"], "which 3 GPUs do not divide"),
    (["--input-len", "300", "--max-model-len", "100"], "every request was rejected"),
    (["--max-rate"], "give --slo too"),
    (["--max-num-seqs", "0"], "--max-num-seqs must be an integer >= 1"),
    (["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization must be in (0, 1]"),
    (["--batch-buckets", "4,2", "--scheduler", "buckets"], "--batch-buckets must be increasing"),
    (["--input-len", "uniform:9,3"], "input-len"),
    (["--arrival", "sometimes"], "arrival"),
    (["--target", "h100-sxm:0"], "--target takes ARCH or ARCH:N"),
    (["--report", "/nonexistent/r.html"], "/nonexistent"),
])
def test_bad_input_is_one_line(capsys, extra, message):
    argv = [a for a in FAST if a not in ("--rate", "500")] if "--rate" in extra else FAST
    code, out, err = run(capsys, *argv, *extra)
    assert code != 0
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_an_empty_trace_is_one_line(capsys, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n")
    code, _, err = run(capsys, "tiny-llama", "--target", "h100-sxm:1", "--workload", str(trace), "-q")
    assert code != 0 and str(trace) in err and err.count("\n") == 1


def test_a_workload_file_with_workload_options_is_refused(capsys, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n0,10,5\n")
    code, _, err = run(capsys, "tiny-llama", "--target", "h100-sxm:1", "--workload", str(trace), "--rate", "3")
    assert code != 0 and "leave out --rate" in err


def test_per_request_lines(capsys, tmp_path):
    out = tmp_path / "r.jsonl"
    code, _, _ = run(capsys, *FAST, "--max-model-len", "60", "--per-request", str(out))
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(40))
    done = [r for r in rows if "rejected" not in r]
    assert done and len(done) < 40  # prompts of up to 64 tokens + 8 out exceed 60
    for r in done:
        assert len(r["itl_ms"]) == r["output_tokens"] - 1
        assert r["e2e_ms"] == pytest.approx(r["ttft_ms"] + sum(r["itl_ms"]), rel=1e-6)
