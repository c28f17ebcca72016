"""One forward step of a graph on some hardware, in one shape for every backend.

:class:`RduBackend` compiles the graph for the bindings (``rduflow.compiler.backend``) and
runs the placed program in the cycle-approximate engine; :class:`GpuBackend` costs it with
the GPU model. Both return a :class:`Step`, which the run assembles into TTFT, ITL and the
report. Figures are per device (socket or GPU): every device runs the same program.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import re
import signal
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rduflow.ir import Module

from rduflow.compiler.target import GpuArch, RduArch, load_arch
from rduflow.simulator.netlist import unit_names
from .errors import LlmSimError


@dataclass
class Span:
    name: str
    kind: str
    start_s: float
    end_s: float


@dataclass
class Step:
    time_s: float
    flops: float
    bytes: dict[str, float]  # per tier: hbm, ddr, links; RDU also sram (PMU reads) and mesh (byte-hops)
    peak_gb_s: dict[str, float]
    by_section: dict[str, float]  # seconds
    by_kind: dict[str, float]
    utilization: dict[str, float]  # fraction busy: pcu, pmu (RDU) or sm (GPU); links
    timeline: list[Span]
    bandwidth_timeline: dict[str, list[tuple[float, float, float]]]
    heatmap: np.ndarray | None = None  # PCU/PMU utilisation on the tile grid (RDU)
    raw: Any = field(default=None, repr=False)  # SimResult or GpuResult


@dataclass(frozen=True)
class StepTotals:
    """A step's totals only, per device: what a serving step table keeps."""

    time_s: float
    flops: float
    memory_bytes: float  # HBM and DDR
    link_bytes: float

    @staticmethod
    def of(step: Step) -> StepTotals:
        return StepTotals(step.time_s, step.flops, step.bytes.get("hbm", 0.0) + step.bytes.get("ddr", 0.0),
                          step.bytes.get("links", 0.0))

    def as_array(self) -> np.ndarray:
        """The fields in order, for tables that interpolate them together."""
        return np.array([self.time_s, self.flops, self.memory_bytes, self.link_bytes])

    @staticmethod
    def from_array(v: np.ndarray) -> StepTotals:
        return StepTotals(float(v[0]), float(v[1]), float(v[2]), float(v[3]))


_LAYER = re.compile(r"\d+")
_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # graph -> its GPU kernels, formed once
_STEPS: OrderedDict[tuple, tuple[Module, Step]] = OrderedDict()
STEP_CACHE = 64  # steps kept per process: the same graph at the same bindings on the same target


def _cache_key(key: tuple, module: Module, bindings: dict[str, int]) -> tuple:
    return (id(module), tuple(sorted(bindings.items())), *key)


def _cached(full: tuple, module: Module) -> Step | None:
    hit = _STEPS.get(full)
    if hit is not None and hit[0] is module:
        _STEPS.move_to_end(full)
        return hit[1]
    return None


def _store(full: tuple, module: Module, step: Step) -> None:
    _STEPS[full] = (module, step)  # holds the module, so its id is not reused while cached
    while len(_STEPS) > STEP_CACHE:
        _STEPS.popitem(last=False)


def cached_step(key: tuple, module: Module, bindings: dict[str, int], run) -> Step:
    """A step is a deterministic function of the graph, the bindings and the target: runs that
    share steps (compare, validation, a run with and without a feature) simulate them once."""
    full = _cache_key(key, module, bindings)
    step = _cached(full, module)
    if step is None:
        step = run()
        _store(full, module, step)
    return step


def section_key(name: str) -> str:
    """Group repeated layers: ``model.layers.12.mlp.down_proj`` -> ``model.layers.*.mlp.down_proj``."""
    return _LAYER.sub("*", name)


def make_backend(arch_spec, devices: int | None, *, cuda_graphs: bool = True, kernel_looping: bool = True,
                 fusion: str = "auto"):
    arch = load_arch(arch_spec)
    if isinstance(arch, GpuArch):
        return GpuBackend(arch, devices or 1, cuda_graphs)
    return RduBackend(arch, devices or arch.sockets.per_node, kernel_looping, fusion)


