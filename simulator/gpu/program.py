"""Costing kernels on a GPU: a roofline per kernel with shape-dependent efficiency, launch
overhead with and without CUDA graphs, and NCCL collectives for tensor parallelism.

Per kernel ``t = latency + max(t_tensor + t_vector, bytes / (bandwidth x efficiency))``, the
efficiency being the preset's ``stream_efficiency``, or ``decode_kv_efficiency`` for decode
attention (the KV cache read block by block):

* ``t_tensor``: each product's FLOPs over the tensor-core peak of its element type times
  an efficiency from its shape: tile quantization (rows below the MMA tile leave rows
  idle, ragged edges waste a tile) and wave quantization (tiles that do not fill the SMs
  evenly; short tile grids split K across SMs first);
* ``t_vector``: other FLOPs on the CUDA cores (f32 rate);
* ``bytes``: what crosses the kernel's boundary, from the IR types (``kernels.py``);
* ``latency``: one HBM round trip (the preset's ``hbm.latency_ns``): a transfer of ``B`` bytes
  reaches ``B / (B + bandwidth x latency)`` of the streaming rate, so small GEMMs and short
  KV-cache reads use a smaller share of HBM than long weight streams (Little's law).

Fused attention's tensor efficiency grows with the keys it runs over (FlashAttention-3's
measured curve). Collectives are NCCL's ring protocols (LL, LL128, Simple) with NCCL's own
latency and bandwidth model, the cheapest chosen per message.

Kernels run in program order. With CUDA graphs one launch starts them all and consecutive
kernels are ``graph_gap_us`` apart; without, the host issues one kernel every
``launch_overhead_us`` and a kernel starts when both it is issued and its predecessor is
done. docs/gpu-model.md explains every constant.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from rduflow.ir import Dim, DType, Module, Operation, TensorType, Value
from rduflow.ir.dims import numel
from rduflow.ir.ops.linalg import matmul_shape

from rduflow.compiler.backend.shard_rules import ALL_GATHER, ALL_REDUCE
from rduflow.compiler.target import GpuArch, list_arches, load_arch
from ..results import bin_timeline
from .collectives import collective_cost
from .errors import GpuModelError
from .kernels import (
    ACT,
    ATTENTION,
    BMM,
    STATIC,
    WEIGHT,
    Formation,
    Kernel,
    form_kernels,
)
from .parallel import S, Sharding, shard
from .params import DEFAULT_PARAMS, GpuParams
from .poly import PolyTable

TIMELINE_BINS = 200
_ZERO = Dim.const(0)


@dataclass
class KernelRun:
    name: str
    kind: str  # gemm, attention, bmm, pointwise, all_reduce, all_gather
    start_s: float
    end_s: float
    flops: float
    hbm_bytes: float
    link_bytes: float
    bound: str  # compute, memory, latency or link: what set the kernel's duration


@dataclass
class GpuResult:
    """One forward step on ``gpus`` GPUs; bytes, FLOPs and busy times are per GPU."""

    arch: str
    gpus: int
    cuda_graphs: bool
    total_s: float
    kernels: list[KernelRun]
    flops: float
    hbm_bytes: float
    link_bytes: float
    peak_tflops: float  # tensor-core peak of the products' element type
    hbm_peak_gb_s: float
    link_peak_gb_s: float  # per direction
    memory_bytes: float  # weights and KV cache held per GPU
    bandwidth_timeline: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)

    @property
    def launch_s(self) -> float:
        """Time the GPU sat idle between kernels (launches and gaps)."""
        return self.total_s - sum(k.end_s - k.start_s for k in self.kernels)

    @property
    def tensor_utilisation(self) -> float:
        return self.flops / (self.total_s * self.peak_tflops * 1e12) if self.total_s else 0.0

    @property
    def hbm_utilisation(self) -> float:
        return self.hbm_bytes / (self.total_s * self.hbm_peak_gb_s * 1e9) if self.total_s else 0.0

    @property
    def link_utilisation(self) -> float:
        busy = sum(k.end_s - k.start_s for k in self.kernels if k.kind in (ALL_REDUCE, ALL_GATHER))
        return busy / self.total_s if self.total_s and self.gpus > 1 else 0.0

    def time_by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.kernels:
            out[k.kind] = out.get(k.kind, 0.0) + k.end_s - k.start_s
        out["launch"] = self.launch_s
        return out


@dataclass(frozen=True)
class GpuTotals:
    """A step's totals, per GPU (what :meth:`GpuProgram.totals` returns)."""

    total_s: float
    flops: float
    hbm_bytes: float
    link_bytes: float


