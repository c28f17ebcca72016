"""Benchmark (issue 12): how the wall time of ``simulate`` grows with tokens per step, batch,
layers and sockets, timed apart from compiling.

Each axis varies one quantity around a base point (llama-3.1-8b with 2 layers, prefill of
1024 tokens, batch 1, 8 sn40l sockets; decode for the batch axis, with a 1024-token cache);
layers are changed by shrinking or growing the preset's ``num_layers``.

    python benchmarks/sim_scaling.py [--model llama-3.1-8b] [--axes tokens,batch,layers,sockets] [--runs 2]
        [--tokens 256,1024,4096,16384,32768] [--batch 1,16,64,256] [--layers 2,8,32,126] [--sockets 1,2,4,8,16]

Prints one line per point: compile and simulate wall times (simulate: best of ``--runs``),
events simulated, the simulated step time and the iterations of the looped kernel simulated.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from rduflow.compiler.backend import compile_model
from rduflow.inference.graphs import load_graphs
from rduflow.models import get_config
from rduflow.simulator import simulate

BASE = {"layers": 2, "phase": "prefill", "batch": 1, "tokens": 1024, "past": 0, "sockets": 8}


def point(model: str, runs: int, layers: int, phase: str, batch: int, tokens: int, past: int, sockets: int) -> str:
    graphs = load_graphs(dataclasses.replace(get_config(model), num_layers=layers), "bf16", "bf16")
    module = graphs.prefill if phase == "prefill" else graphs.decode
    t = time.perf_counter()
    placed = compile_model(module, "sn40l", sockets=sockets,
                           bindings=graphs.bindings(module, batch, tokens, past)).placed
    compile_s = time.perf_counter() - t
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        r = simulate(placed, "sn40l", sockets=sockets)
        walls.append(time.perf_counter() - t)
    looped = max((s.iterations_simulated for s in r.sections), default=0)
    return (f"compile {compile_s:7.2f} s  simulate {min(walls):6.3f} s  events {r.events:8,d}  "
            f"step {r.total_s * 1e3:9.3f} ms  iterations simulated {looped}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--axes", default="tokens,batch,layers,sockets")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--tokens", default="256,1024,4096,16384,32768")
    ap.add_argument("--batch", default="1,16,64,256")
    ap.add_argument("--layers", default="2,8,32,126")
    ap.add_argument("--sockets", default="1,2,4,8,16")
    args = ap.parse_args()
    for axis in args.axes.split(","):
        for v in (int(x) for x in getattr(args, axis).split(",")):
            p = dict(BASE)
            if axis == "batch":
                p.update(phase="decode", tokens=1, past=1024, batch=v)
            else:
                p[axis] = v
            print(f"{axis:8s} {v:6d}  {point(args.model, args.runs, **p)}", flush=True)


if __name__ == "__main__":
    main()