class GpuBackend:
    kind = "gpu"
    unit = "GPU"

    def __init__(self, arch: GpuArch, gpus: int, cuda_graphs: bool):
        self.arch, self.devices, self.cuda_graphs = arch, gpus, cuda_graphs

    def peak_flops(self, dtype: str) -> float:
        t = self.arch.tensor_tflops
        return t.get(dtype, t["f32"]) * 1e12

    @property
    def memory_bw(self) -> float:
        return self.arch.hbm.bandwidth_gb_s * 1e9

    def prefetch(self, calls, workers: int) -> None:
        """GPU steps cost milliseconds: nothing to gain from running them ahead."""

    def step(self, module: Module, bindings: dict[str, int], trace: bool = False) -> Step:
        key = ("gpu", self.arch.model_dump_json(), self.devices, self.cuda_graphs)
        return cached_step(key, module, bindings, lambda: self._step(module, bindings))

    def _program(self, module: Module):
        from rduflow.simulator.gpu import GpuProgram

        prog = _PROGRAMS.get(module)
        if prog is None:
            prog = _PROGRAMS[module] = GpuProgram(module)
        return prog

    def totals(self, module: Module, bindings: dict[str, int]) -> StepTotals:
        """:meth:`step`'s totals, without forming its timeline (a fraction of the cost)."""
        t = self._program(module).totals(self.arch, bindings=bindings, gpus=self.devices, cuda_graphs=self.cuda_graphs)
        return StepTotals(t.total_s, t.flops, t.hbm_bytes, t.link_bytes)

    def _step(self, module: Module, bindings: dict[str, int]) -> Step:
        r = self._program(module).run(self.arch, bindings=bindings, gpus=self.devices, cuda_graphs=self.cuda_graphs)
        by_section: dict[str, float] = {}
        for k in r.kernels:
            key = section_key(k.name)
            by_section[key] = by_section.get(key, 0.0) + k.end_s - k.start_s
        if r.launch_s > 0:
            by_section["(launch gaps)"] = r.launch_s
        nbytes = {"hbm": r.hbm_bytes}
        peak = {"hbm": r.hbm_peak_gb_s}
        if self.devices > 1:
            nbytes["links"] = r.link_bytes
            peak["links"] = r.link_peak_gb_s
        return Step(
            r.total_s, r.flops, nbytes, peak, by_section, r.time_by_kind(),
            {"sm": r.tensor_utilisation} | ({"links": r.link_utilisation} if self.devices > 1 else {}),
            [Span(k.name, k.kind, k.start_s, k.end_s) for k in r.kernels],
            {("links" if t == "nvlink" else t): v for t, v in r.bandwidth_timeline.items()}, None, r)


