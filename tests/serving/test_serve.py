"""Serving end to end on a tiny model and the GPU model (steps cost milliseconds to price)."""

from dataclasses import replace

import numpy as np
import pytest

from rduflow.inference import RunConfig, simulate_llm
from rduflow.inference.errors import LlmSimError
from rduflow.inference.serving.config import EngineConfig
from rduflow.inference.serving.report import overload, report_dict
from rduflow.inference.serving.serve import ServeConfig, serve
from rduflow.inference.serving.workload import Request, Workload, parse_arrival, parse_length, synthesize

MODEL, ARCH = "tiny-llama", "h100-sxm"
ENGINE = EngineConfig(max_num_batched_tokens=512, max_num_seqs=64, host_overheads=False)


def cfg(**engine) -> ServeConfig:
    return ServeConfig(MODEL, ARCH, 1, replace(ENGINE, **engine), use_cache=False)


def poisson(rate, n, inp="128", out="32", seed=0) -> Workload:
    return synthesize(arrival=parse_arrival("poisson"), input_len=parse_length(inp, "in"),
                      output_len=parse_length(out, "out"), requests=n, rate=rate, stages=None, concurrency=None,
                      shared_prefix=None, seed=seed)


@pytest.fixture(scope="module")
def busy():
    """A load the engine keeps up with, batching several requests at a time."""
    probe = serve(cfg(), poisson(1.0, 1))
    single = probe.metrics.e2e_s[0]
    return serve(cfg(), poisson(4.0 / single, 300, inp="uniform:32,256", out="uniform:8,64"))


def test_at_very_low_load_requests_see_simulate_s_single_request_figures():
    prompt, gen = 200, 40
    run = simulate_llm(RunConfig(MODEL, ARCH, devices=1, prompt=prompt, gen=gen, host_overheads=False))
    wl = Workload(tuple(Request(i, 10.0 * i, prompt, gen) for i in range(5)))
    r = serve(cfg(enable_prefix_caching=False), wl)
    m = r.metrics
    assert np.allclose(m.ttft_s, run.ttft_s, rtol=0.01)
    assert np.allclose(m.tpot_s, run.itl_s.mean(), rtol=0.01)
    assert np.all(m.queue_s == 0)


def test_littles_law(busy):
    """Mean requests in the engine (its own count, step by step) = arrival rate x mean time in it."""
    s, m = busy.run.steps, busy.metrics
    ends = np.append(s.start_s[1:], busy.run.end_s)
    dur = ends - s.start_s  # the count holds from one step's start to the next's
    t0, t1 = m.sent_s.min(), busy.run.end_s
    in_system = float((s.running + s.waiting) @ dur) / (t1 - t0)
    lam = len(m.id) / (t1 - t0)
    assert in_system == pytest.approx(lam * float(m.e2e_s.mean()), rel=0.02)


def test_throughput_never_exceeds_what_the_steps_allow(busy):
    s = busy.run.steps
    assert float((s.chip_s + s.host_s).sum()) <= busy.run.end_s
    # Each step yields at most one token per sequence in it.
    assert busy.metrics.output_tokens.sum() <= s.sequences.sum()
    d = report_dict(busy)
    assert d["steps"]["mean_batch"] > 1.5  # the load really batches
    assert not d["overload"]["overloaded"]


def test_unlimited_kv_means_no_preemption_and_scarce_kv_preempts():
    wl = poisson(1e6, 60, inp="256", out="64")
    assert serve(cfg(kv_cache_tokens=10**7), wl).metrics.preemptions.sum() == 0
    tight = serve(cfg(kv_cache_tokens=2000), wl)
    assert tight.metrics.preemptions.sum() > 0
    assert len(tight.metrics.id) == 60  # preempted requests still finish


def test_a_rate_above_capacity_is_reported_as_overload_not_a_hang():
    single = serve(cfg(), poisson(1.0, 1)).metrics.e2e_s[0]
    r = serve(cfg(max_num_seqs=4), poisson(3 * 4 / single, 400))  # three times what 4 at a time can serve
    assert overload(r)["overloaded"]
    assert len(r.metrics.id) == 400


def test_the_same_seed_gives_identical_output():
    a = report_dict(serve(cfg(), poisson(500.0, 80, inp="uniform:16,300", seed=3)))
    b = report_dict(serve(cfg(), poisson(500.0, 80, inp="uniform:16,300", seed=3)))
    for d in (a, b):
        d.pop("simulation")
        d.pop("step_table")
    assert a == b


def test_requests_that_cannot_be_served_are_rejected_and_counted():
    wl = Workload((Request(0, 0.0, 100, 10), Request(1, 0.1, 3000, 10), Request(2, 0.2, 100, 10)))
    r = serve(cfg(max_model_len=1024, kv_cache_tokens=4000), wl)
    d = report_dict(r)
    assert d["requests"] == {"completed": 2, "rejected": 1, "rejected_reasons": {"too long for the model": 1},
                             "preempted": 0, "preemptions": 0}
    r = serve(cfg(kv_cache_tokens=512), wl)
    assert report_dict(r)["requests"]["rejected_reasons"] == {"larger than the KV cache": 1}


