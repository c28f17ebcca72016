"""Run a placed program: sections in order, with load and launch costs, looping, reuse.

Sections run one after another on every socket at once (SPMD: all sockets run the same
program, so one is simulated and collectives account for the others). Before a section
whose kernel differs from the previous one the program is loaded; every call is launched
(hardware or software orchestrated, per the arch). With kernel looping, consecutive
calls of the same kernel are one call with a pipelined outer loop: one launch, and call
i+1's units start as soon as their own inputs allow.

Cost control: a section is planned and simulated once per distinct structure (sections
that differ only in tensor names share results), and a long loop is simulated for a few
iterations, until the time per iteration settles, then extrapolated.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rduflow.ir import Module, Operation, verify_module
from rduflow.ir.gcpause import paused_gc
from rduflow.ir.program import SOCKETS
from rduflow.ir.signature import op_signature

from rduflow.compiler.target import GpuArch, RduArch, load_arch
from .engine import SectionRun, run_section
from .errors import SimulationError
from .netlist import (BUFFER, COMPUTE, MEM_READ, MEM_WRITE, Options, Netlist, netlist_bound, build_netlist)
from .results import ResourceStats, SectionStats, SimResult, StreamStats, TierStats, UnitStats, bin_timeline

LOOP_EXACT = 9  # loops of up to this many calls are simulated call by call
MAX_CYCLE = 4  # the longest cycle of per-iteration times looked for
# Otherwise simulate this many iterations, each try afresh, until the per-iteration time is
# periodic. 7 shows a cycle of 1 after one fill iteration (what prefill sections need); 20
# shows a cycle of MAX_CYCLE after five (decode layers settle into cycles of 2-4 after 3-5;
# 14, the doubling that was here, shows a 4-cycle only after one); 40 for slower settling.
LOOP_TRIES = (7, 20, 40)
SETTLED = 1e-9  # relative difference of per-iteration times taken as equal
TIMELINE_BINS = 200


def simulate(program: Module, arch: RduArch | GpuArch | str | Path, *, sockets: int | None = None,
             kernel_looping: bool = True, ideal_network: bool = False, trace: bool = False,
             max_tiles: int = 256, exact: bool = False) -> SimResult:
    """Simulate ``program`` (a placed module) on ``arch``.

    ``sockets``: how many sockets run the program (default: the module's ``sockets``
    attribute, else 1). ``ideal_network``: streams skip the on-chip mesh (no link contention,
    no hop latency), to attribute time to the network. ``max_tiles``: streams with more
    tiles per call are simulated with proportionally bigger tiles. ``exact``: no shortcut,
    every call of a loop and every tile of a stream is simulated (to check the shortcuts).
    """
    arch = load_arch(arch)
    if isinstance(arch, GpuArch):
        raise SimulationError(f"'{arch.name}' is a GPU architecture; placed programs run on RDU architectures "
                              "(sn40l, sn30, sn10, plasticine or an RDU file)")
    if max_tiles < 2:
        raise SimulationError(f"max_tiles must be >= 2, is {max_tiles}")
    verify_module(program)
    if sockets is None:
        sockets = program.attrs.get(SOCKETS, 1)
    if not isinstance(sockets, int) or not 1 <= sockets <= arch.sockets.max_sockets:
        raise SimulationError(f"sockets must be 1 to {arch.sockets.max_sockets} on {arch.name}, is {sockets!r}")
    opts = Options(sockets=sockets, ideal_network=ideal_network, max_tiles=sys.maxsize if exact else max_tiles)
    with paused_gc():
        return _Simulation(arch, opts, kernel_looping, trace, exact).run(_calls(program))


def _steady(completion: list[float]) -> tuple[np.ndarray, int]:
    """The per-iteration times of a run's middle, and the iteration after it. The first
    iteration fills the loop and the last ones drain it (nothing behind them competes for
    memory); in between, a max-plus system becomes periodic: its per-iteration times repeat
    with some cycle (1 when one call looks like the next, 2 when two streams take turns being
    first at a shared resource, ...)."""
    m = len(completion)
    last = m - max(2, m // 4)  # the last quarter (at least 2 iterations) drains
    return np.diff(completion)[1:last - 1], last  # [i]: the time of iteration i + 2


def _cycle(inc: np.ndarray) -> int:
    """The shortest cycle ``c`` with which the last per-iteration times repeat (the last
    ``c`` equal the ``c`` before them, and at least three values seen), or 0."""
    for c in range(1, MAX_CYCLE + 1):
        if len(inc) < max(2 * c, 3):
            break
        tail = inc[-max(2 * c, 3):]
        if np.all(np.abs(tail[c:] - tail[:-c]) <= SETTLED * np.abs(tail[c:])):
            return c
    return 0


def _calls(program: Module) -> list[tuple[Operation, tuple, int]]:
    """(section, signature, calls) for each run of consecutive calls of the same kernel."""
    out: list[tuple[Operation, tuple, int]] = []
    for op in program.main.ops:
        if op.opname != "placed.section":
            raise SimulationError(f"{op.where()}: the main graph of a placed program holds placed.section ops only "
                                  "(compile the model to a placed program first)")
        sig = op_signature(op)
        if out and out[-1][1] == sig:
            out[-1] = (out[-1][0], sig, out[-1][2] + op.attrs["repeat"])
        else:
            out.append((op, sig, op.attrs["repeat"]))
    if not out:
        raise SimulationError("the program has no placed.section to run")
    return out


@dataclass
class _Loop:
    """A simulated run of some iterations and how to scale it to ``calls``."""

    run: SectionRun
    calls: int
    period: float  # ns per call once settled (0 where no period was seen)
    cycle: range  # the iterations whose mean figures stand for each extrapolated call
    converged: bool

    @property
    def extra(self) -> int:
        return self.calls - self.run.iterations

    @property
    def end(self) -> float:
        return self.run.end + self.extra * self.period

    def total(self, per_iter: list[float]) -> float:
        return sum(per_iter) + self.extra * self.per_call(per_iter)

    def per_call(self, per_iter: list[float]) -> float:
        """An extrapolated call's figure: the mean over one cycle of the steady state."""
        return sum(per_iter[i] for i in self.cycle) / len(self.cycle)