class RduBackend:
    kind = "rdu"
    unit = "socket"

    def __init__(self, arch: RduArch, sockets: int, kernel_looping: bool, fusion: str):
        if sockets > arch.sockets.max_sockets:
            raise LlmSimError(f"{arch.name} has at most {arch.sockets.max_sockets} sockets, asked for {sockets}")
        self.arch, self.devices, self.kernel_looping, self.fusion = arch, sockets, kernel_looping, fusion

    def peak_flops(self, dtype: str) -> float:
        from rduflow.ir import DType

        return self.arch.peak_flops(DType(dtype))

    @property
    def memory_bw(self) -> float:
        return self.arch.memory.main.bandwidth_gb_s * 1e9

    @property
    def key(self) -> tuple:
        return ("rdu", self.arch.model_dump_json(), self.devices, self.kernel_looping, self.fusion)

    def step(self, module: Module, bindings: dict[str, int], trace: bool = False) -> Step:
        if trace:
            return self._step(module, bindings, True)
        return cached_step(self.key, module, bindings, lambda: self._step(module, bindings, False))

    def totals(self, module: Module, bindings: dict[str, int]) -> StepTotals:
        return StepTotals.of(self.step(module, bindings))

    def prefetch(self, calls: list[tuple[Module, dict[str, int]]], workers: int) -> None:
        """Simulate the steps ``calls`` will need in ``workers`` processes at once (each RDU step
        compiles for seconds; they are independent). Later :meth:`step` calls find them cached."""
        todo, seen = [], set()
        for module, bindings in calls:
            full = _cache_key(self.key, module, bindings)
            if full not in seen and _cached(full, module) is None:
                seen.add(full)
                todo.append((full, module, bindings))
        if workers < 2 or len(todo) < 2 or START_METHOD not in multiprocessing.get_all_start_methods():
            return  # simulated one at a time by step()
        try:
            steps = simulate_steps(self, [(m, b) for _, m, b in todo], workers)
        except Exception:  # noqa: BLE001 -- an error in a worker: step() redoes it here and reports it properly
            return
        for (full, module, _), step in zip(todo, steps):
            _store(full, module, step)

    def _step(self, module: Module, bindings: dict[str, int], trace: bool) -> Step:
        from rduflow.compiler.backend import compile_model

        from rduflow.simulator import simulate

        compiled = compile_model(module, self.arch, sockets=self.devices, fusion=self.fusion, bindings=bindings)
        r = simulate(compiled.placed, self.arch, sockets=self.devices, kernel_looping=self.kernel_looping,
                     trace=trace)
        return rdu_step(r, self.arch, compiled.placed)


def available_cpus() -> int:
    """The CPUs this process may run on: how many steps to simulate at once."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


START_METHOD = "fork"  # workers inherit the graphs instead of unpickling them; "spawn" works as well


def simulate_steps(backend: RduBackend, calls: list[tuple[Module, dict[str, int]]], workers: int,
                   start_method: str = START_METHOD) -> list[Step]:
    """Each call's step, simulated in up to ``workers`` processes started with ``start_method``.

    The backend (its target included) and the graphs reach each worker once, as its initializer's
    arguments: inherited under fork, pickled under spawn; a task is then just an index.
    Workers ignore Ctrl-C and die with this process; on an interrupt (or any error) here they
    are stopped at once rather than waited for, so the command's one line is all that shows."""
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context(start_method)
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(max_workers=min(workers, len(calls)), mp_context=ctx, initializer=_start_worker,
                               initargs=(backend, calls, os.getpid()))
    try:
        with _sigint_blocked():  # the workers start (on submit) with Ctrl-C held off until they ignore it
            results = pool.map(_worker_step, range(len(calls)))
        steps = list(results)
    except BaseException:
        # The pool's manager thread may trip over the killed workers: the process is going down
        # with one line of its own, so its threads' tracebacks are noise.
        threading.excepthook = lambda args: None
        pool.shutdown(wait=False, cancel_futures=True)
        for p in set(multiprocessing.active_children()) - before:  # this pool's workers
            p.kill()
        raise
    pool.shutdown()
    return steps


@contextlib.contextmanager
def _sigint_blocked():
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_WORKER: tuple[RduBackend, list[tuple[Module, dict[str, int]]]] | None = None  # set in each worker process


