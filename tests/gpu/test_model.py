"""Physics of the GPU model: rooflines hold per kernel, parallelism and launch options move
time the right way, and the one calibration point is met."""

import pytest
from rduflow.compiler.target import load_arch
from rduflow.simulator.gpu import DEFAULT_PARAMS, GpuModelError, GpuProgram
from rduflow.inference import RunConfig, simulate_llm

DECODE = {"batch": 1, "seq": 1, "past": 512}


@pytest.mark.parametrize("arch", ["h100-sxm", "a100-40gb", "l40s"])  # l40s: tensor parallelism over PCIe
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_every_kernel_respects_its_rooflines(wide, arch, phase):
    a = load_arch(arch)
    module, env = (wide.prefill, {"batch": 2, "seq": 256}) if phase == "prefill" else (wide.decode, DECODE)
    r = GpuProgram(module).run(a, bindings=env, gpus=2)
    peak = max(a.tensor_tflops.values()) * 1e12
    for k in r.kernels:
        dur = k.end_s - k.start_s
        assert dur >= k.flops / peak
        assert dur >= k.hbm_bytes / (a.hbm.bandwidth_gb_s * 1e9)
        assert dur >= k.link_bytes / (a.peer_link_gb_s * 1e9)
    # and the step as a whole is no faster than its busiest resource
    assert r.total_s >= r.hbm_bytes / (a.hbm.bandwidth_gb_s * 1e9)
    assert r.tensor_utilisation <= 1 and r.hbm_utilisation <= 1


def test_more_gpus_never_slower_while_memory_bound(wide):
    prog = GpuProgram(wide.decode)
    times = [prog.run("h100-sxm", bindings=DECODE, gpus=n).total_s for n in (1, 2, 4)]
    assert times[0] > times[1] > times[2]


def test_tensor_parallel_decode_has_two_all_reduces_per_layer(wide):
    r = GpuProgram(wide.decode).run("h100-sxm", bindings=DECODE, gpus=2)
    assert sum(k.kind == "all_reduce" for k in r.kernels) == 2 * 2
    one = GpuProgram(wide.decode).run("h100-sxm", bindings=DECODE, gpus=1)
    assert not any(k.kind == "all_reduce" for k in one.kernels)
    # each GPU reads half the GEMM weights
    gemm = lambda x: sum(k.hbm_bytes for k in x.kernels if k.kind == "gemm")
    assert gemm(r) == pytest.approx(gemm(one) / 2, rel=0.02)


def test_pcie_only_gpus_all_reduce_over_pcie(wide):
    """The L40S has no NVLink: its collectives run at its PCIe rate, slower than over NVLink."""
    l40s = load_arch("l40s")
    pcie = GpuProgram(wide.decode).run(l40s, bindings=DECODE, gpus=2)
    assert pcie.link_peak_gb_s == l40s.pcie_gb_s
    nvlink = GpuProgram(wide.decode).run(load_arch(l40s, {"nvlink_gb_s": 900}), bindings=DECODE, gpus=2)
    coll = lambda r: sum(k.end_s - k.start_s for k in r.kernels if k.kind == "all_reduce")
    assert coll(pcie) > coll(nvlink) > 0


def test_int4_faster_than_bf16_for_memory_bound_decode(wide, wide_int4):
    t16 = GpuProgram(wide.decode).run("h100-sxm", bindings=DECODE).total_s
    t4 = GpuProgram(wide_int4.decode).run("h100-sxm", bindings=DECODE).total_s
    assert t4 < 0.5 * t16


def test_cuda_graphs_never_slower_and_matter_for_short_kernels(tiny, wide):
    for g, env in ((tiny.decode, {"batch": 1, "seq": 1, "past": 32}), (wide.decode, DECODE)):
        prog = GpuProgram(g)
        graphs = prog.run("h100-sxm", bindings=env, cuda_graphs=True).total_s
        eager = prog.run("h100-sxm", bindings=env, cuda_graphs=False).total_s
        assert graphs <= eager
    # tiny kernels finish before the host issues the next one: launch-bound without graphs
    prog = GpuProgram(tiny.decode)
    eager = prog.run("h100-sxm", bindings={"batch": 1, "seq": 1, "past": 32}, cuda_graphs=False)
    assert eager.total_s >= len(eager.kernels) * load_arch("h100-sxm").launch_overhead_us * 1e-6


def test_decode_time_grows_with_context(wide):
    prog = GpuProgram(wide.decode)
    t = [prog.run("h100-sxm", bindings={"batch": 8, "seq": 1, "past": p}).total_s for p in (128, 1024, 8192)]
    assert t[0] < t[1] < t[2]


def test_a_model_that_does_not_fit_is_refused():
    from rduflow.inference.graphs import load_graphs

    g = load_graphs("llama-3.1-70b", "bf16", "bf16")
    with pytest.raises(GpuModelError, match="use more GPUs"):
        GpuProgram(g.decode).run("h100-sxm", bindings=DECODE, gpus=1)


def test_calibration_point_gpt_fast_llama2_7b_a100():
    """hardware.md's one GPU measurement: Llama-2-7B, bf16, batch 1, one A100-80GB, gpt-fast
    (CUDA graphs): 104.9 tokens/s. ``stream_efficiency`` was fitted to it (docs/gpu-model.md);
    this keeps the fit from drifting as the model changes."""
    run = simulate_llm(RunConfig("llama-2-7b", "a100-80gb", devices=1, prompt=6, gen=200))
    tps = 1.0 / run.itl_s.mean()
    assert tps == pytest.approx(104.9, rel=0.01)
    assert DEFAULT_PARAMS.stream_efficiency < 1


def test_tensor_parallel_collectives_are_the_shard_passs(wide):
    """Partial sums are all-reduced and splits all-gathered, by the rule the RDU pass uses."""
    from rduflow.compiler.backend.shard_rules import to_whole
    from rduflow.simulator.gpu.parallel import P, shard

    prog = GpuProgram(wide.decode)
    sh = shard(prog.formation, 2)
    assert sh.collectives
    for v, kind in sh.collectives.items():
        assert kind == to_whole(sh.produced[v])
    assert {to_whole(P)} == {k for k in sh.collectives.values()}