def test_a_model_that_leaves_no_room_for_kv_is_one_clear_error():
    with pytest.raises(LlmSimError, match="does not fit for serving"):
        serve(ServeConfig("llama-3.1-70b", ARCH, 1, ENGINE, use_cache=False), poisson(1.0, 2))


def test_shared_prefixes_hit_the_prefix_cache():
    from rduflow.inference.serving.workload import SharedPrefix

    sp = SharedPrefix(2, 5, 256, 64, 16)
    wl = synthesize(arrival=parse_arrival("poisson"), input_len=None, output_len=None, requests=40, rate=200.0,
                    stages=None, concurrency=None, shared_prefix=sp, seed=0)
    on = serve(cfg(), wl)
    off = serve(cfg(enable_prefix_caching=False), wl)
    assert on.run.prefix_hit_rate > 0.5 and off.run.prefix_hit_rate == 0
    assert on.metrics.ttft_s.mean() < off.metrics.ttft_s.mean()


def test_closed_loop_keeps_the_concurrency():
    wl = synthesize(arrival=parse_arrival("poisson"), input_len=parse_length("64", "in"),
                    output_len=parse_length("16", "out"), requests=50, rate=None, stages=None, concurrency=5,
                    shared_prefix=None, seed=0)
    r = serve(cfg(), wl)
    assert len(r.metrics.id) == 50
    assert r.run.steps.running.max() + r.run.steps.waiting.max() <= 5


def test_static_batching_waits_for_the_whole_batch():
    wl = Workload(tuple(Request(i, 0.0, 64, 8 if i else 64) for i in range(4)) + (Request(4, 0.001, 64, 8),))
    r = serve(cfg(scheduler="static"), wl)
    late = r.metrics.queue_s[r.metrics.id == 4][0]
    longest = r.metrics.e2e_s[r.metrics.id == 0][0]
    assert late >= longest - 0.001 - 1e-9  # it waited for the first batch's longest request



def test_an_offload_tier_keeps_evicted_prefixes():
    from rduflow.inference.serving.workload import SharedPrefix

    sp = SharedPrefix(40, 4, 512, 32, 8)  # 40 system prompts: more than the device cache keeps
    wl = synthesize(arrival=parse_arrival("poisson"), input_len=None, output_len=None, requests=400, rate=2000.0,
                    stages=None, concurrency=None, shared_prefix=sp, seed=0)
    tight = dict(kv_cache_tokens=4096)
    without = serve(cfg(**tight), wl)
    with_tier = serve(cfg(**tight, kv_offloading_size=1.0), wl)
    d = report_dict(with_tier)["kv_cache"]["offload"]
    assert d["tier"] == "host" and d["hit_rate"] > 0 and d["load_s"] > 0
    assert with_tier.run.prefix_hit_rate > without.run.prefix_hit_rate
    assert report_dict(without)["kv_cache"]["offload"]["tier"] == "none"


def test_a_mix_of_models_switches_weights_between_batches():
    from rduflow.inference.graphs import load_graphs
    from rduflow.inference.serving.memory import weight_bytes
    from rduflow.inference.serving.workload import assign_models, parse_mix

    wl = assign_models(poisson(2000.0, 60, inp="64", out="8"), MODEL, parse_mix("tiny-mistral=0.5"), seed=0)
    assert {r.model for r in wl.requests} == {MODEL, "tiny-mistral"}
    r = serve(replace(cfg(scheduler="static"), mix=("tiny-mistral",)), wl)
    assert len(r.metrics.id) == 60 and r.run.switches > 0
    pcie = 64e9  # h100-sxm's per-direction PCIe: a GPU brings weights in from host memory
    costs = {round(weight_bytes(load_graphs(m, "bf16", "bf16").decode) / pcie, 15) for m in (MODEL, "tiny-mistral")}
    seen = {round(float(x), 15) for x in r.run.steps.switch_s if x > 0}
    assert seen <= costs and len(seen) >= 1
    assert float(r.run.steps.switch_s.sum()) == pytest.approx(sum(x for x in r.run.steps.switch_s if x > 0))
    with pytest.raises(LlmSimError, match="one model per batch"):
        serve(replace(cfg(), mix=("tiny-mistral",)), wl)


def test_mix_texts_are_checked():
    from rduflow.inference.serving.workload import WorkloadError, parse_mix

    assert parse_mix("a=0.2,b=0.3") == [("a", 0.2), ("b", 0.3)]
    for bad in ("a", "a=1", "a=0.6,b=0.5", "a=0.2,a=0.1", "a=x", ""):
        with pytest.raises(WorkloadError):
            parse_mix(bad)