@dataclass
class _Costs:
    dur: np.ndarray
    flops: np.ndarray
    nbytes: np.ndarray
    bound: np.ndarray
    peak: float


@dataclass
class _Tables:
    """Symbolic costs of every kernel for one tensor-parallel degree."""

    names: list[str]
    kinds: list[str]
    vector: PolyTable  # per kernel: non-product FLOPs
    read: PolyTable
    written: PolyTable
    min_kernel: np.ndarray  # gathers read min(table, rows): kernel index, then a and b rows below
    mins: PolyTable
    mm_kernel: np.ndarray
    mm_dtype: list[DType]
    mm_attention: np.ndarray
    mm: PolyTable  # per product: flops, rows per B matrix, n, k, B matrices (5 rows each)
    coll_after: list[int]
    coll_kind: list[str]
    coll_bytes: PolyTable
    resident: PolyTable  # one row: weights + graph inputs held per GPU


class GpuProgram:
    """An imported graph formed into kernels once; :meth:`run` costs it at any binding."""

    def __init__(self, module: Module):
        self.module = module
        self.formation: Formation = form_kernels(module)
        self._tables: dict[int, _Tables] = {}

    @property
    def kernels(self) -> list[Kernel]:
        return self.formation.kernels

    def run(self, arch: GpuArch | str, *, bindings: Mapping[str, int], gpus: int = 1, cuda_graphs: bool = True,
            params: GpuParams = DEFAULT_PARAMS) -> GpuResult:
        arch, t, env = self._checked(arch, bindings, gpus)
        return _Evaluation(self, t, arch, gpus, env, cuda_graphs, params).result(float(t.resident(env)[0]))

    def totals(self, arch: GpuArch | str, *, bindings: Mapping[str, int], gpus: int = 1, cuda_graphs: bool = True,
               params: GpuParams = DEFAULT_PARAMS) -> GpuTotals:
        """:meth:`run`'s totals (same checks, same figures) without the per-kernel timeline."""
        arch, t, env = self._checked(arch, bindings, gpus)
        return _Evaluation(self, t, arch, gpus, env, cuda_graphs, params).totals()

    def _checked(self, arch: GpuArch | str, bindings: Mapping[str, int], gpus: int) -> tuple[GpuArch, _Tables, dict]:
        arch = load_arch(arch)
        if not isinstance(arch, GpuArch):
            gpus_known = ", ".join(n for n in list_arches() if isinstance(load_arch(n), GpuArch))
            raise GpuModelError(f"'{arch.name}' is not a GPU architecture ({gpus_known})")
        if not isinstance(gpus, int) or gpus < 1:
            raise GpuModelError(f"gpus must be a positive integer, is {gpus!r}")
        t = self.tables(gpus)
        env = dict(bindings)
        resident = float(t.resident(env)[0])
        capacity = arch.hbm.capacity_gib * 2**30
        if resident > capacity:
            raise GpuModelError(f"{self._model_name()} needs {resident / 2**30:.1f} GiB per GPU on {gpus} x {arch.name} "
                                f"(weights and KV cache), above its {arch.hbm.capacity_gib:g} GiB; use more GPUs (--gpus)")
        return arch, t, env

    def _model_name(self) -> str:
        return str(self.module.attrs.get("name", "the model"))

    def tables(self, n: int) -> _Tables:
        if n not in self._tables:
            self._tables[n] = _build_tables(self.formation, shard(self.formation, n), self.module)
        return self._tables[n]


