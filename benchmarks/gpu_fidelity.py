"""GPU model fidelity figures for docs/gpu-model.md: all-reduce latency by message size (model,
beside vLLM's custom all-reduce measured on H100 in sgl-project/sglang PR #2904), decode step
times for Llama 3.1 8B / 70B on 1/4/8 x H100-SXM, and gpt-fast's tensor-parallel table (A100,
batch 1) as a check.

    python benchmarks/gpu_fidelity.py
"""

from rduflow.compiler.backend.shard_rules import ALL_REDUCE
from rduflow.compiler.target import load_arch
from rduflow.inference import RunConfig, simulate_llm
from rduflow.inference.graphs import load_graphs
from rduflow.simulator.gpu import GpuProgram, collective_cost

# us at 2 / 4 / 8 GPUs (sglang PR #2904, "vllm" table: H100, without CUDA graphs)
VLLM_CUSTOM_AR = {4096: (8.8, 8.5, 9.3), 262144: (12.9, 20.6, 24.1), 1048576: (26.6, 40.2, 45.0)}
# tokens/s (pytorch-labs/gpt-fast README, "Tensor Parallelism": 8 x A100-80GB at 330 W, batch 1)
GPT_FAST_TP = {("llama-2-7b", 1): 104.9, ("llama-2-7b", 2): 168.84, ("llama-2-7b", 4): 254.02,
               ("llama-2-7b", 8): 328.43, ("llama-2-70b", 2): 21.32, ("llama-2-70b", 4): 38.01,
               ("llama-2-70b", 8): 62.50}


def main() -> None:
    h100 = load_arch("h100-sxm")
    print("all-reduce on H100, us (2 / 4 / 8 GPUs): model [protocol] | measured vLLM custom all-reduce")
    for size, measured in VLLM_CUSTOM_AR.items():
        model = [collective_cost(h100, n, ALL_REDUCE, size) for n in (2, 4, 8)]
        print(f"  {size:>8d} B: " + " / ".join(f"{c.seconds * 1e6:5.1f} [{c.protocol}]" for c in model)
              + " | " + " / ".join(f"{m:5.1f}" for m in measured))
    print("decode step, ms, context 1024, batch 1 / 16 / 64 / 256")
    for model in ("llama-3.1-8b", "llama-3.1-70b"):
        prog = GpuProgram(load_graphs(model, "bf16", "bf16").decode)
        for n in (1, 4, 8):
            if model.endswith("70b") and n == 1:
                continue  # 141 GB of bf16 weights: does not fit one H100
            t = [prog.run(h100, gpus=n, bindings={"batch": b, "seq": 1, "past": 1024}).total_s for b in (1, 16, 64, 256)]
            print(f"  {model:14s} {n} x h100-sxm: " + " / ".join(f"{x * 1e3:6.2f}" for x in t))
    print("gpt-fast tensor parallelism, tokens/s (check, not fitted except 1 x 7B)")
    for (model, n), tps in GPT_FAST_TP.items():
        run = simulate_llm(RunConfig(model, "a100-80gb", devices=n, prompt=6, gen=200))
        sim = 1.0 / run.itl_s.mean()
        print(f"  {model:12s} {n} x a100-80gb: gpt-fast {tps:7.2f}  model {sim:7.2f}  ({(sim / tps - 1) * 100:+.0f}%)")


if __name__ == "__main__":
    main()