def _start_worker(backend: RduBackend, calls: list[tuple[Module, dict[str, int]]], parent: int) -> None:
    global _WORKER
    _WORKER = (backend, calls)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """Exit when the process that started this worker dies (even by SIGKILL): Linux sends us
    SIGKILL then (PR_SET_PDEATHSIG); elsewhere a thread polls the parent's id."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the parent died before the request took effect
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="rduflow-parent-watch", daemon=True).start()


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _worker_step(i: int) -> Step:
    backend, calls = _WORKER
    module, bindings = calls[i]
    return backend._step(module, bindings, False)


def rdu_step(r, arch: RduArch, placed: Module) -> Step:
    """A Step from the engine's SimResult (and the placed program, for the tile grid)."""
    nbytes: dict[str, float] = {}
    peak: dict[str, float] = {}
    for tier, ts in r.tiers.items():
        key = "links" if tier == "socket" else tier
        if key in ("hbm", "ddr", "links"):
            nbytes[key] = ts.bytes
            peak[key] = ts.peak_gb_s
    # On-chip traffic, for the power model only (no peak: the bandwidth report covers off-chip tiers):
    # bytes PMUs read out, and byte-hops on the mesh (each link a byte crosses counts it).
    for tier, key in (("pmu", "sram"), ("mesh", "mesh")):
        if tier in r.tiers:
            nbytes[key] = r.tiers[tier].bytes
    by_section: dict[str, float] = {}
    for s in r.sections:
        key = section_key(s.name)
        by_section[key] = by_section.get(key, 0.0) + (s.end_s - s.start_s)
    links = r.tiers.get("socket")
    util = {"pcu": r.pcu_utilisation, "pmu": r.pmu_utilisation, "links": links.utilisation if links else 0.0}
    timeline = [Span(s.name, "section", s.start_s, s.end_s) for s in r.sections]
    bw = {("links" if t == "socket" else t): v for t, v in r.bandwidth_timeline.items()}
    return Step(r.total_s, r.flops, nbytes, peak, by_section, _by_kind(r, placed), util, timeline, bw,
                tile_heatmap(r, arch, placed), r)


def _by_kind(r, placed: Module) -> dict[str, float]:
    """Section time split over operator kinds in proportion to each kind's PCU-busy time in
    it (a section streams all its operators at once, so this is its time's best attribution)."""
    kinds_of = _unit_kinds(placed)
    out: dict[str, float] = {}
    for s in r.sections:
        weights: dict[str, float] = {}
        for u in r.units:
            if u.section != s.name or u.kind != "compute":
                continue
            for kind, share in kinds_of.get((s.name, u.name), {"other": 1.0}).items():
                weights[kind] = weights.get(kind, 0.0) + u.busy_s * u.pcus * share
        total = sum(weights.values())
        span = s.end_s - s.start_s
        if total <= 0:
            out["memory and launch"] = out.get("memory and launch", 0.0) + span
            continue
        for kind, w in weights.items():
            out[kind] = out.get(kind, 0.0) + span * w / total
    return out


def _units(placed: Module):
    """(section name, unit name, unit op) for every placed unit, named as the engine names them."""
    for sec in placed.main.ops:
        if sec.opname != "placed.section":
            continue
        sname = sec.attrs["name"] or "section"
        for op, name in unit_names(sec.regions[0]).items():
            yield sname, name, op


def _unit_kinds(placed: Module) -> dict[tuple[str, str], dict[str, float]]:
    from rduflow.ir import op_cost

    out: dict[tuple[str, str], dict[str, float]] = {}
    for sname, uname, op in _units(placed):
        if op.opname != "placed.compute":
            continue
        flops: dict[str, float] = {}
        for inner in op.regions[0].walk():
            if inner.regions:
                continue
            try:
                f = float(op_cost(inner).flops.const_value())
            except Exception:  # noqa: BLE001 -- symbolic leftovers count as nothing
                f = 0.0
            if f:
                flops[inner.opdef.kind] = flops.get(inner.opdef.kind, 0.0) + f
        total = sum(flops.values())
        out[(sname, uname)] = {k: v / total for k, v in flops.items()} if total else {"other": 1.0}
    return out


def tile_heatmap(r, arch: RduArch, placed: Module) -> np.ndarray | None:
    """Busy fraction of each tile over the step: a unit's busy time spread over its PCUs or
    PMUs at their coordinates. None when the program carries no coordinates."""
    g = arch.grid
    grid = np.zeros((g.rows, g.cols))
    busy = {(u.section, u.name): u.busy_s for u in r.units}
    placed_any = False
    for sname, uname, op in _units(placed):
        coords = op.attrs.get("coords") or ()
        if not coords or (sname, uname) not in busy:
            continue
        placed_any = True
        for row, col in coords:
            grid[row, col] += busy[(sname, uname)]
    if not placed_any or r.total_s <= 0:
        return None
    return np.clip(grid / r.total_s, 0.0, 1.0)
