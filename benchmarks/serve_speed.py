"""Wall time and memory of `rduflow serve` against issue 14's speed targets.

    python benchmarks/serve_speed.py [--skip-rdu]

Each command runs in a fresh process twice with its own empty step-table cache: cold (the
step table is built: compiled and simulated) and warm (read from disk). Peak memory is the
child's maximum resident set size. The 10,000-request trace is synthesized here (Poisson
8/s, inputs uniform 64..2048, outputs uniform 16..512, seed 0).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = [
    ("70B, sn40l:16, 1000 requests", ["llama-3.1-70b", "--target", "sn40l:16", "--rate", "4", "--requests", "1000"],
     "60 s cold, 5 s warm", True),
    ("70B, h100-sxm:8, 1000 requests", ["llama-3.1-70b", "--target", "h100-sxm:8", "--rate", "4", "--requests", "1000"],
     "10 s cold", False),
    ("70B, h100-sxm:8, 10,000-request trace", ["llama-3.1-70b", "--target", "h100-sxm:8", "--workload", "{trace}"],
     "10 s warm", False),
    ("70B, sn40l:16, 10,000-request trace", ["llama-3.1-70b", "--target", "sn40l:16", "--workload", "{trace}"],
     "10 s warm", True),
]


def write_trace(path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 10_000
    t = np.cumsum(rng.exponential(1 / 8, n))
    rows = ["arrival_s,input_tokens,output_tokens"]
    rows += [f"{t[i]:.4f},{int(rng.integers(64, 2049))},{int(rng.integers(16, 513))}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")


def timed(argv: list[str], cache: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rduflow.inference.cli", "serve", *argv, "-q"], check=True,
                   env={**os.environ, "RDUFLOW_CACHE_DIR": cache}, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024  # MiB (the children's high-water mark so far)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-rdu", action="store_true", help="leave out the sn40l cases (their cold runs take minutes)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace10k.csv"
        write_trace(trace)
        caches: dict[str, str] = {}
        print(f"{'case':42s} {'cold s':>8s} {'warm s':>8s} {'peak MiB':>9s}  target")
        for name, argv, target, rdu in CASES:
            if rdu and args.skip_rdu:
                continue
            argv = [a.replace("{trace}", str(trace)) for a in argv]
            key = argv[0] + argv[2]  # model and target: the trace case reuses the table of the same target
            cache = caches.setdefault(key, tempfile.mkdtemp(dir=tmp))
            cold, _ = timed(argv, cache)
            warm, peak = timed(argv, cache)
            print(f"{name:42s} {cold:8.1f} {warm:8.1f} {peak:9.0f}  {target}", flush=True)


if __name__ == "__main__":
    main()
