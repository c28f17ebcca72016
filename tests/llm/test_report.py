"""The JSON report: every documented field, and the relations between them."""

import json

import numpy as np
import pytest
from rduflow.inference import (
    SCHEMA,
    RunConfig,
    SpecDecode,
    report_dict,
    simulate_llm,
    summary,
    to_json,
)
from rduflow.inference.trace import trace_events

REQUIRED = {"schema", "model", "arch", "sockets", "batch", "prompt_tokens", "output_tokens", "ttft_ms", "itl_ms",
            "tokens_per_s_per_user", "throughput_tokens_per_s", "e2e_ms", "bandwidth", "utilization", "bounds",
            "breakdown", "phases"}


@pytest.fixture(scope="module")
def report():
    run = simulate_llm(RunConfig("tiny-llama", "a100-80gb", devices=2, batch=3, prompt=40, gen=12))
    return run, json.loads(to_json(run))


def test_fields(report):
    _, d = report
    assert REQUIRED <= set(d)
    assert d["schema"] == SCHEMA
    assert (d["model"], d["arch"], d["sockets"], d["batch"], d["prompt_tokens"], d["output_tokens"]) == \
        ("tiny-llama", "a100-80gb", 2, 3, 40, 12)
    assert {"mean", "p50", "p90", "p99", "samples"} <= set(d["itl_ms"])
    for s in d["itl_ms"]["samples"]:
        assert {"position", "itl_ms", "memory_bound_ms", "compute_bound_ms"} <= set(s)
    for tier in d["bandwidth"].values():
        assert {"bytes", "achieved_gb_s", "peak_gb_s", "fraction_of_peak"} <= set(tier)
    assert {"prefill", "decode"} <= set(d["bounds"])
    assert {"by_section_ms", "by_kind_ms"} <= set(d["breakdown"])


def test_relations(report):
    _, d = report
    itl = d["itl_ms"]
    assert itl["min"] <= itl["p50"] <= itl["p90"] <= itl["p99"] <= itl["max"]
    assert d["e2e_ms"] == pytest.approx(d["ttft_ms"] + itl["mean"] * (d["output_tokens"] - 1))
    assert d["tokens_per_s_per_user"] == pytest.approx(1e3 / itl["mean"])
    assert d["throughput_tokens_per_s"] == pytest.approx(3 * 12 / (d["e2e_ms"] * 1e-3))
    # TTFT and ITL are device time plus the serving engine's host time
    tb = d["time_breakdown_ms"]
    assert d["ttft_ms"] == pytest.approx(tb["ttft"]["device"] + tb["ttft"]["host"])
    assert itl["mean"] == pytest.approx(tb["itl_mean"]["device"] + tb["itl_mean"]["host"])
    assert tb["ttft"]["host"] > 0 and tb["itl_mean"]["host"] > 0
    assert 0 <= tb["ttft"]["collective"] <= tb["ttft"]["device"]
    device_ms = tb["ttft"]["device"] + tb["itl_mean"]["device"] * (d["output_tokens"] - 1)
    # the breakdowns account for all the device time, once
    assert sum(d["breakdown"]["by_section_ms"].values()) == pytest.approx(device_ms, rel=1e-6)
    assert sum(d["breakdown"]["by_kind_ms"].values()) == pytest.approx(device_ms, rel=1e-6)
    for tier in d["bandwidth"].values():
        assert 0 <= tier["fraction_of_peak"] <= 1
        assert tier["achieved_gb_s"] == pytest.approx(tier["bytes"] / (device_ms * 1e-3) / 1e9)
    for v in d["utilization"].values():
        assert 0 <= v <= 1
    phases = d["phases"]
    assert phases["prefill"]["time_ms"] + phases["decode"]["time_ms"] == pytest.approx(device_ms)
    positions = [s["position"] for s in itl["samples"]]
    assert positions[0] == 40 and positions[-1] == 40 + 12 - 2
    assert np.all(np.diff(positions) > 0)


def test_spec_and_single_token_runs():
    d = report_dict(simulate_llm(RunConfig("tiny-llama", "h100-sxm", prompt=16, gen=6,
                                           spec=SpecDecode("tiny-gpt2", 2, 0.5))))
    assert d["spec_decode"] == {"draft": "tiny-gpt2", "k": 2, "accept": 0.5, "tokens_per_step": 1.75}
    assert d["bounds"]["decode"]["per"] == "output token"
    one = simulate_llm(RunConfig("tiny-llama", "h100-sxm", prompt=16, gen=1))
    d1 = report_dict(one)
    assert d1["itl_ms"] is None and d1["tokens_per_s_per_user"] is None and d1["phases"]["decode"] is None
    assert d1["e2e_ms"] == pytest.approx(d1["ttft_ms"])
    assert "TTFT" in summary(one)


def test_summary_names_the_headline_figures(report):
    run, _ = report
    text = summary(run)
    for word in ("TTFT", "ITL mean", "tokens/s/user", "throughput", "bandwidth", "where the time goes"):
        assert word in text


def test_rdu_report_maps_units_to_the_tile_grid():
    """The heatmap puts each placed unit's busy time on its PCUs and PMUs: unit names must
    match the engine's, or the grid stays empty."""
    run = simulate_llm(RunConfig("tiny-llama", "sn40l", devices=2, prompt=16, gen=3))
    d = report_dict(run)
    assert {"pcu", "pmu", "links"} <= set(d["utilization"])
    step = run.decode_steps()[0][1]
    assert step.heatmap is not None and step.heatmap.shape == (40, 52)
    assert (step.heatmap > 0).sum() >= 10 and step.heatmap.max() <= 1
    tb = d["time_breakdown_ms"]
    device_ms = tb["ttft"]["device"] + tb["itl_mean"]["device"] * (d["output_tokens"] - 1)
    assert sum(d["breakdown"]["by_kind_ms"].values()) == pytest.approx(device_ms, rel=1e-6)
    assert "matmul" in d["breakdown"]["by_kind_ms"]
    # the Chrome trace re-simulates the prefill and a decode step with the engine's tracing on
    names = {e["args"]["name"] for e in trace_events(run) if e["ph"] == "M" and e["name"] == "process_name"}
    assert "prefill: units" in names and any(n.startswith("decode at context 1") and n.endswith(": units")
                                             for n in names)
