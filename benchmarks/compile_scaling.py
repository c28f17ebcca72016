"""How compile time grows with tokens per step, decode batch, layers and sockets.

    python benchmarks/compile_scaling.py [--model llama-3.1-70b] [--only tokens,batch,layers,sockets]

One step of the model library's graph (shape-only weights, bf16) is compiled by
``compile_model`` for sn40l, one sweep at a time, each varying one thing from the base point
(16 sockets; prefill of 1 x 1024 tokens, decode at batch 1 with 4096 tokens of context):

* tokens: prefill of 1 x 256 .. 32768 tokens;
* batch: decode at batch 1 .. 256 (context 4096);
* layers: decode with the model cut to 2 .. all of its layers;
* sockets: decode on 1 .. 16 sockets.

Each figure is one cold compile: the placements a process keeps (``place.py``) are
forgotten before each, so every distinct section is annealed afresh; the model's graphs are
built and imported once per sweep and not counted. ``warm`` is the same compile again in the
same process, as the steps of a generation see it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

SWEEPS = ("tokens", "batch", "layers", "sockets")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-70b")
    ap.add_argument("--only", default=",".join(SWEEPS), help="comma-separated sweeps")
    args = ap.parse_args()

    from rduflow.compiler.backend import compile_model
    from rduflow.compiler.backend.place import forget_placements
    from rduflow.inference.graphs import load_graphs
    from rduflow.models import get_config

    config = get_config(args.model)

    def compile_step(model, phase: str, sockets: int, batch: int, tokens: int) -> tuple[float, float, int]:
        g = load_graphs(model, "bf16", "bf16")
        mod = g.prefill if phase == "prefill" else g.decode
        dims = g.bindings(mod, batch, tokens, 0) if phase == "prefill" else g.bindings(mod, batch, 1, tokens)
        forget_placements()
        t0 = time.perf_counter()
        c = compile_model(mod, "sn40l", sockets=sockets, bindings=dims)
        t1 = time.perf_counter()
        compile_model(mod, "sn40l", sockets=sockets, bindings=dims)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, len([op for op in c.placed.main.ops if op.opname == "placed.section"])

    points = {
        "tokens": [(config, "prefill", 16, 1, n) for n in (256, 1024, 4096, 16384, 32768)],
        "batch": [(config, "decode", 16, b, 4096) for b in (1, 8, 64, 256)],
        "layers": [(dataclasses.replace(config, num_layers=n), "decode", 16, 1, 4096)
                   for n in sorted({2, 8, 32, config.num_layers}) if n <= config.num_layers],
        "sockets": [(config, "decode", s, 1, 4096) for s in (1, 2, 4, 8, 16)],
    }
    print(f"{args.model}, sn40l; compile_model wall time, cold (placements annealed afresh) and warm")
    print(f"{'sweep':8} {'step':52} {'cold s':>7} {'warm s':>7} {'sections':>8}")
    for sweep in args.only.split(","):
        for model, phase, sockets, batch, tokens in points[sweep]:
            what = "tokens" if phase == "prefill" else "context"
            step = f"{phase} {model.num_layers} layers, {sockets} sockets, batch {batch}, {what} {tokens}"
            cold, warm, sections = compile_step(model, phase, sockets, batch, tokens)
            print(f"{sweep:8} {step:52} {cold:7.2f} {warm:7.2f} {sections:8d}", flush=True)


if __name__ == "__main__":
    main()
