"""A whole generation: prefill, then decode at the context lengths it passes through.

* **Prefill** runs the prefill graph at ``seq = prompt`` (TTFT). With ``prefix_cache = T``
  the first T prompt tokens are already in the KV cache: the decode graph runs the other
  ``prompt - T`` tokens at ``past = T``.
* **Decode** runs the decode graph at ``seq = 1`` and ``past = c`` for the contexts
  ``c = prompt .. prompt + gen - 2`` the generation passes through (the first output token
  comes from prefill). Positions are sampled adaptively and interpolated
  (``positions.py``).
* **Speculative decoding**: each step the draft model decodes K tokens (``seq = 1`` at
  ``past = c .. c+K-1``) and the target verifies them in one step (``seq = K+1`` at
  ``past = c``); a step yields E = (1 - A^(K+1)) / (1 - A) tokens on average, so the ITL
  at ``c`` is the step time over E. The draft also prefills the prompt (in TTFT).
* **Batching**: every step runs ``batch`` sequences.

Every feature changes the graphs' bindings or types, so the backends simulate different
work; nothing multiplies a result.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends import Step, make_backend
from .bounds import Bound, GraphBounds
from .config import RunConfig
from .graphs import ModelGraphs, load_graphs
from .positions import Sampled, sample


@dataclass
class Series:
    """Steps simulated at some positions of one phase, interpolated at the others."""

    sampled: Sampled
    steps: dict[int, Step]

    def interp(self, get, at: np.ndarray) -> np.ndarray:
        xs = self.sampled.positions
        ys = np.array([get(self.steps[int(x)]) for x in xs], dtype=np.float64)
        return np.interp(at, xs, ys)


@dataclass
class Run:
    """Everything a run produced; ``result.py`` turns it into the JSON report."""

    config: RunConfig
    model: str
    model_source: str
    arch_name: str
    arch_kind: str
    device: str
    devices: int
    prefill: Step
    draft_prefill: Step | None
    positions: np.ndarray  # decode contexts, one per output token after the first
    itl_s: np.ndarray
    decode: Series | None
    draft: Series | None
    tokens_per_step: float
    prefill_bound: Bound
    decode_bounds: list[tuple[int, Bound]]  # at the simulated positions (spec: per token)
    steps_simulated: int
    wall_s: float
    # What simulated it, to re-run a step with a trace (trace.py).
    backend: Any = field(default=None, repr=False)
    graphs: ModelGraphs | None = field(default=None, repr=False)
    prefill_call: tuple[Any, dict[str, int]] | None = field(default=None, repr=False)

    @property
    def ttft_s(self) -> float:
        return self.prefill.time_s + (self.draft_prefill.time_s if self.draft_prefill else 0.0)

    @property
    def decode_s(self) -> float:
        return float(self.itl_s.sum())

    @property
    def e2e_s(self) -> float:
        return self.ttft_s + self.decode_s

    def decode_total(self, get) -> float:
        """Sum over the decode positions of a per-step quantity (spec: per token, draft included)."""
        if self.decode is None or not len(self.positions):
            return 0.0
        if self.draft is None:
            return float(self.decode.interp(get, self.positions).sum())
        k = self.config.spec.k
        total = self.decode.interp(get, self.positions)
        for j in range(k):
            total = total + self.draft.interp(get, self.positions + j)
        return float(total.sum() / self.tokens_per_step)

    def decode_steps(self) -> list[tuple[int, Step]]:
        return sorted(self.decode.steps.items()) if self.decode else []


def simulate_llm(cfg: RunConfig, *, progress: bool = False) -> Run:
    cfg = cfg.checked()
    t0 = time.perf_counter()
    backend = make_backend(cfg.arch, cfg.devices, cuda_graphs=cfg.cuda_graphs, kernel_looping=cfg.kernel_looping,
                           fusion=cfg.fusion)
    graphs = load_graphs(cfg.model, cfg.weights, cfg.kv_dtype)
    draft = load_graphs(cfg.spec.draft, cfg.weights, cfg.kv_dtype) if cfg.spec else None
    bar = _progress(progress, f"{graphs.name} on {backend.devices} x {backend.arch.name}")
    count = [0]

    def step(module, bindings: dict[str, int]) -> Step:
        s = backend.step(module, bindings)
        count[0] += 1
        if bar is not None:
            bar.update(1)
        return s

    peak = lambda g: max(backend.peak_flops(d.value) for d in g.dtypes) if g.dtypes else backend.peak_flops("bf16")  # noqa: E731

    cache: dict[int, tuple] = {}

    def bound(module, bindings) -> Bound:
        if id(module) not in cache:
            cache[id(module)] = (module, GraphBounds.of(module))  # holds the module: its id stays its own
        gb = cache[id(module)][1]
        return gb.at(bindings, peak(gb), backend.memory_bw, backend.devices)

    B, P, G = cfg.batch, cfg.prompt, cfg.gen
    pre_mod, pre_env = _prefill(graphs, B, P, cfg.prefix_cache)
    prefill = step(pre_mod, pre_env)
    pbound = bound(pre_mod, pre_env)
    draft_prefill = None
    if draft is not None:
        d_mod, d_env = _prefill(draft, B, P, cfg.prefix_cache)
        draft_prefill = step(d_mod, d_env)
        db = bound(d_mod, d_env)
        pbound = Bound(pbound.compute_s + db.compute_s, pbound.memory_s + db.memory_s,
                       pbound.flops + db.flops, pbound.bytes + db.bytes)

    positions = np.arange(P, P + G - 1, dtype=np.float64)
    decode = draft_series = None
    e = 1.0
    itl = np.zeros(0)
    dbounds: list[tuple[int, Bound]] = []
    if G >= 2:
        lo, hi = P, P + G - 2
        seq = cfg.spec.k + 1 if cfg.spec else 1
        decode = _series(lambda c: step(graphs.decode, graphs.bindings(graphs.decode, B, seq, c)), lo, hi, cfg.tolerance)
        times = decode.interp(lambda s: s.time_s, positions)
        if cfg.spec:
            e = cfg.spec.tokens_per_step
            k = cfg.spec.k
            draft_series = _series(lambda c: step(draft.decode, draft.bindings(draft.decode, B, 1, c)),
                                   lo, hi + k - 1, cfg.tolerance)
            for j in range(k):
                times = times + draft_series.interp(lambda s: s.time_s, positions + j)
            times = times / e
        itl = times
        for c in decode.sampled.positions.astype(int):
            b = bound(graphs.decode, graphs.bindings(graphs.decode, B, seq, int(c)))
            if cfg.spec:
                for j in range(cfg.spec.k):
                    d = bound(draft.decode, draft.bindings(draft.decode, B, 1, int(c) + j))
                    b = Bound(b.compute_s + d.compute_s, b.memory_s + d.memory_s, b.flops + d.flops, b.bytes + d.bytes)
                b = Bound(b.compute_s / e, b.memory_s / e, b.flops / e, b.bytes / e)
            dbounds.append((int(c), b))
    if bar is not None:
        bar.close()
    return Run(cfg, graphs.name, graphs.source, backend.arch.name, backend.kind, backend.unit, backend.devices,
               prefill, draft_prefill, positions, itl, decode, draft_series, e, pbound, dbounds, count[0],
               time.perf_counter() - t0, backend, graphs, (pre_mod, pre_env))


def _prefill(graphs: ModelGraphs, batch: int, prompt: int, cached: int):
    if cached:
        return graphs.decode, graphs.bindings(graphs.decode, batch, prompt - cached, cached)
    return graphs.prefill, graphs.bindings(graphs.prefill, batch, prompt, 0)


def _series(f, lo: int, hi: int, tol: float) -> Series:
    steps: dict[int, Step] = {}

    def time_at(c: int) -> float:
        steps[c] = f(c)
        return steps[c].time_s

    return Series(sample(time_at, lo, hi, tol), steps)


def _progress(enabled: bool, desc: str):
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(desc=desc, unit=" steps", file=sys.stderr, leave=False)
