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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rduflow.compiler.passes import PassInstrument

from .backends import Step, available_cpus, make_backend
from .bounds import Bound, GraphBounds
from .config import RunConfig
from .errors import LlmSimError
from .graphs import ModelGraphs, load_graphs
from .positions import Sampled, sample
from .serving.host import NONE, HostOverheads, host_overheads


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
    device_itl_s: np.ndarray  # the devices' time per output token (spec: draft steps included)
    decode: Series | None
    draft: Series | None
    tokens_per_step: float
    prefill_bound: Bound
    decode_bounds: list[tuple[int, Bound]]  # at the simulated positions (spec: per token)
    steps_simulated: int
    wall_s: float
    host: HostOverheads = NONE  # the serving engine's time around the steps (serving/host.py)
    compute_dtype: str = "bf16"  # the matrix units' dtype: the one the compute roofline uses (energy per FLOP)
    # What simulated it, to re-run a step with a trace (trace.py).
    backend: Any = field(default=None, repr=False)
    graphs: ModelGraphs | None = field(default=None, repr=False)
    prefill_call: tuple[Any, dict[str, int]] | None = field(default=None, repr=False)

    @property
    def device_ttft_s(self) -> float:
        return self.prefill.time_s + (self.draft_prefill.time_s if self.draft_prefill else 0.0)

    @property
    def host_ttft_s(self) -> float:
        """Setting the request up, and the engine's work around its prefill step."""
        return self.host.request_s + self.host.step(self.config.batch)

    @property
    def ttft_s(self) -> float:
        return self.device_ttft_s + self.host_ttft_s

    @property
    def host_itl_s(self) -> float:
        """The engine's work around each decode step, per output token."""
        return self.host.step(self.config.batch) / self.tokens_per_step

    @property
    def itl_s(self) -> np.ndarray:
        return self.device_itl_s + self.host_itl_s

    @property
    def device_decode_s(self) -> float:
        return float(self.device_itl_s.sum())

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


def simulate_llm(cfg: RunConfig, *, progress: bool = False, instruments: Sequence[PassInstrument] = ()) -> Run:
    """Simulate a whole generation (``cfg`` says what); progress goes to stderr when asked (a bar
    on a terminal, else a line per stage once the run takes a few seconds). ``instruments``
    watch the passes that make the graphs (``graphs.py``)."""
    return _Runner(cfg.checked(), progress, instruments).run()


def max_context(model) -> int | None:
    """The most tokens ``model`` takes (its config's ``max_position_embeddings``): a preset's, a
    config.json's or a ModelConfig's; None for a model file, whose graph does not say."""
    from rduflow.models import ModelConfig

    from .model_source import ModelSource, resolve_model

    if isinstance(model, str):
        model = resolve_model(model)  # an unknown name fails here as it would when loaded
    if isinstance(model, ModelSource):
        model = model.config
    return model.max_position_embeddings if isinstance(model, ModelConfig) else None


def check_context(cfg: RunConfig) -> None:
    """Refuse a generation longer than a model's context: its positions have no meaning to the
    model, and the run would simulate for a long time."""
    if cfg.allow_long_context:
        return
    tokens = cfg.prompt + cfg.gen
    for model in [cfg.model] + ([cfg.spec.draft] if cfg.spec else []):
        limit = max_context(model)
        if limit is not None and tokens > limit:
            name = getattr(model, "name", model)
            raise LlmSimError(f"--prompt {cfg.prompt} + --gen {cfg.gen} = {tokens} tokens exceed {name}'s maximum "
                              f"context of {limit} (max_position_embeddings); --allow-long-context simulates it anyway")


