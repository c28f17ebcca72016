"""Energy, power and cost of a run, from the simulated activity (docs/energy.md).

A step's energy on one device is its idle power over the step's time plus, for each kind of
work the step did, the work times its energy per unit: FLOPs at the matrix units' dtype, and
bytes at each tier (HBM, DDR, on-chip SRAM, mesh byte-hops, links). A device cannot draw more
than its power limit: where the activity would, the step's power is held at ``tdp_w`` (its
activity energies scaled down together) and the step is flagged ``clamped``. Time the devices
spend waiting on the host (the serving engine's overheads) costs idle power. The host and
system around the devices is a separate term (``host_w`` per device over the whole run), and
the facility's overhead is ``(pue - 1)`` times the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rduflow.compiler.target import Power

from .backends import Step
from .run import Run

PJ = 1e-12


@dataclass(frozen=True)
class StepEnergy:
    """One step on one device: joules by component (compute, each tier, idle)."""

    time_s: float
    joules: dict[str, float]
    clamped: bool  # the activity would have drawn more than tdp_w; held at it

    @property
    def total_j(self) -> float:
        return sum(self.joules.values())

    @property
    def power_w(self) -> float:
        return self.total_j / self.time_s if self.time_s > 0 else 0.0


def step_energy(power: Power, time_s: float, flops: float, nbytes: dict[str, float], dtype: str) -> StepEnergy:
    """Energy of ``flops`` FLOPs (at ``dtype``) and ``nbytes`` per tier done in ``time_s`` on one device."""
    activity = {"compute": flops * power.flop_pj(dtype) * PJ}
    for tier, b in nbytes.items():
        activity[tier] = b * power.pj_per_byte[tier] * PJ
    budget = (power.tdp_w - power.idle_w) * time_s  # the most the activity can add over idle
    spent = sum(activity.values())
    clamped = spent > budget
    if clamped:
        activity = {k: v * budget / spent for k, v in activity.items()}
    return StepEnergy(time_s, activity | {"idle": power.idle_w * time_s}, clamped)


@dataclass(frozen=True)
class RunEnergy:
    prefill_j: dict[str, float]  # all devices, by component (host and facility included)
    decode_j: dict[str, float]
    peak_power_w: float  # per device, the highest step
    clamped: bool

    @property
    def by_component(self) -> dict[str, float]:
        keys = list(dict.fromkeys([*self.prefill_j, *self.decode_j]))
        return {k: self.prefill_j.get(k, 0.0) + self.decode_j.get(k, 0.0) for k in keys}

    @property
    def total_j(self) -> float:
        return sum(self.prefill_j.values()) + sum(self.decode_j.values())


DEVICE_PARTS = ("host", "facility")  # the components that are not the devices' own


def run_energy(run: Run, power: Power, host_power: bool = True) -> RunEnergy:
    """The energy of a whole run on all its devices (docs/energy.md)."""
    dtype = run.compute_dtype
    cache: dict[int, StepEnergy] = {}

    def of(step: Step) -> StepEnergy:
        e = cache.get(id(step))
        if e is None:
            e = cache[id(step)] = step_energy(power, step.time_s, step.flops, step.bytes, dtype)
        return e

    prefill_steps = [s for s in (run.prefill, run.draft_prefill) if s is not None]
    decode_steps = [s for _, s in run.decode_steps()] + ([s for s in run.draft.steps.values()] if run.draft else [])
    parts = sorted({k for s in prefill_steps + decode_steps for k in of(s).joules}, key=_order)

    def phase(sum_steps: Callable[[Callable[[Step], float]], float], device_s: float, wall_s: float) -> dict[str, float]:
        per_device = {k: sum_steps(lambda s, k=k: of(s).joules.get(k, 0.0)) for k in parts}
        per_device["idle"] = per_device.get("idle", 0.0) + power.idle_w * (wall_s - device_s)  # waiting on the host
        out = {k: v * run.devices for k, v in per_device.items()}
        out["host"] = (power.host_w if host_power else 0.0) * run.devices * wall_s
        out["facility"] = (power.pue - 1.0) * sum(out.values())
        return out

    prefill = phase(lambda get: sum(get(s) for s in prefill_steps), run.device_ttft_s, run.ttft_s)
    decode = phase(run.decode_total, run.device_decode_s, run.decode_s)
    stepped = [of(s) for s in prefill_steps + decode_steps]
    peak = max((e.power_w for e in stepped if e.time_s > 0), default=power.idle_w)
    return RunEnergy(prefill, decode, peak, any(e.clamped for e in stepped))


def _order(part: str) -> tuple[int, str]:
    known = ("compute", "hbm", "ddr", "sram", "mesh", "links", "idle")
    return (known.index(part), part) if part in known else (len(known), part)


def device_energy_j(e: RunEnergy) -> float:
    """All devices' own energy (host and facility left out)."""
    return sum(v for k, v in e.by_component.items() if k not in DEVICE_PARTS)
