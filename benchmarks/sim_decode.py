"""Benchmark (issue 5): simulate one decode step of an 80-layer 70B-class model on 8 sockets.

The placed program is what the compiler makes of the model library's llama-3.1-70b decode
graph (shape-only weights, batch 1, a KV cache of ``--context`` tokens): tensor parallel
over the sockets, one fused kernel per decoder layer called 80 times, weights streamed from
HBM. Compiling is not timed (benchmarks/compile_70b.py does that); ``simulate`` is.

    python benchmarks/sim_decode.py [--model llama-3.1-70b] [--sockets 8] [--context 4096] [--runs 3]

Prints the wall time of ``simulate`` (best of ``--runs``, each from scratch) and the
simulated figures.
"""

from __future__ import annotations

import argparse
import time

from rduflow.compiler.backend import compile_model
from rduflow.compiler.frontend.onnx import import_onnx
from rduflow.models import build_onnx, get_config
from rduflow.simulator import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-70b")
    ap.add_argument("--arch", default="sn40l")
    ap.add_argument("--sockets", type=int, default=8)
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    module = import_onnx(build_onnx(args.model, "decode", dtype="bf16"), shapes_only=True)
    compiled = compile_model(module, args.arch, sockets=args.sockets, bindings={"batch": 1, "past": args.context})
    layers = get_config(args.model).num_layers
    print(f"program: {args.model} decode, {layers} layers, {args.sockets} sockets of {args.arch}, context "
          f"{args.context}; compiled in {time.perf_counter() - t0:.1f} s")

    walls, r = [], None
    for _ in range(args.runs):
        t = time.perf_counter()
        r = simulate(compiled.placed, compiled.arch)
        walls.append(time.perf_counter() - t)
    print(f"simulate wall time: best {min(walls):.3f} s of {args.runs} (events simulated: {r.events})")
    print(f"simulated decode step: {r.total_s * 1e3:.3f} ms ({1 / r.total_s:.1f} tokens/s per user)")
    hbm = r.tiers["hbm"]
    print(f"HBM bytes per socket: {hbm.bytes / 1e9:.2f} GB, achieved {hbm.achieved_gb_s:.0f} GB/s = "
          f"{hbm.utilisation:.1%} of the time busy (peak {hbm.peak_gb_s:.0f} GB/s)")
    for s in r.sections:
        print(f"  section {s.name}: {s.calls} call(s), {(s.end_s - s.start_s) * 1e3:.3f} ms, per call "
              f"{s.per_call_s * 1e6:.1f} us, bound {s.bound_s / s.calls * 1e6:.1f} us/call by {s.bottleneck}, "
              f"simulated {s.iterations_simulated}, converged {s.converged}")

if __name__ == "__main__":
    main()
