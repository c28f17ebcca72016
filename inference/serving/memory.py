"""How many tokens of KV cache fit: device memory left after weights and activations.

vLLM sizes its paged cache the same way (``gpu_memory_utilization`` of each device, minus
the weights and the peak activations of a profiling step of ``max_num_batched_tokens``); the
figures here come from the IR: weight bytes from the graph's weight ops, KV bytes per token
from how the graph's inputs grow with ``past``, activations from the largest intermediate
tensors of a step of the token budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from rduflow.compiler.target import GpuArch, RduArch
from rduflow.ir import Dim, Module

from rduflow.inference.errors import LlmSimError

GIB = 2**30
# Memory a GPU process holds besides weights, activations and KV cache: the CUDA context,
# cuBLAS workspaces, NCCL buffers and captured CUDA graphs (assumed: vLLM's logs on H100 show
# 1-2 GiB of "non-torch" memory; docs/serving.md).
GPU_RUNTIME_GIB = 1.5
LIVE_ACTIVATIONS = 2  # a step's peak holds about two of its largest intermediates at once


@dataclass(frozen=True)
class MemoryBudget:
    device_bytes: float  # usable by the engine, per device
    weight_bytes: float  # per device
    activation_bytes: float  # per device, at the token budget
    runtime_bytes: float
    kv_bytes_per_token: float  # per device, one token of one sequence, all layers
    kv_tokens: int  # capacity: the tokens of KV cache that fit, over all sequences

    def describe(self) -> str:
        return (f"{self.kv_tokens:,} tokens of KV cache ({self.kv_bytes_per_token * self.kv_tokens / GIB:.1f} GiB "
                f"per device after {self.weight_bytes / GIB:.1f} GiB weights, {self.activation_bytes / GIB:.2f} GiB "
                f"activations)")


def weight_bytes(module: Module) -> float:
    """The bytes of the module's weights, as stored."""
    return float(sum(int(w.type.nbytes.const_value()) for w in module.weights.values()))


def kv_bytes_per_token(module: Module) -> float:
    """How the graph's inputs grow per token of ``past`` for one sequence: its KV cache."""
    grow = Dim.const(0)
    for a in module.main.args:
        if "past" in a.type.nbytes.symbols:
            grow = grow + a.type.nbytes
    at = {s: 1 for s in module.symbols}
    one = float(grow.evaluate({**at, "past": 1}))
    zero = float(grow.evaluate({**at, "past": 0}))
    return one - zero


def activation_bytes_per_token(module: Module) -> float:
    """The largest intermediates of a step, per token (they grow with the step's tokens)."""
    env = {s: 1 for s in module.symbols} | {"batch": 1, "seq": 1, "past": 1}
    sizes = set()
    for op in module.main.ops:
        if op.opname == "weight":
            continue
        for r in op.results:
            sizes.add(r.type)  # every layer repeats the same types: evaluate each once
    values = []
    for t in sizes:
        try:
            values.append(float(t.nbytes.evaluate(env)))
        except Exception:  # noqa: BLE001 -- a size the bindings do not fix counts as nothing
            continue
    values.sort(reverse=True)
    return sum(values[:LIVE_ACTIVATIONS])


@dataclass(frozen=True)
class ModelFacts:
    """What serving needs of a model besides its step times (all from its decode graph)."""

    name: str
    weight_bytes: float  # all devices together
    kv_bytes_per_token: float  # one token of one sequence, all layers
    activation_bytes_per_token: float
    max_context: int | None  # max_position_embeddings, when the model says

    @staticmethod
    def of(module: Module, name: str, max_context: int | None) -> ModelFacts:
        return ModelFacts(name, weight_bytes(module), kv_bytes_per_token(module), activation_bytes_per_token(module),
                          max_context)


def device_memory_gib(arch: GpuArch | RduArch) -> float:
    """The memory a device holds weights and KV caches in: a GPU's HBM, an RDU's main tier."""
    return arch.hbm.capacity_gib if isinstance(arch, GpuArch) else arch.memory.main.capacity_gib


@dataclass(frozen=True)
class BackingTier:
    """Where data that leaves device memory waits, and how fast it comes back."""

    name: str  # "host" (a GPU's CPU memory) or "ddr" (an RDU's DDR behind its HBM)
    capacity_gib: float | None  # per device; None: not described by the target
    bandwidth: float  # bytes/s per device, back into device memory


def backing_tier(arch: GpuArch | RduArch) -> BackingTier | None:
    """A GPU's host memory over PCIe; an RDU's DDR behind its HBM (None for an RDU whose DDR
    is its device memory)."""
    if isinstance(arch, GpuArch):
        return BackingTier("host", None, arch.pcie_gb_s * 1e9)
    ddr = arch.memory.ddr if arch.memory.hbm is not None else None
    return BackingTier("ddr", ddr.capacity_gib, ddr.bandwidth_gb_s * 1e9) if ddr is not None else None


def memory_budget(facts: ModelFacts, arch, devices: int, utilization: float, max_tokens: int,
                  kv_tokens: int | None = None) -> MemoryBudget:
    """Per device: tensor parallelism splits weights, activations and KV heads ``devices`` ways."""
    device = device_memory_gib(arch) * GIB * utilization
    runtime = GPU_RUNTIME_GIB * GIB if isinstance(arch, GpuArch) else 0.0
    w = facts.weight_bytes / devices
    act = facts.activation_bytes_per_token * max_tokens / devices
    per_token = facts.kv_bytes_per_token / devices
    if per_token <= 0:
        raise LlmSimError("the model's graph has no KV cache input (no input grows with 'past'): it cannot be served")
    free = device - w - act - runtime
    fit = int(free // per_token) if free > 0 else 0
    if kv_tokens is None:
        kv_tokens = fit
    if kv_tokens < 1:
        raise LlmSimError(f"the model does not fit for serving: each of {devices} x {arch.name} has "
                          f"{device / GIB:.1f} GiB for the engine and needs {w / GIB:.1f} GiB of weights and "
                          f"{act / GIB:.2f} GiB of activations; use more devices (--target {arch.name}:N) or "
                          "a lower --max-num-batched-tokens")
    return MemoryBudget(device, w, act, runtime, per_token, kv_tokens)
