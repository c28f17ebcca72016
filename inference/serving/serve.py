"""``serve``: a workload through a serving engine on one target, from model to metrics.

The model's graphs are built once (``inference/graphs.py``), the target's back end prices
steps (``inference/backends.py``: the RDU compiles and simulates, the GPU model costs
kernels), the memory budget sizes the paged KV cache, a step table is built or read from
disk, and the engine loop (``engine.py``) runs the workload through the chosen scheduler.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rduflow.compiler.target import GpuArch
from rduflow.simulator.gpu.params import DEFAULT_PARAMS

from rduflow.inference.backends import available_cpus, make_backend
from rduflow.inference.errors import LlmSimError
from rduflow.inference.graphs import ModelGraphs, load_graphs
from rduflow.inference.model_source import ModelSource, resolve_model
from rduflow.models import ModelConfig
from rduflow.inference.run import PLAIN_AFTER_S, max_context
from .batch import Program
from .config import EngineConfig
from .engine import NO_OFFLOAD, EngineRun, Offload, serve_requests
from .host import HostOverheads, host_overheads
from .memory import GIB, MemoryBudget, ModelFacts, backing_tier, device_memory_gib, memory_budget
from .metrics import RequestMetrics
from .step_cache import StepTable, build, load_facts, model_identity, save_facts, table_path
from .step_model import ProgramStepModel, make_grid
from .workload import Workload

DEFAULT_MAX_MODEL_LEN = 4096  # a model file whose graph does not say its context


@dataclass(frozen=True)
class ServeConfig:
    model: Any  # a MODEL argument or ModelSource or ModelConfig, as simulate takes
    arch: Any  # a preset name, file or Arch
    devices: int | None = None  # sockets or GPUs (one replica, tensor parallel); None: one node / one GPU
    engine: EngineConfig = EngineConfig()
    weights: str = "bf16"
    kv_dtype: str = "bf16"
    cuda_graphs: bool = True
    kernel_looping: bool = True
    workers: int | None = None
    use_cache: bool = True  # read and write step tables on disk
    host: HostOverheads | None = None  # None: the defaults for the target's kind (host.py)
    # Other models on the same devices (a composition of experts, as Samba-CoE): MODEL
    # arguments; requests name theirs (workload.assign_models), a batch runs one model.
    mix: tuple = ()


@dataclass
class ServeResult:
    config: ServeConfig
    engine_config: EngineConfig  # with the device-dependent defaults filled in
    model: str
    arch: str
    kind: str  # rdu or gpu
    devices: int
    workload: Workload
    run: EngineRun
    metrics: RequestMetrics
    budget: MemoryBudget
    host: HostOverheads
    max_model_len: int
    points_simulated: int  # step-table points simulated by this run (the rest came from disk)
    points_total: int
    table_path: str | None
    wall_s: float


class ModelOnDemand:
    """The model's graphs, built only when something needs them: a warm run (facts and step
    table on disk) never does."""

    def __init__(self, model, weights: str, kv_dtype: str, say):
        self.weights, self.kv_dtype, self.say = weights, kv_dtype, say
        self.source = model if isinstance(model, ModelSource) else (
            ModelSource(model.name, model) if isinstance(model, ModelConfig) else resolve_model(model))
        self.identity = model_identity(self.source, weights, kv_dtype)
        self._graphs: ModelGraphs | None = None

    @property
    def graphs(self) -> ModelGraphs:
        if self._graphs is None:
            self.say(f"building {self.source.name}")
            self._graphs = load_graphs(self.source, self.weights, self.kv_dtype)
        return self._graphs

    def facts(self, use_cache: bool) -> ModelFacts:
        facts = load_facts(self.identity) if use_cache else None
        if facts is None:
            g = self.graphs
            facts = ModelFacts.of(g.decode, g.name, max_context(self.source))
            if use_cache:
                save_facts(self.identity, facts)
        return facts


def build_step_model(model: ModelOnDemand, backend, engine: EngineConfig, budget: MemoryBudget, max_len: int,
                     workers: int, use_cache: bool, say=None):
    """The step model for ``engine``'s scheduler, and the table behind it."""

    def simulate(programs: list[Program]) -> list[np.ndarray]:
        graphs = model.graphs
        module = graphs.decode
        calls = [(module, graphs.bindings(module, p.batch, p.seq, p.past)) for p in programs]
        if say is not None:
            say(f"simulating {len(programs)} step{'s' if len(programs) != 1 else ''} for the step table")
        backend.prefetch(calls, workers)
        return [backend.totals(m, b).as_array() for m, b in calls]

    if isinstance(backend.arch, GpuArch):
        grid = make_grid(engine.max_num_batched_tokens, engine.max_num_seqs, max_len, budget.kv_tokens, 2,
                         tiles=(DEFAULT_PARAMS.min_tile_m, DEFAULT_PARAMS.tile_m))
    else:  # RDU steps cost seconds each: a coarser grid
        grid = make_grid(engine.max_num_batched_tokens, engine.max_num_seqs, max_len, budget.kv_tokens, 4)
    backend_key = (backend.kind, backend.arch.model_dump_json(), backend.devices,
                   getattr(backend, "cuda_graphs", None), getattr(backend, "kernel_looping", None))
    buckets = engine.scheduler == "buckets"
    path = table_path(model.identity, backend_key, None if buckets else grid) if use_cache else None
    table = StepTable(path, simulate)
    if buckets:
        return ProgramStepModel(table), table
    return build(grid, table), table