# -- symbolic tables ------------------------------------------------------------------------------
def _build_tables(f: Formation, sh: Sharding, module: Module) -> _Tables:
    n = sh.n
    part = Fraction(1, n)
    vec, read, written = [], [], []
    min_k, min_rows = [], []
    mm_k, mm_dt, mm_att, mm_rows = [], [], [], []
    users = f.graph.users()
    outputs = set(f.graph.outputs)
    for k in f.kernels:
        members = set(k.ops)
        kernel_sharded = any(op in sh.sharded_ops for op in k.ops)
        v_flops, r_bytes, w_bytes = _ZERO, _ZERO, _ZERO
        seen: set[Value] = set()
        for op in k.ops:
            split = op in sh.sharded_ops or (f.value_class[op.results[0]] == WEIGHT and kernel_sharded)
            scale = part if split else 1
            if op.opdef.kind == "matmul":
                flops, rows, nn, kk, bmat = _product(op)
                if split:
                    if op in f.gemms:
                        nn, kk = (nn * part, kk) if sh.produced.get(op.results[0]) == S else (nn, kk * part)
                    else:
                        bmat = bmat * part
                mm_k.append(k.index)
                mm_dt.append(op.operands[0].type.dtype)
                mm_att.append(k.kind in (ATTENTION, BMM))
                mm_rows += [flops * scale, rows, nn, kk, bmat]
            else:
                v_flops = v_flops + _flops(op) * scale
            for i, v in enumerate(op.operands):
                d = v.defining_op
                if (d is not None and d in members) or v in seen or f.value_class[v] == STATIC:
                    continue
                if op in f.appends and _is_input(f, v):
                    continue  # the cache is appended to in place, not read
                seen.add(v)
                size = _nbytes(v.type) * _read_factor(f, sh, v, op, part, kernel_sharded)
                if op.opname == "gather" and i == 0:  # reads the rows it gathers, at most the table
                    min_k.append(k.index)
                    min_rows += [size, _nbytes(op.results[0].type) * _read_factor(f, sh, v, op, part, kernel_sharded)]
                else:
                    r_bytes = r_bytes + size
            if f.kernel_of.get(op) is not k:
                continue  # a copy of a prologue: its results stay inside this kernel
            for r in op.results:
                if r in outputs or any(u not in members for u in users.get(r, [])):
                    size = _nbytes(r.type)
                    if op in f.appends:
                        size = size - sum((_nbytes(v.type) for v in op.operands if _is_input(f, v)), _ZERO)
                    w_bytes = w_bytes + size * (part if sh.produced.get(r) == S else 1)
        vec.append(v_flops)
        read.append(r_bytes)
        written.append(w_bytes)
    coll = sorted(((f.kernel_of[v.defining_op].index, kind, v) for v, kind in sh.collectives.items()
                   if v.defining_op in f.kernel_of), key=lambda c: c[0])
    return _Tables(
        [k.name for k in f.kernels], [k.kind for k in f.kernels], PolyTable(vec), PolyTable(read), PolyTable(written),
        np.array(min_k, dtype=np.int64), PolyTable(min_rows), np.array(mm_k, dtype=np.int64), mm_dt,
        np.array(mm_att, dtype=bool), PolyTable(mm_rows),
        [c[0] for c in coll], [c[1] for c in coll], PolyTable([_nbytes(c[2].type) for c in coll]),
        PolyTable([_resident(f, sh, module, part)]),
    )


def _flops(op: Operation) -> Dim:
    return op.opdef.flops([v.type for v in op.operands], [r.type for r in op.results], op.attrs)


