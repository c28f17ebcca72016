"""How long, and how much memory, building a big shape-only graph takes.

    python benchmarks/models_build.py [--model llama-3.1-405b] [--variant decode] [--repeat 5]

Target (issue 4): llama-3.1-405b decode, shape-only, under 5 s and under 500 MB. Memory is
the process's peak resident set (ru_maxrss), interpreter and libraries included, so the
figure is an upper bound on what the build itself needs; it is measured before the timing
repeats so it reflects one build.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-405b")
    ap.add_argument("--variant", default="decode", choices=("prefill", "decode"))
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from rduflow.models import build_onnx

    base = peak_rss_mb()
    t0 = time.perf_counter()
    model = build_onnx(args.model, args.variant, weights="shape-only", dtype=args.dtype)
    first = time.perf_counter() - t0
    peak = peak_rss_mb()
    nodes, size = len(model.graph.node), model.ByteSize()
    del model
    times = [first]
    for _ in range(args.repeat - 1):
        t0 = time.perf_counter()
        build_onnx(args.model, args.variant, weights="shape-only", dtype=args.dtype)
        times.append(time.perf_counter() - t0)
    print(f"{args.model} {args.variant} ({args.dtype}, shape-only): {nodes} nodes, {size / 1e6:.2f} MB protobuf")
    print(f"build time: first {first:.3f} s, median {statistics.median(times):.3f} s over {len(times)} builds")
    print(f"peak RSS: {peak:.0f} MB (after imports {base:.0f} MB; the build added {peak - base:.0f} MB)")


if __name__ == "__main__":
    main()
