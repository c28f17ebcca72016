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
    (CUDA graphs): 104.9 tokens/s. The a100-80gb preset's ``stream_efficiency`` was fitted to
    it (docs/gpu-model.md); this keeps the fit from drifting as the model changes."""
    # gpt-fast is a bare generation loop: no serving engine around its steps
    run = simulate_llm(RunConfig("llama-2-7b", "a100-80gb", devices=1, prompt=6, gen=200, host_overheads=False))
    tps = 1.0 / run.itl_s.mean()
    assert tps == pytest.approx(104.9, rel=0.01)
    assert load_arch("a100-80gb").stream_efficiency < 1


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


def test_decode_never_below_the_datasheet_roofline_and_monotone(wide):
    """Across batch and context the step is never faster than its bytes at the datasheet HBM
    bandwidth, and never gets faster with more sequences or a longer context."""
    a = load_arch("h100-sxm")
    prog = GpuProgram(wide.decode)
    for n in (1, 4):
        grid = [[prog.run(a, gpus=n, bindings={"batch": b, "seq": 1, "past": p}) for p in (128, 1024, 8192)]
                for b in (1, 16, 64, 256)]
        for row in grid:
            for r in row:
                assert r.total_s >= r.hbm_bytes / (a.hbm.bandwidth_gb_s * 1e9)
            assert [r.total_s for r in row] == sorted(r.total_s for r in row)
        for col in zip(*grid):
            assert [r.total_s for r in col] == sorted(r.total_s for r in col)


def test_small_all_reduce_has_a_latency_floor_and_protocol_choice(wide):
    """A decode all-reduce of a few KB costs NCCL's fixed latency, not its bytes over NVLink:
    LL's base plus one hop per ring step, however small the message; large messages switch to
    a bandwidth protocol, as NCCL's tuner does."""
    prog = GpuProgram(wide.decode)
    ll = DEFAULT_PARAMS.nccl_protocols[0]
    for n in (2, 8):
        floor = (ll.base_us + 2 * (n - 1) * ll.hop_us) * 1e-6
        small = [k for k in prog.run("h100-sxm", gpus=n, bindings=DECODE).kernels if k.kind == "all_reduce"]
        assert small and all(floor <= k.end_s - k.start_s < 1.1 * floor for k in small)
        assert all("(LL)" in k.name and k.bound == "latency" for k in small)
    prefill = GpuProgram(wide.prefill).run("h100-sxm", gpus=8, bindings={"batch": 1, "seq": 2048})
    big = [k for k in prefill.kernels if k.kind == "all_reduce"]  # 2048 x 4096 bf16: 16 MB each
    assert big and all("(LL)" not in k.name and k.bound == "link" for k in big)


def test_attention_efficiency_grows_with_the_keys(wide):
    """FlashAttention's throughput rises with sequence length (FA3, Fig. 5): a prefill over 4K
    keys runs its attention at a higher FLOP rate than one over 256."""
    prog = GpuProgram(wide.prefill)

    def rate(seq):
        r = prog.run("h100-sxm", bindings={"batch": 1, "seq": seq})
        att = [k for k in r.kernels if k.kind == "attention"]
        return sum(k.flops for k in att) / sum(k.end_s - k.start_s for k in att)

    assert rate(256) < rate(4096) < DEFAULT_PARAMS.attention_efficiency * 989e12


def test_collective_cost_picks_the_cheapest_protocol():
    """LL for a few KB (latency floor, bytes nearly free), a bandwidth protocol for tens of MB;
    time grows with the message and with the number of GPUs."""
    from rduflow.compiler.backend.shard_rules import ALL_REDUCE
    from rduflow.simulator.gpu import collective_cost

    a = load_arch("h100-sxm")
    small, big = (collective_cost(a, 8, ALL_REDUCE, d) for d in (8 << 10, 64 << 20))
    assert small.protocol == "LL" and small.wire_s < 0.1 * small.latency_s
    assert big.protocol != "LL" and big.wire_s > big.latency_s
    sizes = [collective_cost(a, 8, ALL_REDUCE, d).seconds for d in (1 << 10, 1 << 16, 1 << 20, 1 << 24)]
    assert sizes == sorted(sizes)
    assert collective_cost(a, 2, ALL_REDUCE, 8 << 10).seconds < small.seconds


def test_decode_kv_efficiency_prices_decode_attention_only():
    """The preset's decode_kv_efficiency sets decode attention's memory time; weight GEMMs keep
    stream_efficiency (docs/gpu-model.md, "Cost of a kernel")."""
    from rduflow.inference.graphs import load_graphs

    prog = GpuProgram(load_graphs("llama-3.1-8b", "bf16", "bf16").decode)
    slow = load_arch("h100-sxm", {"decode_kv_efficiency": 0.35})
    b = {"batch": 16, "seq": 1, "past": 4096}
    base, r = prog.run("h100-sxm", bindings=b), prog.run(slow, bindings=b)
    for k0, k1 in zip(base.kernels, r.kernels):
        dur0, dur1 = k0.end_s - k0.start_s, k1.end_s - k1.start_s
        assert (dur1 > dur0) if k0.kind == "attention" else dur1 == pytest.approx(dur0)