def context_limit(facts: ModelFacts, engine: EngineConfig) -> int:
    model_max = facts.max_context
    if engine.max_model_len is not None:
        if model_max is not None and engine.max_model_len > model_max:
            raise LlmSimError(f"--max-model-len {engine.max_model_len} exceeds {facts.name}'s maximum context "
                              f"of {model_max} (max_position_embeddings)")
        return engine.max_model_len
    return model_max or DEFAULT_MAX_MODEL_LEN


def serve(cfg: ServeConfig, workload: Workload, *, progress: bool = False) -> ServeResult:
    t0 = time.perf_counter()
    say = _stage(progress)
    backend = make_backend(cfg.arch, cfg.devices, cuda_graphs=cfg.cuda_graphs, kernel_looping=cfg.kernel_looping)
    arch = backend.arch
    engine = cfg.engine.resolved(device_memory_gib(arch))
    models = {None: ModelOnDemand(cfg.model, cfg.weights, cfg.kv_dtype, say)}
    if cfg.mix:
        if engine.scheduler == "vllm":
            raise LlmSimError("--mix runs one model per batch: use --scheduler static or buckets")
        models = {m.source.spec: m for m in [models[None]] + [ModelOnDemand(x, cfg.weights, cfg.kv_dtype, say)
                                                               for x in cfg.mix]}
    for m in models.values():
        check_parallelism(m, arch, backend.devices)
    all_facts = {k: m.facts(cfg.use_cache) for k, m in models.items()}
    max_len = min(context_limit(f, engine) for f in all_facts.values())
    # One model's weights in device memory at a time: the largest sets the KV budget, whose
    # blocks are sized for the most KV-hungry model.
    sizing = replace(max(all_facts.values(), key=lambda f: f.weight_bytes),
                     kv_bytes_per_token=max(f.kv_bytes_per_token for f in all_facts.values()),
                     activation_bytes_per_token=max(f.activation_bytes_per_token for f in all_facts.values()))
    budget = memory_budget(sizing, arch, backend.devices, engine.gpu_memory_utilization,
                           engine.max_num_batched_tokens, engine.kv_cache_tokens)
    kv_blocks = budget.kv_tokens // engine.block_size
    if kv_blocks < 1:
        raise LlmSimError(f"the KV cache holds {budget.kv_tokens} tokens, less than one --block-size "
                          f"{engine.block_size} block")
    longest = max((r.input_tokens + r.output_tokens for r in workload.requests), default=1)
    grid_len = min(max_len, _pow2_at_least(max(longest, 2048)))
    workers = cfg.workers or available_cpus()
    step_models, tables = {}, []
    for key, m in models.items():
        step_models[key], table = build_step_model(m, backend, engine, budget, grid_len, workers, cfg.use_cache, say)
        tables.append(table)
    switch = {k: switch_seconds(arch, f.weight_bytes / backend.devices) for k, f in all_facts.items()} if cfg.mix else {}
    host = cfg.host if cfg.host is not None else host_overheads(backend.kind, engine.host_overheads)
    offload = offload_tier(arch, engine, budget)
    say(f"serving {len(workload.requests)} requests")
    bar = _bar(progress, len(workload.requests))
    try:
        run = serve_requests(workload, engine, step_models if cfg.mix else step_models[None], host, kv_blocks,
                             max_len, offload, progress=(lambda n: bar.update(n - bar.n)) if bar else None,
                             switch_s=switch)
    finally:
        if bar is not None:
            bar.close()
    if run.rejected and not run.sequences:
        reasons = "; ".join(f"{n} x {why}" for why, n in Counter(x.reason for x in run.rejected).items())
        raise LlmSimError(f"every request was rejected ({reasons}): nothing to report")
    name = " + ".join(f.name for f in all_facts.values())
    return ServeResult(cfg, engine, name, arch.name, backend.kind, backend.devices, workload, run,
                       RequestMetrics.of(run), budget, host, max_len, sum(t.simulated for t in tables),
                       sum(len(t.points) for t in tables), str(tables[0].path) if tables[0].path else None,
                       time.perf_counter() - t0)


