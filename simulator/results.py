"""What a simulation reports: totals, per unit, per resource, per tier over time, a trace.

Times are seconds, bandwidths GB/s (1e9 bytes per second). See docs/simulator.md for the
definition of every field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SimulationError


@dataclass
class UnitStats:
    section: str
    name: str
    kind: str  # compute, buffer, mem_read, mem_write, collective
    pcus: int
    pmus: int
    calls: int
    firings: int  # per call (tiles after coarsening)
    service_s: float  # per firing
    flops: float  # all calls
    busy_s: float  # firing (a collective: also waiting for its socket link)
    stalled_input_s: float  # waiting for input tiles (pipeline fill included)
    stalled_output_s: float  # waiting for space downstream (backpressure)


@dataclass
class StreamStats:
    section: str
    name: str  # "producer -> consumer"
    bytes: float  # delivered, all calls
    tiles: int  # per call, as simulated
    coarsened: int  # program tiles per simulated tile (1: as written)
    depth: int  # tiles the consumer side holds
    hops: int  # mesh hops
    latency_s: float  # per tile, besides the time its bytes take


@dataclass
class ResourceStats:
    name: str
    tier: str  # hbm, ddr, agcu, mesh, socket, pmu
    bytes: float
    busy_s: float
    peak_gb_s: float
    utilisation: float  # busy / total time


@dataclass
class TierStats:
    bytes: float
    achieved_gb_s: float  # bytes / total time
    peak_gb_s: float  # the tier's rate (mesh, agcu, pmu: one link or port)
    utilisation: float  # busy / total time; mesh, agcu, pmu: the busiest one


@dataclass
class SectionStats:
    name: str
    calls: int
    looped: bool  # consecutive calls ran as one kernel-looped call
    iterations_simulated: int  # calls simulated event by event; the rest are extrapolated
    converged: bool  # the per-call time had settled when extrapolated
    start_s: float
    end_s: float
    load_s: float  # program load before the first call
    launch_s: float  # kernel launches, all calls
    per_call_s: float  # steady-state time of one call (looped: the loop's period)
    fill_s: float  # until the first result tile is written (first mem_write firing)
    drain_s: float  # from the last input tile entering its stream (from a mem_read) to the end
    bound_s: float  # max over resources and units of work / rate, all calls
    bottleneck: str  # the resource or unit that sets bound_s
    pcus: int
    pmus: int


@dataclass
class SimResult:
    arch: str
    sockets: int
    kernel_looping: bool
    ideal_network: bool
    total_s: float
    sections: list[SectionStats]
    units: list[UnitStats]
    streams: list[StreamStats]
    resources: list[ResourceStats]
    tiers: dict[str, TierStats]
    # tier -> [(start_s, end_s, GB/s)] in equal bins over the run (hbm, ddr, socket)
    bandwidth_timeline: dict[str, list[tuple[float, float, float]]]
    pcu_utilisation: float  # PCU-seconds busy / (total time x PCUs on the chip)
    pmu_utilisation: float  # PMU-seconds busy (buffers reading out) / (total time x PMUs)
    pcu_allocated: float  # PCU-seconds assigned to sections / (total time x PCUs)
    pmu_allocated: float
    flops: float
    achieved_tflops: float
    peak_tflops: float
    events: int  # simulated events (a measure of simulation cost)
    trace_events: list[dict[str, Any]] | None = field(default=None, repr=False)

    def to_json(self, indent: int | None = 1) -> str:
        d = asdict(self)
        d.pop("trace_events")
        return json.dumps(d, indent=indent)

    def unit(self, name: str, section: str | None = None) -> UnitStats:
        for u in self.units:
            if u.name == name and (section is None or u.section == section):
                return u
        raise KeyError(name)

    def resource(self, name: str) -> ResourceStats:
        for r in self.resources:
            if r.name == name:
                return r
        raise KeyError(name)


def write_chrome_trace(result: SimResult, path: str | Path) -> None:
    """Chrome trace event JSON (open in ui.perfetto.dev or chrome://tracing)."""
    if result.trace_events is None:
        raise SimulationError("the result holds no trace: simulate(..., trace=True)")
    Path(path).write_text(json.dumps({"traceEvents": result.trace_events, "displayTimeUnit": "ns"}))


Span = tuple[float, float, float]


def bin_timeline(spans: list[Span], total_ns: float, bins: int) -> list[Span]:
    """Spread each (start, end, bytes) span evenly over its interval and average per bin."""
    if total_ns <= 0 or not spans:
        return []
    arr = np.asarray(spans, dtype=np.float64)
    s, e, b = arr[:, 0], arr[:, 1], arr[:, 2]
    edges = np.linspace(0.0, total_ns, bins + 1)
    dur = e - s
    flat = dur > 0
    # Cumulative bytes B(t): each span adds a ramp from s to e; instantaneous spans add a step.
    rate = np.where(flat, b / np.where(flat, dur, 1.0), 0.0)
    times = np.concatenate([s[flat], e[flat]])
    slopes = np.concatenate([rate[flat], -rate[flat]])
    order = np.argsort(times, kind="stable")
    times, slopes = times[order], slopes[order]
    slope = np.cumsum(slopes)
    # B at each breakpoint: integrate the piecewise-constant slope.
    cum = np.concatenate([[0.0], np.cumsum(slope[:-1] * np.diff(times))])
    at_edges = np.interp(edges, times, cum, left=0.0, right=cum[-1]) if len(times) else np.zeros_like(edges)
    steps = np.sort(s[~flat])
    step_b = np.cumsum(b[~flat][np.argsort(s[~flat], kind="stable")])
    if len(steps):
        idx = np.searchsorted(steps, edges, side="right")
        at_edges = at_edges + np.where(idx > 0, step_b[np.maximum(idx - 1, 0)], 0.0)
    per_bin = np.diff(at_edges)
    width = total_ns / bins
    return [(float(edges[i]) * 1e-9, float(edges[i + 1]) * 1e-9, float(per_bin[i] / width)) for i in range(bins)]
