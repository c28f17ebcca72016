"""Physics, not snapshots: what must hold of any run whatever the constants.

Each check runs on a GPU and on an RDU target. Models are small (two full-width layers) and
generations short, so every check simulates a handful of steps.
"""

import pytest

from rduflow.simulator.llm import RunConfig, SpecDecode, report_dict, simulate_llm

from llmcases import DRAFT, WIDE

TARGETS = [pytest.param("h100-sxm", id="gpu"), pytest.param("sn40l", id="rdu")]
BASE = dict(prompt=128, gen=16)


def run(arch, devices=1, **kw):
    return simulate_llm(RunConfig(WIDE, arch, devices=devices, **{**BASE, **kw}))


@pytest.mark.parametrize("arch", TARGETS)
def test_itl_never_below_the_memory_roofline_and_ttft_never_below_compute(arch):
    for devices, batch in ((1, 1), (2, 4)):
        r = run(arch, devices, batch=batch)
        d = report_dict(r)
        assert d["ttft_ms"] >= d["bounds"]["prefill"]["compute_ms"]
        assert d["ttft_ms"] >= d["bounds"]["prefill"]["memory_ms"]
        for s in d["itl_ms"]["samples"]:
            assert s["itl_ms"] >= s["memory_bound_ms"]
            assert s["itl_ms"] >= s["compute_bound_ms"]


@pytest.mark.parametrize("arch", TARGETS)
def test_more_sockets_never_slower_for_a_memory_bound_decode(arch):
    itl = [run(arch, n, gen=4).itl_s.mean() for n in (1, 2, 4)]
    assert itl[0] >= itl[1] >= itl[2]


@pytest.mark.parametrize("arch", TARGETS)
def test_speculative_decoding_with_acceptance_zero_is_never_faster(arch):
    plain = run(arch)
    none = run(arch, spec=SpecDecode(DRAFT, 3, 0.0))
    assert none.itl_s.mean() >= plain.itl_s.mean()
    assert none.ttft_s >= plain.ttft_s  # the draft prefills too
    good = run(arch, spec=SpecDecode(DRAFT, 3, 0.9))
    assert good.itl_s.mean() < none.itl_s.mean()
    assert good.tokens_per_step == pytest.approx(1 + 0.9 + 0.81 + 0.729)


@pytest.mark.parametrize("arch", TARGETS)
def test_int4_weights_faster_than_bf16_for_memory_bound_decode(arch):
    bf16 = run(arch, gen=4)
    int4 = run(arch, gen=4, weights="int4")
    assert int4.itl_s.mean() < bf16.itl_s.mean()
    # the bytes moved, not a multiplier: decode reads about a quarter of the weight bytes
    b16 = report_dict(bf16)["phases"]["decode"]["bandwidth"]["hbm"]["bytes"]
    b4 = report_dict(int4)["phases"]["decode"]["bandwidth"]["hbm"]["bytes"]
    assert b4 < 0.4 * b16


@pytest.mark.parametrize("arch", TARGETS)
def test_prefix_cache_shortens_prefill_only(arch):
    full = run(arch, prompt=256, gen=4)
    cached = run(arch, prompt=256, gen=4, prefix_cache=192)
    assert cached.ttft_s < full.ttft_s
    assert report_dict(cached)["bounds"]["prefill"]["flops"] < report_dict(full)["bounds"]["prefill"]["flops"]
    assert cached.itl_s.mean() == pytest.approx(full.itl_s.mean(), rel=1e-9)


@pytest.mark.parametrize("arch", TARGETS)
def test_batching_raises_throughput_and_kv_dtype_cuts_cache_bytes(arch):
    one = report_dict(run(arch, gen=4))
    eight = report_dict(run(arch, gen=4, batch=8))
    assert eight["throughput_tokens_per_s"] > 4 * one["throughput_tokens_per_s"]
    assert eight["itl_ms"]["mean"] >= one["itl_ms"]["mean"]
    long = dict(gen=4, batch=8, prompt=2048)
    bf = report_dict(run(arch, **long))["phases"]["decode"]["bandwidth"]["hbm"]["bytes"]
    f8 = report_dict(run(arch, kv_dtype="fp8", **long))["phases"]["decode"]["bandwidth"]["hbm"]["bytes"]
    assert f8 < bf


def test_itl_grows_with_the_kv_cache():
    r = simulate_llm(RunConfig(WIDE, "h100-sxm", batch=16, prompt=512, gen=2048))
    assert r.itl_s[-1] > r.itl_s[0]
    assert len(r.decode.sampled.positions) < 40  # far fewer simulations than positions
