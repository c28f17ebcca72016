"""Issue 12's target: one step of llama-3.1-70b on 16 sn40l sockets, compiled and simulated,
in at most 2 s wall and 1 GB, for decode at batch 1..256 with up to 32,768 tokens of context
and for prefill of up to 32,768 tokens.

    python benchmarks/step_70b.py [--points d:64:4096,p:8192] [--model llama-3.1-70b] [--sockets 16] [--phases]

A point is ``d:BATCH:CONTEXT`` (decode) or ``p:TOKENS`` (prefill of one sequence). Each runs in
a fresh process (peak memory is per process) and prints: compile wall, cold (placements
annealed afresh) and warm (the same step compiled again in the process, as the steps of a
serving run see it), simulate wall, the engine's events (the simulator's work, independent
of machine load), cold compile + simulate against the 2 s target, and peak resident memory
(interpreter and libraries included); ``--phases`` adds the cold compile's seconds per pass
(the verifier after all of them as one). Building the model's graphs is not counted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

DEFAULT_POINTS = "d:1:4096,d:64:4096,d:256:4096,d:64:32768,p:1024,p:8192"


def one(model: str, sockets: int, point: str) -> dict:
    from rduflow.compiler.backend import compile_model
    from rduflow.inference.graphs import load_graphs
    from rduflow.models import get_config
    from rduflow.simulator import simulate

    graphs = load_graphs(get_config(model), "bf16", "bf16")
    kind, *nums = point.split(":")
    if kind == "d":
        module = graphs.decode
        bindings = graphs.bindings(module, int(nums[0]), 1, int(nums[1]))
    else:
        module = graphs.prefill
        bindings = graphs.bindings(module, 1, int(nums[0]), 0)
    t0 = time.perf_counter()
    compiled = compile_model(module, "sn40l", sockets=sockets, bindings=bindings)
    t1 = time.perf_counter()
    compile_model(module, "sn40l", sockets=sockets, bindings=bindings)
    t2 = time.perf_counter()
    result = simulate(compiled.placed, "sn40l", sockets=sockets)
    t3 = time.perf_counter()
    phases: dict[str, float] = {}  # the cold compile's passes, canonicalize/cse/dce together
    for record in compiled.records:
        name = record.spec.split("{")[0]
        name = "canon+cse+dce" if name in ("canonicalize", "cse", "dce") else name
        phases[name] = phases.get(name, 0.0) + record.seconds
    phases["verifier"] = sum(record.verify_seconds for record in compiled.records)
    return {"point": point, "compile_cold_s": t1 - t0, "compile_warm_s": t2 - t1, "simulate_s": t3 - t2,
            "events": result.events, "step_ms": result.total_s * 1e3,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "phases": phases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-70b")
    ap.add_argument("--sockets", type=int, default=16)
    ap.add_argument("--points", default=DEFAULT_POINTS, help="comma-separated d:BATCH:CONTEXT or p:TOKENS")
    ap.add_argument("--phases", action="store_true", help="also print the cold compile's time per pass")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # run one point here, print it as JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.model, args.sockets, args.one)))
        return
    print(f"{args.model} on {args.sockets} sn40l sockets: one step compiled and simulated (target 2 s, 1 GB)")
    print(f"{'point':12} {'compile cold':>12} {'warm':>6} {'simulate':>9} {'events':>9} {'cold+sim':>9} "
          f"{'step':>10} {'peak RSS':>9}")
    for point in args.points.split(","):
        out = subprocess.run([sys.executable, __file__, "--model", args.model, "--sockets", str(args.sockets),
                              "--one", point], capture_output=True, text=True, check=False)
        if out.returncode:  # e.g. a step the compiler cannot place: say so and go on
            print(f"{point:12} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
            continue
        r = json.loads(out.stdout)
        print(f"{point:12} {r['compile_cold_s']:10.2f} s {r['compile_warm_s']:6.2f} {r['simulate_s']:7.2f} s "
              f"{r['events']:9,d} {r['compile_cold_s'] + r['simulate_s']:7.2f} s {r['step_ms']:7.3f} ms "
              f"{r['peak_rss_mb']:6.0f} MB", flush=True)
        if args.phases:
            print("    " + ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items()), flush=True)


if __name__ == "__main__":
    main()
