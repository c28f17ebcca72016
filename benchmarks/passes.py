"""Time the first passes and the verifier on the built-in demo model with many layers.

    python benchmarks/passes.py                      # 96 layers (about 4,000 ops)
    python benchmarks/passes.py --layers 24 --repeat 5

Prints the op count and, per pass, the median wall time over --repeat runs (each on a fresh
copy of the model), plus the verifier's time per run. The drivers are linear sweeps, so the
figures should grow linearly with --layers.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rduflow.compiler.demo import DemoConfig, build_demo
from rduflow.compiler.passes import PassManager, parse_pipeline
from rduflow.ir import verify_module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("-p", "--passes", default="canonicalize,cse,dce")
    args = ap.parse_args()

    base = build_demo(DemoConfig(layers=args.layers))
    ops = sum(1 for g in base.graphs.values() for _ in g.walk())
    times: dict[str, list[float]] = {}
    verify: list[float] = []
    for _ in range(args.repeat):
        m = base.clone()
        t0 = time.perf_counter()
        verify_module(m)
        verify.append(time.perf_counter() - t0)
        for r in PassManager(parse_pipeline(args.passes), verify_each=False).run(m):
            times.setdefault(r.spec, []).append(r.seconds)
    print(f"demo model, {args.layers} layers: {ops} ops")
    for spec, ts in times.items():
        print(f"  {spec:<28} {statistics.median(ts) * 1e3:8.1f} ms")
    print(f"  {'verify_module':<28} {statistics.median(verify) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
