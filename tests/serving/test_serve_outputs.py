"""The serve HTML report and Perfetto trace, on small runs of tiny-llama on one H100 (no RDU compile)."""

from __future__ import annotations

from dataclasses import replace

import base64
import json
from collections import defaultdict
from html.parser import HTMLParser

import numpy as np
import pytest

from rduflow.compiler.loading import LoadError
from rduflow.inference.cli import main
from rduflow.inference.serving import figures, trace
from rduflow.inference.serving.html import render_html, write_html
from rduflow.inference.serving.metrics import Slo
from rduflow.inference.serving.serve import ServeConfig, serve
from rduflow.inference.serving.trace import trace_events, write_trace
from rduflow.inference.serving.workload import parse_arrival, parse_length, synthesize

CFG = ServeConfig("tiny-llama", "h100-sxm", 1, use_cache=False)


def _workload(rate: float, seed: int):
    return synthesize(arrival=parse_arrival("poisson"), input_len=parse_length("uniform:16,64", "--input-len"),
                      output_len=parse_length("uniform:1,16", "--output-len"), requests=30, rate=rate, stages=None,
                      concurrency=None, shared_prefix=None, seed=seed)


@pytest.fixture(scope="module")
def results():
    """Two rates on one target; the second with a context limit that rejects the longest requests
    and a small KV cache, so that requests queue."""
    quiet = serve(CFG, _workload(50.0, 0))
    busy = serve(replace(CFG, engine=replace(CFG.engine, max_model_len=70, kv_cache_tokens=256)), _workload(2000.0, 1))
    assert busy.run.rejected and busy.run.steps.waiting.max() > 0  # what the tests below rely on
    return [quiet, busy]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.ids, self.external = [], set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a["src"])
        for key in ("src", "href"):
            if key in a and not a[key].startswith("data:"):
                self.external.append(a[key])
        if tag in ("script", "link"):
            self.external.append(tag)


def _parse(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    p.close()
    return p


def test_html_report_has_the_tables_and_every_figure_inline(results):
    text = render_html(results, Slo(ttft_s=0.05))
    page = _parse(text)
    assert not page.external  # self-contained: no scripts, links or remote images
    assert len(page.images) == 4  # CDFs, latency over time, load over time, throughput-latency
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"runs", "setup-1", "latency-1", "throughput-1", "setup-2", "latency-2", "throughput-2"} <= page.ids
    assert "tiny-llama" in text and "h100-sxm" in text and "goodput (ttft=50ms)" in text
    assert results[1].workload.description in text


def test_one_run_has_no_throughput_latency_curve(results, tmp_path):
    path = tmp_path / "r.html"
    write_html(results[:1], path)
    page = _parse(path.read_text())
    assert len(page.images) == 3
    assert "goodput" not in path.read_text()  # no --slo, no goodput row


def test_scatter_plots_are_thinned(results, monkeypatch):
    monkeypatch.setattr(figures, "MAX_SCATTER_POINTS", 10)
    fig = figures.latency_over_time(results)
    for ax in fig.axes:
        assert sum(len(c.get_offsets()) for c in ax.collections) <= 10
    idx = figures.thin(1000, 7)
    assert len(idx) == 7 and idx[0] == 0 and idx[-1] == 999
    assert list(figures.thin(5, 7)) == [0, 1, 2, 3, 4]


def _tracks(events):
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    slices = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            slices[(e["pid"], e["tid"])].append(e)
    return names, slices


