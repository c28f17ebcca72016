"""How far the serving step model is from direct simulation between its samples.

    python benchmarks/step_model_error.py [MODEL] [ARCH] [DEVICES] [--points N]

Builds the step table serve would build (vLLM's default limits for the device, contexts up to
4096) and prices random decode steps (batch B at context L) and prefill chunks (c tokens after
p cached) both ways: through the table and by simulating the step's graph directly.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rduflow.inference.backends import make_backend
from rduflow.inference.graphs import load_graphs
from rduflow.inference.serving.batch import Chunk, StepBatch
from rduflow.inference.serving.config import EngineConfig
from rduflow.inference.serving.memory import ModelFacts, device_memory_gib, memory_budget
from rduflow.inference.serving.serve import ModelOnDemand, build_step_model

CONTEXT = 4096


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="llama-3.1-8b")
    ap.add_argument("arch", nargs="?", default="h100-sxm")
    ap.add_argument("devices", nargs="?", type=int, default=1)
    ap.add_argument("--points", type=int, default=20)
    args = ap.parse_args()
    backend = make_backend(args.arch, args.devices)
    arch = backend.arch
    engine = EngineConfig().resolved(device_memory_gib(arch))
    g = load_graphs(args.model, "bf16", "bf16")
    budget = memory_budget(ModelFacts.of(g.decode, g.name, None), arch, backend.devices, 0.9,
                           engine.max_num_batched_tokens)
    model = ModelOnDemand(args.model, "bf16", "bf16", lambda _: None)
    t0 = time.perf_counter()
    sm, table = build_step_model(model, backend, engine, budget, CONTEXT, 2, use_cache=False)
    print(f"{args.model} on {args.devices} x {args.arch}: {len(table.points)} points in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(1)
    errs = {"decode": [], "chunk": []}
    m = g.decode
    for _ in range(args.points):
        b = int(rng.integers(1, min(256, engine.max_num_seqs) + 1))
        ctx = int(rng.integers(1, min(CONTEXT, budget.kv_tokens // b)))
        pred = sm.cost(StepBatch(b, b * ctx)).time_s
        errs["decode"].append(pred / backend.totals(m, g.bindings(m, b, 1, ctx)).time_s - 1)
        c = int(rng.integers(2, engine.max_num_batched_tokens + 1))
        p = int(rng.integers(0, max(CONTEXT - c, 1)))
        pred = sm.cost(StepBatch(prefills=(Chunk(c, p),))).time_s
        errs["chunk"].append(pred / backend.totals(m, g.bindings(m, 1, c, p)).time_s - 1)
    for kind, e in errs.items():
        a = np.abs(e)
        print(f"{kind:7s} {len(a)} points: max |error| {100 * a.max():.2f}%, median {100 * np.median(a):.2f}%")


if __name__ == "__main__":
    main()