class _Simulation:
    def __init__(self, arch: RduArch, opts: Options, looping: bool, trace: bool, exact: bool):
        self.arch, self.opts, self.looping, self.trace, self.exact = arch, opts, looping, trace, exact
        self.nets: dict[tuple, Netlist] = {}
        self.runs: dict[tuple, SectionRun] = {}
        self.units: dict[tuple[str, str], UnitStats] = {}
        self.streams: dict[tuple[str, str], StreamStats] = {}
        self.res: dict[str, ResourceStats] = {}
        self.spans: dict[str, list[np.ndarray]] = {}
        self.sections: list[SectionStats] = []
        self.events: list[dict] = []
        self.traced: set[tuple] = set()
        self.unit_tids: dict[tuple[str, str], int] = {}
        self.sim_events = 0
        self.section_name = ""

    def net(self, op: Operation, sig: tuple) -> Netlist:
        if sig not in self.nets:
            self.nets[sig] = build_netlist(op, self.arch, self.opts)
        return self.nets[sig]

    def simulate(self, sig: tuple, net: Netlist, iters: int) -> SectionRun:
        key = (sig, iters)
        if key not in self.runs:
            self.runs[key] = run_section(net, iters, self.trace)
            self.sim_events += self.runs[key].events
        return self.runs[key]

    def loop_exact(self, sig: tuple, net: Netlist, calls: int) -> _Loop:
        run = self.simulate(sig, net, calls)
        inc, _ = _steady(run.completion)
        c = _cycle(inc)  # every call simulated; the period is still what a looped call costs, where seen
        return _Loop(run=run, calls=calls, period=float(np.mean(inc[-c:])) if c else 0.0,
                     cycle=range(calls - 1, calls), converged=True)

    def loop(self, sig: tuple, net: Netlist, calls: int) -> _Loop:
        if calls <= LOOP_EXACT or self.exact:
            return self.loop_exact(sig, net, calls)
        for m in LOOP_TRIES:
            if m >= calls:  # simulating every call is as cheap, and exact
                return self.loop_exact(sig, net, calls)
            run = self.simulate(sig, net, m)
            inc, last = _steady(run.completion)
            c = _cycle(inc)
            if c:
                break
        n = c or len(inc)
        return _Loop(run=run, calls=calls, period=float(np.mean(inc[-n:])), cycle=range(last - n, last),
                     converged=bool(c))

    # -- the whole program ---------------------------------------------------------------------
    def run(self, calls: list[tuple[Operation, tuple, int]]) -> SimResult:
        arch = self.arch
        launch_ns = 1e3 * (arch.launch.hardware_launch_us if arch.launch.orchestration == "hardware"
                           else arch.launch.software_launch_us)
        t = 0.0
        prev = None
        for op, sig, count in calls:
            net = self.net(op, sig)
            self.section_name = op.attrs["name"] or "section"
            load = 1e3 * arch.launch.program_load_us if sig != prev else 0.0
            prev = sig
            start = t + load
            if self.looping and count > 1:
                lp = self.loop(sig, net, count)
                launches = 1
                self.add_loop(net, lp, start + launch_ns, sig)
                t = start + launch_ns + lp.end
            else:
                lp = self.loop(sig, net, 1)
                launches = count
                for c in range(count):
                    self.add_loop(net, lp, start + c * (launch_ns + lp.end) + launch_ns, sig)
                t = start + count * (launch_ns + lp.end)
            self.add_section(op, net, lp, start - load, t, load, launches * launch_ns, count)
        return self.result(t)

    def add_loop(self, net: Netlist, lp: _Loop, offset: float, sig: tuple) -> None:
        """Accumulate one (looped) call's figures, placed at ``offset`` ns."""
        run = lp.run
        for u, ur in zip(net.units, run.units):
            key = (self.section_name, u.name)
            st = self.units.get(key)
            if st is None:
                st = self.units[key] = UnitStats(
                    section=self.section_name, name=u.name, kind=u.kind, pcus=u.pcus, pmus=u.pmus, calls=0,
                    firings=u.n, service_s=u.service_ns * 1e-9, flops=0.0, busy_s=0.0, stalled_input_s=0.0,
                    stalled_output_s=0.0)
            st.calls += lp.calls
            st.flops += u.flops * lp.calls
            st.busy_s += lp.total(ur.busy) * 1e-9
            st.stalled_input_s += lp.total(ur.stall_in) * 1e-9
            st.stalled_output_s += lp.total(ur.stall_out) * 1e-9
        for ch, delivered in zip(net.channels, run.channel_bytes):
            key = (self.section_name, ch.name)
            st = self.streams.get(key)
            if st is None:
                st = self.streams[key] = StreamStats(
                    section=self.section_name, name=ch.name, bytes=0, tiles=ch.tiles, coarsened=ch.coarsened,
                    depth=ch.capacity, hops=ch.hops, latency_s=ch.latency_ns * 1e-9)
            st.bytes += delivered / run.iterations * lp.calls
        for key, rr in run.resources.items():
            st = self.res.get(key)
            if st is None:
                st = self.res[key] = ResourceStats(name=key, tier=rr.tier, bytes=0, busy_s=0.0, peak_gb_s=rr.rate,
                                                   utilisation=0.0)
            st.bytes += lp.total(rr.bytes)
            st.busy_s += lp.total(rr.busy) * 1e-9
            if rr.spans:
                arr = np.asarray(rr.spans, dtype=np.float64)
                arr[:, :2] += offset
                parts = self.spans.setdefault(rr.tier, [])
                parts.append(arr)
                if lp.extra:  # extrapolated calls: each call's bytes spread over its period
                    k = np.arange(lp.extra, dtype=np.float64)
                    s = offset + run.end + k * lp.period
                    parts.append(np.stack([s, s + lp.period, np.full_like(s, lp.per_call(rr.bytes))], axis=1))
        if self.trace:
            self.trace_run(net, lp, offset, sig)

    def add_section(self, op: Operation, net: Netlist, lp: _Loop, t0: float, t1: float, load: float,
                    launch: float, count: int) -> None:
        run = lp.run
        units = run.units
        bound, what = netlist_bound(net)
        per_call = lp.period or run.end / run.iterations
        self.sections.append(SectionStats(
            name=self.section_name, calls=count, looped=self.looping and count > 1,
            iterations_simulated=run.iterations, converged=lp.converged, start_s=t0 * 1e-9, end_s=t1 * 1e-9,
            load_s=load * 1e-9, launch_s=launch * 1e-9, per_call_s=per_call * 1e-9,
            fill_s=_fill(net, units) * 1e-9, drain_s=_drain(net, units, run.end) * 1e-9,
            bound_s=bound * count * 1e-9, bottleneck=what, pcus=net.pcus, pmus=net.pmus))
        if self.trace:
            self.events.append(_x(self.section_name, "section", t0 + load, t1 - t0 - load, 0, 0,
                                  {"calls": count, "looped": self.looping and count > 1,
                                   "simulated_calls": run.iterations}))
            if load:
                self.events.append(_x("program load", "load", t0, load, 0, 0, {}))

    def trace_run(self, net: Netlist, lp: _Loop, offset: float, sig: tuple) -> None:
        key = (sig, lp.run.iterations)
        if lp.extra:
            self.events.append(_x(f"{lp.extra} calls extrapolated", "extrapolated", offset + lp.run.end,
                                  lp.extra * lp.period, 0, 1, {"period_ns": lp.period}))
        if key in self.traced:
            return  # a repeated call: its units' spans are shown once
        self.traced.add(key)
        for u, ur in zip(net.units, lp.run.units):
            ukey = (self.section_name, u.name)
            tid = self.unit_tids.setdefault(ukey, len(self.unit_tids))
            for s, e, what in ur.spans or ():
                self.events.append(_x(what, what, offset + s, e - s, 1, tid, {}))

    def result(self, total_ns: float) -> SimResult:
        arch = self.arch
        total_s = total_ns * 1e-9
        for st in self.res.values():
            st.utilisation = st.busy_s / total_s if total_s else 0.0
        tiers: dict[str, TierStats] = {}
        for st in self.res.values():
            tiers.setdefault(st.tier, TierStats(bytes=0.0, achieved_gb_s=0.0, peak_gb_s=st.peak_gb_s, utilisation=0.0))
            ts = tiers[st.tier]
            ts.bytes += st.bytes
            ts.utilisation = max(ts.utilisation, st.utilisation)
        for ts in tiers.values():
            ts.achieved_gb_s = ts.bytes / total_ns if total_ns else 0.0
        timeline = {tier: bin_timeline(np.concatenate(parts).tolist(), total_ns, TIMELINE_BINS)
                    for tier, parts in sorted(self.spans.items())}
        units = list(self.units.values())
        pcu_busy = sum(u.busy_s * u.pcus for u in units if u.kind == COMPUTE)
        pmu_busy = sum(u.busy_s * u.pmus for u in units if u.kind == BUFFER)
        pcu_alloc = sum((s.end_s - s.start_s - s.load_s - s.launch_s) * s.pcus for s in self.sections)
        pmu_alloc = sum((s.end_s - s.start_s - s.load_s - s.launch_s) * s.pmus for s in self.sections)
        denom_p = total_s * arch.pcu.count
        denom_m = total_s * arch.pmu.count
        flops = sum(u.flops for u in units)
        peak = arch.pcu.count * max(arch.pcu.systolic_flops_per_cycle.values()) * arch.clock_ghz * 1e9
        if self.trace:
            self.finish_trace(timeline)
        return SimResult(
            arch=arch.name, sockets=self.opts.sockets, kernel_looping=self.looping,
            ideal_network=self.opts.ideal_network, total_s=total_s, sections=self.sections, units=units,
            streams=list(self.streams.values()),
            resources=sorted(self.res.values(), key=lambda r: (r.tier, r.name)),
            tiers=dict(sorted(tiers.items())), bandwidth_timeline=timeline,
            pcu_utilisation=pcu_busy / denom_p if denom_p else 0.0,
            pmu_utilisation=pmu_busy / denom_m if denom_m else 0.0,
            pcu_allocated=pcu_alloc / denom_p if denom_p else 0.0,
            pmu_allocated=pmu_alloc / denom_m if denom_m else 0.0,
            flops=flops, achieved_tflops=flops / total_s / 1e12 if total_s else 0.0, peak_tflops=peak / 1e12,
            events=self.sim_events, trace_events=self.events if self.trace else None)

    def finish_trace(self, timeline: dict[str, list[tuple[float, float, float]]]) -> None:
        meta = [_meta("process_name", 0, 0, "sections"), _meta("process_name", 1, 0, "units"),
                _meta("process_name", 2, 0, "bandwidth")]
        for (section, name), tid in self.unit_tids.items():
            meta.append(_meta("thread_name", 1, tid, f"{section}/{name}"))
        for tier, bins in timeline.items():
            for s, _, gbs in bins:
                self.events.append({"name": f"{tier} GB/s", "ph": "C", "ts": s * 1e6, "pid": 2, "tid": 0,
                                    "args": {"GB/s": gbs}})
        self.events[:0] = meta


def _fill(net: Netlist, units) -> float:
    """Until the first result tile is written (the first mem_write firing)."""
    sinks = [ur.first_start for u, ur in zip(net.units, units) if u.kind == MEM_WRITE]
    return min(sinks) if sinks else max((ur.first_start for ur in units), default=0.0)


def _drain(net: Netlist, units, end: float) -> float:
    """From the last input tile being handed to its stream (by a mem_read) to the end."""
    sources = [ur.last_out for u, ur in zip(net.units, units) if u.kind == MEM_READ]
    return end - (max(sources) if sources else min((ur.last_end for ur in units), default=end))


def _x(name: str, cat: str, start_ns: float, dur_ns: float, pid: int, tid: int, args: dict) -> dict:
    return {"name": name, "cat": cat, "ph": "X", "ts": start_ns * 1e-3, "dur": dur_ns * 1e-3,
            "pid": pid, "tid": tid, "args": args}


def _meta(kind: str, pid: int, tid: int, name: str) -> dict:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}