@functools.lru_cache(maxsize=1 << 16)
def _nbytes(t: TensorType) -> Dim:
    return t.nbytes


def _is_input(f: Formation, v: Value) -> bool:
    d = v.defining_op
    return d is None or d in f.aliases


def _read_factor(f: Formation, sh: Sharding, v: Value, reader: Operation, part: Fraction, kernel_sharded: bool):
    """Graph inputs, weights and views of them take the reader's layout (a weights-only reader,
    such as a dequantization, its kernel's); other values their producer's."""
    d = v.defining_op
    if d is None or d in f.aliases or f.value_class[v] == WEIGHT:
        weights_only = f.value_class[reader.results[0]] == WEIGHT
        return part if reader in sh.sharded_ops or (weights_only and kernel_sharded) else 1
    return part if sh.produced.get(v) == S else 1


def _resident(f: Formation, sh: Sharding, module: Module, part: Fraction) -> Dim:
    """Bytes each GPU holds: weights (GEMM weights split n ways) and graph inputs (split when
    a sharded op reads them, as the KV cache is)."""
    if sh.n == 1:
        return sum((_nbytes(w.type) for w in module.weights.values()), _ZERO) + \
            sum((_nbytes(a.type) for a in f.graph.args), _ZERO)
    gemm_weights = {v for k in f.kernels if k.kind == "gemm" for op in k.ops for v in op.operands
                    if v.defining_op is not None and v.defining_op.opname == "weight"}
    users = f.graph.users()
    total = _ZERO
    for op in f.graph.ops:
        if op.opname == "weight":
            v = op.results[0]
            total = total + _nbytes(v.type) * (part if v in gemm_weights else 1)
    for a in f.graph.args:
        readers = [u for u in users.get(a, [])]
        readers += [w for u in readers if u in f.aliases for w in users.get(u.results[0], [])]
        total = total + _nbytes(a.type) * (part if any(u in sh.sharded_ops for u in readers) else 1)
    return total


def _product(op: Operation) -> tuple[Dim, Dim, Dim, Dim, Dim]:
    """(flops, rows sharing one B matrix, n, k, number of B matrices) of a product op."""
    flops = _flops(op)
    a, b = op.operands[0].type, op.operands[1].type
    if op.opname == "matmul_nbits":
        kk, nn = Dim.const(op.attrs["k"]), Dim.const(op.attrs["n"])
        return flops, numel(a.shape) / kk, nn, kk, Dim.const(1)
    if op.opname in ("matmul", "matmul_integer"):
        batch, m, kk, nn, _ = matmul_shape(a.shape, b.shape)
        bmat = numel(b.shape[:-2]) if b.rank > 2 else Dim.const(1)
        return flops, numel(batch) * m / bmat, nn, kk, bmat
    # einsum: no tile model; treated as one large product (full tiles).
    big = Dim.const(1 << 20)
    return flops, big, big, big, Dim.const(1)


