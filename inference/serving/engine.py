"""The serving loop: requests arrive, the scheduler forms steps, the step model times them.

Time advances step by step: a step starts when the previous one ends (or, on an idle
engine, when the next request arrives), lasts its device time plus the engine's host time,
and every sequence whose prompt is then fully in the cache samples a token at its end.
Everything is deterministic: the same workload and options give the same result.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config import EngineConfig
from .host import HostOverheads
from .kv_cache import KVCache, Sequence
from .scheduler import make_scheduler
from .step_model import StepModel
from .workload import Request, Workload


@dataclass
class StepLog:
    """One row per step (arrays, one entry per step)."""

    start_s: np.ndarray
    chip_s: np.ndarray
    host_s: np.ndarray
    load_s: np.ndarray  # copying KV blocks back from the offload tier before the step
    switch_s: np.ndarray  # bringing in the weights of another model before the step
    sequences: np.ndarray  # in the step
    running: np.ndarray  # admitted, holding KV blocks (some may sit out a step)
    tokens: np.ndarray
    prefill_tokens: np.ndarray
    kv_blocks: np.ndarray
    waiting: np.ndarray
    preempted: np.ndarray
    flops: np.ndarray
    memory_bytes: np.ndarray
    link_bytes: np.ndarray


_NOTHING = object()  # no model loaded yet


@dataclass(frozen=True)
class Offload:
    """The KV offload tier: its size and what copying a block back costs."""

    blocks: int
    tier: str  # "ddr" (an RDU's) or "host" (a GPU's CPU memory over PCIe)
    bytes_per_block: float  # per device
    bandwidth: float  # bytes/s per device

    def load_s(self, blocks: int) -> float:
        return blocks * self.bytes_per_block / self.bandwidth if blocks else 0.0


NO_OFFLOAD = Offload(0, "none", 0.0, 1.0)


@dataclass
class Rejected:
    request: Request
    kind: str  # what the report counts: too long for the model, larger than the KV cache, ...
    reason: str  # the whole sentence, with this request's figures


@dataclass
class EngineRun:
    sequences: list[Sequence]  # finished, in request order
    rejected: list[Rejected]
    steps: StepLog
    kv_blocks: int
    block_size: int
    prefix_hit_rate: float
    offload: Offload
    offload_hit_rate: float  # prefix-cache tokens found in the offload tier, of all looked up
    end_s: float
    switches: int = 0  # times the devices changed model


class _Log:
    COLS = ("start_s", "chip_s", "host_s", "load_s", "switch_s", "sequences", "running", "tokens", "prefill_tokens", "kv_blocks", "waiting",
            "preempted", "flops", "memory_bytes", "link_bytes")

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def done(self) -> StepLog:
        cols = list(zip(*self.rows)) if self.rows else [()] * len(self.COLS)
        return StepLog(*(np.array(c, dtype=np.float64) for c in cols))


def serve_requests(workload: Workload, cfg: EngineConfig, model: StepModel | dict[str | None, StepModel],
                   host: HostOverheads, kv_blocks: int, max_model_len: int, offload: Offload = NO_OFFLOAD,
                   progress: Callable[[int], None] | None = None,
                   switch_s: dict[str | None, float] | None = None) -> EngineRun:
    """``model``: the step model, or one per model name when several models share the devices
    (requests name theirs); ``switch_s``: then the time to bring each model's weights in when a
    step needs a model other than the one loaded."""
    models = model if isinstance(model, dict) else {None: model}
    switch_s = switch_s or {}
    kv = KVCache(kv_blocks, cfg.block_size, cfg.enable_prefix_caching, offload.blocks)
    sched = make_scheduler(cfg, kv)
    rejected: list[Rejected] = []
    done: list[Sequence] = []
    log = _Log()
    reqs = list(workload.requests)
    # (reaches the engine, order, request, sent by the client). With a concurrency cap
    # (vLLM's benchmark --max-concurrency; a closed loop when every arrival is 0) a request is
    # sent at its arrival or when a request in flight ends, whichever is later.
    arrivals: list[tuple[float, int, Request, float]] = []
    cap = workload.concurrency
    nxt = in_flight = 0

    def send(now: float) -> None:
        nonlocal nxt, in_flight
        while nxt < len(reqs) and (cap is None or in_flight < cap):
            r = reqs[nxt]
            sent = max(r.arrival_s, now)
            heapq.heappush(arrivals, (sent + host.request_s, nxt, r, sent))
            nxt += 1
            in_flight += 1

    def ended(now: float) -> None:
        nonlocal in_flight
        in_flight -= 1
        send(now)

    send(0.0)
    t = 0.0
    finished_count = 0
    loaded, switches = _NOTHING, 0  # the model whose weights are in device memory
    bs, caching = kv.block_size, kv.prefix_caching
    while arrivals or sched.busy:
        while arrivals and arrivals[0][0] <= t:
            _, _, r, sent = heapq.heappop(arrivals)
            refused = _refusal(r, cfg, kv, max_model_len, sched)
            if refused is not None:
                rejected.append(refused)
                ended(t)
                continue
            sched.add(Sequence(r, r.input_tokens, sent_s=sent))
        if not sched.busy:
            if not arrivals:
                break  # the last requests were all rejected
            t = arrivals[0][0]
            continue
        step = sched.schedule()
        running = len(sched.running)
        if not step.work:
            raise AssertionError("the scheduler formed an empty step with requests waiting")  # would never end
        cost = models[step.model].cost(step.batch)
        h = host.step(step.batch.sequences)
        load = offload.load_s(kv.loaded)  # before the step can use them (not overlapped: an upper bound)
        kv.loaded = 0
        switch = 0.0
        if step.model != loaded:
            if loaded is not _NOTHING:  # the first model is there when the run starts
                switch = switch_s.get(step.model, 0.0)
                switches += 1
            loaded = step.model
        start = t
        t += cost.time_s + h + load + switch
        for s, n in step.work:
            if s.first_scheduled_s is None:
                s.first_scheduled_s = start
            s.computed += n
            if caching and s.computed >= (len(s.hashes) + 1) * bs:  # a block filled up
                kv.computed(s)
            if s.computed >= s.num_tokens:
                s.generated += 1
                s.num_tokens += 1
                s.token_times.append(t)
                if s.generated >= s.req.output_tokens:
                    s.finished_s = t
                    sched.finished(s)
                    done.append(s)
                    finished_count += 1
                    ended(t)
        b = step.batch
        log.rows.append((start, cost.time_s, h, load, switch, b.sequences, running, b.tokens, b.tokens - b.decodes, kv.used,
                         len(sched.waiting), step.preempted, cost.flops, cost.memory_bytes, cost.link_bytes))
        if progress is not None:
            progress(finished_count + len(rejected))
    done.sort(key=lambda s: s.req.id)
    hit = kv.hits / kv.queries if kv.queries else 0.0
    off = kv.offload_hits / kv.queries if kv.queries else 0.0
    return EngineRun(done, rejected, log.done(), kv_blocks, cfg.block_size, hit, offload, off, t, switches)


def _refusal(r: Request, cfg: EngineConfig, kv: KVCache, max_model_len: int, sched) -> Rejected | None:
    """Why a request can never be served, as vLLM refuses it (or None)."""
    total = r.input_tokens + r.output_tokens
    if total > max_model_len:
        return Rejected(r, "too long for the model", f"{r.input_tokens} + {r.output_tokens} tokens exceed the maximum "
                        f"model length {max_model_len}")
    if -(-total // cfg.block_size) > kv.num_blocks:
        return Rejected(r, "larger than the KV cache", f"{total} tokens need more KV cache than there is "
                        f"({kv.num_blocks * cfg.block_size} tokens)")
    if cfg.scheduler == "vllm" and not cfg.enable_chunked_prefill and r.input_tokens > cfg.max_num_batched_tokens:
        return Rejected(r, "prompt over the token budget", f"a {r.input_tokens}-token prompt exceeds "
                        "--max-num-batched-tokens without chunked prefill")
    if cfg.scheduler == "buckets" and not sched.fits(r):
        return Rejected(r, "over the longest bucket", f"{total} tokens exceed the longest compiled sequence bucket "
                        f"{cfg.seq_buckets[-1]}")
    return None
