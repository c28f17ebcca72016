"""When requests are sent: the arrival processes and rate stages.

Open-loop processes, each at ``rate`` requests per second:
- ``poisson``: exponential gaps (a Poisson process).
- ``gamma``: gamma gaps with coefficient of variation ``cv`` (shape 1/cv^2, scale
  cv^2/rate), as Vidur's gamma interval generator and vLLM's ``--burstiness`` (= 1/cv^2).
- ``constant``: exactly 1/rate apart.
- ``jittered``: what inference-perf's ``load.type: constant`` sends: exactly
  int(rate x duration) requests in a stage, with exponential gaps scaled to add up to the
  stage's duration (inference_perf/loadgen/load_timer.py, ConstantLoadTimer).
Every process starts one gap after t = 0 (and after each stage's start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .requests import MAX_REQUESTS, WorkloadError

KINDS = ("poisson", "gamma", "constant", "jittered")
TEXTS = "poisson, gamma:CV (e.g. gamma:2.0), constant or jittered"


@dataclass(frozen=True)
class Arrival:
    kind: str  # one of KINDS
    cv: float = 1.0  # gamma only: standard deviation / mean of the gaps

    def describe(self, rate: float | None = None) -> str:
        name = {"poisson": "Poisson", "gamma": f"gamma CV {self.cv:g}", "constant": "constant",
                "jittered": "jittered constant"}[self.kind]
        return name if rate is None else f"{name} {rate:g}/s"


@dataclass(frozen=True)
class Stage:
    rate: float  # requests per second; 0 is a pause
    duration_s: float


def parse_arrival(text: str) -> Arrival:
    """``poisson``, ``gamma:CV``, ``constant`` or ``jittered`` (``--arrival``)."""
    kind, sep, arg = str(text).strip().partition(":")
    kind = kind.strip().lower()
    if kind == "gamma":
        if not sep:
            raise WorkloadError(f"--arrival: gamma takes its coefficient of variation, e.g. gamma:2.0, got {text!r}")
        try:
            cv = float(arg)
        except ValueError:
            raise WorkloadError(f"--arrival: gamma:CV needs a number, got {text!r}") from None
        return checked_arrival(Arrival("gamma", cv), "--arrival")
    if kind in KINDS and not sep:
        return Arrival(kind)
    raise WorkloadError(f"--arrival: unknown arrival {text!r}; use {TEXTS} (closed loop: give a concurrency and no rate)")


def checked_arrival(arrival: Arrival, what: str) -> Arrival:
    if arrival.kind not in KINDS:
        raise WorkloadError(f"{what}: unknown arrival type {arrival.kind!r}; use one of {', '.join(KINDS)} or closed_loop")
    if not (math.isfinite(arrival.cv) and arrival.cv > 0):
        raise WorkloadError(f"{what}: the gamma CV must be a number > 0, got {arrival.cv:g}")
    return arrival


def parse_stages(text: str) -> list[Stage]:
    """``RATE:SECONDS,...`` (``--stages 4:60,8:120``): rate r1 for t1 seconds, then r2 ..."""
    stages = []
    for part in str(text).split(","):
        rate, sep, duration = part.strip().partition(":")
        try:
            stage = Stage(float(rate), float(duration))
        except ValueError:
            stage = None
        if not sep or stage is None:
            raise WorkloadError(f"--stages takes RATE:SECONDS,... (e.g. 4:60,8:120), cannot read {part.strip()!r}")
        stages.append(stage)
    return checked_stages(stages, "--stages")


def checked_stages(stages: list[Stage], what: str) -> list[Stage]:
    if not stages:
        raise WorkloadError(f"{what}: give at least one stage")
    for i, s in enumerate(stages):
        if not (math.isfinite(s.rate) and s.rate >= 0):
            raise WorkloadError(f"{what}: stage {i + 1}: the rate must be >= 0 requests/s (0 is a pause), got {s.rate:g}")
        if not (math.isfinite(s.duration_s) and s.duration_s > 0):
            raise WorkloadError(f"{what}: stage {i + 1}: the duration must be > 0 seconds, got {s.duration_s:g}")
    if all(s.rate == 0 for s in stages):
        raise WorkloadError(f"{what}: every stage has rate 0: nothing would arrive")
    expected = sum(s.rate * s.duration_s for s in stages)
    if expected > MAX_REQUESTS:
        raise WorkloadError(f"{what}: the stages send about {expected:.3g} requests; at most {MAX_REQUESTS:,} are simulated")
    return stages


def checked_rate(rate: float, what: str) -> float:
    if not (math.isfinite(rate) and rate > 0):
        raise WorkloadError(f"{what}: the rate must be a finite number > 0 requests/s, got {rate:g}")
    return rate


def times_for_count(arrival: Arrival, rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """The arrival times of ``n`` requests at ``rate``."""
    if arrival.kind == "jittered":  # inference-perf spreads the n requests over n/rate seconds
        return _jittered(n, n / rate, rng)
    return np.cumsum(_gaps(arrival, rate, n, rng))


def times_for_stages(arrival: Arrival, stages: list[Stage], rng: np.random.Generator) -> np.ndarray:
    """Every arrival of each stage, the process restarting at each stage's start."""
    out = []
    start = 0.0
    for s in stages:
        if s.rate > 0:
            out.append(start + _stage_times(arrival, s, rng))
        start += s.duration_s
    return np.concatenate(out)


def _stage_times(arrival: Arrival, s: Stage, rng: np.random.Generator) -> np.ndarray:
    expected = s.rate * s.duration_s
    if arrival.kind == "jittered":
        return _jittered(int(expected), s.duration_s, rng)
    if arrival.kind == "constant":
        # k/rate for k = 1..floor(rate x duration); the tolerance keeps 2.5/s x 600 s at 1500
        return np.arange(1, math.floor(expected + 1e-9) + 1) / s.rate
    # A renewal process: draw comfortably more gaps than expected (mean + 8 standard
    # deviations of the count, whose variance is about expected x cv^2), extend if short.
    sd = math.sqrt(expected) * arrival.cv
    chunk = int(expected + 8 * sd + 16)
    times = np.cumsum(_gaps(arrival, s.rate, chunk, rng))
    while times[-1] < s.duration_s:
        times = np.concatenate([times, times[-1] + np.cumsum(_gaps(arrival, s.rate, chunk, rng))])
    return times[times < s.duration_s]


def _gaps(arrival: Arrival, rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    if arrival.kind == "constant":
        return np.full(n, 1.0 / rate)
    if arrival.kind == "poisson":
        return rng.exponential(1.0 / rate, size=n)
    shape = 1.0 / arrival.cv**2
    return rng.gamma(shape, 1.0 / (rate * shape), size=n)


def _jittered(n: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    if n == 0:
        return np.empty(0)
    gaps = rng.exponential(1.0, size=n)
    return np.cumsum(gaps * (duration / gaps.sum()))