# -- evaluation -------------------------------------------------------------------------------------
class _Evaluation:
    def __init__(self, prog: GpuProgram, t: _Tables, arch: GpuArch, gpus: int, env: dict[str, int],
                 cuda_graphs: bool, params: GpuParams):
        self.prog, self.t, self.arch, self.gpus, self.env = prog, t, arch, gpus, env
        self.graphs, self.p = cuda_graphs, params

    def costs(self) -> _Costs:
        """Every kernel's duration, FLOPs and bytes at this binding, as arrays."""
        t, arch, p, env = self.t, self.arch, self.p, self.env
        nk = len(t.names)
        vec = t.vector(env)
        nbytes = t.read(env) + t.written(env)
        if len(t.min_kernel):
            m = t.mins(env).reshape(-1, 2)
            np.add.at(nbytes, t.min_kernel, m.min(axis=1))
        flops_k = vec.copy()
        t_tensor = np.zeros(nk)
        # Decode attention (an activation-by-activation product with a partial query tile) reads
        # the KV cache block by block through the engine's block table, not as one long stream:
        # it sustains its own share of HBM (the preset's decode_kv_efficiency).
        decode_kv = np.zeros(nk, dtype=bool)
        peak = 0.0
        if len(t.mm_kernel):
            mm = t.mm(env).reshape(-1, 5)
            rates = np.array([arch.tensor_tflops.get(d.value, arch.tensor_tflops["f32"]) for d in t.mm_dtype]) * 1e12
            eff = self.efficiency(mm[:, 1], mm[:, 2], mm[:, 3], mm[:, 4], t.mm_attention)
            np.add.at(t_tensor, t.mm_kernel, mm[:, 0] / (rates * eff))
            np.add.at(flops_k, t.mm_kernel, mm[:, 0])
            decode_kv[t.mm_kernel[t.mm_attention & (mm[:, 1] < p.tile_m)]] = True
            peak = float(rates.max())
        else:
            peak = arch.tensor_tflops.get("bf16", arch.tensor_tflops["f32"]) * 1e12
        t_vector = vec / (arch.vector_tflops["f32"] * 1e12)
        bw = arch.hbm.bandwidth_gb_s * 1e9
        t_mem = nbytes / (bw * np.where(decode_kv, arch.decode_kv_efficiency, arch.stream_efficiency))
        lat = arch.hbm.latency_ns * 1e-9
        compute = t_tensor + t_vector
        dur = lat + np.maximum(compute, t_mem)
        bound = np.where(compute >= t_mem, "compute", "memory")
        bound = np.where(np.maximum(compute, t_mem) < lat, "latency", bound)
        return _Costs(dur, flops_k, nbytes, bound, peak)

    def totals(self) -> GpuTotals:
        """The step's totals without a timeline (a serving step table needs thousands of them)."""
        t, c = self.t, self.costs()
        coll_bytes = t.coll_bytes(self.env) if t.coll_after else np.zeros(0)
        colls = [collective_cost(self.arch, self.gpus, kind, float(b), self.p)
                 for kind, b in zip(t.coll_kind, coll_bytes)]
        n = len(c.dur) + len(colls)
        busy = float(c.dur.sum()) + sum(x.seconds for x in colls)
        if self.graphs:
            total = self.arch.launch_overhead_us * 1e-6 + busy + max(n - 1, 0) * self.p.graph_gap_us * 1e-6
        else:  # the host issues kernels one by one: the order matters, so walk it
            total = self._runs(c)[-1].end_s if n else 0.0
        return GpuTotals(total, float(c.flops.sum()), float(c.nbytes.sum()), sum(x.traffic_bytes for x in colls))

    def result(self, resident: float) -> GpuResult:
        t, arch, c = self.t, self.arch, self.costs()
        runs = self._runs(c)
        total = runs[-1].end_s if runs else 0.0
        spans = [(r.start_s * 1e9, r.end_s * 1e9, r.hbm_bytes) for r in runs if r.hbm_bytes]
        link_spans = [(r.start_s * 1e9, r.end_s * 1e9, r.link_bytes) for r in runs if r.link_bytes]
        timeline = {"hbm": bin_timeline(spans, total * 1e9, TIMELINE_BINS)}
        if link_spans:
            timeline["nvlink"] = bin_timeline(link_spans, total * 1e9, TIMELINE_BINS)
        return GpuResult(
            arch=arch.name, gpus=self.gpus, cuda_graphs=self.graphs, total_s=total, kernels=runs,
            flops=float(c.flops.sum()), hbm_bytes=float(c.nbytes.sum()), link_bytes=sum(r.link_bytes for r in runs),
            peak_tflops=c.peak / 1e12, hbm_peak_gb_s=arch.hbm.bandwidth_gb_s, link_peak_gb_s=arch.peer_link_gb_s,
            memory_bytes=resident, bandwidth_timeline=timeline)

    def efficiency(self, rows, n, k, bmat, attention) -> np.ndarray:
        p, sms = self.p, self.arch.sms
        rows = np.maximum(rows, 1.0)
        small = np.maximum(p.min_tile_m, 2.0 ** np.ceil(np.log2(rows)))
        tm = np.where(rows >= p.tile_m, p.tile_m, small)
        util_m = rows / (np.ceil(rows / tm) * tm)
        n = np.maximum(n, 1.0)
        util_n = n / (np.ceil(n / p.tile_n) * p.tile_n)
        tiles = np.ceil(rows / tm) * np.ceil(n / p.tile_n) * np.maximum(np.ceil(bmat), 1.0)
        split = np.where(tiles < sms, np.clip(np.minimum(sms // tiles, k // p.split_k_min), 1, None), 1)
        t_eff = tiles * split
        wave = t_eff / (np.ceil(t_eff / sms) * sms)
        # FlashAttention-3's curve over L keys, measured with full query tiles (prefill); QK^T
        # has the keys as n, PV as k, the head dim is the other. Decode (a partial query tile,
        # memory-bound) keeps its asymptote: split-KV kernels spread the keys over CTAs instead.
        keys = np.maximum(n, k)
        fill = np.where(rows >= p.tile_m, keys / (keys + p.attention_half_keys), 1.0)
        fused = p.attention_efficiency * fill
        base = np.where(attention, fused, p.gemm_efficiency)
        return base * util_m * util_n * wave

    def _runs(self, c: _Costs) -> list[KernelRun]:
        t = self.t
        seq: list[tuple[str, str, float, float, float, float, str]] = []
        coll_bytes = t.coll_bytes(self.env) if t.coll_after else np.zeros(0)
        ci = 0
        for i in range(len(t.names)):
            seq.append((t.names[i], t.kinds[i], float(c.dur[i]), float(c.flops[i]), float(c.nbytes[i]), 0.0,
                        str(c.bound[i])))
            while ci < len(t.coll_after) and t.coll_after[ci] == i:
                seq.append(self.collective(t.names[i], t.coll_kind[ci], float(coll_bytes[ci])))
                ci += 1
        return self.schedule(seq)

    def collective(self, after: str, kind: str, nbytes: float) -> tuple:
        c = collective_cost(self.arch, self.gpus, kind, nbytes, self.p)
        return (f"{kind} ({c.protocol}) after {after}", kind, c.seconds, 0.0, 0.0, c.traffic_bytes,
                "link" if c.wire_s > c.latency_s else "latency")

    def schedule(self, seq: list[tuple]) -> list[KernelRun]:
        launch = self.arch.launch_overhead_us * 1e-6
        gap = self.p.graph_gap_us * 1e-6
        runs: list[KernelRun] = []
        end = launch if self.graphs else 0.0  # a graph is one launch
        for i, (name, kind, dur, flops, nbytes, link, bound) in enumerate(seq):
            start = end + (gap if i else 0.0)
            if not self.graphs:
                start = max(start, (i + 1) * launch)
            end = start + dur
            runs.append(KernelRun(name=name, kind=kind, start_s=start, end_s=end, flops=flops, hbm_bytes=nbytes,
                                  link_bytes=link, bound=bound))
        return runs


def simulate_gpu(module: Module, arch: GpuArch | str, *, bindings: Mapping[str, int], gpus: int = 1,
                 cuda_graphs: bool = True, params: GpuParams = DEFAULT_PARAMS) -> GpuResult:
    """Form ``module``'s kernels and cost one step at ``bindings`` (e.g. ``{"batch": 1, "seq": 1, "past": 512}``)."""
    return GpuProgram(module).run(arch, bindings=bindings, gpus=gpus, cuda_graphs=cuda_graphs, params=params)


__all__ = ["ACT", "GpuProgram", "GpuResult", "KernelRun", "simulate_gpu"]
