"""How good the compiled programs are, simulated: the decode roofline, fusion, placement, network.

    python benchmarks/backend_quality.py                 # everything (several minutes)
    python benchmarks/backend_quality.py --only roofline # or fusion, placement, network

* roofline: llama-3.1-8b decode (batch 1, 4096 cached tokens) on one SN40L socket. Target
  (issue 6): the token latency within 1/0.85 of the HBM roofline, the bytes a token must
  read (every weight, only the looked-up rows of the embedding, and the KV cache: all
  derived from the graph) over the HBM bandwidth.
* fusion: llama-2-7b on 8 sockets, prefill (2048 tokens) and decode (2048 cached), compiled
  with --fusion auto and --fusion none (one operator per section); the SN40L paper reports
  1.5-3x for prefill and 1-13x for decode. Also with program load and kernel launch costs
  set to zero, to show how much of the difference is per-section overhead.
* placement: weighted hop count (bytes x hops over all streams, per call) of the placement
  against random legal placements of the same units, per distinct section.
* network: the roofline decode simulated with the mesh and with an ideal network.
"""

from __future__ import annotations

import argparse
import time

from rduflow.compiler.backend import compile_model
from rduflow.compiler.backend.design import nbytes
from rduflow.compiler.backend.place import Floorplan, random_placement
from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.ir import Module, specialize
from rduflow.models import build_onnx
from rduflow.compiler.target import load_arch
from rduflow.simulator import simulate


def model(name: str, variant: str) -> Module:
    return import_onnx(build_onnx(name, variant, dtype="bf16"), shapes_only=True)


def token_bytes(module: Module, dims: dict[str, int]) -> int:
    """Bytes one run must read: each weight (only the rows a gather looks up) and each input."""
    m = specialize(module, {k: v for k, v in dims.items() if k in module.symbols})
    g = m.main
    users = g.users()
    total = sum(nbytes(a.type) for a in g.args)
    for op in g.ops:
        if op.opname != "weight":
            continue
        uses = users.get(op.results[0], [])
        if uses and all(u.opname == "gather" and u.attrs["axis"] == 0 and u.operands[0] is op.results[0] for u in uses):
            total += sum(nbytes(u.results[0].type) for u in uses)
        else:
            total += nbytes(op.results[0].type)
    return total


def roofline(arch: str) -> None:
    dims = {"batch": 1, "past": 4096}
    m = model("llama-3.1-8b", "decode")
    t0 = time.perf_counter()
    c = compile_model(m, arch, bindings=dims)
    compile_s = time.perf_counter() - t0
    r = simulate(c.placed, c.arch)
    need = token_bytes(m, dims)
    bw = c.arch.memory.hbm.bandwidth_gb_s * 1e9
    floor = need / bw
    print(f"llama-3.1-8b decode, past 4096, 1 socket of {c.arch.name} (compiled in {compile_s:.1f} s)")
    print(f"  bytes a token reads: {need / 1e9:.3f} GB -> HBM roofline {floor * 1e3:.3f} ms at {bw / 1e9:.0f} GB/s")
    print(f"  simulated token latency: {r.total_s * 1e3:.3f} ms = roofline / {floor / r.total_s:.3f} "
          f"({floor / r.total_s:.1%} of the roofline; target >= 85%)")
    print(f"  HBM moved {r.tiers['hbm'].bytes / 1e9:.3f} GB, achieved {r.tiers['hbm'].achieved_gb_s:.0f} GB/s, "
          f"busy {r.tiers['hbm'].utilisation:.1%} of the time")
    for s in r.sections:
        print(f"  section {s.name}: {s.calls} call(s), {s.per_call_s * 1e6:.1f} us/call, bound "
              f"{s.bound_s / s.calls * 1e6:.1f} us/call by {s.bottleneck}")


def fusion(arch: str) -> None:
    free = load_arch(arch, {"launch.program_load_us": 0, "launch.hardware_launch_us": 0,
                            "launch.software_launch_us": 0})
    for variant, dims in (("prefill", {"batch": 1, "seq": 2048}), ("decode", {"batch": 1, "past": 2048})):
        m = model("llama-2-7b", variant)
        times = {}
        for mode in ("auto", "none"):
            t0 = time.perf_counter()
            c = compile_model(m, arch, sockets=8, fusion=mode, bindings=dims)
            compile_s = time.perf_counter() - t0
            r, r0 = simulate(c.placed, c.arch), simulate(c.placed, free)
            times[mode] = (r.total_s, r0.total_s)
            print(f"llama-2-7b {variant} {dims}, 8 sockets, fusion={mode}: {len(c.placed.main.ops)} placed sections "
                  f"({c.summary.calls} calls), compiled in {compile_s:.1f} s; simulated {r.total_s * 1e3:.3f} ms "
                  f"({r0.total_s * 1e3:.3f} ms without load and launch costs)")
        (fa, fa0), (un, un0) = times["auto"], times["none"]
        print(f"  fused vs unfused {variant}: {un / fa:.2f}x ({un0 / fa0:.2f}x without load and launch costs)")


def placement(arch: str) -> None:
    m = model("llama-3.1-8b", "decode")
    c = compile_model(m, arch, bindings={"batch": 1, "past": 4096})
    for section in c.placed.main.ops:
        placed = Floorplan.from_placed(section, c.arch)
        randoms = []
        for seed in range(5):
            lay = Floorplan(section, c.arch)
            random_placement(lay, seed)
            randoms.append(lay.hops())
        mean = sum(randoms) / len(randoms)
        print(f"llama-3.1-8b decode section {section.attrs['name']}: {len(placed.units)} units, weighted hops "
              f"{placed.hops() / 1e6:.1f} MB-hops/call placed vs {mean / 1e6:.1f} random (mean of 5): "
              f"{mean / max(placed.hops(), 1):.1f}x fewer")


def network(arch: str) -> None:
    m = model("llama-3.1-8b", "decode")
    dims = {"batch": 1, "past": 4096}
    routed = simulate(compile_model(m, arch, bindings=dims).placed, arch).total_s
    ideal = simulate(compile_model(m, arch, bindings=dims, ideal_network=True).placed, arch).total_s
    print(f"llama-3.1-8b decode: {routed * 1e3:.3f} ms routed on the mesh, {ideal * 1e3:.3f} ms on an ideal network "
          f"(the network costs {routed / ideal - 1:.1%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sn40l")
    ap.add_argument("--only", choices=("roofline", "fusion", "placement", "network"))
    args = ap.parse_args()
    for name, fn in (("roofline", roofline), ("fusion", fusion), ("placement", placement), ("network", network)):
        if args.only in (None, name):
            fn(args.arch)


if __name__ == "__main__":
    main()
