"""How long, and how much memory, compiling llama-3.1-70b decode for 8 sockets takes.

    python benchmarks/compile_70b.py [--model llama-3.1-70b] [--sockets 8] [--past 4096] [--fusion auto]

Target (issue 6): under 20 s and under 2 GB. The model is built (shape-only weights) and
imported first; the figure is ``compile_model`` alone (every back-end pass, the verifier after
each, and the summary), then build + import + compile together. Memory is the process's peak
resident set (ru_maxrss), interpreter and libraries included: an upper bound.
"""

from __future__ import annotations

import argparse
import resource
import time


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-70b")
    ap.add_argument("--variant", default="decode", choices=("prefill", "decode"))
    ap.add_argument("--sockets", type=int, default=8)
    ap.add_argument("--past", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--fusion", default="auto", choices=("auto", "none"))
    ap.add_argument("--arch", default="sn40l")
    args = ap.parse_args()

    from rduflow.compiler.backend import compile_model
    from rduflow.compiler.frontend.onnx import import_onnx
    from rduflow.compiler.passes import format_timings
    from rduflow.models import build_onnx

    base = peak_rss_mb()
    t0 = time.perf_counter()
    module = import_onnx(build_onnx(args.model, args.variant, dtype="bf16"), shapes_only=True)
    t1 = time.perf_counter()
    dims = {"batch": 1, "past": args.past} if args.variant == "decode" else {"batch": 1, "seq": args.seq}
    compiled = compile_model(module, args.arch, sockets=args.sockets, fusion=args.fusion, bindings=dims)
    t2 = time.perf_counter()
    print(f"{args.model} {args.variant} {dims}, {args.sockets} sockets of {args.arch}, fusion={args.fusion}: "
          f"{len(module.main.ops)} ops")
    print(f"compile_model: {t2 - t1:.2f} s (build + import {t1 - t0:.2f} s, total {t2 - t0:.2f} s)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (after imports {base:.0f} MB)")
    print(format_timings(compiled.records), end="")
    print(compiled.summary.to_text(), end="")


if __name__ == "__main__":
    main()
