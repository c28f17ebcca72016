"""Decode on more sockets than the model has KV heads: is it faster?

Target (issue: "more sockets never slower for a memory-bound decode"): llama-3.1-8b and
llama-3.1-70b, both with 8 KV heads, decode with a lower ITL on 16 SN40L sockets than on 8.
On 16 sockets each KV head (its K/V weight columns and its KV cache) is held by a pair of
sockets, and the query heads, the output projection and the MLP are split 16 ways
(docs/backend.md, shard), so a socket reads about half of what it reads on 8.

    python benchmarks/sockets_decode.py                        # both models, 8 and 16 sockets
    python benchmarks/sockets_decode.py --models llama-3.1-8b --sockets 1,2,4,8,16 --prompt 128 --gen 8

Each run is ``rduflow simulate MODEL --arch sn40l --sockets N --prompt P --gen G --json``
in a fresh process; the table gives the mean ITL, tokens/s per user, and the HBM bytes one
socket reads per decoded token.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def simulate(model: str, arch: str, sockets: int, prompt: int, gen: int) -> tuple[dict, float]:
    cmd = ["rduflow", "simulate", model, "--arch", arch, "--sockets", str(sockets), "--prompt", str(prompt),
           "--gen", str(gen), "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out), time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="llama-3.1-8b,llama-3.1-70b")
    p.add_argument("--sockets", default="8,16")
    p.add_argument("--arch", default="sn40l")
    p.add_argument("--prompt", type=int, default=1024)
    p.add_argument("--gen", type=int, default=128)
    args = p.parse_args()
    counts = [int(s) for s in args.sockets.split(",")]
    print(f"{'model':16} {'sockets':>7} {'ITL ms':>8} {'tok/s/user':>10} {'GiB/token/socket':>16} {'wall s':>7}")
    slower = []
    for model in args.models.split(","):
        itls = []
        for n in counts:
            d, wall = simulate(model, args.arch, n, args.prompt, args.gen)
            decode = d["phases"]["decode"]["bandwidth"]["hbm"]["bytes"] / max(d["output_tokens"] - 1, 1)
            itls.append(d["itl_ms"]["mean"])
            print(f"{model:16} {n:7d} {itls[-1]:8.3f} {d['tokens_per_s_per_user']:10.1f} {decode / 2**30:16.3f} "
                  f"{wall:7.1f}", flush=True)
        slower += [f"{model} on {b} sockets" for a, b, x, y in zip(counts, counts[1:], itls, itls[1:]) if y > x]
    print("slower with more sockets: " + (", ".join(slower) if slower else "none"))
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