class _Runner:
    def __init__(self, cfg: RunConfig, progress: bool, instruments: Sequence[PassInstrument]):
        self.cfg = cfg
        self.t0 = time.perf_counter()
        check_context(cfg)
        self.backend = make_backend(cfg.arch, cfg.devices, cuda_graphs=cfg.cuda_graphs,
                                    kernel_looping=cfg.kernel_looping, fusion=cfg.fusion)
        self.graphs = load_graphs(cfg.model, cfg.weights, cfg.kv_dtype, instruments)
        self.draft = load_graphs(cfg.spec.draft, cfg.weights, cfg.kv_dtype, instruments) if cfg.spec else None
        self.workers = cfg.workers or available_cpus()
        desc = f"{self.graphs.name} on {self.backend.devices} x {self.backend.arch.name}"
        self.progress = _Progress(desc, self.t0) if progress else None
        self.used: set[tuple] = set()
        self.bounds: dict[int, tuple] = {}

    # -- the calls a run makes ---------------------------------------------------------------
    def prefill_call(self, graphs: ModelGraphs) -> tuple:
        b, p, cached = self.cfg.batch, self.cfg.prompt, self.cfg.prefix_cache
        if cached:
            return graphs.decode, graphs.bindings(graphs.decode, b, p - cached, cached)
        return graphs.prefill, graphs.bindings(graphs.prefill, b, p, 0)

    def target_at(self, c: int) -> tuple:
        """The target's decode step at context ``c`` (a verification of K+1 tokens with
        speculative decoding)."""
        g, seq = self.graphs, self.cfg.spec.k + 1 if self.cfg.spec else 1
        return g.decode, g.bindings(g.decode, self.cfg.batch, seq, c)

    def draft_at(self, c: int) -> tuple:
        g = self.draft
        return g.decode, g.bindings(g.decode, self.cfg.batch, 1, c)

    def step(self, call: tuple) -> Step:
        module, bindings = call
        s = self.backend.step(module, bindings)
        key = (id(module), tuple(sorted(bindings.items())))
        if key not in self.used:
            self.used.add(key)
            if self.progress is not None:
                self.progress.step()
        return s

    def prefetch(self, calls: list[tuple]) -> None:
        self.stage(f"simulating {len(calls)} steps at once")
        self.backend.prefetch(calls, self.workers)

    def stage(self, text: str) -> None:
        if self.progress is not None:
            self.progress.stage(text)

    def graph_bounds(self, module) -> GraphBounds:
        if id(module) not in self.bounds:
            self.bounds[id(module)] = (module, GraphBounds.of(module))  # holds the module: its id stays its own
        return self.bounds[id(module)][1]

    def bound(self, call: tuple) -> Bound:
        module, bindings = call
        b = self.backend
        return self.graph_bounds(module).at(bindings, b.peak_flops(self.compute_dtype(module)), b.memory_bw, b.devices)

    def compute_dtype(self, module) -> str:
        """The graph's matmul dtype with the highest peak rate (bf16 if it has none)."""
        dtypes = self.graph_bounds(module).dtypes
        return max((d.value for d in dtypes), key=self.backend.peak_flops) if dtypes else "bf16"

    def series(self, at, lo: int, hi: int) -> Series:
        steps: dict[int, Step] = {}

        def time_at(c: int) -> float:
            steps[c] = self.step(at(c))
            return steps[c].time_s

        ahead = lambda xs: self.prefetch([at(x) for x in xs])
        return Series(sample(time_at, lo, hi, self.cfg.tolerance, ahead=ahead), steps)

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> Run:
        try:
            return self._run()
        finally:
            if self.progress is not None:
                self.progress.close()

    def _run(self) -> Run:
        cfg, P, G = self.cfg, self.cfg.prompt, self.cfg.gen
        lo, hi = P, P + G - 2
        k = cfg.spec.k if cfg.spec else 0
        prefills = [self.prefill_call(self.graphs)] + ([self.prefill_call(self.draft)] if self.draft else [])
        # The prefills and both ends of each decode range are independent: simulate them at once.
        first = list(prefills)
        if G >= 2:
            first += [self.target_at(lo), self.target_at(hi)]
            first += [self.draft_at(lo), self.draft_at(hi + k - 1)] if self.draft else []
        self.prefetch(first)
        prefill = self.step(prefills[0])
        draft_prefill = self.step(prefills[1]) if self.draft else None
        pbound = _sum([self.bound(c) for c in prefills])

        positions = np.arange(P, P + G - 1, dtype=np.float64)
        decode = draft = None
        e = cfg.spec.tokens_per_step if cfg.spec else 1.0
        itl = np.zeros(0)
        dbounds: list[tuple[int, Bound]] = []
        if G >= 2:
            self.stage("decode")
            decode = self.series(self.target_at, lo, hi)
            times = decode.interp(lambda s: s.time_s, positions)
            if cfg.spec:
                self.stage("draft decode")
                draft = self.series(self.draft_at, lo, hi + k - 1)
                times = times + sum(draft.interp(lambda s: s.time_s, positions + j) for j in range(k))
            itl = times / e
            for c in decode.sampled.positions.astype(int):
                parts = [self.bound(self.target_at(int(c)))] + [self.bound(self.draft_at(int(c) + j)) for j in range(k)]
                dbounds.append((int(c), _sum(parts, e)))
        b = self.backend
        return Run(cfg, self.graphs.name, self.graphs.source, b.arch.name, b.kind, b.unit, b.devices, prefill,
                   draft_prefill, positions, itl, decode, draft, e, pbound, dbounds, len(self.used),
                   time.perf_counter() - self.t0, host_overheads(b.kind, cfg.host_overheads),
                   self.compute_dtype(prefills[0][0]), b, self.graphs, prefills[0])


def _sum(bounds: list[Bound], per: float = 1.0) -> Bound:
    """Bounds of steps run one after another (over ``per`` tokens)."""
    return Bound(sum(b.compute_s for b in bounds) / per, sum(b.memory_s for b in bounds) / per,
                 sum(b.flops for b in bounds) / per, sum(b.bytes for b in bounds) / per)


PLAIN_AFTER_S = 3.0  # off a terminal, a run shorter than this prints no progress


class _Progress:
    """A run's progress on stderr: a tqdm bar on a terminal; elsewhere (a log, a pipe) a plain
    line per stage, once the run has taken more than PLAIN_AFTER_S."""

    def __init__(self, desc: str, t0: float):
        self.desc, self.t0, self.steps = desc, t0, 0
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(desc=desc, unit=" steps", file=sys.stderr, leave=False)

    def step(self) -> None:
        self.steps += 1
        if self.bar is not None:
            self.bar.update(1)

    def stage(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            return
        elapsed = time.perf_counter() - self.t0
        if elapsed >= PLAIN_AFTER_S:
            done = f"{self.steps} step{'' if self.steps == 1 else 's'} simulated"
            print(f"rduflow: {self.desc}: {text} ({done}, {elapsed:.0f} s)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