def switch_seconds(arch, weight_bytes: float) -> float:
    """Bringing a model's weights (per device) into device memory from its backing tier: an
    RDU's DDR (Samba-CoE keeps its experts there), a GPU's host memory over PCIe."""
    tier = backing_tier(arch)
    return weight_bytes / tier.bandwidth if tier is not None else 0.0


def offload_tier(arch, engine: EngineConfig, budget: MemoryBudget) -> Offload:
    """Where evicted KV blocks go: the backing tier, at its bandwidth. A GPU's host memory only
    when asked (vLLM's --kv-offloading-size); an RDU's DDR by default (1.5 TiB per SN40L
    socket), times --gpu-memory-utilization."""
    tier = backing_tier(arch)
    if tier is None:
        return NO_OFFLOAD
    gib = engine.kv_offloading_size
    if gib is None:
        gib = tier.capacity_gib * engine.gpu_memory_utilization if tier.capacity_gib is not None else 0.0
    block = budget.kv_bytes_per_token * engine.block_size
    blocks = int(gib * GIB // block) if block > 0 else 0
    return Offload(blocks, tier.name, block, tier.bandwidth) if blocks else NO_OFFLOAD


def check_parallelism(model: ModelOnDemand, arch, devices: int) -> None:
    """vLLM shards attention heads across tensor-parallel GPUs and refuses a size that does not
    divide them (vllm/config: "Total number of attention heads must be divisible by tensor
    parallel size")."""
    cfg = model.source.config
    if isinstance(arch, GpuArch) and cfg is not None and cfg.num_heads % devices:
        raise LlmSimError(f"{cfg.name} has {cfg.num_heads} attention heads, which {devices} GPUs do not divide: "
                          f"tensor parallelism needs a GPU count that divides them")


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _stage(progress: bool):
    """Stage lines on stderr: always on a terminal, elsewhere once the run has taken
    PLAIN_AFTER_S (as ``simulate`` does), so a quick run in a script prints nothing."""
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()

    def say(text: str) -> None:
        elapsed = time.perf_counter() - t0
        if progress and (tty or elapsed >= PLAIN_AFTER_S):
            print(f"rduflow: {text} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    return say


def _bar(progress: bool, total: int):
    if not (progress and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="requests", unit=" req", file=sys.stderr, leave=False)