def test_trace_has_a_track_per_request_and_one_of_steps(results, tmp_path):
    path = tmp_path / "t.json"
    write_trace(results, path)
    events = json.loads(path.read_text())["traceEvents"]
    names, slices = _tracks(events)
    processes = [e for e in events if e["name"] == "process_name"]
    assert [e["pid"] for e in processes] == [1, 2]
    for pid, r in enumerate(results, start=1):
        assert names[(pid, trace.STEPS_TID)] == "engine steps"
        steps = slices[(pid, trace.STEPS_TID)]
        assert len(steps) == len(r.run.steps.start_s)
        assert sum(e["args"]["tokens"] for e in steps) == r.run.steps.tokens.sum()
        assert {e["name"] for e in steps} <= {"prefill", "decode", "mixed"}
        for s in r.run.sequences:
            tid = trace.FIRST_REQUEST_TID + s.req.id
            assert names[(pid, tid)] == f"request {s.req.id}"
            got = slices[(pid, tid)]
            want = ["queued", "prefill"] + (["decode"] if s.req.output_tokens > 1 else [])
            assert [e["name"] for e in got] == want
            assert got[0]["ts"] == pytest.approx(s.sent_s * 1e6, abs=1e-2)
            assert got[1]["ts"] == pytest.approx(s.first_scheduled_s * 1e6, abs=1e-2)
            end = got[-1]["ts"] + got[-1]["dur"]
            assert end == pytest.approx(s.finished_s * 1e6, abs=1e-2)
        # no track of this run holds overlapping slices (Perfetto would drop them)
        for track in (v for k, v in slices.items() if k[0] == pid):
            ends = [e["ts"] + e["dur"] for e in track[:-1]]
            assert all(b["ts"] >= a - 1e-6 for a, b in zip(ends, track[1:]))
        rejected = [e for e in events if e["pid"] == pid and e["ph"] == "i"]
        assert len(rejected) == len(r.run.rejected)
        counters = defaultdict(list)
        for e in events:
            if e["pid"] == pid and e["ph"] == "C":
                counters[e["name"]].append(next(iter(e["args"].values())))
        assert set(counters) == {"KV blocks used", "batch size", "waiting"}
        assert max(counters["KV blocks used"]) == r.run.steps.kv_blocks.max()
        assert max(counters["batch size"]) == r.run.steps.sequences.max()
        assert max(counters["waiting"]) == r.run.steps.waiting.max()
        assert all(a != b for a, b in zip(counters["batch size"], counters["batch size"][1:]))  # changes only
    assert results[1].run.rejected  # the second run's rejections are instants on their own track
    assert names[(2, trace.REJECTED_TID)] == "rejected requests"


def test_many_steps_merge_by_batch_size(results, monkeypatch):
    steps = results[1].run.steps
    monkeypatch.setattr(trace, "MAX_STEP_SLICES", 5)
    merged = trace.step_slices(steps, 1)
    assert len(merged) < len(steps.start_s)
    assert sum(e["args"]["steps"] for e in merged) == len(steps.start_s)
    assert sum(e["args"]["tokens"] for e in merged) == steps.tokens.sum()
    assert all(a["args"]["sequences"] != b["args"]["sequences"] for a, b in zip(merged, merged[1:]))
    assert merged[0]["ts"] == pytest.approx(steps.start_s[0] * 1e6, abs=1e-2)
    last_end = (steps.start_s + steps.chip_s + steps.host_s + steps.load_s + steps.switch_s)[-1] * 1e6
    assert merged[-1]["ts"] + merged[-1]["dur"] == pytest.approx(last_end, abs=1e-2)
    assert np.isclose(sum(e["args"]["chip_ms"] for e in merged), steps.chip_s.sum() * 1e3)


def test_an_unwritable_output_leaves_nothing(results, tmp_path):
    with pytest.raises(LoadError, match="cannot write"):
        write_trace(results, tmp_path / "missing" / "t.json")
    with pytest.raises(LoadError, match="cannot write"):
        write_html(results, tmp_path / "missing" / "r.html")
    assert list(tmp_path.iterdir()) == []
    assert trace_events([]) == [] and "No run finished" in render_html([])


@pytest.mark.parametrize("flag", ["--report", "--trace"])
def test_cli_unwritable_output_is_one_line(flag, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["serve", "tiny-llama", "--target", "h100-sxm:1", "--requests", "5", "--no-cache", "-q",
            flag, "/nonexistent/x.out"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{flag} /nonexistent/x.out" in err and "does not exist" in err
    assert list(tmp_path.iterdir()) == []


def _leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict) and v and k != "rejected_reasons":  # reasons are data, not field names
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield prefix + k


def test_every_report_field_is_documented(results):
    """Each leaf of the JSON report is in docs/report-schema.md's serve table, by path or name."""
    from pathlib import Path

    from rduflow.inference.serving.report import report_dict

    doc = (Path(__file__).resolve().parents[2] / "docs" / "report-schema.md").read_text()
    section = doc[doc.index("(schema `rduflow.serve/1`)"):]
    d = report_dict(results[1], Slo(ttft_s=0.05))
    missing = [k for k in _leaves(d) if f"`{k}`" not in section and f"`{k.rsplit('.', 1)[-1]}`" not in section
               and f".{k.rsplit('.', 1)[-1]}`" not in section]
    assert not missing
